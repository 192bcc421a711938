"""playbooks/stats.yml on lab hosts of this machine: each host its own veth
with the program attached and its own pin directory; real frames cross the
veths, the table must show what the kernel counted, host by host and summed.
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
from tests.playbooks.playbook_run import run_playbook, write_inventory

CLIENT = ipaddress.ip_address("203.0.113.50")
SERVER = ipaddress.ip_address("198.51.100.1")
OPTIONS = (b"OPTIONS sip:edge@198.51.100.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bK1\r\n"
           b"Content-Length: 0\r\n\r\n")
INVITE = (b"INVITE sip:bob@198.51.100.1 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bK2\r\n"
          b"Content-Length: 0\r\n\r\n")


def udp_frame(payload: bytes, dport: int = 5060) -> bytes:
    return frames.build_frame(frames.FrameSpec(
        src=CLIENT, dst=SERVER, sport=5060, dport=dport, payload=payload))


# What each lab host receives: (frame, how many times).
TRAFFIC = {
    "edge-a": [(udp_frame(OPTIONS), 3),              # OPTIONS_DROPPED
               (udp_frame(b"junk!"), 2),             # MALFORMED
               (udp_frame(b"dns?", dport=53), 1)],   # NOT_SIP
    "edge-b": [(udp_frame(INVITE), 4),               # PASSED
               (udp_frame(b"rtp", dport=16384), 5)],  # NOT_SIP
}


@dataclass
class Lab:
    pins: dict[str, Path]          # host -> pin_dir (edge-c: no maps)
    veths: dict[str, str]          # host -> interface with the program

    def counters(self, host: str) -> _counters.Counters:
        return _counters.read_counters(str(self.pins[host]))

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
            ("edge-a", "edge-b", "edge-c")}
    for pin in pins.values():
        subprocess.run(["rm", "-rf", str(pin)], check=True)
    pins["edge-c"].mkdir()
    veths: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [subprocess.run(["rm", "-rf", str(pin)],
                                               check=True)
                                for pin in pins.values()])
        for host, prefix in (("edge-a", "fpsa"), ("edge-b", "fpsb")):
            veths[host] = stack.enter_context(veth_pair(prefix))
            stack.callback(detach, veths[host], pins[host], work)
            attach(veths[host], pins[host], work)
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
    """(column headers, {row: cells}) of the `unit` table in lines."""
    start = next(i for i, line in enumerate(lines)
                 if line.split()[:1] == [unit])
    headers = lines[start].split()[1:]
    rows = {}
    for line in lines[start + 1:]:
        if not line or line.startswith("not read"):
            break
        label, *cells = line.split()
        rows[label] = cells
    return headers, rows


def expected_rows(lab: Lab, hosts: list[str],
                  field: str) -> dict[str, list[str]]:
    """Each row as the kernel's counters say it should read."""
    counters = {host: lab.counters(host) for host in hosts}
    rows = {"stats": [], "proto_stats": []}
    for map_name, names in (("stats", _abi.REASONS),
                            ("proto_stats", _abi.PROTOS)):
        for name in names:
            cells = [counters[h][map_name][name][field] for h in hosts]
            rows[name] = [str(v) for v in cells + [sum(cells)]]
    totals = [sum(c[field] for c in counters[h]["stats"].values())
              for h in hosts]
    rows["total"] = [str(v) for v in totals + [sum(totals)]]
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

    # edge-c fails, loudly, with the module's message; the others are read.
    assert result.rc != 0, result.output
    assert result.recap["edge-c"]["failed"] == 1, result.output
    for host in ("edge-a", "edge-b"):
        assert result.recap[host]["failed"] == 0, result.output
        assert result.recap[host]["unreachable"] == 0, result.output
    assert ("No vos.fastpath maps are pinned under %s" % lab.pins["edge-c"]
            in result.output)

    # The kernel holds exactly the frames sent, so nothing moved meanwhile.
    a, b = lab.counters("edge-a"), lab.counters("edge-b")
    assert a["stats"]["OPTIONS_DROPPED"]["packets"] == 3
    assert a["stats"]["MALFORMED"]["packets"] == 2
    assert a["stats"]["NOT_SIP"]["packets"] == 1
    assert b["stats"]["PASSED"]["packets"] == 4
    assert b["stats"]["NOT_SIP"]["packets"] == 5
    assert a["proto_stats"]["UDP"]["packets"] == 6
    assert b["proto_stats"]["UDP"]["packets"] == 9

    lines = table_lines(result.output)
    headers, rows = parse(lines, "packets")
    assert headers == ["edge-a", "edge-b", "fleet"]
    assert list(rows) == ["stats", *_abi.REASONS, "proto_stats",
                          *_abi.PROTOS, "total"]
    assert rows == expected_rows(lab, ["edge-a", "edge-b"], "packets")
    assert rows["NOT_SIP"] == ["1", "5", "6"]
    assert rows["UDP"] == ["6", "9", "15"]
    assert rows["total"] == ["6", "9", "15"]
    assert "bytes" not in [line.split()[0] for line in lines if line]

    (not_read,) = [line for line in lines if line.startswith("not read")]
    assert re.fullmatch(
        r"not read: edge-c \(failed: No vos\.fastpath maps are pinned "
        r"under %s: .*\)" % re.escape(str(lab.pins["edge-c"])), not_read)

    for host in ("edge-a", "edge-b"):
        text = (prom[host] / "vos_fastpath.prom").read_text()
        assert text == _counters.prometheus_text(lab.counters(host))
    assert ('vos_fastpath_packets_total{reason="options_dropped"} 3\n'
            in (prom["edge-a"] / "vos_fastpath.prom").read_text())
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
