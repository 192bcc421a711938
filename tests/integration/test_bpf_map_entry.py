"""vos.fastpath.bpf_map_entry through Ansible, against pinned tries."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from plugins.module_utils import _abi, _lists
from tests.integration.ansible_run import run_module
from tests.trie_entries import open_list, read_entries

MODULE = "vos.fastpath.bpf_map_entry"


def contents(pin_dir: Path, kind: str = "block") -> dict[str, tuple]:
    """Both tries of a list as {cidr: (expires_ns, source)}."""
    out = {}
    for family in ("v4", "v6"):
        with open_list(pin_dir, kind + "_" + family) as m:
            for key, value in read_entries(m).fields().items():
                out[_lists.key_text(key)] = value
    return out


def run(pin_dir: Path, tmp_path: Path, check: bool = False,
        diff: bool = False, **args: object) -> dict:
    args.setdefault("map", "blocklist")
    args["pin_dir"] = str(pin_dir)
    args.setdefault("state_dir", str(tmp_path / "state"))
    return run_module(MODULE, args, tmp_path, check=check, diff=diff)


def test_entries_are_added_once(maps: Path, tmp_path: Path) -> None:
    entries = ["203.0.113.7", "198.51.100.0/24", "2001:db8:bad::/48"]
    first = run(maps, tmp_path, entries=entries, source="manual")
    assert (first["changed"], first["added"], first["total"]) == (True, 3, 3)
    tag = _lists.source_tag("manual")
    assert contents(maps) == {"203.0.113.7/32": (0, tag),
                              "198.51.100.0/24": (0, tag),
                              "2001:db8:bad::/48": (0, tag)}
    again = run(maps, tmp_path, entries=entries, source="manual")
    assert (again["changed"], again["unchanged"]) == (False, 3)


def test_check_mode_changes_nothing_and_diff_lists_entries(
        maps: Path, tmp_path: Path) -> None:
    result = run(maps, tmp_path, check=True, diff=True,
                 entries=["192.0.2.9", "2001:db8::9"])
    assert result["changed"] is True and result["added"] == 2
    assert "192.0.2.9/32" in result["diff"]["after"]
    assert "2001:db8::9/128" in result["diff"]["after"]
    assert contents(maps) == {}


def test_exact_reconciles_only_the_owners_entries(maps: Path,
                                                  tmp_path: Path) -> None:
    run(maps, tmp_path, entries=["203.0.113.1", "203.0.113.2"],
        source="feed")
    run(maps, tmp_path, entries=["198.51.100.5"], source="manual")
    listing = tmp_path / "feed.txt"
    listing.write_text("# the feed\n203.0.113.2\n\n203.0.113.3  # new\n")
    result = run(maps, tmp_path, src=str(listing), state="exact",
                 source="feed", diff=True)
    assert (result["added"], result["removed"], result["unchanged"]) == (
        1, 1, 1)
    assert set(contents(maps)) == {"203.0.113.2/32", "203.0.113.3/32",
                                   "198.51.100.5/32"}
    assert "203.0.113.1/32" in result["diff"]["before"]


def test_garbage_line_fails_with_its_number_and_changes_nothing(
        maps: Path, tmp_path: Path) -> None:
    run(maps, tmp_path, entries=["203.0.113.1"])
    listing = tmp_path / "bad.txt"
    listing.write_text("203.0.113.2\n# fine\nnot-an-address\n")
    result = run(maps, tmp_path, src=str(listing), state="exact")
    assert result["failed"] is True
    assert "line 3 of %s" % listing in result["msg"]
    assert "Nothing was changed" in result["msg"]
    assert set(contents(maps)) == {"203.0.113.1/32"}


def test_content_is_read_like_a_file_and_named_in_errors(
        maps: Path, tmp_path: Path) -> None:
    feed = {"feeds/scanners.txt": "# scanners\n203.0.113.2\n\n"
            "2001:db8:bad::/48  # a network\n"}
    result = run(maps, tmp_path, content=feed, state="exact")
    assert result["changed"] is True and result["added"] == 2
    assert set(contents(maps)) == {"203.0.113.2/32", "2001:db8:bad::/48"}
    feed["feeds/scanners.txt"] += "203.0.113.300\n"
    result = run(maps, tmp_path, content=feed, state="exact")
    assert result["failed"] is True
    assert "line 5 of feeds/scanners.txt" in result["msg"]
    assert set(contents(maps)) == {"203.0.113.2/32", "2001:db8:bad::/48"}


def test_content_that_is_not_text_fails_and_changes_nothing(
        maps: Path, tmp_path: Path) -> None:
    result = run(maps, tmp_path, content={"feed": ["203.0.113.2"]})
    assert result["failed"] is True
    assert result["msg"].startswith("content feed is not text")
    assert contents(maps) == {}


def test_invalid_cidr_fails(maps: Path, tmp_path: Path) -> None:
    result = run(maps, tmp_path, entries=["192.0.2.0/33"])
    assert result["failed"] is True and "prefix length" in result["msg"]
    assert contents(maps) == {}


def test_host_bits_error_or_normalise(maps: Path, tmp_path: Path) -> None:
    strict = run(maps, tmp_path, entries=["192.0.2.77/24"])
    assert strict["failed"] is True
    assert "192.0.2.0/24" in strict["msg"]
    loose = run(maps, tmp_path, entries=["192.0.2.77/24"], strict=False)
    assert loose["changed"] is True
    assert set(contents(maps)) == {"192.0.2.0/24"}


def test_entry_covering_a_protected_address_fails(maps: Path,
                                                  tmp_path: Path) -> None:
    result = run(maps, tmp_path, entries=["203.0.113.9", "192.0.2.0/24"],
                 protect=["192.0.2.10"])
    assert result["failed"] is True
    # Which is the entry and which the protected network, not just both.
    assert ("entry 192.0.2.0/24 would block the protected 192.0.2.10/32"
            in result["msg"])
    inside = run(maps, tmp_path, entries=["198.51.100.7"],
                 protect=["198.51.100.0/24"])
    assert inside["failed"] is True
    assert ("entry 198.51.100.7/32 would block the protected "
            "198.51.100.0/24" in inside["msg"])
    assert contents(maps) == {}


def test_ttl_entry_expires_and_the_next_run_removes_it(
        maps: Path, tmp_path: Path) -> None:
    before = _lists.boot_ns()
    run(maps, tmp_path, entries=["203.0.113.50"], ttl=1, source="t")
    entry = contents(maps)["203.0.113.50/32"]
    expires = entry[0]
    assert before + 10**9 <= expires <= _lists.boot_ns() + 10**9
    time.sleep(1.2)
    result = run(maps, tmp_path, entries=[], state="exact", source="t")
    assert (result["removed"], result["expired_removed"]) == (1, 1)
    assert contents(maps) == {}


def test_absent_removes_whoever_owns_the_entry(maps: Path,
                                               tmp_path: Path) -> None:
    run(maps, tmp_path, entries=["203.0.113.1", "203.0.113.2"],
        source="feed")
    result = run(maps, tmp_path, entries=["203.0.113.1"], state="absent")
    assert result["removed"] == 1
    assert set(contents(maps)) == {"203.0.113.2/32"}


def test_allowlist_over_capacity_fails_before_any_change(
        maps: Path, tmp_path: Path) -> None:
    listing = tmp_path / "big.txt"
    listing.write_text("".join(
        socket.inet_ntoa((0xC6120000 + i).to_bytes(4, "big")) + "\n"
        for i in range(_abi.MAPS["allow_v4"].max_entries + 1)))
    result = run(maps, tmp_path, map="allowlist", src=str(listing))
    assert result["failed"] is True and "65536" in result["msg"]
    assert contents(maps, "allow") == {}


def test_missing_pins_fail_with_what_to_do(pin_dir: Path,
                                           tmp_path: Path) -> None:
    result = run(pin_dir, tmp_path, entries=["192.0.2.1"])
    assert result["failed"] is True
    assert "vos.fastpath.xdp_attach" in result["msg"]


def test_pin_dir_off_bpffs_names_the_mount_to_make(
        tmp_path: Path, root_required: None) -> None:
    result = run(tmp_path / "pins", tmp_path, entries=["192.0.2.1"])
    assert result["failed"] is True
    assert "mount -t bpf bpf /sys/fs/bpf" in result["msg"]
