"""The program runs in native mode on each edge, on its pinned maps."""

from __future__ import annotations

import json

import fleet
import pytest

EDGES = fleet.group("sip_edges")
MAPS = ["sip_ports", "allow_v4", "allow_v6", "block_v4", "block_v6",
        "settings", "stats", "proto_stats", "xsks_map"]
XDP_ATTACHED_DRV = 1


def bpftool(edge: fleet.Host, *args: str) -> dict:
    return json.loads(edge.run("bpftool --json " + " ".join(args)))


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_program_attached_natively_on_eth0(edge: fleet.Host) -> None:
    (link,) = json.loads(edge.run("ip -json link show dev eth0"))
    assert link["xdp"]["mode"] == XDP_ATTACHED_DRV
    assert link["xdp"]["prog"]["name"] == "sip_xdp_prog"


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_attached_program_is_pinned_with_its_maps(edge: fleet.Host) -> None:
    (link,) = json.loads(edge.run("ip -json link show dev eth0"))
    prog = bpftool(edge, "prog show pinned", fleet.PIN_DIR + "/prog_eth0")
    pinned = {name: bpftool(edge, "map show pinned",
                            "%s/%s" % (fleet.PIN_DIR, name))["id"]
              for name in MAPS}
    assert prog["id"] == link["xdp"]["prog"]["id"]
    assert set(pinned.values()) <= set(prog["map_ids"])
