"""playbooks/stats.yml on lab hosts of this machine: each host its own veth
with the program attached and its own pin directory; real frames cross the
veths, the table must show what the kernel counted, host by host and summed.
edge-d has only the pins of a 0.1.0 deploy: its old counters are shown
with a note; edge-c has no maps at all and is not read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _abi, _counters
from tests.dataplane import frames
from tests.integration.ansible_run import run_module
from tests.integration.conftest import OBJECT, REPO, veth_pair
from tests.integration.test_xdp_stats import LATER_PINS, SECOND, write_limits
from tests.playbooks.playbook_run import run_playbook, write_inventory

CLIENT = ipaddress.ip_address("203.0.113.50")
SERVER = ipaddress.ip_address("198.51.100.1")
OPTIONS = (b"OPTIONS sip:edge@198.51.100.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bK1\r\n"
           b"Content-Length: 0\r\n\r\n")
INVITE = (b"INVITE sip:bob@198.51.100.1 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bK2\r\n"
          b"Content-Length: 0\r\n\r\n")


SCANNER = ipaddress.ip_address("203.0.113.60")
SCAN = OPTIONS.replace(b"Content-Length",
                       b"User-Agent: friendly-scanner\r\nContent-Length")


def udp_frame(payload: bytes, dport: int = 5060,
              src: ipaddress.IPv4Address = CLIENT) -> bytes:
    return frames.build_frame(frames.FrameSpec(
        src=src, dst=SERVER, sport=5060, dport=dport, payload=payload))


# What each lab host receives: (frame, how many times).
TRAFFIC = {
    "edge-a": [(udp_frame(OPTIONS), 3),              # OPTIONS_DROPPED
               (udp_frame(b"junk!"), 2),             # MALFORMED
               (udp_frame(b"dns?", dport=53), 1),    # NOT_SIP
               (udp_frame(SCAN, src=SCANNER), 1),    # SCANNER, banned
               (udp_frame(OPTIONS, src=SCANNER), 2)],  # BANNED
    "edge-b": [(udp_frame(INVITE), 4),               # PASSED
               (udp_frame(b"rtp", dport=16384), 5)],  # NOT_SIP
    "edge-d": [(udp_frame(OPTIONS), 2)],             # OPTIONS_DROPPED
}


@dataclass
class Lab:
    pins: dict[str, Path]          # host -> pin_dir (edge-c: no maps)
    veths: dict[str, str]          # host -> interface with the program

    def counters(self, host: str) -> _counters.Counters:
        return _counters.read_counters(str(self.pins[host]))

    def report(self, host: str) -> dict[str, Any]:
        """What xdp_stats reads on the host, straight from the maps."""
        pin_dir = str(self.pins[host])
        return dict(self.counters(host),
                    scanner_hits=_counters.read_scanner_hits(pin_dir),
                    active_bans=_counters.count_active_bans(pin_dir))

    def inventory(self, path: Path,
                  extra: dict[str, dict[str, Any]] | None = None) -> Path:
        extra = extra or {}
        return write_inventory(path, {
            host: dict({"fastpath_pin_dir": str(pin)}, **extra.get(host, {}))
            for host, pin in self.pins.items()})


def send(interface: str, out: list[tuple[bytes, int]]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        for frame, count in out:
            for _sent in range(count):
                s.send(frame)


def attach(veth: str, pin_dir: Path, workdir: Path) -> None:
    for end in (veth, veth + "p"):
        # No IPv6: the kernel sends nothing of its own on the veths.
        subprocess.run(["sysctl", "-qw",
                        "net.ipv6.conf.%s.disable_ipv6=1" % end], check=True)
    result = run_module("vos.fastpath.xdp_attach", {
        "interface": veth, "object": str(OBJECT), "pin_dir": str(pin_dir),
        "mode": "native", "sip_ports": [5060]}, workdir)
    assert not result.get("failed"), result


def detach(veth: str, pin_dir: Path, workdir: Path) -> None:
    run_module("vos.fastpath.xdp_attach", {
        "interface": veth, "pin_dir": str(pin_dir), "state": "absent",
        "keep_maps": False}, workdir)


@pytest.fixture(scope="module")
def lab(root_required: None,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    work = tmp_path_factory.mktemp("lab")
    base = "/sys/fs/bpf/vos_fastpath_st%d_" % os.getpid()
    pins = {host: Path(base + host[-1]) for host in
            ("edge-a", "edge-b", "edge-c", "edge-d")}
    for pin in pins.values():
        subprocess.run(["rm", "-rf", str(pin)], check=True)
    pins["edge-c"].mkdir()
    veths: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [subprocess.run(["rm", "-rf", str(pin)],
                                               check=True)
                                for pin in pins.values()])
        for host, prefix in (("edge-a", "fpsa"), ("edge-b", "fpsb"),
                             ("edge-d", "fpsd")):
            veths[host] = stack.enter_context(veth_pair(prefix))
            stack.callback(detach, veths[host], pins[host], work)
            attach(veths[host], pins[host], work)
        # edge-a fingerprints scanners and bans them; no REGISTER budget
        # matters here (none is sent).
        write_limits(pins["edge-a"], register_burst=30,
                     register_interval_ns=SECOND // 15,
                     ban_after_ns=2 * SECOND, scanner_ban_ns=3600 * SECOND,
                     signatures=[b"friendly", b"sipcli"])
        # edge-d keeps the pins a 0.1.0 deploy made.
        for name in LATER_PINS:
            (pins["edge-d"] / name).unlink()
        for host, out in TRAFFIC.items():
            send(veths[host] + "p", out)
        yield Lab(pins, veths)


def table_lines(output: str) -> list[str]:
    """The lines of the table task's msg in ansible-playbook's output."""
    start = output.index("TASK [Show the counter table]")
    ok = output.index("ok: [localhost] => ", start)
    body, _end = json.JSONDecoder().raw_decode(
        output, ok + len("ok: [localhost] => "))
    return body["msg"]


def parse(lines: list[str], unit: str) -> tuple[list[str],
                                                dict[str, list[str]]]:
    """(column headers, {row: cells}) of the `unit` table in lines; a
    section's row has no cells, a label may hold spaces (a signature)."""
    start = next(i for i, line in enumerate(lines)
                 if line.split()[:1] == [unit])
    headers = lines[start].split()[1:]
    rows = {}
    for line in lines[start + 1:]:
        if not line or line.startswith(("not read", "note: ")):
            break
        words = line.split()
        if len(words) <= len(headers):
            rows[line.strip()] = []
        else:
            rows[" ".join(words[:-len(headers)])] = words[-len(headers):]
    return headers, rows


def expected_rows(lab: Lab, hosts: list[str],
                  field: str) -> dict[str, list[str]]:
    """Each row as the kernel's maps say it should read: "-" where a host
    lacks a map or a signature."""
    reports = {host: lab.report(host) for host in hosts}

    def row(cells: list[int | None]) -> list[str]:
        return [("-" if v is None else str(v)) for v in cells] + [
            str(sum(v for v in cells if v is not None))]

    def count(host: str, map_name: str, name: str) -> int | None:
        counter = (reports[host].get(map_name) or {}).get(name)
        return None if counter is None else counter[field]

    rows: dict[str, list[str]] = {}
    signatures: list[str] = []
    for host in hosts:
        signatures += [sig for sig in reports[host]["scanner_hits"] or {}
                       if sig not in signatures]
    sections = [("stats", _abi.REASONS), ("stats_ext", _abi.REASONS_EXT),
                ("proto_stats", _abi.PROTOS)]
    if signatures:
        sections.append(("scanner_hits", tuple(signatures)))
    for map_name, names in sections:
        rows[map_name] = []
        for name in names:
            rows[name] = row([count(h, map_name, name) for h in hosts])
    bans = [reports[h]["active_bans"] for h in hosts]
    if field == "packets" and any(v is not None for v in bans):
        rows["bans"] = []
        rows["active"] = row(bans)
    rows["total"] = row([
        sum(count(h, m, n) or 0 for m, names in sections[:2]
            for n in names) for h in hosts])
    return rows


def test_table_shows_each_host_and_the_fleet(lab: Lab,
                                             tmp_path: Path) -> None:
    prom = {host: tmp_path / ("prom-" + host) for host in lab.pins}
    for path in prom.values():
        path.mkdir()
    inventory = lab.inventory(tmp_path / "inventory.json", {
        host: {"stats_textfile_dir": str(path)}
        for host, path in prom.items()})

    result = run_playbook("stats.yml", inventory)

    # edge-c fails, loudly, with the module's message; the others are read,
    # edge-d (0.1.0's maps only) too.
    assert result.rc != 0, result.output
    assert result.recap["edge-c"]["failed"] == 1, result.output
    for host in ("edge-a", "edge-b", "edge-d"):
        assert result.recap[host]["failed"] == 0, result.output
        assert result.recap[host]["unreachable"] == 0, result.output
    assert ("No vos.fastpath maps are pinned under %s" % lab.pins["edge-c"]
            in result.output)

    # The kernel holds exactly the frames sent, so nothing moved meanwhile.
    a, b, d = (lab.report(host) for host in ("edge-a", "edge-b", "edge-d"))
    assert a["stats"]["OPTIONS_DROPPED"]["packets"] == 3
    assert a["stats"]["MALFORMED"]["packets"] == 2
    assert a["stats"]["NOT_SIP"]["packets"] == 1
    assert a["stats_ext"]["SCANNER"]["packets"] == 1
    assert a["stats_ext"]["BANNED"]["packets"] == 2
    assert a["scanner_hits"]["friendly"]["packets"] == 1
    assert a["active_bans"] == 1
    assert b["stats"]["PASSED"]["packets"] == 4
    assert b["stats"]["NOT_SIP"]["packets"] == 5
    assert (b["scanner_hits"], b["active_bans"]) == ({}, 0)
    assert d["stats"]["OPTIONS_DROPPED"]["packets"] == 2
    assert (d["scanner_hits"], d["active_bans"]) == (None, None)
    assert a["proto_stats"]["UDP"]["packets"] == 9
    assert b["proto_stats"]["UDP"]["packets"] == 9

    lines = table_lines(result.output)
    headers, rows = parse(lines, "packets")
    assert headers == ["edge-a", "edge-b", "edge-d", "fleet"]
    assert list(rows) == ["stats", *_abi.REASONS, "stats_ext",
                          *_abi.REASONS_EXT, "proto_stats", *_abi.PROTOS,
                          "scanner_hits", "friendly", "sipcli", "bans",
                          "active", "total"]
    assert rows == expected_rows(lab, ["edge-a", "edge-b", "edge-d"],
                                 "packets")
    assert rows["NOT_SIP"] == ["1", "5", "0", "6"]
    assert rows["SCANNER"] == ["1", "0", "-", "1"]
    assert rows["BANNED"] == ["2", "0", "-", "2"]
    assert rows["friendly"] == ["1", "-", "-", "1"]
    assert rows["active"] == ["1", "0", "-", "1"]
    assert rows["UDP"] == ["9", "9", "2", "20"]
    assert rows["total"] == ["9", "9", "2", "20"]
    assert "bytes" not in [line.split()[0] for line in lines if line]

    notes = [line for line in lines if line.startswith("note: ")]
    assert notes == ["note: edge-d: " + _counters.later_maps_note(
        str(lab.pins["edge-d"]),
        ["stats_ext", "scanner_sigs", "scanner_hits", "bans_v2"])]
    (not_read,) = [line for line in lines if line.startswith("not read")]
    assert re.fullmatch(
        r"not read: edge-c \(failed: No vos\.fastpath maps are pinned "
        r"under %s: .*\)" % re.escape(str(lab.pins["edge-c"])), not_read)
    assert lines.index(notes[0]) < lines.index(not_read)

    for host in ("edge-a", "edge-b", "edge-d"):
        text = (prom[host] / "vos_fastpath.prom").read_text()
        report = lab.report(host)
        assert text == _counters.prometheus_text(
            lab.counters(host), report["scanner_hits"],
            report["active_bans"])
    text = (prom["edge-a"] / "vos_fastpath.prom").read_text()
    assert 'vos_fastpath_packets_total{reason="options_dropped"} 3\n' in text
    assert 'vos_fastpath_packets_total{reason="banned"} 2\n' in text
    assert 'vos_fastpath_scanner_packets_total{signature="friendly"} 1\n' \
        in text
    assert 'reason="banned"' not in \
        (prom["edge-d"] / "vos_fastpath.prom").read_text()
    assert list(prom["edge-c"].iterdir()) == []


def test_bytes_and_a_target_of_one_host(lab: Lab, tmp_path: Path) -> None:
    inventory = lab.inventory(tmp_path / "inventory.json")

    result = run_playbook("stats.yml", inventory,
                          extra_vars={"fastpath_hosts": "edge-b",
                                      "stats_bytes": True})

    assert result.rc == 0, result.output
    assert set(result.recap) == {"edge-b", "localhost"}
    lines = table_lines(result.output)
    headers, rows = parse(lines, "packets")
    assert headers == ["edge-b", "fleet"]
    assert rows == expected_rows(lab, ["edge-b"], "packets")
    headers, rows = parse(lines, "bytes")
    assert headers == ["edge-b", "fleet"]
    assert rows == expected_rows(lab, ["edge-b"], "bytes")
    assert rows["PASSED"][0] == str(4 * len(udp_frame(INVITE)))
    assert not any(line.startswith("not read") for line in lines)
    # No textfile without stats_textfile_dir.
    assert not list(tmp_path.glob("**/*.prom"))
