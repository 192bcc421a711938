"""bpf_map_entry and xdp_stats end to end in-process, with the kernel
boundary (the pinned maps) faked."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import _abi, _lists
from ansible_collections.vos.fastpath.plugins.modules import (
    bpf_map_entry,
    xdp_stats,
)


class FakeTrie:
    """An empty trie that records writes; fails them when told to."""

    def __init__(self, name: str, key_size: int,
                 fail_write: bool = False) -> None:
        self.name, self.key_size, self.value_size = name, key_size, 16
        self.max_entries = 4
        self.fail_write = fail_write
        self.writes: list[bytes] = []
        self.deletes: list[bytes] = []

    def lookup_batch(self, chunk: int) -> tuple[bytes, bytes]:
        return b"", b""

    def update_batch(self, keys: bytes, values: bytes) -> None:
        if self.fail_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.writes.append(keys)

    def delete_batch(self, keys: bytes) -> None:
        self.deletes.append(keys)

    def delete(self, key: bytes) -> None:
        self.deletes.append(key)

    def update(self, key: bytes, raw: bytes) -> None:
        self.writes.append(key)

    def close(self) -> None:
        pass


def run(module, args: dict, check: bool = False, **patches) -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit):
        with mock.patch.multiple(module._lists if hasattr(module, "_lists")
                                 else module._facts, **patches):
            module.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


def tries(fail_v6: bool = False) -> list[FakeTrie]:
    return [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20, fail_v6)]


def test_entries_are_written_in_one_batch_per_family() -> None:
    pair = tries()
    result = run(bpf_map_entry, {"map": "blocklist",
                                 "entries": ["192.0.2.1", "2001:db8::1"]},
                 open_pair=mock.Mock(return_value=pair))
    assert (result["changed"], result["added"], result["total"]) == (
        True, 2, 2)
    assert [len(t.writes) for t in pair] == [1, 1]


def test_check_mode_writes_nothing() -> None:
    pair = tries()
    result = run(bpf_map_entry, {"map": "blocklist",
                                 "entries": ["192.0.2.1"]}, check=True,
                 open_pair=mock.Mock(return_value=pair))
    assert result["changed"] is True
    assert pair[0].writes == [] and pair[1].writes == []


def test_garbage_entry_fails_and_writes_nothing() -> None:
    pair = tries()
    result = run(bpf_map_entry, {"map": "blocklist",
                                 "entries": ["192.0.2.1", "bogus"]},
                 open_pair=mock.Mock(return_value=pair))
    assert result["failed"] is True
    assert result["msg"].startswith("entry 2: 'bogus'")
    assert pair[0].writes == []


def test_over_capacity_fails_before_writing() -> None:
    pair = tries()
    result = run(bpf_map_entry, {"map": "blocklist", "entries": [
        "192.0.2.%d" % i for i in range(1, 6)]},
        open_pair=mock.Mock(return_value=pair))
    assert result["failed"] is True and "more than its 4" in result["msg"]
    assert pair[0].writes == []


def test_failed_second_family_puts_the_first_back() -> None:
    pair = tries(fail_v6=True)
    result = run(bpf_map_entry, {"map": "blocklist",
                                 "entries": ["192.0.2.1", "2001:db8::1"]},
                 open_pair=mock.Mock(return_value=pair))
    assert result["failed"] is True
    assert "put back" in result["msg"]
    written = pair[0].writes[0]
    assert pair[0].deletes == [written]     # the v4 entry was undone


def test_negative_ttl_is_refused() -> None:
    result = run(bpf_map_entry, {"map": "blocklist", "ttl": -5},
                 open_pair=mock.Mock())
    assert result["failed"] is True and "ttl" in result["msg"]


def test_missing_maps_say_to_attach_first() -> None:
    error = _lists.ListError("The map block_v4 is not pinned under /x: "
                             "attach the program with "
                             "vos.fastpath.xdp_attach first, or set "
                             "pin_dir.")
    result = run(bpf_map_entry, {"map": "blocklist"},
                 open_pair=mock.Mock(side_effect=error))
    assert result["failed"] is True
    assert "vos.fastpath.xdp_attach" in result["msg"]


def counters() -> dict:
    return {"stats": {n: {"packets": 1, "bytes": 60}
                      for n in _abi.REASONS},
            "proto_stats": {n: {"packets": 1, "bytes": 60}
                            for n in _abi.PROTOS}}


def test_stats_off_bpffs_fail_with_the_mount() -> None:
    result = run(xdp_stats, {"pin_dir": "/tmp/nowhere"},
                 bpffs_mount=mock.Mock(return_value=None))
    assert result["failed"] is True
    assert "mount -t bpf bpf /sys/fs/bpf" in result["msg"]


def test_stats_textfile_unchanged_is_not_rewritten(tmp_path: Path) -> None:
    from ansible_collections.vos.fastpath.plugins.module_utils import _counters

    prom = tmp_path / "fp.prom"
    prom.write_text(_counters.prometheus_text(counters()))
    stats_map = mock.MagicMock()
    stats_map.__enter__.return_value.id = 7
    with mock.patch.object(xdp_stats.os.path, "exists", return_value=True), \
            mock.patch.object(xdp_stats._counters, "read_counters",
                              return_value=counters()), \
            mock.patch.object(xdp_stats._bpf.Map, "open_pinned",
                              return_value=stats_map), \
            mock.patch.object(xdp_stats._facts, "interfaces_using_map",
                              return_value=[]):
        result = run(xdp_stats, {"pin_dir": "/sys/fs/bpf/x",
                                 "prometheus_textfile": str(prom)},
                     bpffs_mount=mock.Mock(return_value="/sys/fs/bpf"))
    assert result["changed"] is False
    assert result["total_packets"] == len(_abi.REASONS)
