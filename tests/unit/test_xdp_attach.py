"""xdp_attach without the kernel: the plan, settings, messages, and the
module's calls through a fake kernel boundary (bpf(), bpffs, ip, bpftool)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi,
    _apply,
    _apply_attach,
    _attach_run,
    _current,
    _defaults,
    _elf,
    _host,
    _limits,
    _lock,
    _messages,
    _netlink,
    _plan,
    _tag_cache,
)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError,
)
from ansible_collections.vos.fastpath.plugins.modules import xdp_attach

PIN_DIR = "/sys/fs/bpf/fp_unit"
MAPS = sorted(_abi.MAPS)
DEFAULTS = dict(_defaults.SETTINGS)
OLD_TAG, NEW_TAG = "0729d17d290e5598", "6fc847535b5ab687"
VERIFIER_STDERR = "\n".join(
    ["libbpf: prog 'sip_xdp_prog': BPF program load failed: Permission "
     "denied", "libbpf: prog 'sip_xdp_prog': -- BEGIN PROG LOAD LOG --"]
    + ["%d: (61) r1 = *(u32 *)(r1 +0)" % i for i in range(100)]
    + ["invalid access to packet, off=100 size=1, R1(id=0,off=100,r=0)",
       "R1 offset is outside of the packet",
       "-- END PROG LOAD LOG --",
       "libbpf: failed to load object 'bad.o'",
       "Error: failed to load object file"])


def spec_layout(name: str, map_id: int) -> dict[str, Any]:
    return dict(_abi.map_layout(_abi.MAPS[name]), id=map_id, name=name)


def ours(mode: str = "native", tag: str = OLD_TAG,
         prog_id: int = 40) -> dict[str, Any]:
    return {"id": prog_id, "name": "sip_xdp_prog", "tag": tag, "mode": mode}


LINK_ID = 90


def xdp_link(prog: dict[str, Any], link_id: int = LINK_ID) -> dict:
    return {"id": link_id, "prog_id": prog["id"], "ifindex": 3}


def current(prog: dict[str, Any] | None = None, pinned: bool = True,
            ports: list[int] | None = None,
            flags: int | None = 0, links: bool = True) -> _current.Current:
    """links: the kernel has XDP links, and prog is attached through ours
    (pinned as link_eth0); False: a kernel before 5.9, netlink."""
    cur = _current.Current()
    cur.prog = prog
    cur.ours = bool(prog) and prog["name"] == "sip_xdp_prog"
    cur.pin_dir_exists = True
    cur.ifindex = 3
    cur.links_supported = links
    if prog and links:
        cur.link = xdp_link(prog)
        if cur.ours:
            cur.link_pin = dict(cur.link)
    if pinned:
        cur.pins = {name: spec_layout(name, 100 + i)
                    for i, name in enumerate(MAPS)}
        cur.ports = [5060] if ports is None else ports
        cur.flags = flags
        cur.limits = _limits.ZERO_LIMITS
        cur.signatures = list(_limits.NO_SIGNATURES)
    if cur.ours:
        cur.prog_maps = dict(cur.pins)
        cur.uses_pins = pinned
        cur.prog_pin_id = prog["id"]
    return cur


def plan(cur: _current.Current, mode: str = "auto", force: bool = False,
         ports: list[int] | None = None, settings: dict | None = None,
         cached: str | None = OLD_TAG,
         move_to_link: bool = False) -> _plan.Plan:
    return _plan.plan_present(cur, "eth0", mode, "sip_xdp_prog", force,
                              ports or [5060], settings or DEFAULTS,
                              cached, MAPS, move_to_link=move_to_link)


# Settings and ports.


@pytest.mark.parametrize("settings, flags", [
    ({}, 0),
    ({"block_all_ports": True}, _abi.FP_BLOCK_ALL_PORTS),
    ({"stealth": False}, _abi.FP_STEALTH_OFF),
    ({"malformed": "pass"}, _abi.FP_MALFORMED_PASS),
    ({"shadow": True}, _abi.FP_SHADOW),
    ({"block_all_ports": True, "stealth": False, "malformed": "pass",
      "shadow": True}, 0xF),
])
def test_settings_map_to_flags_and_back(settings: dict, flags: int) -> None:
    full = dict(DEFAULTS, **settings)
    assert _plan.settings_to_flags(full) == flags
    assert _plan.flags_to_settings(flags) == full


def test_unknown_flag_bits_are_kept() -> None:
    assert _plan.settings_to_flags(DEFAULTS, 0x100 | _abi.FP_SHADOW) \
        == 0x100


def test_ports_are_sorted_unique_and_checked() -> None:
    assert _plan.normalize_ports([5080, 5060, 5080]) == [5060, 5080]
    with pytest.raises(FastpathError, match="1 to 65535, not 0"):
        _plan.normalize_ports([5060, 0])


def test_program_and_link_pin_names_have_no_dot_for_bpffs() -> None:
    assert _abi.prog_pin_name("eth0.100") == "prog_eth0:100"
    assert _abi.link_pin_name("eth0.100") == "link_eth0:100"


# The plan.


def test_fresh_install_tries_native_first() -> None:
    p = plan(current(pinned=False))
    assert p.action == _plan.INSTALL
    assert p.target_mode == "auto"
    assert p.ports_add == [5060] and p.changed


def test_same_program_same_mode_is_unchanged() -> None:
    p = plan(current(ours("native")))
    assert p.action == _plan.NONE
    assert not p.changed


def test_object_without_remembered_tag_is_verified_by_a_load() -> None:
    p = plan(current(ours()), cached=None)
    assert p.action == _plan.VERIFY
    assert p.changed and not p.maps_changed


def test_another_version_is_replaced_in_the_mode_in_use() -> None:
    p = plan(current(ours("generic")), cached=NEW_TAG)
    assert p.action == _plan.REPLACE
    assert p.target_mode == "generic"
    assert "kept generic" in p.mode_reason


def test_program_using_other_maps_is_replaced() -> None:
    cur = current(ours())
    cur.uses_pins = False
    assert plan(cur).action == _plan.REPLACE


def test_mode_change_moves_the_same_program_without_a_load() -> None:
    p = plan(current(ours("native")), mode="generic")
    assert p.action == _plan.MODE_CHANGE
    assert p.keep_program and not p.needs_load
    p = plan(current(ours("native")), mode="generic", cached=NEW_TAG)
    assert p.action == _plan.MODE_CHANGE and p.needs_load


def test_foreign_program_is_refused_by_name_and_id() -> None:
    cur = current({"id": 77, "name": "xdp_filter", "tag": "ab",
                   "mode": "native"}, pinned=False)
    with pytest.raises(FastpathError) as err:
        plan(cur)
    assert "xdp_filter (id 77" in err.value.msg
    assert "force: true" in err.value.msg


def test_foreign_program_is_replaced_with_force() -> None:
    cur = current({"id": 77, "name": "xdp_filter", "tag": "ab",
                   "mode": "native"}, pinned=False)
    assert plan(cur, force=True).action == _plan.REPLACE
    assert plan(cur, force=True, mode="generic").action == \
        _plan.MODE_CHANGE


def test_another_version_on_our_link_is_swapped_by_a_link_update() -> None:
    p = plan(current(ours("native")), cached=NEW_TAG)
    assert (p.action, p.method, p.swap) == (_plan.REPLACE, _plan.LINK,
                                            _plan.LINK_UPDATE)
    assert not p.relink and not p.repin_link


def test_kernel_without_links_replaces_through_netlink() -> None:
    p = plan(current(ours("native"), links=False), cached=NEW_TAG)
    assert (p.action, p.method, p.swap) == (_plan.REPLACE, _plan.NETLINK,
                                            _plan.NETLINK_REPLACE)
    p = plan(current(ours("native"), links=False))
    assert p.action == _plan.NONE and not p.changed


def test_our_netlink_attachment_is_replaced_through_netlink_at_once() \
        -> None:
    """An upgrade from a netlink-only version keeps filtering: without
    move_to_link the program is swapped through netlink, never detached."""
    cur = current(ours("native"), links=False)
    cur.links_supported = True
    same = plan(cur)
    assert (same.action, same.method, same.relink) == \
        (_plan.NONE, _plan.NETLINK, False)
    assert not same.changed
    new = plan(cur, cached=NEW_TAG)
    assert (new.action, new.method, new.swap, new.relink) == \
        (_plan.REPLACE, _plan.NETLINK, _plan.NETLINK_REPLACE, False)


def test_same_program_through_netlink_moves_to_a_link_unloaded() -> None:
    cur = current(ours("native"), links=False)
    cur.links_supported = True      # a new kernel, or an older deploy
    p = plan(cur, move_to_link=True)
    assert (p.action, p.swap) == (_plan.RELINK, _plan.MOVE)
    assert p.relink and p.keep_program and not p.needs_load
    assert p.changed and not p.maps_changed


def test_another_version_through_netlink_moves_to_a_link() -> None:
    cur = current(ours("native"), links=False)
    cur.links_supported = True
    p = plan(cur, cached=NEW_TAG, move_to_link=True)
    assert (p.action, p.swap, p.relink) == (_plan.REPLACE, _plan.MOVE, True)
    assert p.needs_load
    unknown = plan(cur, cached=None, move_to_link=True)
    assert (unknown.action, unknown.swap) == (_plan.VERIFY, _plan.MOVE)


def test_foreign_link_is_named_and_detached_first_with_force() -> None:
    cur = current({"id": 77, "name": "xdp_filter", "tag": "ab",
                   "mode": "native"}, pinned=False)
    with pytest.raises(FastpathError) as err:
        plan(cur)
    assert "(id 77, native mode, through a BPF link)" in err.value.msg
    p = plan(cur, force=True)
    assert (p.action, p.swap) == (_plan.REPLACE, _plan.DETACH_FIRST)


def test_our_link_without_our_pin_is_pinned_without_a_reload() -> None:
    cur = current(ours("native"))
    cur.link_pin = None             # pin removed by hand, link held by an fd
    p = plan(cur)
    assert p.action == _plan.NONE and p.repin_link and p.changed
    cur.link_pin = dict(xdp_link(ours(), 12), ifindex=0)   # a detached one
    assert plan(cur).repin_link


def test_ports_and_settings_are_written_to_exactly_what_is_asked() -> None:
    p = plan(current(ours(), ports=[5060, 5062]), ports=[5060, 5080],
             settings=dict(DEFAULTS, shadow=True))
    assert p.action == _plan.NONE
    assert (p.ports_add, p.ports_clear) == ([5080], [5062])
    assert p.write_flags and p.flags == _abi.FP_SHADOW
    assert p.changed


def test_missing_pins_are_taken_from_the_attached_program() -> None:
    cur = current(ours())
    del cur.pins["stats"]
    cur.adopt = {"stats": cur.prog_maps["stats"]["id"]}
    p = plan(cur)
    assert p.action == _plan.NONE
    assert p.adopt == {"stats": cur.prog_maps["stats"]["id"]}
    assert p.changed


def test_absent_detaches_ours_and_keeps_maps() -> None:
    p = _plan.plan_absent(current(ours("generic")), "eth0", PIN_DIR,
                          "sip_xdp_prog", False, True, {},
                          MAPS + ["prog_eth0"])
    assert p.detach["mode"] == "generic"
    assert p.remove_prog_pin and p.remove_maps == {}


def test_absent_detaches_our_link_and_removes_its_pin() -> None:
    p = _plan.plan_absent(current(ours("native")), "eth0", PIN_DIR,
                          "sip_xdp_prog", False, True, {},
                          MAPS + ["prog_eth0", "link_eth0"])
    assert p.detach_link_id == LINK_ID
    assert p.detach["attach_method"] == "link"
    assert p.remove_link_pin and p.remove_prog_pin


def test_absent_keeps_the_link_pin_of_a_program_it_leaves() -> None:
    cur = current({"id": 77, "name": "other", "tag": "ab", "mode": "native"})
    cur.link_pin = dict(cur.link)   # another tool's link under our name
    p = _plan.plan_absent(cur, "eth0", PIN_DIR, "sip_xdp_prog", False,
                          True, {}, MAPS + ["link_eth0"])
    assert p.detach is None and not p.remove_link_pin and not p.changed
    cur.link_pin = dict(xdp_link(cur.prog, 12), ifindex=0)   # detached
    stale = _plan.plan_absent(cur, "eth0", PIN_DIR, "sip_xdp_prog", False,
                              True, {}, MAPS + ["link_eth0"])
    assert stale.detach is None and stale.remove_link_pin


def test_absent_leaves_a_foreign_program_without_force() -> None:
    cur = current({"id": 77, "name": "other", "tag": "ab", "mode": "native"})
    p = _plan.plan_absent(cur, "eth0", PIN_DIR, "sip_xdp_prog", False,
                          True, {}, MAPS)
    assert p.detach is None and not p.changed
    assert "other (id 77)" in p.warnings[0]


def test_absent_removes_maps_only_when_no_interface_uses_them() -> None:
    cur = current(ours())
    used = {cur.pins["stats"]["id"]: ["eth1"]}
    kept = _plan.plan_absent(cur, "eth0", PIN_DIR, "sip_xdp_prog", False,
                             False, used, MAPS + ["prog_eth0"])
    assert kept.remove_maps == {} and kept.maps_in_use_by == ["eth1"]
    assert "eth1" in kept.warnings[0]
    gone = _plan.plan_absent(cur, "eth0", PIN_DIR, "sip_xdp_prog", False,
                             False, {}, MAPS + ["prog_eth0"])
    assert sorted(gone.remove_maps) == MAPS and gone.remove_pin_dir


# Messages.


def test_layout_mismatch_names_the_map_and_the_difference() -> None:
    found = dict(_abi.map_layout(_abi.MAPS["sip_ports"]), value_size=4)
    msg = _current.layout_problem("sip_ports", PIN_DIR + "/sip_ports", found)
    assert "/sip_ports (sip_ports)" in msg
    assert "value_size 4 (the program needs 1)" in msg
    assert _current.layout_problem("sip_ports", "x", _abi.map_layout(
        _abi.MAPS["sip_ports"])) is None


def test_verifier_tail_keeps_the_last_lines_of_the_log() -> None:
    tail = _messages.verifier_tail(VERIFIER_STDERR)
    lines = tail.splitlines()
    assert len(lines) == 30
    assert lines[-1] == "R1 offset is outside of the packet"
    assert "END PROG LOAD LOG" not in tail
    assert _messages.verifier_tail("Error: no such file\n") == \
        "Error: no such file"


def test_tag_cache_remembers_and_stays_bounded(tmp_path: Path) -> None:
    cache = _tag_cache.TagCache(str(tmp_path / "run" / "tags.json"))
    assert cache.lookup("a") is None
    for i in range(_tag_cache.TAG_CACHE_SIZE + 5):
        cache.record("k%d" % i, "t%d" % i)
    assert cache.lookup("k0") is None
    assert cache.lookup("k%d" % (_tag_cache.TAG_CACHE_SIZE + 4)) == \
        "t%d" % (_tag_cache.TAG_CACHE_SIZE + 4)


def test_object_map_names_from_the_elf_symbols() -> None:
    obj = Path(__file__).resolve().parents[2] / "build" / "sip_logic.bpf.o"
    if not obj.exists():
        pytest.skip("run make first")
    assert _elf.map_names(str(obj)) == MAPS


# Host: the argv of each tool call, with run_command mocked.


def host_with(rc: int = 0, out: str = "",
              err: str = "") -> tuple[_host.Host, mock.Mock]:
    module = mock.Mock()
    module.get_bin_path.side_effect = lambda name, **kw: "/usr/sbin/" + name
    module.run_command.return_value = (rc, out, err)
    return _host.Host(module), module.run_command


def test_load_reuses_pinned_maps_and_pins_the_rest_apart() -> None:
    host, run = host_with(rc=255, err=VERIFIER_STDERR)
    with pytest.raises(FastpathError):
        host.load("/o.bpf.o", PIN_DIR + "/tmp_1", "sip_xdp_prog",
                  {"stats": PIN_DIR + "/stats"})
    argv = run.call_args.args[0]
    assert argv[:5] == ["/usr/sbin/bpftool", "prog", "loadall", "/o.bpf.o",
                        PIN_DIR + "/tmp_1/progs"]
    assert argv[5:] == ["type", "xdp", "map", "name", "stats", "pinned",
                        PIN_DIR + "/stats", "pinmaps", PIN_DIR + "/tmp_1/maps"]
    assert run.call_args.kwargs["environ_update"]["LANG"] == "C"


def test_verifier_rejection_message_has_the_log_tail() -> None:
    host, _run = host_with(rc=255, err=VERIFIER_STDERR)
    with pytest.raises(FastpathError) as err:
        host.load("/o.bpf.o", "/t", "sip_xdp_prog", {})
    assert "verifier rejected sip_xdp_prog" in err.value.msg
    assert err.value.msg.endswith("R1 offset is outside of the packet")
    assert "left as it was" in err.value.msg
    assert err.value.rc == 255
    assert len(err.value.stderr.splitlines()) == 30


def test_map_refused_by_libbpf_is_named() -> None:
    err = ("libbpf: couldn't reuse pinned map at '%s/stats': parameter "
           "mismatch\nlibbpf: map 'stats': error reusing pinned map\n"
           "Error: failed to load object file\n" % PIN_DIR)
    host, _run = host_with(rc=255, err=err)
    with pytest.raises(FastpathError) as raised:
        host.load("/o.bpf.o", "/t", "sip_xdp_prog", {})
    assert "pinned map %s/stats does not have" % PIN_DIR in raised.value.msg


def test_other_load_failures_quote_bpftool() -> None:
    host, _run = host_with(rc=255, err="libbpf: elf: x\nError: unable to "
                           "find map 'allow_v4'\n")
    with pytest.raises(FastpathError) as raised:
        host.load("/o.bpf.o", "/t", "sip_xdp_prog", {})
    assert "(Error: unable to find map 'allow_v4')" in raised.value.msg


def test_replace_uses_ip_force_and_detach_names_the_mode() -> None:
    host, run = host_with()
    host.attach("eth0", "native", "/p", replace=True)
    assert run.call_args.args[0] == ["/usr/sbin/ip", "-force", "link", "set",
                                     "dev", "eth0", "xdpdrv", "pinned", "/p"]
    host.detach("eth0", "generic")
    assert run.call_args.args[0][-2:] == ["xdpgeneric", "off"]


def test_missing_interface_fails_with_its_name() -> None:
    host, _run = host_with(rc=1, err='Device "eth9" does not exist.\n')
    with pytest.raises(FastpathError, match="Interface eth9 was not"):
        host.link("eth9")


def test_auto_falls_back_to_generic_only_on_a_refusal() -> None:
    host, run = host_with()
    place = _apply_attach.LinkPlace(host, "/t", "/l")
    refused = (2, "", "Error: veth: Peer MTU is too large to set XDP.\n")
    run.side_effect = [refused, (0, "", "")]
    mode, reason, method = _apply_attach.attach_new(
        host, "eth0", "auto", "/p", "netlink", place, _apply.Undo())
    assert (mode, method) == ("generic", "netlink")
    assert "Peer MTU is too large" in reason
    run.side_effect = [(2, "", "Error: XDP program already attached.\n")]
    with pytest.raises(FastpathError):
        _apply_attach.attach_new(host, "eth0", "auto", "/p", "netlink",
                                 place, _apply.Undo())


def test_link_errors_are_named_and_busy_is_not_a_refusal() -> None:
    words = _messages.link_error(OSError(errno.ERANGE, "x"))
    assert words == "ERANGE: Numerical result out of range"
    assert _apply_attach.is_refusal(FastpathError("m", stderr=words))
    for busy in (errno.EBUSY, errno.EEXIST):
        assert not _apply_attach.is_refusal(FastpathError(
            "m", stderr=_messages.link_error(OSError(busy, "x"))))


class FakeSocket:
    """An rtnetlink socket that records the request and answers it."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sent = b""

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def setsockopt(self, *args: int) -> None:
        pass

    def send(self, data: bytes) -> None:
        self.sent = data

    def recv(self, size: int) -> bytes:
        return self.reply


def nlmsgerr(err: int, said: str = "") -> bytes:
    tlv = b""
    if said:
        text = said.encode() + b"\0"
        tlv = _netlink._nla(_netlink.NLMSGERR_ATTR_MSG, text)
    body = _netlink.struct.pack("=i", -err) + b"\0" * 16 + tlv
    return _netlink.struct.pack(
        "=IHHII", 16 + len(body), _netlink.NLMSG_ERROR,
        _netlink.NLM_F_ACK_TLVS if said else 0, 1, 0) + body


def test_netlink_detach_asks_for_the_program_read_and_quotes_the_kernel(
) -> None:
    sock = FakeSocket(nlmsgerr(errno.EEXIST,
                               "Active program does not match expected"))
    with mock.patch.object(_netlink.socket, "socket", return_value=sock), \
            pytest.raises(OSError) as err:
        _netlink.netlink_set_xdp(7, -1, _netlink.XDP_MODE_FLAGS["native"],
                                 expected_fd=5)
    assert err.value.errno == errno.EEXIST
    assert "(Active program does not match expected)" in str(err.value)
    req = sock.sent
    assert _netlink.struct.unpack_from("=IH", req) == (
        len(req), _netlink.RTM_SETLINK)
    assert _netlink.struct.unpack_from("=i", req, 20)[0] == 7    # ifindex
    # IFLA_XDP nested: fd -1, the expected fd, then the flags.
    nested = req[36:]
    assert _netlink.struct.unpack_from("=HHi", nested, 0)[1:] == \
        (_netlink.IFLA_XDP_FD, -1)
    assert _netlink.struct.unpack_from("=HHi", nested, 8)[1:] == \
        (_netlink.IFLA_XDP_EXPECTED_FD, 5)
    assert _netlink.struct.unpack_from("=HHI", nested, 16)[1:] == \
        (_netlink.IFLA_XDP_FLAGS, 4 | _netlink.XDP_FLAGS_REPLACE)
    ok = FakeSocket(nlmsgerr(0))
    with mock.patch.object(_netlink.socket, "socket", return_value=ok):
        _netlink.netlink_set_xdp(7, 9, 2)


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """bpf() and rtnetlink of Host.move_to_link, recorded: fd 10 is the
    old program's pin, fd 11 the new one's."""
    calls: list[tuple] = []
    fds = {"/old": 10, "/new": 11}
    monkeypatch.setattr(_netlink.socket, "if_nametoindex", lambda name: 7)
    monkeypatch.setattr(_netlink._bpf, "obj_get", lambda path: fds[path])
    monkeypatch.setattr(_netlink.os, "close", lambda fd: None)

    def netlink(*args: Any, **kwargs: Any) -> None:
        calls.append(("netlink", args, kwargs))
    monkeypatch.setattr(_netlink, "netlink_set_xdp", netlink)

    def refuse(*args: Any) -> int:
        calls.append(("link_create", args))
        raise OSError(errno.ERANGE, "Numerical result out of range")
    monkeypatch.setattr(_netlink._bpf_link, "link_create_xdp", refuse)
    return calls


def test_move_detaches_only_the_program_read_and_puts_it_back(
        syscalls: list[tuple]) -> None:
    host, _run = host_with()
    with pytest.raises(FastpathError) as err:
        host.move_to_link("eth0", "native", "/old", "/new", "/t/link")
    assert "attached again through netlink, as it was" in err.value.msg
    assert "ERANGE" in err.value.msg
    drv = _netlink.XDP_MODE_FLAGS["native"]
    assert syscalls == [
        ("netlink", (7, -1, drv), {"expected_fd": 10}),
        ("link_create", (11, 7, drv)),
        ("netlink", (7, 10, drv | _netlink.XDP_FLAGS_UPDATE_IF_NOEXIST),
         {})]


def test_move_whose_put_back_fails_says_how_to_do_it_by_hand(
        syscalls: list[tuple], monkeypatch: pytest.MonkeyPatch) -> None:
    def netlink(ifindex: int, fd: int, flags: int, **kwargs: Any) -> None:
        if fd != -1:
            raise OSError(errno.EBUSY, "Device or resource busy")
    monkeypatch.setattr(_netlink, "netlink_set_xdp", netlink)
    host, _run = host_with()
    with pytest.raises(FastpathError) as err:
        host.move_to_link("eth0", "native", "/old", "/new", "/t/link")
    assert "eth0 has no XDP program" in err.value.msg
    assert err.value.result["undo_failed"] == [{
        "step": "the native program on eth0",
        "error": "[Errno 16] Device or resource busy",
        "by_hand": "ip link set dev eth0 xdpdrv pinned /old"}]


# The module through a fake kernel.

MUTATING = {"make_dir", "remove_dir", "remove_tree", "unlink", "rename",
            "pin_map_id", "pin_prog_id", "repin_link", "load", "attach",
            "detach", "create_link", "update_link", "detach_link",
            "move_to_link", "driver_says", "write_ports", "write_flags",
            "write_limits", "write_slots", "clear_slots"}
NEW_LINK_ID = 91


class FakeHost:
    """The kernel as Host shows it, with every call recorded."""

    def __init__(self, tmp_path: Path, cur: _current.Current,
                 load_error: FastpathError | None = None,
                 refuse: tuple[str, ...] = (),
                 failing: tuple[str, ...] = (),
                 link_errno: int = errno.ERANGE) -> None:
        self.cur = cur
        self.link_errno = link_errno  # how a mode in refuse refuses a link
        self.calls: list[tuple[str, tuple]] = []
        self.kwargs: list[dict] = []
        self.dirs = {"/sys/fs/bpf"} | ({PIN_DIR} if cur.pin_dir_exists
                                       else set())
        self.load_error = load_error
        self.refuse = refuse
        self.failing = failing      # calls that fail with EPERM
        self.checked_dirs: list[str] = []   # check_private_dir calls
        self.bpftool = tmp_path / "bpftool"
        self.bpftool.write_text("")
        # scanner_hits of 2 CPUs: slot j counts j + 1 packets on each.
        self.hits = [_abi.COUNTER.pack(j + 1, 100) * 2
                     for j in range(_limits.MAX_SIGNATURES)]

    def __getattr__(self, name: str) -> Any:
        if name not in MUTATING:
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            self.kwargs.append(kwargs)
            if name in self.failing:
                raise OSError(1, "Operation not permitted")
            return getattr(self, "do_" + name, lambda *a, **k: None)(
                *args, **kwargs)
        return record

    def names(self) -> list[str]:
        return [name for name, _args in self.calls]

    # Reads.
    def tool(self, name: str) -> str:
        return str(self.bpftool)

    def link(self, ifname: str) -> dict:
        prog = self.cur.prog
        if not prog:
            return {"ifname": ifname}
        modes = {"native": 1, "generic": 2}
        return {"ifname": ifname, "ifindex": 3,
                "xdp": {"mode": modes[prog["mode"]], "prog": prog}}

    def links_supported(self) -> bool:
        return self.cur.links_supported

    def xdp_link(self, ifindex: int, prog: dict | None) -> dict | None:
        return self.cur.link if prog else None

    def pinned_link(self, path: str) -> dict | None:
        return self.cur.link_pin

    def attached(self, ifname: str) -> dict | None:
        return self.cur.prog

    def bpffs_mount(self, path: str) -> str:
        return "/sys/fs/bpf"

    def exists(self, path: str) -> bool:
        return path in self.dirs

    def listdir(self, path: str) -> list[str]:
        return sorted(self.cur.pins) + ["prog_eth0"]

    def check_private_dir(self, path: str) -> None:
        self.checked_dirs.append(path)

    def map_layouts(self, pin_dir: str) -> dict:
        return dict(self.cur.pins)

    def program_maps(self, prog_id: int) -> dict:
        return dict(self.cur.prog_maps)

    def pinned_prog_id(self, path: str) -> int | None:
        return self.cur.prog_pin_id

    def read_ports(self, ref: Any) -> list[int]:
        return list(self.cur.ports or [])

    def read_flags(self, ref: Any) -> int:
        return self.cur.flags or 0

    def read_limits(self, ref: Any) -> bytes:
        return self.cur.limits or _limits.ZERO_LIMITS

    def read_slots(self, ref: Any) -> list[bytes]:
        if str(ref).endswith("scanner_hits"):
            return list(self.hits)
        return list(self.cur.signatures or _limits.NO_SIGNATURES)

    def attached_map_ids(self, skip: str | None) -> dict:
        return {}

    # The map writes, kept so that a second run reads them back.
    def do_write_limits(self, ref: Any, value: bytes) -> None:
        self.cur.limits = value

    def do_write_slots(self, ref: Any, values: dict[int, bytes]) -> None:
        if str(ref).endswith("scanner_hits"):
            for slot, value in values.items():
                self.hits[slot] = value
            return
        slots = list(self.cur.signatures or _limits.NO_SIGNATURES)
        for slot, value in values.items():
            slots[slot] = value
        self.cur.signatures = slots

    def do_clear_slots(self, ref: Any, keys: list[int]) -> None:
        for slot in keys:
            self.hits[slot] = bytes(len(self.hits[slot]))

    # Changes that the fake must answer.
    def do_make_dir(self, path: str) -> None:
        self.dirs.add(path)

    def do_remove_tree(self, path: str) -> None:
        self.dirs.discard(path)

    def do_load(self, obj: str, tmp: str, program: str,
                reuse: dict) -> _host.Loaded:
        if self.load_error:
            raise self.load_error
        return _host.Loaded(tmp + "/progs/" + program, 41, NEW_TAG,
                            tmp + "/maps")

    def do_attach(self, ifname: str, mode: str, pin: str,
                  replace: bool = False) -> None:
        if mode in self.refuse:
            raise FastpathError(
                "refused", cmd=["ip"], rc=2,
                stderr="Error: veth: Peer MTU is too large to set XDP.")
        self.cur.prog = ours(mode, NEW_TAG, 41)
        self.cur.link = None

    def do_create_link(self, ifname: str, mode: str, prog_pin: str,
                       link_pin: str) -> None:
        if mode in self.refuse:
            raise OSError(self.link_errno, os.strerror(self.link_errno))
        self.cur.prog = ours(mode, NEW_TAG, 41)
        self.cur.link = xdp_link(self.cur.prog, NEW_LINK_ID)

    def do_update_link(self, link_id: int, prog_pin: str,
                       old_prog_id: int) -> None:
        self.cur.prog = ours(self.cur.prog["mode"], NEW_TAG, 41)
        self.cur.link = xdp_link(self.cur.prog, link_id)

    def do_detach_link(self, ref: str | int) -> None:
        self.cur.prog = self.cur.link = None

    def do_detach(self, ifname: str, mode: str) -> None:
        self.cur.prog = None

    def do_driver_says(self, ifname: str, mode: str, prog_pin: str) -> str:
        return "veth: Peer MTU is too large to set XDP"

    def do_move_to_link(self, ifname: str, mode: str, old_pin: str,
                        prog_pin: str, link_pin: str) -> None:
        if mode in self.refuse:
            raise FastpathError("The kernel refused a link.")
        self.do_create_link(ifname, mode, prog_pin, link_pin)


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The interface lock, in a directory of the test's own; the locks
    taken, as (key, timeout, purpose)."""
    taken: list[tuple] = []
    real = _lock.hold

    @contextlib.contextmanager
    def hold(key: str, timeout: float, purpose: str) -> Any:
        taken.append((key, timeout, purpose))
        with real(key, timeout, purpose, lock_dir=str(tmp_path / "locks")):
            yield
    monkeypatch.setattr(_attach_run._lock, "hold", hold)
    return taken


def run_main(args: dict, host: FakeHost, tmp_path: Path,
             check: bool = False, object_maps: list[str] = MAPS) -> dict:
    obj = tmp_path / "sip_logic.bpf.o"
    obj.write_bytes(b"\x7fELF object")
    args = dict({"interface": "eth0", "object": str(obj),
                 "pin_dir": PIN_DIR, "_ansible_check_mode": check}, **args)
    cache = _tag_cache.TagCache(str(tmp_path / "tags.json"))
    if "cached" in args:
        key = _tag_cache.cache_key(str(obj), str(host.bpftool))
        cache.record(key, args.pop("cached"))
    # Warnings are kept in a global for the module's one run per process,
    # and go to the controller's display instead once any test has
    # imported the controller (ansible.errors, say).
    with patch_module_args(args), \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            mock.patch.object(ansible_internal, "is_controller", False), \
            mock.patch.object(_host, "Host", return_value=host), \
            mock.patch.object(_tag_cache, "TagCache", return_value=cache), \
            mock.patch.object(_elf, "map_names", return_value=object_maps), \
            mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit):
        xdp_attach.main()
    text = "".join(call.args[0] for call in stdout.write.call_args_list)
    return json.loads(text)


@pytest.mark.parametrize("cur, cached", [
    (current(pinned=False), None),
    (current(ours("native")), NEW_TAG),
    (current(ours("native")), None),
    (current(ours("native"), ports=[5062]), OLD_TAG),
])
def test_check_mode_makes_no_call_that_changes_state(
        cur: _current.Current, cached: str | None, tmp_path: Path) -> None:
    host = FakeHost(tmp_path, cur)
    args = {"_ansible_diff": True}
    if cached:
        args["cached"] = cached
    result = run_main(args, host, tmp_path, check=True)
    assert result["changed"] is True
    assert host.calls == []
    assert result["diff"]["after"]["sip_ports"] == [5060]


def test_fresh_install_writes_the_maps_before_attaching(
        tmp_path: Path, lock_dir: list[tuple]) -> None:
    cur = current(pinned=False)
    cur.pin_dir_exists = False
    host = FakeHost(tmp_path, cur)
    result = run_main({"sip_ports": [5060, 5080],
                       "settings": {"shadow": True}}, host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert result["action"] == "install"
    assert result["mode"] == "native"
    assert result["tag"] == NEW_TAG
    assert (result["attach_method"], result["link_id"]) == ("link",
                                                            NEW_LINK_ID)
    assert result["link_pin"] == PIN_DIR + "/link_eth0"
    names = host.names()
    assert names[:3] == ["make_dir", "make_dir", "load"]
    # maps, the link, then the program
    assert names.count("rename") == len(MAPS) + 2
    assert names.index("write_ports") < names.index("create_link")
    assert names.index("write_flags") < names.index("create_link")
    tmp = PIN_DIR + "/tmp_%d" % os.getpid()
    assert ("create_link", ("eth0", "native", tmp + "/progs/sip_xdp_prog",
                            tmp + "/link")) in host.calls
    assert ("rename", (tmp + "/link", PIN_DIR + "/link_eth0")) in host.calls
    assert lock_dir == [(_lock.interface_key("eth0"), _lock.DEFAULT_TIMEOUT,
                         "xdp_attach state=present on eth0")]
    assert ("write_ports", (PIN_DIR + "/sip_ports", [5060, 5080], [])) \
        in host.calls
    assert ("write_flags", (PIN_DIR + "/settings", _abi.FP_SHADOW)) \
        in host.calls
    renamed = [args[1] for name, args in host.calls if name == "rename"]
    assert renamed[-1] == PIN_DIR + "/prog_eth0"
    assert host.calls[-1] == ("remove_tree",
                              (PIN_DIR + "/tmp_%d" % os.getpid(),))


def test_unchanged_program_makes_no_call_at_all(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("native")))
    result = run_main({"cached": OLD_TAG}, host, tmp_path)
    assert result["changed"] is False
    assert result["mode"] == "native"
    assert host.calls == []


def test_upgrade_swaps_the_links_program_checked_and_keeps_the_link(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("native")))
    result = run_main({"cached": NEW_TAG}, host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert (result["action"], result["attach_method"]) == ("replace", "link")
    assert result["link_id"] == LINK_ID
    assert result["moved_to_link"] is False
    assert result["replaced"]["attach_method"] == "link"
    tmp = PIN_DIR + "/tmp_%d" % os.getpid()
    assert ("update_link", (LINK_ID, tmp + "/progs/sip_xdp_prog", 40)) \
        in host.calls
    assert not {"attach", "detach", "detach_link", "create_link",
                "move_to_link"} & set(host.names())
    # The old program stays pinned for the undo while the run lasts.
    assert ("pin_prog_id", (40, tmp + "/previous")) in host.calls


def test_upgrade_without_links_replaces_atomically_with_ip_force(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("native"), links=False))
    result = run_main({"cached": NEW_TAG}, host, tmp_path)
    assert result["attach_method"] == "netlink"
    assert result["changed"] is True
    assert result["action"] == "replace"
    assert result["detached_for_mode_change"] is False
    assert result["replaced"]["tag"] == OLD_TAG
    assert sorted(result["reused_maps"]) == MAPS
    load = dict(host.calls)["load"]
    assert sorted(load[3]) == MAPS
    assert "detach" not in host.names()
    (index,) = [i for i, name in enumerate(host.names()) if name == "attach"]
    assert host.calls[index][1] == (
        "eth0", "native",
        PIN_DIR + "/tmp_%d/progs/sip_xdp_prog" % os.getpid())
    assert host.kwargs[index] == {"replace": True}


@pytest.mark.parametrize("links, detach, attach", [
    (True, "detach_link", "create_link"),
    (False, "detach", "attach"),
])
def test_mode_change_detaches_first_and_says_so(
        tmp_path: Path, links: bool, detach: str, attach: str) -> None:
    host = FakeHost(tmp_path, current(ours("native"), links=links))
    result = run_main({"mode": "generic", "cached": OLD_TAG}, host, tmp_path)
    assert result["detached_for_mode_change"] is True
    assert result["moved_to_link"] is False
    assert "native program was detached" in result["mode_reason"]
    names = host.names()
    assert "load" not in names
    assert names.index(detach) < names.index(attach)
    assert result["attach_method"] == ("link" if links else "netlink")


def test_program_through_netlink_moves_to_a_link_and_warns(
        tmp_path: Path) -> None:
    cur = current(ours("native"), links=False)
    cur.links_supported = True
    host = FakeHost(tmp_path, cur)
    result = run_main({"cached": OLD_TAG, "_ansible_diff": True,
                       "move_to_link": True}, host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert (result["action"], result["moved_to_link"]) == ("relink", True)
    assert result["attach_method"] == "link"
    assert result["replaced"] is None
    assert result["diff"]["before"]["attach_method"] == "netlink"
    assert result["diff"]["after"]["attach_method"] == "link"
    tmp = PIN_DIR + "/tmp_%d" % os.getpid()
    # The same program, not loaded again: pinned, then moved.
    assert "load" not in host.names()
    assert ("move_to_link", ("eth0", "native", tmp + "/previous",
                             tmp + "/previous", tmp + "/link")) in host.calls
    assert ("rename", (tmp + "/link", PIN_DIR + "/link_eth0")) in host.calls
    (warning,) = result["warnings"]     # a module's raw warning event
    assert warning["event"]["msg"].startswith(
        "eth0 was moved from a netlink attachment to a BPF link")


def test_another_version_through_netlink_moves_to_a_link_loaded(
        tmp_path: Path) -> None:
    cur = current(ours("native"), links=False)
    cur.links_supported = True
    host = FakeHost(tmp_path, cur)
    result = run_main({"cached": NEW_TAG, "move_to_link": True}, host,
                      tmp_path)
    assert (result["action"], result["moved_to_link"]) == ("replace", True)
    assert result["replaced"]["attach_method"] == "netlink"
    tmp = PIN_DIR + "/tmp_%d" % os.getpid()
    assert ("move_to_link", ("eth0", "native", tmp + "/previous",
                             tmp + "/progs/sip_xdp_prog", tmp + "/link")) \
        in host.calls


def test_refused_move_leaves_the_netlink_program_and_the_pins(
        tmp_path: Path) -> None:
    cur = current(ours("native"), links=False)
    cur.links_supported = True
    host = FakeHost(tmp_path, cur, refuse=("native",))
    result = run_main({"cached": NEW_TAG, "move_to_link": True}, host,
                      tmp_path)
    assert result["failed"] is True
    assert "refused a link" in result["msg"]
    assert "undo_failed" not in result
    assert "rename" not in host.names()[host.names().index("move_to_link"):]
    assert host.calls[-1] == ("remove_tree",
                              (PIN_DIR + "/tmp_%d" % os.getpid(),))


def test_our_link_left_without_its_pin_is_pinned_again(
        tmp_path: Path) -> None:
    cur = current(ours("native"))
    cur.link_pin = None
    host = FakeHost(tmp_path, cur)
    result = run_main({"cached": OLD_TAG}, host, tmp_path)
    assert result["changed"] is True and result["action"] == "none"
    assert host.calls == [("repin_link", (LINK_ID, PIN_DIR + "/link_eth0"))]


def test_auto_through_links_falls_back_to_generic_on_a_refusal(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(pinned=False), refuse=("native",))
    result = run_main({}, host, tmp_path)
    assert (result["mode"], result["attach_method"]) == ("generic", "link")
    assert ("refused native XDP (ERANGE: Numerical result out of range "
            "(veth: Peer MTU is too large to set XDP))") in \
        result["mode_reason"]
    assert ("driver_says", ("eth0", "native", PIN_DIR + "/tmp_%d/progs/"
                            "sip_xdp_prog" % os.getpid())) in host.calls


def test_kernel_that_refuses_generic_links_gets_netlink(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(pinned=False))

    def create_link(*args: Any) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")
    host.do_create_link = create_link
    result = run_main({}, host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert (result["mode"], result["attach_method"]) == ("native", "netlink")
    assert "the kernel has no XDP links" in result["mode_reason"]
    assert ("attach", ("eth0", "native", PIN_DIR + "/tmp_%d/progs/"
                       "sip_xdp_prog" % os.getpid())) in host.calls


def test_verifier_failure_touches_nothing_attached(tmp_path: Path) -> None:
    host_, _run = host_with(rc=255, err=VERIFIER_STDERR)
    with pytest.raises(FastpathError) as err:
        host_.load("/o", "/t", "sip_xdp_prog", {})
    host = FakeHost(tmp_path, current(ours("native")), load_error=err.value)
    result = run_main({"cached": NEW_TAG}, host, tmp_path)
    assert result["failed"] is True
    assert "outside of the packet" in result["msg"]
    assert result["rc"] == 255
    names = host.names()
    assert "attach" not in names and "detach" not in names
    assert names[-1] == "remove_tree"      # the temporary pins


def test_refused_native_install_removes_what_it_pinned(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(pinned=False), refuse=("native",))
    result = run_main({"mode": "native"}, host, tmp_path)
    assert result["failed"] is True
    assert "mode: auto" in result["msg"]
    renamed = [a[1] for n, a in host.calls if n == "rename"]
    unlinked = [a[0] for n, a in host.calls if n == "unlink"]
    assert sorted(renamed) == sorted(unlinked)


def test_foreign_program_fails_before_any_change(tmp_path: Path) -> None:
    cur = current({"id": 9, "name": "other", "tag": "cd", "mode": "native"},
                  pinned=False)
    host = FakeHost(tmp_path, cur)
    result = run_main({}, host, tmp_path)
    assert result["failed"] is True
    assert "other (id 9" in result["msg"]
    assert host.calls == []


def test_map_layout_mismatch_fails_before_any_change(tmp_path: Path) -> None:
    cur = current(pinned=False)
    cur.pins = {"block_v4": dict(spec_layout("block_v4", 5),
                                 max_entries=1024)}
    host = FakeHost(tmp_path, cur)
    result = run_main({}, host, tmp_path)
    assert result["failed"] is True
    assert "block_v4" in result["msg"]
    assert "max_entries 1024 (the program needs 2097152)" in result["msg"]
    assert host.calls == []


def test_absent_in_check_mode_reports_without_detaching(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("generic")))
    result = run_main({"state": "absent", "keep_maps": False,
                       "_ansible_diff": True}, host, tmp_path, check=True)
    assert result["changed"] is True
    assert result["detached"]["mode"] == "generic"
    assert result["diff"]["after"]["mode"] is None
    assert host.calls == []


def test_absent_never_removes_a_pin_of_another_layout(
        tmp_path: Path) -> None:
    cur = current(ours())
    cur.pins["sip_ports"] = dict(spec_layout("sip_ports", 5), value_size=4)
    host = FakeHost(tmp_path, cur)
    result = run_main({"state": "absent", "keep_maps": False}, host,
                      tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert "sip_ports" not in result["removed_maps"]
    assert len(result["removed_maps"]) == len(MAPS) - 1
    unlinked = [args[0] for name, args in host.calls if name == "unlink"]
    assert PIN_DIR + "/sip_ports" not in unlinked
    assert "remove_dir" not in host.names()


# Undo: every step done is put back, and an undo that fails says so.

TMP = PIN_DIR + "/tmp_%d" % os.getpid()


@pytest.mark.parametrize("links, attach, previous", [
    (True, "create_link", ("eth0", "native", TMP + "/previous",
                           TMP + "/previous_link")),
    (False, "attach", ("eth0", "native", TMP + "/previous")),
])
def test_failed_mode_change_puts_the_old_program_back(
        tmp_path: Path, links: bool, attach: str, previous: tuple) -> None:
    host = FakeHost(tmp_path, current(ours("native"), links=links),
                    refuse=("generic",))
    result = run_main({"mode": "generic", "cached": OLD_TAG}, host, tmp_path)
    assert result["failed"] is True
    assert "Putting back" not in result["msg"]
    assert "undo_failed" not in result
    attaches = [a for n, a in host.calls if n == attach]
    assert attaches[-1] == previous
    if links:       # a new link, in the place of the detached one
        assert host.calls[-2] == ("rename", (TMP + "/previous_link",
                                             PIN_DIR + "/link_eth0"))
    assert host.calls[-1] == ("remove_tree", (TMP,))


def test_an_undo_that_fails_is_reported_with_the_command_by_hand(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("native"), links=False),
                    refuse=("generic", "native"))
    result = run_main({"mode": "generic", "cached": OLD_TAG}, host, tmp_path)
    assert result["failed"] is True
    by_hand = ("ip link set dev eth0 xdpdrv pinned %s/previous" % TMP)
    assert result["undo_failed"] == [{
        "step": "the native program on eth0", "by_hand": by_hand,
        "error": "refused"}]
    assert result["msg"].startswith("The kernel refused to attach")
    assert ("Putting back what this run changed failed for: the native "
            "program on eth0 (refused). Do it by hand: " + by_hand) \
        in result["msg"]
    # The old program stays pinned for that command.
    assert ("remove_tree", (TMP,)) not in host.calls


@pytest.mark.parametrize("links, detach", [(True, "detach_link"),
                                           (False, "detach")])
def test_failed_detach_pins_the_removed_pins_again(
        tmp_path: Path, links: bool, detach: str) -> None:
    cur = current(ours("native"), links=links)
    host = FakeHost(tmp_path, cur, failing=(detach,))
    result = run_main({"state": "absent", "keep_maps": False}, host,
                      tmp_path)
    assert result["failed"] is True
    assert "undo_failed" not in result
    unlinked = [a[0] for n, a in host.calls if n == "unlink"]
    assert sorted(unlinked) == sorted(
        [PIN_DIR + "/" + m for m in MAPS] + [PIN_DIR + "/prog_eth0"])
    repinned = {a[1]: a[0] for n, a in host.calls
                if n in ("pin_map_id", "pin_prog_id")}
    assert repinned == dict(
        [(PIN_DIR + "/" + m, cur.pins[m]["id"]) for m in MAPS]
        + [(PIN_DIR + "/prog_eth0", 40)])
    assert "remove_dir" not in host.names()


def test_absent_detaches_the_link_then_removes_its_pin(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours("native")))
    result = run_main({"state": "absent", "keep_maps": False}, host,
                      tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert result["detached"]["attach_method"] == "link"
    assert result["attach_method"] is None
    names = host.names()
    assert "detach" not in names
    assert host.calls[-3:] == [
        ("detach_link", (LINK_ID,)),
        ("unlink", (PIN_DIR + "/link_eth0",)),
        ("remove_dir", (PIN_DIR,))]


def test_absent_reports_each_pin_it_could_not_put_back(
        tmp_path: Path) -> None:
    cur = current(ours("native"), links=False)
    host = FakeHost(tmp_path, cur, failing=("detach", "pin_map_id"))
    result = run_main({"state": "absent", "keep_maps": False}, host,
                      tmp_path)
    assert result["failed"] is True
    failed = {f["by_hand"] for f in result["undo_failed"]}
    assert failed == {"bpftool map pin id %d %s/%s"
                      % (cur.pins[m]["id"], PIN_DIR, m) for m in MAPS}
    assert "Do it by hand: bpftool map pin id" in result["msg"]


# Limits and scanner signatures.

LIMITS = {"untrusted": {"register": {"rate": 2, "burst": 10},
                        "invite": {"rate": 5, "burst": 20}},
          "bans": True, "ban_after": "10s", "ban_time": "15m",
          "scanner_ban_time": "1h"}
SIGNATURES = ["SIPVicious", "friendly-scanner", "sipcli"]
NEW_MAPS = sorted(set(MAPS) - set(_abi.MAPS_0_1))


def with_limits(cur: _current.Current, *given) -> _current.Current:
    """cur, its maps holding what limits and signatures ask for: given as
    (limits, signatures), LIMITS and SIGNATURES when not given."""
    limits, signatures = given or (LIMITS, SIGNATURES)
    cur.limits = _limits.limits_value(limits)
    cur.signatures = _limits.signature_slots(signatures)
    return cur


def release_0_1(cur: _current.Current) -> _current.Current:
    """cur as release 0.1.0 left it: only its nine maps, pinned and used
    by the attached program."""
    for name in NEW_MAPS:
        del cur.pins[name]
    cur.prog_maps = dict(cur.pins)
    cur.limits = cur.signatures = None
    return cur


def test_limits_and_signatures_are_written_only_when_they_differ() -> None:
    value = _limits.limits_value(LIMITS)
    slots = _limits.signature_slots(SIGNATURES)
    p = _plan.plan_present(current(ours()), "eth0", "auto", "sip_xdp_prog",
                           False, [5060], DEFAULTS, OLD_TAG, MAPS, value,
                           slots)
    assert p.action == _plan.NONE and p.changed
    assert p.write_limits and p.limits == value
    assert p.signature_writes == {0: slots[0], 1: slots[1], 2: slots[2]}
    assert p.reset_hits == [0, 1, 2]
    same = _plan.plan_present(with_limits(current(ours())), "eth0", "auto",
                              "sip_xdp_prog", False, [5060], DEFAULTS,
                              OLD_TAG, MAPS, value, slots)
    assert not same.changed
    assert not same.write_limits and same.signature_writes == {}


def test_limits_left_out_turn_every_limit_off() -> None:
    p = plan(with_limits(current(ours())))
    assert p.write_limits and p.limits == bytes(_abi.LIMITS.size)
    assert sorted(p.signature_writes) == [0, 1, 2]
    assert set(p.signature_writes.values()) == {bytes(40)}


def test_fresh_install_writes_limits_and_signatures_before_attaching(
        tmp_path: Path) -> None:
    cur = current(pinned=False)
    cur.pin_dir_exists = False
    host = FakeHost(tmp_path, cur)
    result = run_main({"limits": LIMITS, "scanner_signatures": SIGNATURES},
                      host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    names = host.names()
    assert ("write_limits", (PIN_DIR + "/limits",
                             _limits.limits_value(LIMITS))) in host.calls
    slots = _limits.signature_slots(SIGNATURES)
    assert ("write_slots", (PIN_DIR + "/scanner_sigs",
                            {0: slots[0], 1: slots[1], 2: slots[2]})) \
        in host.calls
    for write in ("write_limits", "write_slots", "clear_slots"):
        assert names.index("load") < names.index(write) < \
            names.index("create_link")
    assert result["created_maps"] == MAPS
    assert result["limits"] == {
        "untrusted": {"register": {"rate": 2.0, "burst": 10},
                      "invite": {"rate": 5.0, "burst": 20}},
        "trusted": {}, "bans": True, "ban_after": 10, "ban_time": 900,
        "scanner_ban_time": 3600, "prefix_v4": 32, "prefix_v6": 64}
    assert result["scanner_signatures"] == ["sipvicious",
                                            "friendly-scanner", "sipcli"]


def test_limits_and_signatures_a_second_time_make_no_call(
        tmp_path: Path) -> None:
    host = FakeHost(tmp_path, current(ours()))
    args = {"limits": LIMITS, "scanner_signatures": SIGNATURES,
            "cached": OLD_TAG}
    first = run_main(dict(args), host, tmp_path)
    assert first["changed"] is True, first.get("msg")
    assert first["scanner_hits_reset"] == [0, 1, 2]
    host.calls.clear()
    again = run_main(dict(args), host, tmp_path)
    assert again["changed"] is False
    assert again["scanner_hits_reset"] == []
    assert host.calls == []
    assert again["limits"] == first["limits"]


def test_limits_in_check_mode_show_the_diff_and_change_nothing(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours()), {"bans": True}, ["sipvicious"])
    host = FakeHost(tmp_path, cur)
    result = run_main({"limits": LIMITS, "scanner_signatures": SIGNATURES,
                       "cached": OLD_TAG, "_ansible_diff": True}, host,
                      tmp_path, check=True)
    assert result["changed"] is True
    assert host.calls == []
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before["limits"] == dict(_defaults.LIMITS, bans=True)
    assert before["scanner_signatures"] == ["sipvicious"]
    assert after["limits"] == result["limits"]
    assert after["limits"]["untrusted"]["register"] == {"rate": 2.0,
                                                        "burst": 10}
    assert after["scanner_signatures"] == ["sipvicious",
                                           "friendly-scanner", "sipcli"]
    assert result["scanner_hits_reset"] == [1, 2]
    assert cur.signatures == _limits.signature_slots(["sipvicious"])


@pytest.mark.parametrize("args, msg", [
    ({"limits": {"untrusted": {"regster": {"rate": 1, "burst": 1}}}},
     "limits.untrusted names the class 'regster', which does not exist: "
     "use register, invite, options, other or syn."),
    ({"limits": {"untrusted": {"invite": {"rate": -2, "burst": 1}}}},
     "limits.untrusted.invite.rate is -2: a rate cannot be negative; give "
     "requests a second, or 0 for no limit."),
    ({"limits": {"untrusted": {"invite": {"rate": 2, "burst": 0}}}},
     "limits.untrusted.invite.burst is 0: give the requests a source may "
     "send back to back, 1 or more, at most 100000."),
    ({"limits": {"prefix_v4": 33}}, "limits.prefix_v4 is 33: give an IPv4 "
     "prefix length from 1 to 32, the leading bits of an address that make "
     "one source (the default is 32)."),
    ({"limits": {"ban_time": "5 minutes"}}, "limits.ban_time '5 minutes' "
     "is not a duration: give seconds, or a number with s, m, h, d or w, "
     "for example 90s, 15m, 1h or 7d."),
    ({"scanner_signatures": ["sipvicious", "abc"]}, "scanner_signatures "
     "entry 2 'abc' is 3 characters long: give 4 to 32 (a shorter one "
     "would match ordinary phones)."),
    ({"scanner_signatures": ["bad\r\nvia"]}, "scanner_signatures entry 1 "
     "'bad\\r\\nvia' has a character that is not printable ASCII (a CR, "
     "LF, tab or other control character, or one beyond ASCII): give the "
     "signature in printable ASCII."),
])
def test_bad_limits_fail_in_one_sentence_before_anything_is_read(
        tmp_path: Path, args: dict, msg: str) -> None:
    host = FakeHost(tmp_path, current(ours()))
    read = mock.Mock(side_effect=AssertionError("read"))
    host.link = read
    result = run_main(dict(args, cached=OLD_TAG), host, tmp_path)
    assert result["failed"] is True
    assert result["msg"] == msg
    assert host.calls == [] and not read.called


def test_a_changed_signature_zeroes_only_its_own_hits(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours()), None, SIGNATURES)
    host = FakeHost(tmp_path, cur)
    kept = list(host.hits)
    changed = ["sipvicious", "sipsak", "sipcli"]
    result = run_main({"scanner_signatures": changed, "cached": OLD_TAG},
                      host, tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert result["scanner_hits_reset"] == [1]
    slots = _limits.signature_slots(changed)
    assert host.calls == [
        ("write_slots", (PIN_DIR + "/scanner_sigs", {1: slots[1]})),
        ("clear_slots", (PIN_DIR + "/scanner_hits", [1]))]
    assert host.hits[1] == bytes(32)
    assert host.hits[:1] + host.hits[2:] == kept[:1] + kept[2:]


def test_a_failure_after_the_writes_puts_limits_signatures_and_hits_back(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours("native")), {"bans": True},
                      ["sipvicious", "sipcli"])
    before = (cur.limits, list(cur.signatures))
    host = FakeHost(tmp_path, cur, failing=("update_link",))
    hits = list(host.hits)
    result = run_main({"limits": LIMITS, "scanner_signatures": SIGNATURES,
                       "cached": NEW_TAG}, host, tmp_path)
    assert result["failed"] is True
    assert "undo_failed" not in result
    names = host.names()
    assert names.index("clear_slots") < names.index("update_link")
    assert (cur.limits, cur.signatures) == before
    assert host.hits == hits


def test_an_undo_of_the_signatures_that_fails_says_how_by_hand(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours("native")), None, ["sipvicious"])
    host = FakeHost(tmp_path, cur, failing=("update_link",))
    writes = []

    def write_slots(ref: str, values: dict[int, bytes]) -> None:
        writes.append(ref)
        if len(writes) == 3:        # the undo of the signatures
            raise OSError(5, "Input/output error")
    host.do_write_slots = write_slots
    result = run_main({"scanner_signatures": ["sipcli"], "cached": NEW_TAG},
                      host, tmp_path)
    assert result["failed"] is True
    (failed,) = result["undo_failed"]
    old = _limits.signature_slots(["sipvicious"])[0]
    assert failed["step"] == "the signatures in %s/scanner_sigs" % PIN_DIR
    assert failed["by_hand"] == (
        "bpftool map update pinned %s/scanner_sigs key hex 00 00 00 00 "
        "value hex %s" % (PIN_DIR, _messages.hex_bytes(old)))


def test_pins_of_release_0_1_are_reused_and_the_new_maps_pinned(
        tmp_path: Path) -> None:
    """An upgrade from 0.1.0: its nine maps pinned, none of the ten new
    ones. The load reuses the nine, the ten it creates are pinned next
    to them, and the limits are written into the new map before the
    swap."""
    cur = release_0_1(current(ours("native")))
    host = FakeHost(tmp_path, cur)
    result = run_main({"limits": LIMITS, "scanner_signatures": SIGNATURES,
                       "cached": NEW_TAG, "_ansible_diff": True}, host,
                      tmp_path)
    assert result["changed"] is True, result.get("msg")
    assert result["action"] == "replace"
    assert result["reused_maps"] == sorted(_abi.MAPS_0_1)
    assert result["created_maps"] == NEW_MAPS
    assert len(NEW_MAPS) == 10
    load = dict(host.calls)["load"]
    assert sorted(load[3]) == sorted(_abi.MAPS_0_1)
    tmp = PIN_DIR + "/tmp_%d" % os.getpid()
    renamed = [args for name, args in host.calls if name == "rename"]
    assert renamed[:len(NEW_MAPS)] == [
        (tmp + "/maps/" + name, PIN_DIR + "/" + name) for name in NEW_MAPS]
    names = host.names()
    assert names.index("write_limits") < names.index("update_link")
    assert result["diff"]["before"]["limits"] is None
    assert result["diff"]["before"]["scanner_signatures"] is None
    assert result["diff"]["after"]["limits"] == result["limits"]


def test_a_new_map_pinned_with_another_layout_is_still_refused(
        tmp_path: Path) -> None:
    cur = release_0_1(current(ours("native")))
    cur.pins["limits"] = dict(spec_layout("limits", 7), value_size=256)
    host = FakeHost(tmp_path, cur)
    result = run_main({"cached": NEW_TAG}, host, tmp_path)
    assert result["failed"] is True
    assert "limits" in result["msg"]
    assert "value_size 256 (the program needs 288)" in result["msg"]
    assert host.calls == []


def test_an_object_without_the_new_maps_warns_and_writes_none(
        tmp_path: Path) -> None:
    """A rollback to a 0.1.0 object on a host that never had the new maps:
    the limits asked for cannot apply, and the task says so."""
    cur = release_0_1(current(ours("native")))
    host = FakeHost(tmp_path, cur)
    result = run_main({"limits": LIMITS, "scanner_signatures": SIGNATURES,
                       "cached": NEW_TAG, "_ansible_diff": True}, host,
                      tmp_path, object_maps=sorted(_abi.MAPS_0_1))
    assert result["changed"] is True, result.get("msg")
    assert result["created_maps"] == []
    assert not {"write_limits", "write_slots", "clear_slots"} & \
        set(host.names())
    warned = [w["event"]["msg"] for w in result["warnings"]]
    assert warned == [_plan.NO_MAP % ("limits", "limits"),
                      _plan.NO_MAP % ("scanner_sigs", "scanner_signatures")]
    assert result["diff"]["after"]["limits"] is None
    assert result["scanner_signatures"] == ["sipvicious",
                                            "friendly-scanner", "sipcli"]


def test_absent_shows_the_limits_that_stay_with_the_maps(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours("native")))
    host = FakeHost(tmp_path, cur)
    result = run_main({"state": "absent", "_ansible_diff": True}, host,
                      tmp_path, check=True)
    view = _limits.limits_view(cur.limits)
    assert result["diff"]["before"]["limits"] == view
    assert result["diff"]["after"]["limits"] == view
    gone = run_main({"state": "absent", "keep_maps": False,
                     "_ansible_diff": True}, host, tmp_path, check=True)
    assert gone["diff"]["after"]["limits"] is None
    assert gone["diff"]["after"]["scanner_signatures"] is None


def test_hits_that_cannot_be_zeroed_put_the_signatures_back(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours("native")), None, ["sipvicious"])
    before = list(cur.signatures)
    host = FakeHost(tmp_path, cur, failing=("clear_slots",))
    hits = list(host.hits)
    result = run_main({"scanner_signatures": ["sipcli"], "cached": OLD_TAG},
                      host, tmp_path)
    assert result["failed"] is True
    assert "undo_failed" not in result
    assert cur.signatures == before and host.hits == hits
    assert host.names() == ["write_slots", "clear_slots", "write_slots",
                            "write_slots"]


def test_hits_an_undo_could_not_write_back_are_named_as_lost(
        tmp_path: Path) -> None:
    cur = with_limits(current(ours("native")), None, ["sipvicious"])
    host = FakeHost(tmp_path, cur, failing=("update_link",))

    def write_slots(ref: str, values: dict[int, bytes]) -> None:
        if ref.endswith("scanner_hits"):
            raise OSError(5, "Input/output error")
    host.do_write_slots = write_slots
    result = run_main({"scanner_signatures": ["sipcli"], "cached": NEW_TAG},
                      host, tmp_path)
    (failed,) = result["undo_failed"]
    assert failed["step"] == "the hit counters in %s/scanner_hits" % PIN_DIR
    # Slot 0 counted 1 packet on each of the fake's 2 CPUs.
    assert failed["by_hand"] == (
        "none can (bpftool writes one value to every CPU); the hits lost in "
        "%s/scanner_hits are slot 0: 2 packets" % PIN_DIR)
