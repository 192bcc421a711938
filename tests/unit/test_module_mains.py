"""bpf_map_entry and xdp_stats end to end in-process, with the kernel
boundary (the pinned maps) faked by tries that keep what is written."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi,
    _counters,
    _facts,
    _lists,
)
from ansible_collections.vos.fastpath.plugins.modules import (
    bpf_map_entry,
    xdp_stats,
)


class FakeTrie:
    """A trie in memory: batch writes, deletes and reads as the kernel
    does them; a write or a read fails when told to."""

    def __init__(self, name: str, key_size: int, fail_write: bool = False,
                 fail_read: bool = False) -> None:
        self.name, self.key_size, self.value_size = name, key_size, 16
        self.max_entries = 4
        self.fail_write = fail_write
        self.fail_read = fail_read
        self.entries: dict[bytes, bytes] = {}
        self.writes = 0

    def _split(self, data: bytes, size: int) -> list[bytes]:
        return [data[i:i + size] for i in range(0, len(data), size)]

    def lookup_batch(self, chunk: int) -> tuple[bytes, bytes]:
        if self.fail_read:
            raise OSError(errno.EPERM, "Operation not permitted")
        keys = sorted(self.entries)
        return b"".join(keys), b"".join(self.entries[k] for k in keys)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        if self.fail_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.writes += 1
        for key, value in zip(self._split(keys, self.key_size),
                              self._split(values, self.value_size),
                              strict=True):
            self.entries[key] = value

    def delete_batch(self, keys: bytes) -> None:
        for key in self._split(keys, self.key_size):
            del self.entries[key]

    def delete(self, key: bytes) -> bool:
        return self.entries.pop(key, None) is not None

    def update(self, key: bytes, raw: bytes) -> None:
        self.entries[key] = raw

    def close(self) -> None:
        pass

    def cidrs(self) -> set[str]:
        return {_lists.key_text(k) for k in self.entries}


def run(module, args: dict, check: bool = False) -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit):
        module.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


@pytest.fixture
def pair() -> list[FakeTrie]:
    tries = [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20)]
    with mock.patch.object(_lists, "open_pair", return_value=tries):
        yield tries


BLOCK = {"map": "blocklist", "entries": ["192.0.2.1", "2001:db8::1"]}


def test_first_run_writes_once_per_family_and_second_changes_nothing(
        pair: list[FakeTrie]) -> None:
    first = run(bpf_map_entry, BLOCK)
    assert (first["changed"], first["added"], first["total"]) == (
        True, 2, 2)
    assert [t.writes for t in pair] == [1, 1]
    assert pair[0].cidrs() == {"192.0.2.1/32"}
    assert pair[1].cidrs() == {"2001:db8::1/128"}

    second = run(bpf_map_entry, BLOCK)
    assert (second["changed"], second["added"], second["unchanged"]) == (
        False, 0, 2)
    assert [t.writes for t in pair] == [1, 1]


def test_exact_removes_what_is_no_longer_listed(
        pair: list[FakeTrie]) -> None:
    run(bpf_map_entry, dict(BLOCK, state="exact"))
    result = run(bpf_map_entry, {"map": "blocklist", "state": "exact",
                                 "entries": ["192.0.2.1"]})
    assert (result["changed"], result["removed"], result["total"]) == (
        True, 1, 1)
    assert pair[1].cidrs() == set()


def test_check_mode_writes_nothing(pair: list[FakeTrie]) -> None:
    result = run(bpf_map_entry, BLOCK, check=True)
    assert result["changed"] is True and result["added"] == 2
    assert [t.writes for t in pair] == [0, 0]
    assert pair[0].entries == {} and pair[1].entries == {}


def test_garbage_entry_fails_and_writes_nothing(
        pair: list[FakeTrie]) -> None:
    result = run(bpf_map_entry, {"map": "blocklist",
                                 "entries": ["192.0.2.1", "bogus"]})
    assert result["failed"] is True
    assert result["msg"] == ("entry 2: 'bogus' is not an IPv4 or IPv6 "
                             "address. Nothing was changed.")
    assert pair[0].entries == {}


def test_over_capacity_fails_before_writing(pair: list[FakeTrie]) -> None:
    result = run(bpf_map_entry, {"map": "blocklist", "entries": [
        "192.0.2.%d" % i for i in range(1, 6)]})
    assert result["failed"] is True and "more than its 4" in result["msg"]
    assert pair[0].entries == {}


def test_failed_second_family_puts_the_first_back() -> None:
    tries = [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20,
                                               fail_write=True)]
    with mock.patch.object(_lists, "open_pair", return_value=tries):
        result = run(bpf_map_entry, BLOCK)
    assert result["failed"] is True
    assert result["msg"] == ("Writing block_v6 failed ([Errno 28] No space "
                             "left on device); everything this run had "
                             "changed was put back.")
    assert tries[0].writes == 1 and tries[0].entries == {}


def test_a_failed_read_of_the_maps_is_one_sentence() -> None:
    tries = [FakeTrie("block_v4", 8, fail_read=True),
             FakeTrie("block_v6", 20)]
    with mock.patch.object(_lists, "open_pair", return_value=tries):
        result = run(bpf_map_entry, BLOCK)
    assert result["failed"] is True
    assert result["msg"] == (
        "Could not read the blocklist maps ([Errno 1] Operation not "
        "permitted): run as root, and check that the program's maps are "
        "still pinned.")
    assert "Traceback" not in json.dumps(result)


def test_negative_ttl_is_refused(pair: list[FakeTrie]) -> None:
    result = run(bpf_map_entry, {"map": "blocklist", "ttl": -5})
    assert result["failed"] is True
    assert result["msg"] == ("ttl must be 0 (permanent) or a number of "
                             "seconds, not -5.")


def test_missing_maps_say_to_attach_first(tmp_path: Path) -> None:
    """The real open_pair on a directory without pins."""
    with mock.patch.object(_facts, "bpffs_mount",
                           return_value="/sys/fs/bpf"):
        result = run(bpf_map_entry, {"map": "blocklist",
                                     "pin_dir": str(tmp_path)})
    assert result["failed"] is True
    assert result["msg"] == (
        "The map block_v4 is not pinned under %s: attach the program with "
        "vos.fastpath.xdp_attach first, or set pin_dir." % tmp_path)


def test_restore_fills_empty_maps_once_and_saves_nothing_new(
        tmp_path: Path) -> None:
    saved = [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20)]
    args = dict(BLOCK, save=True, state_dir=str(tmp_path))
    with mock.patch.object(_lists, "open_pair", return_value=saved):
        assert run(bpf_map_entry, args)["saved"] is True
    assert (tmp_path / "lists" / "blocklist.list").exists()

    new = [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20)]
    restore = {"map": "blocklist", "save": True, "restore": True,
               "state_dir": str(tmp_path)}
    with mock.patch.object(_lists, "open_pair", return_value=new):
        first = run(bpf_map_entry, restore)
        again = run(bpf_map_entry, restore)
    assert (first["changed"], first["restored"], first["saved"]) == (
        True, 2, False)
    assert new[0].entries == saved[0].entries
    assert new[1].entries == saved[1].entries
    assert (again["changed"], again["restored"]) == (False, 0)


def test_restore_needs_a_saved_list(pair: list[FakeTrie]) -> None:
    result = run(bpf_map_entry, {"map": "blocklist", "restore": True})
    assert result["failed"] is True
    assert result["msg"] == ("restore needs the saved list: set save: true "
                             "(or save_to).")


def counters() -> dict:
    return {"stats": {n: {"packets": 1, "bytes": 60}
                      for n in _abi.REASONS},
            "proto_stats": {n: {"packets": 1, "bytes": 60}
                            for n in _abi.PROTOS}}


def run_stats(args: dict, attached: list[dict], tmp_path: Path) -> dict:
    (tmp_path / "stats").write_text("")     # the pin, as far as it is looked
    stats_map = mock.MagicMock()
    stats_map.__enter__.return_value.id = 7
    with mock.patch.object(_facts, "bpffs_mount",
                           return_value="/sys/fs/bpf"), \
            mock.patch.object(_counters, "read_counters",
                              return_value=counters()), \
            mock.patch.object(xdp_stats._bpf.Map, "open_pinned",
                              return_value=stats_map), \
            mock.patch.object(_facts, "interfaces_using_map",
                              return_value=attached):
        return run(xdp_stats, dict({"pin_dir": str(tmp_path)}, **args))


def test_stats_off_bpffs_fail_with_the_mount() -> None:
    with mock.patch.object(_facts, "bpffs_mount", return_value=None):
        result = run(xdp_stats, {"pin_dir": "/tmp/nowhere"})
    assert result["failed"] is True
    assert "mount -t bpf bpf /sys/fs/bpf" in result["msg"]


def test_stats_textfile_is_written_once(tmp_path: Path) -> None:
    prom = tmp_path / "fp.prom"
    first = run_stats({"prometheus_textfile": str(prom)}, [], tmp_path)
    assert first["changed"] is True
    assert prom.read_text() == _counters.prometheus_text(counters())
    second = run_stats({"prometheus_textfile": str(prom)}, [], tmp_path)
    assert second["changed"] is False
    assert second["total_packets"] == len(_abi.REASONS)


EDGE = {"interface": "eth0", "id": 9, "name": "sip_xdp_prog",
        "tag": "0729d17d290e5598", "mode": "generic"}


def test_health_passes_where_the_program_runs_as_expected(
        tmp_path: Path) -> None:
    result = run_stats({"expect": {"interfaces": ["eth0"]}}, [EDGE],
                       tmp_path)
    assert result.get("failed") is not True, result
    assert result["problems"] == []


@pytest.mark.parametrize("expect, problem", [
    ({"interfaces": ["eth0"], "require_native": True},
     "eth0: attached in generic mode, native required"),
    ({"interfaces": ["eth0"], "mode": "native"},
     "eth0: attached in generic mode, native required"),
    ({"interfaces": ["eth0", "eth1"]}, "eth1: the program is not attached"),
])
def test_health_fails_naming_each_problem(expect: dict, problem: str,
                                          tmp_path: Path) -> None:
    result = run_stats({"expect": expect}, [EDGE], tmp_path)
    assert result["failed"] is True
    assert result["problems"] == [problem]
    assert problem in result["msg"]


def test_health_counts_unreadable_counters_as_a_problem() -> None:
    with mock.patch.object(_facts, "bpffs_mount", return_value=None):
        result = run(xdp_stats, {"pin_dir": "/tmp/nowhere",
                                 "expect": {"interfaces": ["eth0"]}})
    assert result["failed"] is True
    assert result["problems"] == [result["msg"]]
