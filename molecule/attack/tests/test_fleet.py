"""Edge 1's bans go to the whole fleet (autoban.yml), end with their TTL,
are listed (bans.yml) and lifted everywhere (unblock.yml).

Two sources are banned on edge 1: LEFT for flooding REGISTERs (a
rate-limit ban of fastpath_ban_time), PARDONED for svwar's scanner
User-Agent (fastpath_scanner_ban_time, longer). One run of autoban.yml
blocks both on edges 2 and 3 from their first packet. LEFT's bans end
with their times (edge 1's own, the others' fastpath_autoban_ttl) and it
reaches every edge again. PARDONED, still banned on edge 1, is installed
again by the next run; unblock.yml then lifts it everywhere and pardons
it: svwar's scanner requests get it dropped but not banned, and the next
autoban run leaves it alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import attacks
import fleet
import pytest
import yaml
from attacks import ATTACKER, EDGES, Attack

EDGE, *OTHERS = EDGES
LEFT = "198.18.106.61"
PARDONED = "198.18.106.62"


def inventory_seconds(name: str) -> int:
    """A time of the scenario's inventory ("25s") in seconds."""
    config = yaml.safe_load(
        Path(fleet.molecule_env("MOLECULE_FILE")).read_text())
    value = config["provisioner"]["inventory"]["group_vars"]["sip_edges"][
        name]
    assert value.endswith("s"), value
    return int(value[:-1])


@dataclass
class Bans:
    """{host: {source address: ban}} of every edge (xdp_bans), read
    between two times (time.monotonic())."""
    hosts: dict[str, dict[str, dict]]
    start: float
    end: float


def bans() -> Bans:
    start = time.monotonic()
    results = fleet.run_module("sip_edges", "vos.fastpath.xdp_bans", {})
    return Bans({host: {ban["source"].split("/")[0]: ban
                        for ban in result["bans"]}
                 for host, result in results.items()},
                start, time.monotonic())


def sipp_register(name: str, source: str, edge: fleet.Host, rate: int,
                  count: int) -> Attack:
    """SIPp: count REGISTERs from source to edge at rate a second."""
    run = "/run/molecule-fleet-sipp"
    command = attacks.in_run_dir(run, attacks.sipp_command(
        edge.address, "flood_register", rate, count, 5070,
        count // rate + 10))
    attack = attacks.attack(name, source, edge, command)
    attack.tool_sent = attacks.sipp_results(ATTACKER, run).sent
    attacks.record(attack)
    return attack


def svwar(name: str, source: str) -> Attack:
    attack = attacks.attack(name, source, EDGE, attacks.svwar(EDGE.address))
    attacks.record(attack)
    return attack


def answered(edge: fleet.Host) -> bool:
    """Whether one REGISTER from the attacker's address gets an answer
    from edge."""
    return not attacks.run_any(ATTACKER, "%s request REGISTER %s --timeout "
                               "0.5" % (fleet.SIP_TOOL, edge.address)
                               ).startswith("no answer")


@dataclass
class Exchange:
    banned: dict[str, Attack]
    started: float
    bans: Bans


@pytest.fixture(scope="module")
def exchange() -> Exchange:
    banned = {
        LEFT: sipp_register("SIPp REGISTER flood 100/s 3 s (fleet)", LEFT,
                            EDGE, 100, 300),
        PARDONED: svwar("svwar (friendly-scanner) (fleet)", PARDONED)}
    started = time.monotonic()
    fleet.run_playbook("autoban")
    return Exchange(banned, started, bans())


def test_edge1_banned_both_sources(exchange: Exchange) -> None:
    ours = exchange.bans.hosts[EDGE.name]
    assert (ours[LEFT]["origin"], ours[LEFT]["reason"],
            ours[LEFT]["detail"]) == ("program", "rate_limited", "REGISTER")
    assert (ours[PARDONED]["origin"], ours[PARDONED]["reason"]) == (
        "program", "scanner")
    assert exchange.banned[PARDONED].reached == 0


@pytest.mark.parametrize("edge", OTHERS, ids=str)
def test_autoban_installs_them_on_the_other_edges(exchange: Exchange,
                                                  edge: fleet.Host) -> None:
    ttl = inventory_seconds("fastpath_autoban_ttl")
    took = exchange.bans.end - exchange.started
    for source in (LEFT, PARDONED):
        ban = exchange.bans.hosts[edge.name][source]
        assert (ban["origin"], ban["reason"], ban["detail"]) == (
            "blocklist", "list", "autoban")
        # Written during the run, for the TTL with no jitter.
        assert ttl - took - 1 <= ban["expires_in"] <= ttl


def test_autoban_leaves_an_edge_its_own_bans(exchange: Exchange) -> None:
    assert [ban for ban in exchange.bans.hosts[EDGE.name].values()
            if ban["detail"] == "autoban"] == []


@pytest.mark.parametrize("edge", OTHERS, ids=str)
@pytest.mark.parametrize("source", [LEFT, PARDONED])
def test_banned_source_dropped_from_its_first_packet(
        exchange: Exchange, source: str, edge: fleet.Host) -> None:
    attack = sipp_register("SIPp 20 REGISTERs, banned on edge1", source,
                           edge, 50, 20)
    assert attack.tool_sent == 20
    assert {k: v for k, v in attack.verdicts.items()
            if k != attacks.NOT_IP} == {"BLOCKED": attack.sent}
    assert (attack.reached, attack.kamailio_requests) == (0, 0)


def test_bans_end_with_their_ttl(exchange: Exchange) -> None:
    """LEFT reaches each edge again when its ban there ends, not before:
    edge 1's own ban, the autoban entries on the others. expires_in is in
    whole seconds, and a round of probes takes up to three."""
    read = exchange.bans
    window = {}
    for edge in EDGES:
        expires_in = read.hosts[edge.name][LEFT]["expires_in"]
        window[edge.name] = (read.start + expires_in - 1,
                             read.end + expires_in + 4)
    attacks.move_to(ATTACKER, LEFT)
    first_probe: dict[str, tuple[float, bool]] = {}
    back: dict[str, float] = {}
    deadline = max(end for _start, end in window.values()) + 5
    while len(back) < len(EDGES) and time.monotonic() < deadline:
        for edge in EDGES:
            if edge.name in back:
                continue
            probed = time.monotonic()
            answer = answered(edge)
            first_probe.setdefault(edge.name, (probed, answer))
            if answer:
                back[edge.name] = time.monotonic()
        time.sleep(0.2)
    # A ban still in force at the first probe drops it. (On a slow run
    # the tests before this one may outlast a ban: then its end is seen
    # only from after; at least one must be seen from before.)
    early = {host: answer for host, (probed, answer) in first_probe.items()
             if probed < window[host][0]}
    assert early, "every ban had ended before the first probe: the tests " \
        "before this one took longer than fastpath_ban_time"
    assert early == {host: False for host in early}
    assert set(back) == {e.name for e in EDGES}
    for host, when in back.items():
        start, end = window[host]
        assert start <= when <= end, (host, when - read.end,
                                      start - read.end, end - read.end)


@dataclass
class Renewed:
    started: float
    bans: Bans


@pytest.fixture(scope="module")
def renewed(exchange: Exchange) -> Renewed:
    """The next autoban run, once LEFT's bans have ended."""
    started = time.monotonic()
    fleet.run_playbook("autoban")
    return Renewed(started, bans())


def test_autoban_renews_what_an_edge_still_bans(renewed: Renewed) -> None:
    ttl = inventory_seconds("fastpath_autoban_ttl")
    took = renewed.bans.end - renewed.started
    for edge in OTHERS:
        ban = renewed.bans.hosts[edge.name][PARDONED]
        assert ban["detail"] == "autoban"
        assert ttl - took - 1 <= ban["expires_in"] <= ttl
    assert [host for host, found in renewed.bans.hosts.items()
            if LEFT in found] == []


def test_bans_playbook_lists_them(renewed: Renewed) -> None:
    report = Path(fleet.molecule_env("MOLECULE_EPHEMERAL_DIRECTORY")) \
        / "bans.json"
    fleet.run_playbook("bans", fastpath_bans_report=str(report))
    listed = {host: {ban["source"].split("/")[0]: ban["detail"]
                     for ban in result["bans"]}
              for host, result in json.loads(report.read_text())[
                  "hosts"].items()}
    assert {host: found.get(PARDONED) for host, found in listed.items()} \
        == {e.name: "friendly" if e == EDGE else "autoban" for e in EDGES}


@dataclass
class Unblocked:
    answers: dict[str, bool]
    gained: dict[str, int]
    again: Attack
    bans: Bans


@pytest.fixture(scope="module")
def unblocked(renewed: Renewed) -> Unblocked:
    fleet.run_playbook("unblock", fastpath_address=PARDONED)
    attacks.move_to(ATTACKER, PARDONED)
    before = {e.name: attacks.kamailio_sources(e).get(PARDONED, 0)
              for e in EDGES}
    answers = {e.name: answered(e) for e in EDGES}
    gained = {e.name: attacks.kamailio_sources(e).get(PARDONED, 0)
              - before[e.name] for e in EDGES}
    again = svwar("svwar (friendly-scanner), pardoned (fleet)", PARDONED)
    fleet.run_playbook("autoban")
    return Unblocked(answers, gained, again, bans())


def test_unblocked_source_reaches_kamailio_on_every_edge(
        unblocked: Unblocked) -> None:
    assert unblocked.answers == {e.name: True for e in EDGES}
    assert unblocked.gained == {e.name: 1 for e in EDGES}


def test_pardoned_scanner_is_dropped_but_not_banned(
        unblocked: Unblocked) -> None:
    assert set(unblocked.again.verdicts) - {attacks.NOT_IP} == {"SCANNER"}
    assert unblocked.again.reached == 0


def test_next_autoban_run_leaves_the_unblocked_source_alone(
        unblocked: Unblocked) -> None:
    assert {host: PARDONED in found
            for host, found in unblocked.bans.hosts.items()} \
        == {e.name: False for e in EDGES}
