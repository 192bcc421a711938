"""xdp_bans against the kernel: the program's own bans with their reasons
and packet counts, lifted and pardoned; and bpf_map_entry's guards for
automatic writers (skip protected, allowlisted and pardoned sources) and
its renewed, jittered expiries."""

from __future__ import annotations

import calendar
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _abi, _bpf, _lists
from tests.integration.ansible_run import run_module
from tests.integration.test_limits import (  # noqa: F401 # pylint: disable=unused-import
    host_0_1,
    release_0_1_object,
    request,
    send,
    stats,
)
from tests.integration.test_xdp_attach import attach
from tests.trie_entries import open_list

SCANNER = ipaddress.ip_address("192.0.2.80")
FLOODER = ipaddress.ip_address("192.0.2.81")
QUIET = ipaddress.ip_address("192.0.2.82")
LIMITS = {"untrusted": {"register": {"rate": 1, "burst": 2}},
          "bans": True, "ban_after": 0, "ban_time": "15m",
          "scanner_ban_time": "1h"}
SIGNATURES = ["sipvicious", "friendly-scanner"]


def bans(pin_dir: Path, tmp_path: Path, **args: Any) -> dict[str, Any]:
    return run_module("vos.fastpath.xdp_bans",
                      dict(pin_dir=str(pin_dir),
                           state_dir=str(tmp_path / "state"), **args),
                      tmp_path)


def entry(pin_dir: Path, tmp_path: Path, **args: Any) -> dict[str, Any]:
    check = args.pop("check", False)
    return run_module("vos.fastpath.bpf_map_entry",
                      dict({"map": "blocklist", "pin_dir": str(pin_dir),
                            "state_dir": str(tmp_path / "state")}, **args),
                      tmp_path, check=check)


def ban_keys(pin_dir: Path) -> dict[str, tuple]:
    """{source: fp_ban_v2 fields} of bans_v2, read with bpf()."""
    out = {}
    with _bpf.Map.open_pinned(str(pin_dir / "bans_v2")) as m:
        for key in m.keys():
            family, plen, _r, addr = _abi.SOURCE.unpack(key)
            out["%s/%d" % (ipaddress.ip_address(addr[:4]), plen)] = \
                _abi.BAN_V2.unpack(m.lookup(key))
    return out


def blocklist(pin_dir: Path) -> dict[str, int]:
    """{cidr: expires_ns} of the blocklist's IPv4 family."""
    with open_list(pin_dir, "block_v4") as m:
        return {_lists.key_text(k): _abi.ENTRY.unpack(m.lookup(k))[0]
                for k in m.keys()}


def setup(veth: str, pin_dir: Path, obj: Path, tmp_path: Path) -> None:
    result = attach(veth, pin_dir, obj, tmp_path, limits=LIMITS,
                    scanner_signatures=SIGNATURES)
    assert result["changed"], result.get("msg")
    peer = veth + "p"
    send(peer, SCANNER, request(b"OPTIONS", b"friendly-scanner"), 1)
    send(peer, SCANNER, request(b"INVITE"), 3)       # banned: 3 packets
    send(peer, FLOODER, request(b"REGISTER"), 5)     # 2 pass, 1 bans, 2


def test_bans_are_listed_with_reason_time_and_packets(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    before = time.time()
    setup(veth, pin_dir, built_object, tmp_path)
    result = bans(pin_dir, tmp_path)
    assert not result.get("failed"), result.get("msg")
    by_source = {b["source"]: b for b in result["bans"]}
    assert set(by_source) == {"192.0.2.80/32", "192.0.2.81/32"}
    scanner, flooder = by_source["192.0.2.80/32"], by_source["192.0.2.81/32"]
    assert (scanner["reason"], scanner["detail"], scanner["packets"]) == (
        "scanner", "friendly-scanner", 3)
    assert (flooder["reason"], flooder["detail"], flooder["packets"]) == (
        "rate_limited", "REGISTER", 2)
    assert 3590 <= scanner["expires_in"] <= 3600
    assert 890 <= flooder["expires_in"] <= 900
    since = calendar.timegm(time.strptime(scanner["since"],
                                          "%Y-%m-%dT%H:%M:%SZ"))
    assert before - 2 <= since <= time.time() + 1
    # What the kernel holds, read without the module.
    kernel = ban_keys(pin_dir)
    assert kernel["192.0.2.80/32"][2:] == (3, 9, 1)   # packets, SCANNER, slot
    assert kernel["192.0.2.81/32"][2:] == (2, 5, 0)   # RATE_LIMITED, REGISTER
    assert stats(pin_dir, "BANNED") == 5

    only = bans(pin_dir, tmp_path, address="192.0.2.81")
    assert [b["source"] for b in only["bans"]] == ["192.0.2.81/32"]


def test_lift_removes_the_ban_and_the_pardon_stops_the_next_one(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    setup(veth, pin_dir, built_object, tmp_path)
    check = run_module("vos.fastpath.xdp_bans",
                       dict(pin_dir=str(pin_dir), lift=["192.0.2.80"],
                            lists=False), tmp_path, check=True)
    assert check["changed"] and check["lifted"] == ["192.0.2.80/32"]
    assert "192.0.2.80/32" in ban_keys(pin_dir), "check mode lifted it"

    lifted = bans(pin_dir, tmp_path, lift=["192.0.2.80", str(QUIET)],
                  pardon_time="10m")
    assert lifted["changed"], lifted.get("msg")
    assert lifted["lifted"] == ["192.0.2.80/32"]
    assert lifted["pardoned"] == ["192.0.2.80/32", "192.0.2.82/32"]
    assert set(ban_keys(pin_dir)) == {"192.0.2.81/32"}
    assert {p["source"] for p in lifted["pardons"]} == {
        "192.0.2.80/32", "192.0.2.82/32"}
    again = bans(pin_dir, tmp_path, lift=["192.0.2.80", str(QUIET)],
                 pardon_time="10m")
    assert again["changed"] is False

    # The scanner comes back: dropped, counted, but not banned again.
    scanner_drops = stats(pin_dir, "SCANNER")
    send(veth + "p", SCANNER, request(b"OPTIONS", b"friendly-scanner"), 2)
    send(veth + "p", SCANNER, request(b"INVITE"), 1)
    assert stats(pin_dir, "SCANNER") == scanner_drops + 2
    assert "192.0.2.80/32" not in ban_keys(pin_dir)


def test_bad_lift_changes_nothing(veth: str, pin_dir: Path,
                                  built_object: Path, tmp_path: Path) -> None:
    setup(veth, pin_dir, built_object, tmp_path)
    result = bans(pin_dir, tmp_path, lift=["192.0.2.80", "not-an-address"])
    assert result.get("failed")
    assert "not-an-address" in result["msg"] and "Nothing was changed" in \
        result["msg"]
    assert set(ban_keys(pin_dir)) == {"192.0.2.80/32", "192.0.2.81/32"}


def test_automatic_writers_skip_protected_allowlisted_and_pardoned(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    setup(veth, pin_dir, built_object, tmp_path)
    assert not entry(pin_dir, tmp_path, map="allowlist",
                     entries=["198.51.100.0/28"]).get("failed")
    bans(pin_dir, tmp_path, lift=["192.0.2.81"])
    wanted = ["192.0.2.80", "192.0.2.81", "198.51.100.7", "203.0.113.0/24",
              "192.0.2.90"]
    # A person's run fails on the protected address and writes nothing.
    refused = entry(pin_dir, tmp_path, entries=wanted, source="autoban",
                    ttl="1h", protect=["203.0.113.9"])
    assert refused.get("failed") and "203.0.113.9" in refused["msg"]
    assert blocklist(pin_dir) == {}

    written = entry(pin_dir, tmp_path, entries=wanted, source="autoban",
                    ttl="1h", protect=["203.0.113.9"], on_protected="skip",
                    skip_pardoned=True)
    assert not written.get("failed"), written.get("msg")
    assert written["left_out_count"] == 3
    assert sorted((s["entry"], s["reason"]) for s in written["left_out"]) == [
        ("192.0.2.81/32", "pardoned"), ("198.51.100.7/32", "allowlisted"),
        ("203.0.113.0/24", "protected")]
    assert sorted(blocklist(pin_dir)) == ["192.0.2.80/32", "192.0.2.90/32"]


def test_renew_moves_expiries_later_and_jitter_spreads_them(
        veth: str, pin_dir: Path, built_object: Path,
        tmp_path: Path) -> None:
    setup(veth, pin_dir, built_object, tmp_path)
    many = ["198.18.%d.%d" % (i // 250, i % 250 + 1) for i in range(500)]
    first = entry(pin_dir, tmp_path, entries=many, source="autoban",
                  ttl="1h", ttl_jitter=0.5)
    assert first["added"] == 500, first.get("msg")
    expiries = blocklist(pin_dir)
    now = _lists.boot_ns()
    spread = sorted((e - now) / 1e9 for e in expiries.values())
    assert 3590 < spread[0] and spread[-1] <= 5400
    assert spread[-1] - spread[0] > 1500, "jitter spread too little"
    # Within each tenth of the spread: no cliff where all expire at once.
    assert max(sum(1 for s in spread if lo <= s < lo + 180)
               for lo in range(3600, 5400, 180)) < 100

    time.sleep(1.1)
    kept = entry(pin_dir, tmp_path, entries=many[:10], source="autoban",
                 ttl="1h", ttl_jitter=0.5)
    assert kept["renewed"] == 0 and blocklist(pin_dir) == expiries
    renewed = entry(pin_dir, tmp_path, entries=many[:10], source="autoban",
                    ttl="1h", ttl_jitter=0.5, renew=True)
    assert renewed["renewed"] == 10 and renewed["changed"]
    after = blocklist(pin_dir)
    moved = [k for k in after if after[k] != expiries[k]]
    assert len(moved) == 10 and all(after[k] > expiries[k] for k in moved)
    shorter = entry(pin_dir, tmp_path, entries=many[:10], source="autoban",
                    ttl="10m", renew=True)
    assert shorter["renewed"] == 0 and blocklist(pin_dir) == after

    bad = entry(pin_dir, tmp_path, entries=many[:1], source="autoban",
                ttl_jitter=0.5)
    assert bad.get("failed") and "ttl_jitter needs a ttl" in bad["msg"]


@pytest.mark.usefixtures("host_0_1")
def test_a_host_of_0_1_0_lists_no_ban_and_lifts_none_with_a_warning(
        pin_dir: Path, tmp_path: Path) -> None:
    # unblock.yml goes on to the lists of such a host: this must not fail.
    lifted = bans(pin_dir, tmp_path, lift=["192.0.2.66"])
    assert not lifted.get("failed"), lifted.get("msg")
    assert lifted["changed"] is False and lifted["bans"] == []
    assert "predates them" in " ".join(lifted.get("warnings", []))
