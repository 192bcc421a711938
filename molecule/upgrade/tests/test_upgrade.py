"""Release 0.1.0 upgraded to this checkout while a blocklisted scanner
floods the edges, then a changed build deployed the same way.

Converge ran release 0.1.0's own deploy.yml and blocklist sync: its
program, attached through netlink, with the nine maps of that release
pinned and filled. This checkout's deploy.yml then loads the new program
on those maps, pins the eight maps that came later next to them, writes the
default rate limits and scanner signatures, and replaces the program
through netlink in one step, with the scanner's INVITE flood under way the
whole time. A deploy with fastpath_move_to_link then moves it to a BPF
link (no flood: that move has a gap of milliseconds), and a changed build
(the same source without loop unrolling) deployed under the flood swaps
the link's program in one step: the path of every later upgrade.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fleet
import pytest

EDGES = fleet.group("sip_edges")
SCANNER = fleet.only("scanners")
MONITOR = fleet.only("monitors")
ABI = fleet.abi()
# The maps of release 0.1.0, and those that came with rate limits, bans
# and scanner fingerprints (docs/dataplane.md, Maps).
OLD_MAPS = list(ABI.MAPS_0_1)
NEW_MAPS = ["stats_ext", "limits", "rate_state", "scanner_sigs",
            "scanner_hits", "bans_v2", "pardons", "rate_limited",
            "block_v4_hosts", "block_v6_hosts"]
# The changed build: the same source compiled without loop unrolling.
CHANGED_BUILD = ["-fno-unroll-loops"]
FLOOD_RATE = 400          # INVITEs a second to each edge
FLOOD_UNIT = "fp-flood"
FLOOD_STOP = "/run/fp-flood.stop"
FLOOD_OUT = "/run/fp-flood.json"
INVITES = fleet.KAMAILIO_INVITES
LINK = "link_eth0"
MOVED = "was moved from a netlink attachment to a BPF link"


def edge_state(edge: fleet.Host) -> dict[str, Any]:
    """An edge's program, link, pins, pinned maps, list entries and
    counters (read with ip and bpftool), and the INVITEs Kamailio
    received."""
    pinned = edge.pinned()
    maps = edge.pinned_maps()
    link = json.loads(edge.run(
        "bpftool --json link show pinned %s/%s" % (fleet.PIN_DIR, LINK))) \
        if LINK in pinned else None      # none: a netlink attachment
    return {"xdp": edge.xdp(), "link": link, "pinned": pinned,
            "maps": {name: info["id"] for name, info in maps.items()},
            "layouts": maps, "lists": edge.lists(),
            "tries": {name: edge.trie_only(name)
                      for name in ("block_v4", "block_v6")},
            "counters": edge.counter_maps(maps),
            "invites": edge.kamailio_stat(INVITES)}


def snapshot() -> dict[str, dict[str, Any]]:
    """Every edge's state, the edges read at the same time."""
    with ThreadPoolExecutor(len(EDGES)) as pool:
        states = list(pool.map(edge_state, EDGES))
    return {e.name: state for e, state in zip(EDGES, states, strict=True)}


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


def deploy_under_flood(**extra_vars: Any) -> dict[str, Any]:
    """deploy.yml while the scanner floods both edges: the state before
    and after, the INVITEs sent to each edge and the play's output."""
    before = snapshot()
    start_flood()
    try:
        time.sleep(3)     # under way before the deploy starts
        deploy = fleet.play("deploy", **extra_vars)
        time.sleep(3)     # and still under way after it ended
    finally:
        sent = stop_flood()
    # Warnings go to stderr.
    output = deploy.stdout + deploy.stderr
    assert deploy.returncode == 0, "deploy.yml failed:\n" + output[-6000:]
    time.sleep(1)
    return {"before": before, "after": snapshot(), "sent": sent,
            "deploy": output}


@pytest.fixture(scope="module")
def upgrade() -> dict[str, Any]:
    """Release 0.1.0 as converge left it, upgraded under the flood."""
    # Traffic before, so that every counter that matters is under way.
    for edge in EDGES:
        SCANNER.run("%s burst INVITE %s --count 50"
                    % (fleet.SIP_TOOL, edge.address))
        MONITOR.run("%s request OPTIONS %s" % (fleet.SIP_TOOL, edge.address))
    time.sleep(1)
    # This checkout's xdp_stats on the hosts that still run 0.1.0 (what
    # an operator sees before deploying), between two bpftool reads. Its
    # failure is one test's, not the upgrade's.
    first = {e.name: e.counter_maps(ABI.MAPS_0_1) for e in EDGES}
    try:
        stats: Any = fleet.counters()
    except AssertionError as e:
        stats = str(e)
    run = deploy_under_flood()
    run["xdp_stats"] = {"first": first, "module": stats}
    return run


@pytest.fixture(scope="module")
def redeploy(upgrade: dict) -> str:
    """deploy.yml once more, right after the upgrade."""
    return fleet.run_playbook("deploy")


@pytest.fixture(scope="module")
def relinked(redeploy: str) -> str:
    """deploy.yml asked to move the netlink attachment to a link: its
    output, warnings (stderr) included."""
    proc = fleet.play("deploy", fastpath_move_to_link=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def changed_build(relinked: str) -> dict[str, Any]:
    return deploy_under_flood(fastpath_cflags=CHANGED_BUILD)


def each(run: dict, edge: fleet.Host) -> tuple[dict, dict]:
    return run["before"][edge.name], run["after"][edge.name]


def test_converge_left_release_0_1_0_attached_through_netlink(
        upgrade: dict) -> None:
    for edge in EDGES:
        before, _after = each(upgrade, edge)
        assert before["pinned"] == set(OLD_MAPS) | {"prog_eth0"}
        assert before["link"] is None
        assert before["xdp"]["mode"] == "native"


def test_xdp_stats_reads_a_host_still_on_0_1_0(upgrade: dict) -> None:
    """What xdp_stats read lies between two bpftool reads around it."""
    stats = upgrade["xdp_stats"]["module"]
    assert isinstance(stats, dict), stats
    for edge in EDGES:
        first = upgrade["xdp_stats"]["first"][edge.name]
        then = upgrade["before"][edge.name]["counters"]
        read = {"stats." + name: count
                for name, count in stats[edge.name].items()}
        assert set(read) == {n for n in first if n.startswith("stats.")}
        assert all(first[n] <= count <= then[n] for n, count in read.items())


def test_each_edge_runs_the_new_program_natively_still_through_netlink(
        upgrade: dict) -> None:
    for edge in EDGES:
        before, after = each(upgrade, edge)
        assert after["xdp"]["tag"] != before["xdp"]["tag"]
        assert after["xdp"]["mode"] == "native"
        assert after["link"] is None
    assert MOVED not in upgrade["deploy"]


def test_move_to_link_moves_each_edge_to_a_link(relinked: str) -> None:
    assert MOVED in relinked
    for edge in EDGES:
        assert LINK in edge.pinned()


def test_the_release_maps_are_the_same_maps(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = each(upgrade, edge)
        assert {n: after["maps"].get(n) for n in OLD_MAPS} == before["maps"]


def test_the_new_maps_are_pinned_and_used_by_the_program(
        upgrade: dict) -> None:
    for edge in EDGES:
        _before, after = each(upgrade, edge)
        assert set(ABI.MAPS) == set(OLD_MAPS) | set(NEW_MAPS)
        assert after["pinned"] == set(ABI.MAPS) | {"prog_eth0"}
        for name in NEW_MAPS:
            spec, info = ABI.MAPS[name], after["layouts"][name]
            assert (info["type"], info["bytes_key"], info["bytes_value"],
                    info["max_entries"], info["flags"]) == \
                (fleet.BPFTOOL_MAP_TYPES[spec.map_type], spec.key_size,
                 spec.value_size, spec.max_entries, spec.flags), name
        assert set(after["maps"].values()) <= \
            edge.prog_map_ids(after["xdp"]["id"])


def test_every_list_entry_survives(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = each(upgrade, edge)
        assert len(before["lists"]["block_v4"]) > 20_000 * 0.8
        assert "198.18.103.30/32" in before["lists"]["block_v4"]
        assert "192.0.2.0/24" in before["lists"]["allow_v4"]
        assert after["lists"] == before["lists"]


def test_the_single_addresses_moved_from_the_tries_to_the_hashes(
        upgrade: dict) -> None:
    """0.1.0 kept every entry in the tries; the deploy moved the single
    addresses to block_v4_hosts and block_v6_hosts, the prefixes stay."""
    for edge in EDGES:
        before, after = each(upgrade, edge)
        for name, full in (("block_v4", "/32"), ("block_v6", "/128")):
            assert before["tries"][name] == before["lists"][name]
            assert {e for e in before["lists"][name]
                    if not e.endswith(full)} == after["tries"][name]
        assert "198.18.103.30/32" not in after["tries"]["block_v4"]


def test_no_flood_packet_reaches_kamailio(upgrade: dict) -> None:
    assert min(upgrade["sent"].values()) > FLOOD_RATE * 10
    reached = {edge.name: after["invites"] - before["invites"]
               for edge in EDGES for before, after in [each(upgrade, edge)]}
    assert reached == {edge.name: 0 for edge in EDGES}, (
        "flood INVITEs that reached Kamailio: %s (deploy.yml %s)" % (
            reached, "warned that the program " + MOVED
            if MOVED in upgrade["deploy"] else "gave no warning"))


def test_every_flood_packet_is_counted_blocked(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = each(upgrade, edge)
        blocked = after["counters"]["stats.BLOCKED"] - \
            before["counters"]["stats.BLOCKED"]
        assert blocked == upgrade["sent"][edge.name], (
            "%s: %d of %d flood INVITEs counted BLOCKED, %d reached "
            "Kamailio" % (edge, blocked, upgrade["sent"][edge.name],
                          after["invites"] - before["invites"]))


def test_counters_carry_on_from_where_they_were(upgrade: dict) -> None:
    for edge in EDGES:
        before, after = (run["counters"] for run in each(upgrade, edge))
        assert before["stats.BLOCKED"] >= 50
        assert before["stats.PASSED"] >= 1
        assert set(before) < set(after)
        went_back = {name: (count, after[name])
                     for name, count in before.items() if after[name] < count}
        assert went_back == {}


def test_default_rate_limits_and_scanner_signatures_are_written(
        upgrade: dict) -> None:
    for edge in EDGES:
        (limits,) = edge.array("limits")
        assert any(limits), "the limits map of %s is all zero" % edge
        length, _reserved, text = ABI.SIGNATURE.unpack(
            edge.array("scanner_sigs")[0])
        assert text[:length] == b"friendly", edge


def test_deploying_again_changes_nothing(redeploy: str) -> None:
    changed = fleet.changed_tasks(redeploy)
    assert {e.name: changed[e.name] for e in EDGES} == \
        {e.name: 0 for e in EDGES}, redeploy[-3000:]


def test_a_changed_build_swaps_the_program_of_the_same_link(
        changed_build: dict) -> None:
    for edge in EDGES:
        before, after = each(changed_build, edge)
        assert after["xdp"]["tag"] != before["xdp"]["tag"]
        assert after["xdp"]["mode"] == "native"
        assert after["link"]["id"] == before["link"]["id"]
        assert after["link"]["prog_id"] == after["xdp"]["id"]
        assert after["maps"] == before["maps"]
        assert after["lists"] == before["lists"]


def test_the_changed_build_lets_no_flood_packet_through(
        changed_build: dict) -> None:
    assert min(changed_build["sent"].values()) > FLOOD_RATE * 10
    for edge in EDGES:
        before, after = each(changed_build, edge)
        assert after["invites"] == before["invites"]
        assert after["counters"]["stats.BLOCKED"] - \
            before["counters"]["stats.BLOCKED"] == \
            changed_build["sent"][edge.name]
        assert all(after["counters"][name] >= count
                   for name, count in before["counters"].items())


def test_netlink_cannot_detach_the_upgraded_program(
        changed_build: dict) -> None:
    for edge in EDGES:
        # Succeeds only when ip fails, for the link's reason.
        edge.run("ip link set dev eth0 xdp off 2>&1 | grep -q 'BPF XDP link'")
        after = changed_build["after"][edge.name]
        assert edge.xdp()["id"] == after["xdp"]["id"]
