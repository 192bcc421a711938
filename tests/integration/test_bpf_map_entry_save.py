"""vos.fastpath.bpf_map_entry keeping its list on disk (save_to), and src
as a list of files, through Ansible against pinned tries."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from plugins.module_utils import _lists, _snapshot
from tests.integration.ansible_run import run_module
from tests.trie_entries import open_list, read_entries

MODULE = "vos.fastpath.bpf_map_entry"


def raw(pin_dir: Path, kind: str = "block") -> list[tuple[bytes, bytes]]:
    """What both tries of a list hold, as the kernel returns it."""
    out = []
    for family in ("v4", "v6"):
        with open_list(pin_dir, kind + "_" + family) as m:
            out.append(m.lookup_batch(chunk=65536))
    return out


def contents(pin_dir: Path, kind: str = "block") -> set[str]:
    out = set()
    for family in ("v4", "v6"):
        with open_list(pin_dir, kind + "_" + family) as m:
            out |= {_lists.key_text(k) for k in read_entries(m).keys}
    return out


def folded(path: Path, pin_dir: Path, kind: str = "block"
           ) -> list[dict[bytes, bytes]]:
    """Per family, what the file says the trie must hold: {key: value}."""
    ledger = _snapshot.load(str(path), kind + "list", str(pin_dir))
    return [dict(zip(*ledger.target(family).rows(), strict=True))
            for family in (0, 1)]


def in_file(path: Path, pin_dir: Path, kind: str = "block") -> set[str]:
    """The entries a list file holds, every owner's."""
    return {_lists.key_text(k) for family in folded(path, pin_dir, kind)
            for k in family}


def matches_kernel(path: Path, pin_dir: Path, kind: str = "block") -> bool:
    """Does the file, folded into one value per key, equal the tries?"""
    kernel = []
    for keys, values in raw(pin_dir, kind):
        ksize = 8 if not kernel else 20
        kernel.append(dict((keys[i:i + ksize],
                            values[i // ksize * 16:i // ksize * 16 + 16])
                           for i in range(0, len(keys), ksize)))
    return kernel == folded(path, pin_dir, kind)


def run(pin_dir: Path, tmp_path: Path, check: bool = False,
        **args: object) -> dict:
    args.setdefault("map", "blocklist")
    args["pin_dir"] = str(pin_dir)
    args.setdefault("state_dir", str(tmp_path / "state"))
    return run_module(MODULE, args, tmp_path, check=check)


def test_first_run_saves_the_list_and_a_second_one_does_not(
        maps: Path, tmp_path: Path) -> None:
    saved = tmp_path / "state" / "lists" / "blocklist.list"
    entries = ["203.0.113.7", "198.51.100.0/24", "2001:db8:bad::/48"]
    first = run(maps, tmp_path, entries=entries, save_to=str(saved))
    assert first.get("failed") is not True, first
    assert (first["changed"], first["saved"]) == (True, True)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    header = json.loads(saved.read_bytes().partition(b"\n")[0])
    assert (header["list"], header["pin_dir"]) == ("blocklist", str(maps))
    assert [(m["name"], m["count"]) for m in header["maps"]] == [
        ("block_v4", 2), ("block_v6", 1)]
    assert in_file(saved, maps) == {"203.0.113.7/32", "198.51.100.0/24",
                                    "2001:db8:bad::/48"}
    assert matches_kernel(saved, maps)

    before = saved.read_bytes()
    again = run(maps, tmp_path, entries=entries, save_to=str(saved))
    assert (again["changed"], again["saved"], again["unchanged"]) == (
        False, False, 3)
    assert saved.read_bytes() == before


def test_check_mode_reports_the_save_and_writes_nothing(
        maps: Path, tmp_path: Path) -> None:
    saved = tmp_path / "blocklist.list"
    run(maps, tmp_path, entries=["203.0.113.7"], save_to=str(saved))
    before = saved.read_bytes()
    check = run(maps, tmp_path, check=True,
                entries=["203.0.113.7", "203.0.113.8"], save_to=str(saved))
    assert (check["changed"], check["saved"], check["added"]) == (
        True, True, 1)
    assert saved.read_bytes() == before
    assert contents(maps) == {"203.0.113.7/32"}

    missing = tmp_path / "never.list"
    nothing_new = run(maps, tmp_path, check=True, entries=["203.0.113.7"],
                      save_to=str(missing))
    assert (nothing_new["changed"], nothing_new["saved"]) == (True, True)
    assert not missing.exists()


def test_a_change_rewrites_the_file(maps: Path, tmp_path: Path) -> None:
    saved = tmp_path / "blocklist.list"
    run(maps, tmp_path, entries=["203.0.113.7"], save_to=str(saved),
        source="feed")
    result = run(maps, tmp_path, entries=["2001:db8::7"],
                 save_to=str(saved), source="feed", state="exact")
    assert (result["changed"], result["saved"]) == (True, True)
    assert (result["added"], result["removed"]) == (1, 1)
    assert in_file(saved, maps) == {"2001:db8::7/128"}
    assert matches_kernel(saved, maps)


def test_the_file_holds_every_owner_and_is_rewritten_when_it_differs(
        maps: Path, tmp_path: Path) -> None:
    saved = tmp_path / "blocklist.list"
    run(maps, tmp_path, entries=["203.0.113.1"], source="feed")
    first = run(maps, tmp_path, entries=["203.0.113.2"], source="manual",
                save_to=str(saved))
    assert first["saved"] is True
    assert in_file(saved, maps) == {"203.0.113.1/32", "203.0.113.2/32"}
    saved.unlink()
    again = run(maps, tmp_path, entries=["203.0.113.2"], source="manual",
                save_to=str(saved))
    assert (again["added"], again["removed"]) == (0, 0)
    assert (again["changed"], again["saved"]) == (True, True)
    assert in_file(saved, maps) == {"203.0.113.1/32", "203.0.113.2/32"}


def test_src_as_a_list_of_two_files_merges_both(maps: Path,
                                                tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text("# first feed\n203.0.113.1\n198.51.100.0/24\n")
    two = tmp_path / "two.txt"
    two.write_text("203.0.113.1\n2001:db8:bad::/48  # dup above too\n")
    saved = tmp_path / "allowlist.list"
    result = run(maps, tmp_path, map="allowlist", src=[str(one), str(two)],
                 save_to=str(saved))
    assert result.get("failed") is not True, result
    assert (result["added"], result["total"], result["saved"]) == (
        3, 3, True)
    want = {"203.0.113.1/32", "198.51.100.0/24", "2001:db8:bad::/48"}
    assert contents(maps, "allow") == want
    assert contents(maps, "block") == set()
    assert in_file(saved, maps, "allow") == want
    assert matches_kernel(saved, maps, "allow")


def test_unwritable_save_to_fails_and_changes_nothing(
        maps: Path, tmp_path: Path) -> None:
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    saved = regular / "blocklist.list"
    result = run(maps, tmp_path, entries=["203.0.113.9"],
                 save_to=str(saved))
    assert result["failed"] is True
    assert result["msg"].startswith(
        "The state directory %s is not a directory: remove it" % regular)
    assert result["changed"] is False
    assert contents(maps) == set()
    assert regular.read_text() == "not a directory\n"
