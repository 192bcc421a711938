"""The program runs in native mode on each edge, on its pinned maps."""

from __future__ import annotations

import json

import fleet
import pytest

EDGES = fleet.group("sip_edges")


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_program_attached_natively_on_eth0(edge: fleet.Host) -> None:
    xdp = edge.xdp()
    assert xdp is not None
    assert (xdp["name"], xdp["mode"]) == ("sip_xdp_prog", "native")


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_attached_program_is_pinned_with_its_maps(edge: fleet.Host) -> None:
    prog = json.loads(edge.run("bpftool --json prog show pinned %s",
                               fleet.PIN_DIR + "/prog_eth0"))
    assert prog["id"] == edge.xdp()["id"]
    assert set(edge.map_ids().values()) <= set(prog["map_ids"])
