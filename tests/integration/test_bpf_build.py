"""vos.fastpath.bpf_build through Ansible, with the real clang and
bpftool, on a copy of bpf/ that the tests may edit."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ansible_run import run_module
from tests.integration.test_xdp_attach import libbpf_map

REPO = Path(__file__).resolve().parents[2]
MODULE = "vos.fastpath.bpf_build"
SPEC_MAPS = ["sip_ports", "allow_v4", "allow_v6", "block_v4", "block_v6",
             "settings", "stats", "proto_stats", "xsks_map", "stats_ext",
             "limits", "rate_state", "scanner_sigs", "scanner_hits",
             "bans_v2", "pardons", "rate_limited", "block_v4_hosts",
             "block_v6_hosts"]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    """A copy of bpf/ and an empty output directory."""
    src = tmp_path / "bpf"
    shutil.copytree(REPO / "bpf", src)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "sip_logic.bpf.o"
    return {"tmp": tmp_path, "src": src, "out": out, "dest": dest, "args": {
        "src": str(src / "sip_logic.bpf.c"), "dest": str(dest),
        "include_dirs": [str(src)]}}


def build(tree: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    check = kwargs.pop("check", False)
    output = kwargs.pop("output", None)
    return run_module(MODULE, dict(tree["args"], **kwargs), tree["tmp"],
                      check=check, output=output)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_builds_once_then_reports_no_change(tree: dict) -> None:
    first = build(tree)
    assert first["changed"] is True, first.get("msg")
    data = tree["dest"].read_bytes()
    assert first["sha256"] == hashlib.sha256(data).hexdigest()
    assert first["size"] == len(data)
    assert first["programs"] == [{"name": "sip_xdp_prog", "section": "xdp"}]
    assert sorted(first["maps"]) == sorted(SPEC_MAPS)
    assert len(first["maps"]) == len(SPEC_MAPS)
    assert sorted(p.name for p in tree["out"].iterdir()) == [
        "sip_logic.bpf.o", "sip_logic.bpf.o.inputs.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in tree["out"].iterdir()}

    again = build(tree)
    assert again["changed"] is False, again["reasons"]
    assert again["sha256"] == first["sha256"]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_changed_header_rebuilds_but_a_touch_does_not(tree: dict) -> None:
    build(tree)
    header = tree["src"] / "fp_sip.h"
    os.utime(header)
    assert build(tree)["changed"] is False

    header.write_text(header.read_text() + "/* changed */\n")
    mtime = tree["dest"].stat().st_mtime_ns
    result = build(tree)
    assert result["changed"] is True
    assert result["reasons"] == ["%s changed" % header]
    assert tree["dest"].stat().st_mtime_ns != mtime
    assert result["sha256"] == hashlib.sha256(
        tree["dest"].read_bytes()).hexdigest()


def test_check_mode_on_a_fresh_dest_writes_nothing(tree: dict) -> None:
    result = build(tree, check=True)
    assert result["changed"] is True
    assert "the object does not exist" in result["reasons"]
    assert list(tree["out"].iterdir()) == []


def test_syntax_error_fails_with_clangs_message_and_keeps_the_object(
        tree: dict) -> None:
    build(tree)
    before = listing(tree["out"])
    source = tree["src"] / "sip_logic.bpf.c"
    source.write_text(source.read_text().replace(
        "int sip_xdp_prog(struct xdp_md *ctx)",
        "int sip_xdp_prog(struct xdp_md *ctx) oops"))
    result = build(tree)
    assert result["failed"] is True
    assert result["msg"].startswith("clang could not compile %s: " % source)
    assert "error: expected function body" in result["msg"]
    assert "error: expected function body" in result["stderr"]
    assert result["rc"] != 0
    assert listing(tree["out"]) == before


def test_the_kernel_btf_is_not_needed_and_btf_is_deprecated(
        tree: dict) -> None:
    output: list[str] = []
    result = build(tree, btf=str(tree["tmp"] / "no-such.btf"),
                   output=output)
    assert result["changed"] is True, result.get("msg")
    assert "Param 'btf' is deprecated" in output[0]
    assert "0.4.0" in output[0]


def test_built_object_loads_with_bpftool(tree: dict, pin_dir: Path) -> None:
    result = build(tree)
    assert result["changed"] is True, result.get("msg")
    subprocess.run(["bpftool", "prog", "load", str(tree["dest"]),
                    str(pin_dir / "prog"), "type", "xdp", "pinmaps",
                    str(pin_dir)], check=True, capture_output=True)
    shown = subprocess.run(
        ["bpftool", "-j", "prog", "show", "pinned", str(pin_dir / "prog")],
        check=True, capture_output=True, text=True)
    assert json.loads(shown.stdout)["name"] == "sip_xdp_prog"
    # libbpf adds a map of its own (LINUX_KERNEL_VERSION's), not one of
    # the program's.
    pinned = {p.name for p in pin_dir.iterdir()} - {"prog"}
    assert {name for name in pinned if not libbpf_map(name)} == \
        set(result["maps"])
