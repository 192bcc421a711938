"""bpf_facts logic with the kernel boundary mocked: files, ip, ioctl."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from plugins.module_utils import _facts


def ready_facts() -> dict:
    return {
        "btf": {"present": True, "path": "/sys/kernel/btf/vmlinux"},
        "bpf_syscall": True,
        "jit_enabled": True,
        "bpffs_mounted": True,
        "tools": {name: {"path": "/usr/bin/" + name, "version": "1.0"}
                  for name in ("clang", "bpftool", "ip", "libbpf")},
    }


def test_ready_host_has_no_problem() -> None:
    assert _facts.problems(ready_facts()) == []


def test_missing_btf_names_the_kernel_option_and_distros() -> None:
    facts = ready_facts()
    facts["btf"]["present"] = False
    (found,) = _facts.problems(facts)
    assert found["name"] == "btf"
    assert "CONFIG_DEBUG_INFO_BTF=y" in found["msg"]
    assert "Debian" in found["msg"] and "RHEL" in found["msg"]


def test_missing_bpftool_names_its_package() -> None:
    facts = ready_facts()
    facts["tools"]["bpftool"]["path"] = None
    (found,) = _facts.problems(facts)
    assert "linux-tools-$(uname -r)" in found["msg"]


def test_unusable_bpf_syscall_says_to_run_as_root() -> None:
    facts = ready_facts()
    facts["bpf_syscall"] = False
    (found,) = _facts.problems(facts, "Operation not permitted")
    assert "Operation not permitted" in found["msg"]
    assert "root" in found["msg"]


def test_unmounted_bpffs_gives_the_mount_command() -> None:
    facts = ready_facts()
    facts["bpffs_mounted"] = False
    (found,) = _facts.problems(facts)
    assert "mount -t bpf bpf /sys/fs/bpf" in found["msg"]


def test_build_host_needs_clang_and_libbpf_headers() -> None:
    facts = ready_facts()
    facts["tools"]["clang"]["path"] = None
    facts["tools"]["libbpf"]["path"] = None
    names = [p["name"] for p in _facts.build_problems(facts)]
    assert names == ["clang", "libbpf"]


def test_bpffs_found_only_with_the_bpf_type(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("tmpfs /sys/fs/bpf tmpfs rw 0 0\n")
    assert not _facts.bpffs_mounted(mounts=str(mounts))
    mounts.write_text("bpf /sys/fs/bpf bpf rw,relatime 0 0\n")
    assert _facts.bpffs_mounted(mounts=str(mounts))


def test_libbpf_version_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "bpf_helpers.h").write_text("")
    (tmp_path / "libbpf_version.h").write_text(
        "#define LIBBPF_MAJOR_VERSION 1\n#define LIBBPF_MINOR_VERSION 4\n")
    assert _facts.libbpf_headers(str(tmp_path)) == {
        "path": str(tmp_path), "version": "1.4"}
    assert _facts.libbpf_headers(str(tmp_path / "none"))["path"] is None


@pytest.mark.parametrize("xdp, expected", [
    (None, None),
    ({"mode": 1, "prog": {"id": 7, "name": "sip_xdp_prog", "tag": "ab"}},
     {"id": 7, "name": "sip_xdp_prog", "tag": "ab", "mode": "native"}),
    ({"mode": 4, "attached": [{"mode": 2, "prog": {"id": 9, "name": "x",
                                                   "tag": "cd"}}]},
     {"id": 9, "name": "x", "tag": "cd", "mode": "generic"}),
])
def test_attached_program_from_ip_json(xdp: dict | None,
                                       expected: dict | None) -> None:
    link = {"ifname": "eth0"}
    if xdp:
        link["xdp"] = xdp
    assert _facts.attached_program(link) == expected


def test_a_name_ip_leaves_out_is_read_from_the_kernel() -> None:
    """iproute2 5.9 (Debian 11) shows no name in `ip -json link`."""
    link = {"ifname": "eth0",
            "xdp": {"mode": 1, "prog": {"id": 7, "tag": "ab"}}}
    with mock.patch.object(_facts, "program_name",
                           return_value="sip_xdp_prog") as name:
        assert _facts.attached_program(link) == {
            "id": 7, "name": "sip_xdp_prog", "tag": "ab", "mode": "native"}
    name.assert_called_once_with(7)


@pytest.mark.parametrize("release, links", [
    ("6.1.0-26-amd64", True), ("5.9.0", True), ("5.8.18-100.fc31", False),
    ("4.18.0-513.el8.x86_64", False), ("garbage", False),
])
def test_xdp_links_from_linux_5_9(release: str, links: bool) -> None:
    assert _facts.xdp_link_support(release) is links


def test_a_link_counts_only_for_its_ifindex_and_program() -> None:
    # Link ids are global, an ifindex is per network namespace: the same
    # ifindex in another namespace runs another program.
    links = [{"id": 5, "prog_id": 70, "ifindex": 2},
             {"id": 6, "prog_id": 71, "ifindex": 3}]
    prog = {"id": 71, "name": "sip_xdp_prog", "tag": "ab", "mode": "native"}
    assert _facts.xdp_link_of(links, 3, prog)["id"] == 6
    assert _facts.xdp_link_of(links, 2, prog) is None
    assert _facts.xdp_link_of(links, 3, None) is None
    assert _facts.attach_method(links[1], prog) == "link"
    assert _facts.attach_method(None, prog) == "netlink"
    assert _facts.attach_method(None, None) is None


def test_interface_facts_say_how_the_program_is_attached() -> None:
    link = {"ifname": "fp-nonexistent", "ifindex": 3, "mtu": 1500,
            "xdp": {"mode": 1, "prog": {"id": 71, "name": "sip_xdp_prog",
                                        "tag": "ab"}}}
    held = _facts.interface_facts(link, [{"id": 6, "prog_id": 71,
                                          "ifindex": 3}])
    assert (held["attach_method"], held["xdp_link_id"]) == ("link", 6)
    bare = _facts.interface_facts(link, [])
    assert (bare["attach_method"], bare["xdp_link_id"]) == ("netlink", None)
    assert _facts.interface_facts({"ifname": "fp-nonexistent"}, [])[
        "attach_method"] is None


def test_driver_of_a_missing_interface_is_none() -> None:
    assert _facts.interface_driver("fp-nonexistent") is None


def run_main(args: dict, facts: dict) -> dict:
    from ansible_collections.vos.fastpath.plugins.modules import bpf_facts

    with patch_module_args(args), \
            mock.patch.object(bpf_facts._facts, "collect",
                              return_value=facts), \
            mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit):
        bpf_facts.main()
    text = "".join(call.args[0] for call in stdout.write.call_args_list)
    return json.loads(text)


def test_module_fails_on_problems_with_every_remediation() -> None:
    facts = ready_facts()
    facts["problems"] = [{"name": "btf", "msg": "Boot a BTF kernel."},
                         {"name": "jit", "msg": "Enable the JIT."}]
    facts["ready"] = False
    result = run_main({"fail_on_problems": True}, facts)
    assert result["failed"] is True
    assert "Boot a BTF kernel. Enable the JIT." in result["msg"]


def test_module_reports_without_failing_by_default() -> None:
    facts = ready_facts()
    facts["problems"] = [{"name": "jit", "msg": "Enable the JIT."}]
    facts["ready"] = False
    result = run_main({}, facts)
    assert not result.get("failed")
    assert result["changed"] is False
    # Not failing must not mean not telling: the problems are in the facts.
    reported = result["ansible_facts"]["vos_fastpath"]
    assert reported["ready"] is False
    assert reported["problems"] == facts["problems"]


def test_jit_sysctl_hidden_in_a_container_is_not_a_problem(tmp_path):
    assert _facts.jit_enabled(str(tmp_path / "absent")) is None
    (tmp_path / "off").write_text("0\n")
    assert _facts.jit_enabled(str(tmp_path / "off")) is False
    (tmp_path / "on").write_text("1\n")
    assert _facts.jit_enabled(str(tmp_path / "on")) is True
    facts = ready_facts()
    facts["jit_enabled"] = None
    assert _facts.problems(facts) == []
    facts["jit_enabled"] = False
    assert [p["name"] for p in _facts.problems(facts)] == ["jit"]
