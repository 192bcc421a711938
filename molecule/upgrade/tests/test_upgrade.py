"""A changed build deployed while a blocklisted scanner floods the edges.

The program is replaced in one step on the pinned maps, so the flood
meets either the old program or the new one, never no program: the BPF
link that attaches it on each edge gets the new program, and netlink
cannot remove it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import fleet
import pytest

EDGES = fleet.group("sip_edges")
SCANNER = fleet.only("scanners")
MONITOR = fleet.only("monitors")
# The changed build: the same source compiled without loop unrolling.
CHANGED_BUILD = ["-fno-unroll-loops"]
FLOOD_RATE = 400          # INVITEs a second to each edge
FLOOD_UNIT = "fp-flood"
FLOOD_STOP = "/run/fp-flood.stop"
FLOOD_OUT = "/run/fp-flood.json"
INVITES = fleet.KAMAILIO_INVITES
LINK_PIN = fleet.PIN_DIR + "/link_eth0"


def xdp_link(edge: fleet.Host) -> dict[str, Any]:
    """The BPF link pinned for eth0 (id, type, prog_id), as bpftool reads
    it."""
    return json.loads(edge.run("bpftool --json link show pinned %s",
                               LINK_PIN))


def snapshot() -> dict[str, dict[str, Any]]:
    counters = fleet.counters()
    return {edge.name: {"xdp": edge.xdp(), "link": xdp_link(edge),
                        "maps": edge.map_ids(),
                        "lists": edge.lists(), "counters": counters[edge.name],
                        "invites": edge.kamailio_stat(INVITES)}
            for edge in EDGES}


def start_flood() -> None:
    SCANNER.run("rm -f %s %s" % (FLOOD_STOP, FLOOD_OUT))
    SCANNER.run(
        "systemd-run --unit=%s --property=StandardOutput=file:%s "
        "%s flood INVITE %s --rate %d --seconds 900 --stop-file %s"
        % (FLOOD_UNIT, FLOOD_OUT, fleet.SIP_TOOL,
           " ".join(e.address for e in EDGES), FLOOD_RATE, FLOOD_STOP))


def stop_flood() -> dict[str, int]:
    """Stop the flood; how many INVITEs went to each edge."""
    SCANNER.run("touch %s" % FLOOD_STOP)
    SCANNER.run("timeout 30 sh -c 'while systemctl is-active --quiet %s; "
                "do sleep 0.2; done'" % FLOOD_UNIT)
    sent = json.loads(SCANNER.run("cat %s" % FLOOD_OUT))
    return {e.name: sent[e.address] for e in EDGES}


@pytest.fixture(scope="module")
def upgrade() -> dict[str, Any]:
    # Traffic before, so that every counter that matters is under way.
    for edge in EDGES:
        SCANNER.run("%s burst INVITE %s --count 50"
                    % (fleet.SIP_TOOL, edge.address))
        MONITOR.run("%s request OPTIONS %s" % (fleet.SIP_TOOL, edge.address))
    time.sleep(1)
    before = snapshot()
    start_flood()
    try:
        time.sleep(3)     # under way before the deploy starts
        deploy = fleet.run_playbook("deploy", fastpath_cflags=CHANGED_BUILD)
        time.sleep(3)     # and still under way after it ended
    finally:
        sent = stop_flood()
    time.sleep(1)
    return {"before": before, "after": snapshot(), "sent": sent,
            "deploy": deploy}


def test_each_edge_runs_the_new_build_natively(upgrade: dict) -> None:
    for edge in EDGES:
        old, new = (upgrade[when][edge.name]["xdp"]
                    for when in ("before", "after"))
        assert new["tag"] != old["tag"]
        assert new["mode"] == "native"


def test_the_same_bpf_link_runs_the_new_build(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = (upgrade[when][edge.name]
                         for when in ("before", "after"))
        assert before["link"]["prog_id"] == before["xdp"]["id"]
        assert after["link"]["id"] == before["link"]["id"]
        assert after["link"]["prog_id"] == after["xdp"]["id"]


def test_netlink_cannot_detach_the_upgraded_program(upgrade: dict) -> None:
    for edge in EDGES:
        # Succeeds only when ip fails, for the link's reason.
        edge.run("ip link set dev eth0 xdp off 2>&1 | grep -q 'BPF XDP link'")
        assert edge.xdp()["id"] == upgrade["after"][edge.name]["xdp"]["id"]


def test_the_maps_are_the_same_maps(upgrade: dict) -> None:
    for edge in EDGES:
        assert upgrade["after"][edge.name]["maps"] == \
            upgrade["before"][edge.name]["maps"]


def test_every_list_entry_survives(upgrade: dict) -> None:
    for edge in EDGES:
        lists = upgrade["before"][edge.name]["lists"]
        assert len(lists["block_v4"]) > 20_000 * 0.8
        assert upgrade["after"][edge.name]["lists"] == lists


def test_no_flood_packet_reaches_kamailio(upgrade: dict) -> None:
    assert min(upgrade["sent"].values()) > FLOOD_RATE * 10
    for edge in EDGES:
        assert upgrade["after"][edge.name]["invites"] == \
            upgrade["before"][edge.name]["invites"]


def test_every_flood_packet_is_counted_blocked(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = (upgrade[when][edge.name]["counters"]
                         for when in ("before", "after"))
        assert after["BLOCKED"] - before["BLOCKED"] == \
            upgrade["sent"][edge.name]


def test_counters_carry_on_from_where_they_were(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = (upgrade[when][edge.name]["counters"]
                         for when in ("before", "after"))
        assert before["BLOCKED"] >= 50 and before["PASSED"] >= 1
        assert all(after[name] >= count for name, count in before.items())


def test_deploying_the_same_build_again_changes_nothing(
        upgrade: dict) -> None:
    output = fleet.run_playbook("deploy", fastpath_cflags=CHANGED_BUILD)
    changed = fleet.changed_tasks(output)
    assert {e.name: changed[e.name] for e in EDGES} == \
        {e.name: 0 for e in EDGES}, output[-3000:]
