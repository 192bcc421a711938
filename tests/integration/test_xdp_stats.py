"""vos.fastpath.xdp_stats through Ansible: real frames cross a veth into the
attached program, the module reads what it counted."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

import pytest

from plugins.module_utils import _abi, _bpf
from tests.dataplane import frames
from tests.integration.ansible_run import run_module
from tests.integration.conftest import ip
from tests.integration.test_xdp_attach import unpin_libbpf_maps

OPTIONS = (b"OPTIONS sip:server@192.0.2.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK1\r\n"
           b"Content-Length: 0\r\n\r\n")


def frame(payload: bytes, src: str = "192.0.2.50") -> bytes:
    return frames.build_frame(frames.FrameSpec(
        src=ipaddress.ip_address(src),
        dst=ipaddress.ip_address("192.0.2.1"), sport=5060, dport=5060,
        payload=payload))


def request(method: bytes, user_agent: bytes = b"") -> bytes:
    ua = b"User-Agent: " + user_agent + b"\r\n" if user_agent else b""
    return (method + b" sip:server@192.0.2.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK2\r\n"
            + ua + b"Content-Length: 0\r\n\r\n")


# Maps a program before rate limits, bans and scanner fingerprints lacks.
LATER_PINS = tuple(sorted(set(_abi.MAPS) - set(_abi.MAPS_0_1)))
SECOND = 10**9


def write_limits(pin_dir: Path, register_burst: int,
                 register_interval_ns: int, ban_after_ns: int,
                 scanner_ban_ns: int, signatures: list[bytes]) -> None:
    """A REGISTER budget for untrusted sources, bans on, and signatures,
    written straight into the maps (docs/dataplane.md, Rate limits and
    bans)."""
    budgets = [0, 0, 0] * 2 * _abi.CLASS_SLOTS
    budgets[3 * _abi.FP_CLASS_REGISTER:3 * _abi.FP_CLASS_REGISTER + 2] = [
        register_interval_ns, register_burst]
    value = _abi.LIMITS.pack(*budgets, ban_after_ns, 3600 * SECOND,
                             scanner_ban_ns, _abi.FP_LIMIT_BANS, 32, 64, 0)
    with _bpf.Map.open_pinned(str(pin_dir / "limits")) as limits:
        limits.update(_abi.U32.pack(0), value)
    with _bpf.Map.open_pinned(str(pin_dir / "scanner_sigs")) as sigs:
        for slot, text in enumerate(signatures):
            sigs.update(_abi.U32.pack(slot),
                        _abi.SIGNATURE.pack(len(text), 0, text))


@pytest.fixture
def attached(veth: str, pin_dir: Path, built_object: Path) -> str:
    """The program attached natively to veth, its maps under pin_dir,
    sip_ports 5060, IPv6 off so the kernel adds no traffic of its own."""
    for end in (veth, veth + "p"):
        subprocess.run(["sysctl", "-qw",
                        "net.ipv6.conf.%s.disable_ipv6=1" % end], check=True)
    subprocess.run(["bpftool", "prog", "load", str(built_object),
                    str(pin_dir / "prog"), "type", "xdp", "pinmaps",
                    str(pin_dir)], check=True)
    with _bpf.Map.open_pinned(str(pin_dir / "sip_ports")) as ports:
        ports.update(_abi.U32.pack(5060), _abi.U8.pack(1))
    ip("link", "set", "dev", veth, "xdpdrv", "pinned",
       str(pin_dir / "prog"))
    return veth


def send(peer: str, frames_out: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((peer, 0))
        for f in frames_out:
            s.send(f)


def test_counters_and_attachment_are_read(attached: str, pin_dir: Path,
                                          tmp_path: Path) -> None:
    send(attached + "p", [frame(OPTIONS)] * 3 + [frame(b"junk!")] * 2)
    result = run_module("vos.fastpath.xdp_stats", {"pin_dir": str(pin_dir)},
                        tmp_path)
    assert result["changed"] is False
    assert result["stats"]["OPTIONS_DROPPED"] == {
        "packets": 3, "bytes": 3 * len(frame(OPTIONS))}
    assert result["stats"]["MALFORMED"]["packets"] == 2
    assert result["proto_stats"]["UDP"]["packets"] == 5
    assert result["total_packets"] == 5
    (where,) = result["attached"]
    assert where["interface"] == attached
    assert where["mode"] == "native"
    assert where["name"] == "sip_xdp_prog"


def test_textfile_is_written_once_and_then_unchanged(
        attached: str, pin_dir: Path, tmp_path: Path) -> None:
    send(attached + "p", [frame(OPTIONS)] * 2)
    prom = tmp_path / "vos_fastpath.prom"
    args = {"pin_dir": str(pin_dir), "prometheus_textfile": str(prom)}

    checked = run_module("vos.fastpath.xdp_stats", args, tmp_path,
                         check=True, diff=True)
    assert checked["changed"] is True
    assert not prom.exists()
    assert 'reason="options_dropped"} 2' in checked["diff"]["after"]

    first = run_module("vos.fastpath.xdp_stats", args, tmp_path)
    text = prom.read_text()
    assert first["changed"] is True
    assert 'vos_fastpath_packets_total{reason="options_dropped"} 2\n' in text
    assert "# TYPE vos_fastpath_protocol_bytes_total counter" in text

    again = run_module("vos.fastpath.xdp_stats", args, tmp_path)
    assert again["changed"] is False
    assert prom.read_text() == text


def test_rate_limits_scanners_bans_and_signature_hits_are_read(
        attached: str, pin_dir: Path, tmp_path: Path) -> None:
    # Three REGISTERs back to back, then one each 100 s: the 10 sent at
    # once are 3 passed and 7 over budget. No ban for staying over budget
    # (it would take an hour); a scanner's is at once.
    write_limits(pin_dir, register_burst=3, register_interval_ns=100 * SECOND,
                 ban_after_ns=3600 * SECOND, scanner_ban_ns=3600 * SECOND,
                 signatures=[b"friendly", b"sipcli"])
    scan = frame(request(b"OPTIONS", b"friendly-scanner"), "192.0.2.60")
    later = frame(request(b"OPTIONS"), "192.0.2.60")
    cli = frame(request(b"INVITE", b"SIPcli/1.8"), "192.0.2.70")
    send(attached + "p", [frame(request(b"REGISTER"))] * 10
         + [scan, later, later, cli])
    prom = tmp_path / "vos_fastpath.prom"

    result = run_module("vos.fastpath.xdp_stats", {
        "pin_dir": str(pin_dir), "prometheus_textfile": str(prom)}, tmp_path)

    assert result.get("failed") is not True, result
    assert result["stats"]["PASSED"]["packets"] == 3
    assert result["stats"]["RATE_LIMITED"] == {
        "packets": 7, "bytes": 7 * len(frame(request(b"REGISTER")))}
    assert result["stats_ext"] == {
        "SCANNER": {"packets": 2, "bytes": len(scan) + len(cli)},
        "BANNED": {"packets": 2, "bytes": 2 * len(later)}}
    assert result["scanner_hits"] == {
        "friendly": {"packets": 1, "bytes": len(scan)},
        "sipcli": {"packets": 1, "bytes": len(cli)}}
    assert result["active_bans"] == 2       # 192.0.2.60 and 192.0.2.70
    assert result["total_packets"] == 14
    assert result["proto_stats"]["UDP"]["packets"] == 14
    assert result["notes"] == []
    text = prom.read_text()
    assert 'vos_fastpath_packets_total{reason="rate_limited"} 7\n' in text
    assert 'vos_fastpath_packets_total{reason="banned"} 2\n' in text
    assert 'vos_fastpath_scanner_packets_total{signature="sipcli"} 1\n' \
        in text
    assert "vos_fastpath_bans_active 2\n" in text


def test_a_first_release_host_reports_its_counters_with_a_note(
        attached: str, pin_dir: Path, tmp_path: Path) -> None:
    # What a 0.1.0 deploy pinned: the maps of MAPS_0_1 only, and none of
    # libbpf's own, which today's program has.
    for name in LATER_PINS:
        (pin_dir / name).unlink()
    unpin_libbpf_maps(pin_dir)
    assert sorted(p.name for p in pin_dir.iterdir()
                  if p.name != "prog") == sorted(_abi.MAPS_0_1)
    send(attached + "p", [frame(OPTIONS)] * 3)

    result = run_module("vos.fastpath.xdp_stats", {
        "pin_dir": str(pin_dir),
        "expect": {"interfaces": [attached]}}, tmp_path)

    assert result.get("failed") is not True, result
    assert result["stats"]["OPTIONS_DROPPED"]["packets"] == 3
    assert result["total_packets"] == 3
    assert result["problems"] == []
    for key in ("stats_ext", "scanner_hits", "active_bans"):
        assert key not in result
    assert result["notes"] == [
        "%s has no stats_ext, scanner_sigs, scanner_hits or bans_v2 map: the "
        "program there predates rate limits, bans and scanner fingerprints "
        "(0.1.0), so BANNED, SCANNER, the signature hits and the active "
        "bans are not shown; deploy this version to get them." % pin_dir]


def test_missing_pins_fail_with_what_to_do(pin_dir: Path,
                                           tmp_path: Path) -> None:
    result = run_module("vos.fastpath.xdp_stats",
                        {"pin_dir": str(pin_dir)}, tmp_path)
    assert result["failed"] is True
    assert "vos.fastpath.xdp_attach" in result["msg"]


def test_pin_dir_off_bpffs_names_the_mount_to_make(
        tmp_path: Path, root_required: None) -> None:
    result = run_module("vos.fastpath.xdp_stats",
                        {"pin_dir": str(tmp_path / "pins")}, tmp_path)
    assert result["failed"] is True
    assert "mount -t bpf bpf /sys/fs/bpf" in result["msg"]
