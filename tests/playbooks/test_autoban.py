"""The fleet's bans on three lab edges: bans.yml explains each one,
autoban.yml shares them (never an allowlisted source, converging an edge
that failed, harmless when two runs overlap), unblock.yml lifts them
everywhere and the pardon outlives the next exchange."""

from __future__ import annotations

import ipaddress
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from plugins.module_utils import _abi, _bpf, _counters, _lists
from tests.dataplane import frames
from tests.playbooks.conftest import Fleet, LabHost
from tests.playbooks.playbook_run import PlaybookResult, run_playbook

SERVER = ipaddress.ip_address("192.0.2.1")
SCANNER = ipaddress.ip_address("192.0.2.50")
FLOODER = ipaddress.ip_address("192.0.2.51")
LATE_SCANNER = ipaddress.ip_address("192.0.2.52")
AUTOBAN = {"fastpath_autoban_ttl": "1h", "fastpath_autoban_jitter": 0.2}


def request(method: bytes, user_agent: bytes = b"Yealink SIP-T46S") -> bytes:
    return (method + b" sip:bob@192.0.2.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK1\r\n"
            b"User-Agent: " + user_agent + b"\r\n"
            b"Content-Length: 0\r\n\r\n")


def send(host: LabHost, src: ipaddress.IPv4Address, payload: bytes,
         count: int = 1) -> None:
    """Frames into the host's program, from its veth's peer."""
    frame = frames.build_frame(frames.FrameSpec(
        src=src, dst=SERVER, sport=5060, dport=5060, payload=payload))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((host.ifname + "p", 0))
        for _sent in range(count):
            s.send(frame)


def counter(host: LabHost, reason: str) -> int:
    counters = _counters.read_counters(str(host.pin_dir))
    group = "stats" if reason in _abi.REASONS else "stats_ext"
    return counters[group][reason]["packets"]


def program_bans(host: LabHost) -> set[str]:
    out = set()
    with _bpf.Map.open_pinned(str(host.pin_dir / "bans_v2")) as m:
        for key in m.keys():
            _f, plen, _r, addr = _abi.SOURCE.unpack(key)
            out.add("%s/%d" % (ipaddress.ip_address(addr[:4]), plen))
    return out


def autoban_entries(host: LabHost) -> set[str]:
    """The blocklist entries the fleet exchange owns on a host."""
    tag = _lists.source_tag("autoban")
    return {cidr for cidr, (_exp, source) in host.entries("blocklist")
            .items() if source == tag}


def ok(result: PlaybookResult) -> PlaybookResult:
    assert result.rc == 0, result.output[-6000:]
    return result


def autoban(fleet: Fleet, inventory: Path) -> PlaybookResult:
    return run_playbook("autoban.yml", inventory, extra_vars=AUTOBAN)


def test_bans_are_explained_shared_and_lifted_across_the_fleet(
        fleet_factory: Any, tmp_path: Path) -> None:
    fleet = fleet_factory(3)
    group_vars = {"fastpath_ban_after": 0}
    # edge2 trusts the flooder: the exchange must not block it there.
    trusting = {"policy_allowlist": [str(FLOODER)]}
    inventory = fleet.inventory(group_vars, edge2=trusting)
    ok(run_playbook("deploy.yml", inventory))
    edge1, edge2, edge3 = fleet["edge1"], fleet["edge2"], fleet["edge3"]

    send(edge1, SCANNER, request(b"OPTIONS", b"friendly-scanner"))
    send(edge1, SCANNER, request(b"INVITE"), 4)
    send(edge1, FLOODER, request(b"REGISTER"), 40)   # burst 30, then banned
    assert program_bans(edge1) == {"192.0.2.50/32", "192.0.2.51/32"}

    report = tmp_path / "bans.json"
    shown = ok(run_playbook("bans.yml", inventory, extra_vars={
        "fastpath_bans_report": str(report)}))
    # "friendly" is listed before "friendly-scanner": it is what matched.
    assert "scanner:friendly " in shown.output, shown.output[-4000:]
    bans = json.loads(report.read_text())
    by_source = {b["source"]: b for b in bans["hosts"]["edge1"]["bans"]}
    assert by_source["192.0.2.50/32"]["packets"] == 4
    assert (by_source["192.0.2.51/32"]["reason"],
            by_source["192.0.2.51/32"]["detail"]) == ("rate_limited",
                                                      "REGISTER")
    assert [row["hosts"] for row in bans["fleet"]] == [["edge1"], ["edge1"]]

    # One exchange: edge1's bans on the two others, not the allowlisted
    # flooder on edge2, nothing of its own on edge1.
    first = ok(autoban(fleet, inventory))
    assert autoban_entries(edge1) == set()
    assert autoban_entries(edge2) == {"192.0.2.50/32"}
    assert autoban_entries(edge3) == {"192.0.2.50/32", "192.0.2.51/32"}
    assert "1 left out" in first.output
    blocked = counter(edge3, "BLOCKED")
    send(edge3, SCANNER, request(b"INVITE"))        # its first packet there
    assert counter(edge3, "BLOCKED") == blocked + 1

    # An edge that fails is reported; the next run converges it.
    send(edge1, LATE_SCANNER, request(b"OPTIONS", b"sipvicious"))
    failed = autoban(fleet, fleet.inventory(group_vars, edge2=trusting, edge3={
        "ansible_python_interpreter": "/nonexistent/python3"}))
    inventory = fleet.inventory(group_vars, edge2=trusting)
    assert failed.rc != 0
    assert "edge3: NOT EXCHANGED" in failed.output
    assert "192.0.2.52/32" in autoban_entries(edge2)
    assert "192.0.2.52/32" not in autoban_entries(edge3)

    # Two runs at once (as a timer and a person might): both succeed and
    # leave the same entries as one run.
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _i: autoban(fleet, inventory), (1, 2)))
    for run in runs:
        ok(run)
    assert autoban_entries(edge3) == {"192.0.2.50/32", "192.0.2.51/32",
                                      "192.0.2.52/32"}

    # unblock.yml lifts the scanner everywhere; the pardon keeps it out of
    # the next exchange and stops edge1 from banning it again.
    ok(run_playbook("unblock.yml", inventory,
                    extra_vars={"fastpath_address": str(SCANNER)}))
    assert "192.0.2.50/32" not in program_bans(edge1)
    for host in (edge2, edge3):
        assert "192.0.2.50/32" not in autoban_entries(host)
    scanner_drops = counter(edge1, "SCANNER")
    send(edge1, SCANNER, request(b"OPTIONS", b"friendly-scanner"))
    assert counter(edge1, "SCANNER") == scanner_drops + 1
    assert "192.0.2.50/32" not in program_bans(edge1)
    ok(autoban(fleet, inventory))
    assert "192.0.2.50/32" not in autoban_entries(edge2) | autoban_entries(
        edge3)
