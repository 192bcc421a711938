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

OPTIONS = (b"OPTIONS sip:server@192.0.2.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK1\r\n"
           b"Content-Length: 0\r\n\r\n")


def frame(payload: bytes) -> bytes:
    return frames.build_frame(frames.FrameSpec(
        src=ipaddress.ip_address("192.0.2.50"),
        dst=ipaddress.ip_address("192.0.2.1"), sport=5060, dport=5060,
        payload=payload))


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
