"""vos.fastpath.xdp_attach's rate limits and scanner signatures on a real
veth, read back from the maps: set, unchanged a second time, check mode,
diff, refusals, a signature change that zeroes only its own hits, limits
that apply at the next packet, the upgrade of a host running release
0.1.0, and the boot command putting them back after a reboot."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import (
    _abi,
    _bpf,
    _counters,
    _limits,
    _tag_cache,
)
from tests.dataplane import frames
from tests.integration.ansible_run import run_module
from tests.integration.test_boot import boot, detach_by_hand, install
from tests.integration.test_xdp_attach import (
    SERVER,
    attach,
    attach_through_netlink,
    block,
    blocked,
    pins,
    program_abi_map_ids,
    settings_flags,
    sip_ports,
    xdp,
)
from tests.releases import build_release_object

SCANNER_SRC = ipaddress.ip_address("192.0.2.70")
CALLER_SRC = ipaddress.ip_address("192.0.2.71")
BLOCKED_SRC = ipaddress.ip_address("192.0.2.66")
TRUSTED_NET = ipaddress.ip_network("198.51.100.0/24")
LIMITS = {"untrusted": {"register": {"rate": 2, "burst": 10},
                        "invite": {"rate": 0.5, "burst": 3}},
          "trusted": {"register": {"rate": 100, "burst": 100}},
          "bans": True, "ban_after": "10s", "ban_time": "15m",
          "scanner_ban_time": "1h", "prefix_v6": 56}
SIGNATURES = ["SIPVicious", "friendly-scanner", "sipcli"]


# The maps, read back with bpf() and with bpftool.


def limits_raw(pin_dir: Path) -> bytes:
    with _bpf.Map.open_pinned(str(pin_dir / "limits")) as m:
        return m.lookup(_abi.U32.pack(0))


def limits_by_bpftool(pin_dir: Path) -> bytes:
    """The `limits` value as bpftool reads it: not through our code."""
    out = subprocess.run(
        ["bpftool", "-j", "map", "lookup", "pinned", str(pin_dir / "limits"),
         "key", "0", "0", "0", "0"], check=True, capture_output=True,
        text=True).stdout
    return bytes(int(byte, 16) for byte in json.loads(out)["value"])


def signature_slots(pin_dir: Path) -> list[bytes]:
    with _bpf.Map.open_pinned(str(pin_dir / "scanner_sigs")) as m:
        return [m.lookup(_abi.U32.pack(slot)) for slot in range(32)]


def hits(pin_dir: Path) -> list[int]:
    """Packets counted in each scanner_hits slot, over every CPU."""
    with _bpf.Map.open_pinned(str(pin_dir / "scanner_hits")) as m:
        return [_counters.sum_percpu(m.lookup(_abi.U32.pack(slot)),
                                     m.slot_size)[0] for slot in range(32)]


def stats(pin_dir: Path, reason: str) -> int:
    """A `stats` or `stats_ext` counter's packets, over every CPU."""
    name, index = ("stats", _abi.REASONS.index(reason)) \
        if reason in _abi.REASONS \
        else ("stats_ext", _abi.REASONS_EXT.index(reason))
    with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
        raw = m.lookup(_abi.U32.pack(index))
        return _counters.sum_percpu(raw, m.slot_size)[0]


def layout_of(pin_dir: Path, name: str) -> dict[str, int]:
    with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
        return _abi.map_layout(m)


def map_ids(pin_dir: Path, names: Any) -> dict[str, int]:
    ids = {}
    for name in names:
        with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
            ids[name] = m.id
    return ids


def lpm_v6(network: ipaddress.IPv6Network) -> bytes:
    return _abi.LPM_V6_KEY.pack(network.prefixlen,
                                network.network_address.packed)


def trie_entries(pin_dir: Path, name: str) -> dict[bytes, bytes]:
    with _bpf.Map.open_pinned(str(pin_dir / name)) as m:
        return {key: m.lookup(key) for key in m.keys()}


# Traffic from the veth's peer.


def request(method: bytes, user_agent: bytes = b"friendly phone") -> bytes:
    return (method + b" sip:bob@192.0.2.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.70:5060;branch=z9hG4bK1\r\n"
            b"User-Agent: " + user_agent + b"\r\n"
            b"Content-Length: 0\r\n\r\n")


def send(peer: str, src: ipaddress.IPv4Address, payload: bytes,
         count: int) -> None:
    frame = frames.build_frame(frames.FrameSpec(
        src=src, dst=SERVER, sport=5060, dport=5060, payload=payload))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((peer, 0))
        for _sent in range(count):
            s.send(frame)


# Set, unchanged, check mode, diff, refusals.


def test_limits_and_signatures_are_written_then_unchanged(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    first = attach(veth, pin_dir, built_object, tmp_path, limits=LIMITS,
                   scanner_signatures=SIGNATURES)
    assert first["changed"] is True, first.get("msg")
    value = _limits.limits_value(LIMITS)
    assert limits_raw(pin_dir) == value
    assert limits_by_bpftool(pin_dir) == value
    assert signature_slots(pin_dir) == _limits.signature_slots(SIGNATURES)
    assert signature_slots(pin_dir)[0][:18] == (
        _abi.U32.pack(10) + bytes(4) + b"sipvicious")
    assert first["limits"] == {
        "untrusted": {"register": {"rate": 2.0, "burst": 10},
                      "invite": {"rate": 0.5, "burst": 3}},
        "trusted": {"register": {"rate": 100.0, "burst": 100}},
        "bans": True, "ban_after": 10, "ban_time": 900,
        "scanner_ban_time": 3600, "prefix_v4": 32, "prefix_v6": 56}
    assert first["scanner_signatures"] == ["sipvicious", "friendly-scanner",
                                           "sipcli"]

    again = attach(veth, pin_dir, built_object, tmp_path, limits=LIMITS,
                   scanner_signatures=SIGNATURES)
    assert again["changed"] is False, again
    assert again["scanner_hits_reset"] == []
    # The result's view, given as the options, is the same value.
    same = attach(veth, pin_dir, built_object, tmp_path,
                  limits=first["limits"],
                  scanner_signatures=first["scanner_signatures"])
    assert same["changed"] is False, same

    # Left out: every limit and ban off, no signature.
    off = attach(veth, pin_dir, built_object, tmp_path)
    assert off["changed"] is True
    assert off["scanner_hits_reset"] == [0, 1, 2]
    assert limits_raw(pin_dir) == bytes(_abi.LIMITS.size)
    assert signature_slots(pin_dir) == [bytes(40)] * 32
    assert attach(veth, pin_dir, built_object, tmp_path)["changed"] is False


def test_check_mode_shows_the_diff_and_changes_no_map(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    attach(veth, pin_dir, built_object, tmp_path,
           scanner_signatures=["sipvicious"])
    checked = attach(veth, pin_dir, built_object, tmp_path, check=True,
                     diff=True, limits=LIMITS, scanner_signatures=SIGNATURES)
    assert checked["changed"] is True
    assert limits_raw(pin_dir) == bytes(_abi.LIMITS.size)
    assert signature_slots(pin_dir) == _limits.signature_slots(
        ["sipvicious"])
    before, after = checked["diff"]["before"], checked["diff"]["after"]
    assert before["limits"] == {
        "untrusted": {}, "trusted": {}, "bans": False, "ban_after": 0,
        "ban_time": 0, "scanner_ban_time": 0, "prefix_v4": 32,
        "prefix_v6": 64}
    assert before["scanner_signatures"] == ["sipvicious"]
    assert after["limits"] == checked["limits"]
    assert after["scanner_signatures"] == ["sipvicious", "friendly-scanner",
                                           "sipcli"]

    done = attach(veth, pin_dir, built_object, tmp_path, diff=True,
                  limits=LIMITS, scanner_signatures=SIGNATURES)
    assert done["changed"] is True
    assert done["diff"] == checked["diff"]
    assert limits_raw(pin_dir) == _limits.limits_value(LIMITS)


@pytest.mark.parametrize("options, msg", [
    ({"limits": {"untrusted": {"invite": {"rate": -1, "burst": 3}}}},
     "limits.untrusted.invite.rate is -1: a rate cannot be negative; give "
     "requests a second, or 0 for no limit."),
    ({"limits": {"untrusted": {"invite": {"rate": 1, "burst": 0}}}},
     "limits.untrusted.invite.burst is 0: give the requests a source may "
     "send back to back, 1 or more, at most 100000."),
    ({"limits": {"trusted": {"subscribe": {"rate": 1, "burst": 1}}}},
     "limits.trusted names the class 'subscribe', which does not exist: "
     "use register, invite, options, other or syn."),
    ({"limits": {"prefix_v4": 33}}, "limits.prefix_v4 is 33: give an IPv4 "
     "prefix length from 1 to 32, the leading bits of an address that make "
     "one source (the default is 32)."),
    ({"scanner_signatures": ["sip"]}, "scanner_signatures entry 1 'sip' is "
     "3 characters long: give 4 to 32 (a shorter one would match ordinary "
     "phones)."),
    ({"scanner_signatures": ["scan\r\nVia: x"]}, "scanner_signatures entry "
     "1 'scan\\r\\nVia: x' has a character that is not printable ASCII (a "
     "CR, LF, tab or other control character, or one beyond ASCII): give "
     "the signature in printable ASCII."),
])
def test_bad_input_fails_in_one_sentence_and_changes_nothing(
        veth: str, pin_dir: Path, built_object: Path, tmp_path: Path,
        options: dict, msg: str) -> None:
    attach(veth, pin_dir, built_object, tmp_path, limits=LIMITS,
           scanner_signatures=SIGNATURES)
    before = (xdp(veth), limits_raw(pin_dir), signature_slots(pin_dir))
    result = attach(veth, pin_dir, built_object, tmp_path, **options)
    assert result["failed"] is True
    assert result["msg"] == msg
    assert (xdp(veth), limits_raw(pin_dir), signature_slots(pin_dir)) == \
        before


# What the program does with them, from the next packet on.


def test_a_changed_signature_zeroes_only_its_own_hits(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    attach(veth, pin_dir, built_object, tmp_path,
           scanner_signatures=SIGNATURES)
    peer = veth + "p"
    send(peer, SCANNER_SRC, request(b"OPTIONS", b"sipvicious-0.3.4"), 3)
    send(peer, SCANNER_SRC, request(b"REGISTER", b"Friendly-Scanner"), 2)
    send(peer, SCANNER_SRC, request(b"INVITE", b"SIPcli/v1.8"), 4)
    assert hits(pin_dir)[:4] == [3, 2, 4, 0]

    changed = attach(veth, pin_dir, built_object, tmp_path,
                     scanner_signatures=["sipvicious", "sipsak", "sipcli"])
    assert changed["changed"] is True, changed.get("msg")
    assert changed["scanner_hits_reset"] == [1]
    assert hits(pin_dir)[:4] == [3, 0, 4, 0]
    # friendly-scanner is no longer a scanner: its request goes on.
    send(peer, SCANNER_SRC, request(b"REGISTER", b"friendly-scanner"), 2)
    send(peer, SCANNER_SRC, request(b"REGISTER", b"sipsak 0.9.8"), 1)
    assert hits(pin_dir)[:4] == [3, 1, 4, 0]

    # One signature less: the slots after it move up, and each one that
    # now holds another signature starts from zero.
    shorter = attach(veth, pin_dir, built_object, tmp_path,
                     scanner_signatures=["sipvicious", "sipcli"])
    assert shorter["scanner_hits_reset"] == [1, 2]
    assert hits(pin_dir)[:4] == [3, 0, 0, 0]


def test_limits_apply_from_the_next_packet_and_go_with_the_option(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    """A REGISTER budget of 2 back to back and one per 100 s: of ten at
    once, eight are dropped; without limits, all ten pass."""
    limits = {"untrusted": {"register": {"rate": 0.01, "burst": 2}}}
    attach(veth, pin_dir, built_object, tmp_path, limits=limits)
    peer = veth + "p"
    passed, limited = stats(pin_dir, "PASSED"), stats(pin_dir,
                                                      "RATE_LIMITED")
    send(peer, CALLER_SRC, request(b"REGISTER"), 10)
    assert stats(pin_dir, "RATE_LIMITED") - limited == 8
    assert stats(pin_dir, "PASSED") - passed == 2

    attach(veth, pin_dir, built_object, tmp_path)
    send(peer, CALLER_SRC, request(b"REGISTER"), 10)
    assert stats(pin_dir, "RATE_LIMITED") - limited == 8
    assert stats(pin_dir, "PASSED") - passed == 12


# The upgrade of a host running release 0.1.0.


@pytest.fixture(scope="session")
def release_0_1_object(built_object: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The object of release 0.1.0, built from its commit with the flags
    of the build (_build.compile_flags) against this kernel."""
    work = tmp_path_factory.mktemp("release_0_1")
    return build_release_object("0.1.0", work / "sip_logic.bpf.o")


@pytest.fixture
def host_0_1(veth: str, pin_dir: Path, release_0_1_object: Path
             ) -> Iterator[str]:
    """veth running release 0.1.0 as it deployed it: its nine maps pinned
    by name, its program pinned as prog_<interface> and attached through
    netlink; lists, ports, settings and counters filled."""
    attach_through_netlink(veth, pin_dir, release_0_1_object)
    assert pins(pin_dir) == sorted([*_abi.MAPS_0_1, "prog_" + veth])
    with _bpf.Map.open_pinned(str(pin_dir / "sip_ports")) as m:
        m.update(_abi.U32.pack(5080), b"\1")
    with _bpf.Map.open_pinned(str(pin_dir / "settings")) as m:
        m.update(_abi.U32.pack(0), _abi.SETTINGS.pack(
            _abi.FP_STEALTH_OFF | _abi.FP_MALFORMED_PASS, 0))
    block(pin_dir, BLOCKED_SRC)
    with _bpf.Map.open_pinned(str(pin_dir / "allow_v4")) as m:
        m.update(_abi.LPM_V4_KEY.pack(24, TRUSTED_NET.network_address.packed),
                 _abi.ENTRY.pack(0, 9, 0))
    with _bpf.Map.open_pinned(str(pin_dir / "block_v6")) as m:
        m.update(lpm_v6(ipaddress.ip_network("2001:db8:bad::/48")),
                 _abi.ENTRY.pack(0, 7, 0))
    send(veth + "p", BLOCKED_SRC, request(b"INVITE"), 5)
    assert stats(pin_dir, "BLOCKED") == 5
    yield veth


def test_a_host_running_0_1_0_keeps_every_entry_counter_and_setting(
        host_0_1: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    veth = host_0_1
    old = xdp(veth)
    kept = map_ids(pin_dir, _abi.MAPS_0_1)
    tries = {name: trie_entries(pin_dir, name)
             for name in ("allow_v4", "allow_v6", "block_v4", "block_v6")}
    assert sum(len(entries) for entries in tries.values()) == 3

    upgraded = attach(veth, pin_dir, built_object, tmp_path, diff=True,
                      sip_ports=[5060, 5080],
                      settings={"stealth": False, "malformed": "pass"},
                      limits=LIMITS, scanner_signatures=SIGNATURES)
    assert upgraded["changed"] is True, upgraded.get("msg")
    assert upgraded["action"] == "replace"
    # Replaced through netlink in one step: no moment without a program.
    assert (upgraded["moved_to_link"], upgraded["attach_method"]) == \
        (False, "netlink")
    assert upgraded["reused_maps"] == sorted(_abi.MAPS_0_1)
    new_maps = sorted(set(_abi.MAPS) - set(_abi.MAPS_0_1))
    assert upgraded["created_maps"] == new_maps
    assert upgraded["diff"]["before"]["limits"] is None
    assert upgraded["diff"]["before"]["sip_ports"] == [5060, 5080]
    assert upgraded["diff"]["before"]["settings"]["stealth"] is False

    now = xdp(veth)
    assert now["id"] != old["id"] and now["tag"] == upgraded["tag"]
    # The old maps are the same maps, holding what they held.
    assert map_ids(pin_dir, _abi.MAPS_0_1) == kept
    assert {name: trie_entries(pin_dir, name) for name in tries} == tries
    assert blocked(pin_dir, BLOCKED_SRC)
    assert sip_ports(pin_dir) == [5060, 5080]
    assert settings_flags(pin_dir) == \
        _abi.FP_STEALTH_OFF | _abi.FP_MALFORMED_PASS
    assert stats(pin_dir, "BLOCKED") == 5
    # The new ones are pinned next to them, with the contract's layout,
    # and the program uses every pinned map.
    # A netlink attachment: the maps and the program's pin, no link.
    assert pins(pin_dir) == sorted([*_abi.MAPS, "prog_" + veth])
    for name in new_maps:
        assert layout_of(pin_dir, name) == _abi.map_layout(_abi.MAPS[name])
    assert program_abi_map_ids(now["id"]) == \
        set(map_ids(pin_dir, _abi.MAPS).values())
    assert limits_raw(pin_dir) == _limits.limits_value(LIMITS)
    assert signature_slots(pin_dir) == _limits.signature_slots(SIGNATURES)
    assert stats(pin_dir, "BANNED") == stats(pin_dir, "SCANNER") == 0

    # The new program counts on in the old counters.
    send(veth + "p", BLOCKED_SRC, request(b"INVITE"), 3)
    assert stats(pin_dir, "BLOCKED") == 8
    again = attach(veth, pin_dir, built_object, tmp_path,
                   sip_ports=[5060, 5080],
                   settings={"stealth": False, "malformed": "pass"},
                   limits=LIMITS, scanner_signatures=SIGNATURES)
    assert again["changed"] is False, again

    # The deploy's list step then moves the single address of the old
    # trie into its hash; the source is dropped all along.
    moved = run_module("vos.fastpath.bpf_map_entry", {
        "map": "blocklist", "pin_dir": str(pin_dir), "restore": True,
        "state_dir": str(tmp_path / "state")}, tmp_path)
    assert (moved["changed"], moved["moved"], moved["added"]) == (
        True, 1, 0), moved
    assert not blocked(pin_dir, BLOCKED_SRC)
    with _bpf.Map.open_pinned(str(pin_dir / "block_v4_hosts")) as m:
        assert m.keys() == [BLOCKED_SRC.packed]
    assert trie_entries(pin_dir, "block_v6") == tries["block_v6"]
    send(veth + "p", BLOCKED_SRC, request(b"INVITE"), 2)
    assert stats(pin_dir, "BLOCKED") == 10


def test_a_new_map_pinned_with_another_layout_next_to_0_1_0_is_refused(
        host_0_1: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    veth = host_0_1
    subprocess.run(["bpftool", "map", "create", str(pin_dir / "limits"),
                    "type", "array", "key", "4", "value", "256", "entries",
                    "1", "name", "limits"], check=True)
    before = (xdp(veth), pins(pin_dir), map_ids(pin_dir, _abi.MAPS_0_1))
    result = attach(veth, pin_dir, built_object, tmp_path, limits=LIMITS)
    assert result["failed"] is True
    assert "The pinned map %s (limits)" % (pin_dir / "limits") in \
        result["msg"]
    assert "value_size 256 (the program needs 288)" in result["msg"]
    assert (xdp(veth), pins(pin_dir), map_ids(pin_dir, _abi.MAPS_0_1)) == \
        before


# After a reboot.


def test_the_boot_command_puts_limits_and_signatures_back(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    """boot.json carries the options as the task gave them; the boot
    command, with no Ansible, writes the same values again."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    obj = state / "sip_logic.bpf.o"
    shutil.copyfile(built_object, obj)
    command = install(tmp_path / "lib")
    config = state / "boot.json"
    config.write_text(json.dumps({
        "object": str(obj), "pin_dir": str(pin_dir), "interfaces": [veth],
        "limits": LIMITS, "scanner_signatures": SIGNATURES,
        "state_dir": str(state), "lists": []}))
    try:
        first = attach(veth, pin_dir, obj, tmp_path, limits=LIMITS,
                       scanner_signatures=SIGNATURES)
        assert first["changed"] is True, first.get("msg")
        value, slots = limits_raw(pin_dir), signature_slots(pin_dir)

        # The reboot: no program, no pins, no tag cache.
        detach_by_hand(veth)
        shutil.rmtree(pin_dir)
        Path(_tag_cache.TAG_CACHE).unlink(missing_ok=True)
        proc = boot([str(command)], config, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == [
            "%s: attached (native mode, BPF link)" % veth]
        assert limits_raw(pin_dir) == value == _limits.limits_value(LIMITS)
        assert signature_slots(pin_dir) == slots

        # The result's view in boot.json is the same value.
        config.write_text(json.dumps({
            "object": str(obj), "pin_dir": str(pin_dir),
            "interfaces": [veth], "limits": first["limits"],
            "scanner_signatures": first["scanner_signatures"],
            "state_dir": str(state), "lists": []}))
        again = boot([str(command)], config, tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.splitlines() == [
            "%s: already attached (native mode, BPF link)" % veth]
        assert limits_raw(pin_dir) == value
    finally:
        detach_by_hand(veth)


def test_a_bad_limit_in_boot_json_names_the_interface_and_the_limit(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    command = install(tmp_path / "lib")
    config = state / "boot.json"
    config.write_text(json.dumps({
        "object": str(built_object), "pin_dir": str(pin_dir),
        "interfaces": [veth], "lists": [],
        "limits": {"untrusted": {"register": {"rate": 2}}}}))
    proc = boot([str(command)], config, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: %s: limits.untrusted.register has a rate but no burst: give "
        "burst, the requests a source may send back to back, 1 or more."
        % veth]
    assert xdp(veth) is None
    assert pins(pin_dir) == []
