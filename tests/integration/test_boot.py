"""vos-fastpath-boot on a real veth, installed as the fastpath role installs
it and run with Debian's Python, which has no Ansible: after a simulated
reboot it attaches the program and puts the saved lists back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from plugins.module_utils import (
    _abi,
    _bpf,
    _bpf_link,
    _defaults,
    _facts,
    _lists,
    _lock,
    _messages,
    _plan,
    _tag_cache,
)
from tests.integration.ansible_run import TARGET_PYTHON, run_module
from tests.integration.conftest import REPO, ip
from tests.integration.test_xdp_attach import settings_flags, sip_ports
from tests.trie_entries import open_list, read_entries

SEC = 10**9
# Wall clock time that passes while the host is "down", beyond the real
# time the test takes: written into the blocklist file's header.
DOWN_S = 20
# The module_utils the role bundles into the boot command.
LIB_FILES = yaml.safe_load(
    (REPO / "roles" / "fastpath" / "vars" / "main.yml").read_text()
)["__fastpath_module_utils_files"]
SETTINGS = {"block_all_ports": True, "shadow": True}
SIP_PORTS = [5060, 5080]


def install(lib: Path) -> Path:
    """The boot command as the role renders it: one file carrying the
    collection code it runs."""
    template = REPO / "roles" / "fastpath" / "templates" / \
        "vos-fastpath-boot.j2"
    utils = REPO / "plugins" / "module_utils"
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string(template.read_text()).render(
        __fastpath_python=TARGET_PYTHON, ansible_managed="managed",
        __fastpath_module_utils=str(utils),
        __fastpath_module_utils_files=LIB_FILES,
        lookup=lambda kind, path, rstrip=True: Path(path).read_text())
    lib.mkdir(parents=True, exist_ok=True)
    command = lib / "vos-fastpath-boot"
    command.write_text(text)
    command.chmod(0o755)
    return command


def boot(argv: list[str], config: Path,
         cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the boot command in a clean environment (no PYTHON* variables,
    nothing of the repository on the import path)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    return subprocess.run([*argv, "--config", str(config), "--wait", "2"],
                          cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def xdp(ifname: str) -> dict[str, Any] | None:
    out = ip("-json", "link", "show", "dev", ifname).stdout
    return _facts.attached_program(json.loads(out)[0])


def detach_by_hand(ifname: str) -> None:
    """What an operator does: a program held by a link goes with the link
    (`ip ... off` fails on it), any other with `ip ... off`."""
    prog = xdp(ifname)
    if not prog:
        return
    link = _facts.xdp_link_of(_facts.xdp_links(),
                              socket.if_nametoindex(ifname), prog)
    if link:
        fd = _bpf_link.link_fd_by_id(link["id"])
        try:
            _bpf_link.link_detach(fd)
        finally:
            os.close(fd)
    else:
        ip("link", "set", "dev", ifname,
           _messages.IP_KEYWORDS[prog["mode"]], "off")


def link_attaches(pin_dir: Path, ifname: str, prog_id: int) -> bool:
    """The link pinned for ifname attaches prog_id to it."""
    fd = _bpf.obj_get(str(pin_dir / _abi.link_pin_name(ifname)))
    try:
        info = _bpf_link.link_info(fd)
    finally:
        os.close(fd)
    return (info.prog_id, info.ifindex) == (
        prog_id, socket.if_nametoindex(ifname))


def fields(pin_dir: Path, kind: str) -> dict[str, tuple[int, int]]:
    """Both tries of a list as {cidr: (expires_ns, source)}."""
    out = {}
    for family in ("v4", "v6"):
        with open_list(pin_dir, kind + "_" + family) as m:
            for key, value in read_entries(m).fields().items():
                out[_lists.key_text(key)] = value
    return out


def map_id(pin_dir: Path, name: str) -> int:
    with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
        return m.id


def entry(pin_dir: Path, tmp_path: Path, kind: str, save_to: Path,
          **args: Any) -> dict[str, Any]:
    result = run_module("vos.fastpath.bpf_map_entry", {
        "map": kind, "pin_dir": str(pin_dir), "save_to": str(save_to),
        **args}, tmp_path)
    assert result.get("failed") is not True, result
    assert result["saved"] is True
    return result


def shift_header(path: Path, delta_ns: int) -> None:
    """Make a list file look written in an earlier boot: another boot id,
    and the wall-minus-boot offset moved."""
    head, rest = path.read_bytes().split(b"\n", 1)
    header = json.loads(head)
    header["wall_minus_boot_ns"] += delta_ns
    header["boot_id"] = "an earlier boot"
    path.write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n"
                     + rest)


@pytest.fixture
def state(tmp_path: Path, built_object: Path) -> Path:
    """A state directory holding the object, as the role deploys it."""
    path = tmp_path / "state"
    (path / "lists").mkdir(parents=True)
    shutil.copyfile(built_object, path / "sip_logic.bpf.o")
    return path


@pytest.fixture
def attached_veth(veth: str, pin_dir: Path) -> Iterator[str]:
    """The veth, with whatever ends up attached detached afterwards."""
    yield veth
    detach_by_hand(veth)


def test_target_python_has_no_ansible() -> None:
    proc = subprocess.run([TARGET_PYTHON, "-c", "import ansible"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "No module named 'ansible'" in proc.stderr


def test_boot_after_a_reboot_attaches_and_restores_the_lists(
        attached_veth: str, pin_dir: Path, state: Path,
        tmp_path: Path) -> None:
    veth = attached_veth
    command = install(tmp_path / "lib")
    lists = {name: Path(_defaults.saved_list(str(state), name))
             for name in ("blocklist", "allowlist")}
    config = state / "boot.json"
    config.write_text(json.dumps({
        "object": str(state / "sip_logic.bpf.o"), "pin_dir": str(pin_dir),
        "interfaces": [veth], "mode": "auto", "sip_ports": SIP_PORTS,
        "settings": SETTINGS, "state_dir": str(state),
        "lists": ["blocklist", "allowlist"]}))

    # The deploy: attach with the defaults, fill and save the lists.
    first = run_module("vos.fastpath.xdp_attach", {
        "interface": veth, "object": str(state / "sip_logic.bpf.o"),
        "pin_dir": str(pin_dir)}, tmp_path)
    assert first["changed"] is True, first
    assert (sip_ports(pin_dir), settings_flags(pin_dir)) == ([5060], 0)
    block, allow = lists["blocklist"], lists["allowlist"]
    entry(pin_dir, tmp_path, "blocklist", block, source="manual",
          entries=["203.0.113.7", "198.51.100.0/24", "2001:db8:bad::/48"])
    entry(pin_dir, tmp_path, "blocklist", block, source="long", ttl=3600,
          entries=["203.0.113.60", "2001:db8::60"])
    entry(pin_dir, tmp_path, "allowlist", allow, source="monitoring",
          entries=["192.0.2.20", "2001:db8::20"])
    entry(pin_dir, tmp_path, "allowlist", allow, source="visit", ttl=3600,
          entries=["192.0.2.21"])
    entry(pin_dir, tmp_path, "blocklist", block, source="short", ttl=1,
          entries=["203.0.113.61"])
    short_expiry = fields(pin_dir, "block")["203.0.113.61/32"][0]
    while _lists.boot_ns() <= short_expiry + SEC // 10:
        time.sleep(0.1)
    before_block = fields(pin_dir, "block")
    before_allow = fields(pin_dir, "allow")
    assert len(before_block) == 6 and len(before_allow) == 3
    # The host is down for DOWN_S more: its wall clock runs on, the new
    # boot clock starts over.
    shift_header(block, -DOWN_S * SEC)

    # The reboot: no program, no pins, no tag cache.
    detach_by_hand(veth)
    assert xdp(veth) is None
    shutil.rmtree(pin_dir)
    Path(_tag_cache.TAG_CACHE).unlink(missing_ok=True)

    proc = boot([TARGET_PYTHON, str(command)], config, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines == [
        "%s: attached (native mode, BPF link)" % veth,
        "allowlist: 3 entries restored, 0 expired while down",
        "blocklist: 5 entries restored, 1 expired while down"]

    prog = xdp(veth)
    assert prog is not None and prog["name"] == _abi.PROGRAM_NAME
    assert prog["mode"] == "native"
    # Through a new link, pinned where xdp_attach pins it.
    assert link_attaches(pin_dir, veth, prog["id"])
    used = set(_facts.program_map_ids(prog["id"]))
    assert {map_id(pin_dir, n) for n in ("block_v4", "block_v6",
                                         "allow_v4", "allow_v6",
                                         "settings", "sip_ports")} <= used
    assert sip_ports(pin_dir) == SIP_PORTS
    assert settings_flags(pin_dir) == _plan.settings_to_flags(
        dict(_defaults.SETTINGS, **SETTINGS))
    assert settings_flags(pin_dir) == _abi.FP_BLOCK_ALL_PORTS | _abi.FP_SHADOW

    now = _lists.boot_ns()
    after_block = fields(pin_dir, "block")
    assert set(after_block) == set(before_block) - {"203.0.113.61/32"}
    for cidr, (expires, source) in after_block.items():
        old_expires, old_source = before_block[cidr]
        assert source == old_source, cidr
        if not old_expires:
            assert expires == 0, cidr
        else:       # ttl kept, less the time the host was down
            assert abs(expires - (old_expires - DOWN_S * SEC)) < SEC // 10
            assert expires > now + 3000 * SEC
    assert after_block["203.0.113.60/32"][0] > 0
    after_allow = fields(pin_dir, "allow")
    assert set(after_allow) == set(before_allow)
    for cidr, (expires, source) in after_allow.items():
        assert source == before_allow[cidr][1]
        assert abs(expires - before_allow[cidr][0]) < SEC // 10, cidr
    assert after_allow["192.0.2.21/32"][0] > now

    # A second run (the script itself, by its #! line) changes nothing.
    prog_id = prog["id"]
    again = boot([str(command)], config, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines() == [
        "%s: already attached (native mode, BPF link)" % veth,
        "allowlist: 3 live entries kept, nothing to restore",
        "blocklist: 5 live entries kept, nothing to restore"]
    assert xdp(veth)["id"] == prog_id
    assert fields(pin_dir, "block") == after_block
    assert fields(pin_dir, "allow") == after_allow
    assert sip_ports(pin_dir) == SIP_PORTS


def test_boot_without_a_saved_list_says_so(
        attached_veth: str, pin_dir: Path, state: Path,
        tmp_path: Path) -> None:
    command = install(tmp_path / "lib")
    config = state / "boot.json"
    missing = state / "lists" / "blocklist.list"
    config.write_text(json.dumps({
        "object": str(state / "sip_logic.bpf.o"), "pin_dir": str(pin_dir),
        "interfaces": [attached_veth], "state_dir": str(state),
        "lists": ["blocklist"]}))
    proc = boot([TARGET_PYTHON, str(command)], config, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        "blocklist: nothing saved in %s" % missing]
    assert sip_ports(pin_dir) == [5060]
    assert settings_flags(pin_dir) == 0
    assert fields(pin_dir, "block") == {}


def test_missing_object_fails_naming_it_and_attaches_nothing(
        attached_veth: str, pin_dir: Path, state: Path,
        tmp_path: Path) -> None:
    command = install(tmp_path / "lib")
    gone = state / "gone.bpf.o"
    config = state / "boot.json"
    config.write_text(json.dumps({
        "object": str(gone), "pin_dir": str(pin_dir),
        "interfaces": [attached_veth], "lists": []}))
    proc = boot([TARGET_PYTHON, str(command)], config, tmp_path)
    assert proc.returncode == 1
    errors = proc.stderr.splitlines()
    assert errors == [
        "error: %s: The object %s does not exist on this host: build it "
        "with 'make' and copy it here first." % (attached_veth, gone)]
    assert xdp(attached_veth) is None
    assert os.listdir(pin_dir) == []


def test_boot_waits_for_a_run_that_holds_the_interface(
        attached_veth: str, pin_dir: Path, state: Path,
        tmp_path: Path) -> None:
    """The boot command attaches under the interface's lock, as the
    module does: a deploy changing the interface keeps it waiting, and
    with lock_timeout 0 it fails naming that deploy."""
    command = install(tmp_path / "lib")
    config = state / "boot.json"
    config.write_text(json.dumps({
        "object": str(state / "sip_logic.bpf.o"), "pin_dir": str(pin_dir),
        "interfaces": [attached_veth], "state_dir": str(state),
        "lists": [], "lock_timeout": 0}))
    with _lock.hold(_lock.interface_key(attached_veth), 0,
                    "a deploy in the test"):
        proc = boot([TARGET_PYTHON, str(command)], config, tmp_path)
    assert proc.returncode == 1
    assert "%s: Another run is changing the same thing" % attached_veth \
        in proc.stderr
    assert "held by pid %d, a deploy in the test" % os.getpid() \
        in proc.stderr
    assert xdp(attached_veth) is None
    again = boot([TARGET_PYTHON, str(command)], config, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert xdp(attached_veth) is not None
