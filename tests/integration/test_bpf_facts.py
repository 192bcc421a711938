"""vos.fastpath.bpf_facts through Ansible, against this host's kernel."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

from plugins.module_utils import _bpf, _facts
from tests.integration.ansible_run import run_module
from tests.integration.conftest import ip


def test_facts_report_a_ready_host(tmp_path: Path,
                                   root_required: None) -> None:
    result = run_module("vos.fastpath.bpf_facts", {"build_host": True},
                        tmp_path)
    facts = result["ansible_facts"]["vos_fastpath"]
    assert result["changed"] is False
    assert facts["ready"] is True, facts["problems"]
    assert facts["kernel"] == platform.release()
    assert facts["arch"] == platform.machine()
    btf = Path("/sys/kernel/btf/vmlinux").read_bytes()
    assert facts["btf"]["sha256"] == hashlib.sha256(btf).hexdigest()
    assert facts["bpf_syscall"] and facts["bpffs_mounted"]
    assert facts["xdp_link_support"] is True      # Linux 6.18 here
    assert facts["tools"]["bpftool"]["path"].endswith("/bpftool")
    assert facts["tools"]["libbpf"]["version"]


def test_facts_show_the_program_attached_to_an_interface(
        tmp_path: Path, veth: str, pin_dir: Path, built_object: Path) -> None:
    subprocess.run(["bpftool", "prog", "load", str(built_object),
                    str(pin_dir / "prog"), "type", "xdp", "pinmaps",
                    str(pin_dir)], check=True)
    ip("link", "set", "dev", veth, "xdpgeneric", "pinned",
       str(pin_dir / "prog"))
    facts = run_module("vos.fastpath.bpf_facts", {},
                       tmp_path)["ansible_facts"]["vos_fastpath"]
    iface = facts["interfaces"][veth]
    assert iface["driver"] == "veth"
    assert iface["native_xdp_expected"] is True
    assert iface["xdp"]["name"] == "sip_xdp_prog"
    assert iface["xdp"]["mode"] == "generic"
    assert len(iface["xdp"]["tag"]) == 16
    assert (iface["attach_method"], iface["xdp_link_id"]) == ("netlink", None)


def test_facts_say_a_bpf_link_holds_what_xdp_attach_attached(
        tmp_path: Path, veth: str, pin_dir: Path, built_object: Path) -> None:
    attached = run_module("vos.fastpath.xdp_attach", {
        "interface": veth, "object": str(built_object),
        "pin_dir": str(pin_dir)}, tmp_path)
    assert attached["attach_method"] == "link", attached.get("msg")
    facts = run_module("vos.fastpath.bpf_facts", {},
                       tmp_path)["ansible_facts"]["vos_fastpath"]
    iface = facts["interfaces"][veth]
    assert iface["xdp"]["id"] == attached["prog_id"]
    assert (iface["attach_method"], iface["xdp_link_id"]) == \
        ("link", attached["link_id"])


def test_missing_btf_fails_with_the_kernel_option_to_enable(
        tmp_path: Path, root_required: None) -> None:
    result = run_module("vos.fastpath.bpf_facts",
                        {"btf_path": str(tmp_path / "vmlinux"),
                         "fail_on_problems": True}, tmp_path)
    assert result["failed"] is True
    assert "CONFIG_DEBUG_INFO_BTF=y" in result["msg"]
    problems = result["ansible_facts"]["vos_fastpath"]["problems"]
    assert [p["name"] for p in problems] == ["btf"]


def test_missing_btf_without_fail_only_reports(tmp_path: Path,
                                               root_required: None) -> None:
    result = run_module("vos.fastpath.bpf_facts",
                        {"btf_path": str(tmp_path / "vmlinux")}, tmp_path,
                        check=True)
    assert not result.get("failed")
    assert result["ansible_facts"]["vos_fastpath"]["ready"] is False


def test_the_name_of_a_loaded_program_is_read_from_the_kernel(
        maps: Path) -> None:
    fd = _bpf.obj_get(str(maps / "prog"))
    try:
        prog_id = _bpf.prog_info(fd).id
    finally:
        os.close(fd)
    assert _facts.program_name(prog_id) == "sip_xdp_prog"
