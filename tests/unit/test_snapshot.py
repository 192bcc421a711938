"""List files on disk: format, comparison, expiry shift and restore, with
the tries faked (the kernel boundary only)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from plugins.module_utils import _abi, _lists, _snapshot
from plugins.module_utils._errors import FastpathError

SEC = 10**9
NOW = 5000 * SEC
TAG = _lists.source_tag("feed")


class FakeTrie:
    """What _snapshot uses of _bpf.Map: a dict of raw keys and values."""

    def __init__(self, name: str, key_size: int, value_size: int = 16,
                 contents: dict[bytes, bytes] | None = None) -> None:
        self.name = name
        self.key_size = key_size
        self.value_size = value_size
        self.contents = dict(contents or {})
        self.updates = 0

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes]:
        keys = sorted(self.contents)
        return (b"".join(keys), b"".join(self.contents[k] for k in keys))

    def update_batch(self, keys: bytes, values: bytes) -> None:
        self.updates += 1
        count = len(keys) // self.key_size
        assert len(values) == count * self.value_size
        for i in range(count):
            self.contents[keys[i * self.key_size:(i + 1) * self.key_size]] = \
                values[i * self.value_size:(i + 1) * self.value_size]


def key(cidr: str) -> bytes:
    return _lists.parse_entry(cidr, True)[1]


def value(expires: int = 0, source: int = TAG) -> bytes:
    return _abi.ENTRY.pack(expires, source, 0)


def pair(v4: dict[str, bytes] | None = None,
         v6: dict[str, bytes] | None = None) -> list[FakeTrie]:
    return [FakeTrie("block_v4", 8,
                     contents={key(c): v for c, v in (v4 or {}).items()}),
            FakeTrie("block_v6", 20,
                     contents={key(c): v for c, v in (v6 or {}).items()})]


def raw(tries: list[FakeTrie]) -> list[tuple[bytes, bytes]]:
    return [t.lookup_batch() for t in tries]


def saved(tries: list[FakeTrie], path: Path,
          list_name: str = "blocklist") -> Path:
    _snapshot.save(str(path), list_name, tries, raw(tries))
    return path


def fields(trie: FakeTrie) -> dict[str, tuple[int, int]]:
    return {_lists.key_text(k): _lists.entry_fields(v)
            for k, v in trie.contents.items()}


FULL = {"203.0.113.7/32": value(),
        "198.51.100.0/24": value(NOW + 60 * SEC)}
FULL6 = {"2001:db8:bad::/48": value(0, 7)}


# render / read / save


def test_render_then_read_gives_the_header_and_the_entries_back(
        tmp_path: Path) -> None:
    tries = pair(FULL, FULL6)
    data = _snapshot.render("blocklist", tries, raw(tries))
    path = tmp_path / "blocklist.list"
    path.write_bytes(data)
    header, body = _snapshot.read(str(path))
    assert header["format"] == _snapshot.FORMAT
    assert header["list"] == "blocklist"
    assert isinstance(header["wall_minus_boot_ns"], int)
    assert header["maps"] == [
        dict(name="block_v4", key_size=8, value_size=16, count=2),
        dict(name="block_v6", key_size=20, value_size=16, count=1)]
    assert body == _snapshot.body(raw(tries))
    parts = _snapshot.split(header, body)
    assert parts == {t.name: (t.key_size, t.value_size) + t.lookup_batch()
                     for t in tries}


def test_an_empty_list_is_a_header_and_nothing_else(tmp_path: Path) -> None:
    path = saved(pair(), tmp_path / "empty.list")
    header, body = _snapshot.read(str(path))
    assert body == b""
    assert [m["count"] for m in header["maps"]] == [0, 0]


def test_header_records_wall_clock_minus_boot_clock(tmp_path: Path) -> None:
    before = _snapshot.wall_minus_boot_ns()
    header, _body = _snapshot.read(str(saved(pair(FULL), tmp_path / "l")))
    after = _snapshot.wall_minus_boot_ns()
    # The offset is fixed while the host runs: only reading jitter moves it.
    assert abs(header["wall_minus_boot_ns"] - before) < SEC // 10
    assert abs(after - before) < SEC // 10
    assert header["wall_minus_boot_ns"] > 10**18    # it is a wall clock


def test_save_makes_a_private_directory_and_file(tmp_path: Path) -> None:
    path = saved(pair(FULL), tmp_path / "state" / "lists" / "block.list")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert sorted(os.listdir(path.parent)) == ["block.list"]


def test_read_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert _snapshot.read(str(tmp_path / "none.list")) is None


@pytest.mark.parametrize("content", [
    b"",
    b"203.0.113.7\n198.51.100.0/24\n",
    b'{"format": "something-else/1", "maps": []}\n',
    b'["vos-fastpath-list/1"]\n',
    b'{"format": "vos-fastpath-list/1", "maps": []}',     # no newline
    b"\xff\xfe\n",
])
def test_read_refuses_a_file_that_is_not_a_list_file(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.txt"
    path.write_bytes(content)
    with pytest.raises(FastpathError) as err:
        _snapshot.read(str(path))
    assert str(err.value) == "%s is not a vos-fastpath list file." % path


def test_read_of_a_directory_says_it_could_not_read(tmp_path: Path) -> None:
    with pytest.raises(FastpathError) as err:
        _snapshot.read(str(tmp_path))
    assert str(err.value).startswith("Could not read %s (" % tmp_path)


# differs


def test_differs_when_there_is_no_file(tmp_path: Path) -> None:
    assert _snapshot.differs(str(tmp_path / "none.list"), raw(pair(FULL)))


def test_same_entries_with_another_timestamp_do_not_differ(
        tmp_path: Path) -> None:
    tries = pair(FULL, FULL6)
    path = saved(tries, tmp_path / "l")
    header_line, body = path.read_bytes().split(b"\n", 1)
    header = json.loads(header_line)
    header["wall_minus_boot_ns"] -= 3600 * SEC
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)
    assert not _snapshot.differs(str(path), raw(tries))
    assert not _snapshot.differs(str(path), raw(pair(FULL, FULL6)))


@pytest.mark.parametrize("other", [
    pair(FULL),                                           # one fewer
    pair(dict(FULL, **{"192.0.2.1/32": value()}), FULL6),  # one more
    pair({"203.0.113.7/32": value(),                      # other expiry
          "198.51.100.0/24": value(NOW + 61 * SEC)}, FULL6),
    pair({"203.0.113.7/32": value(0, 9),                  # other owner
          "198.51.100.0/24": value(NOW + 60 * SEC)}, FULL6),
    pair(),
])
def test_other_entries_differ(tmp_path: Path,
                              other: list[FakeTrie]) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    assert _snapshot.differs(str(path), raw(other))
    assert not _snapshot.differs(str(path), raw(pair(FULL, FULL6)))


def test_a_garbage_file_differs(tmp_path: Path) -> None:
    path = tmp_path / "l"
    path.write_bytes(b"\x00garbage")
    assert _snapshot.differs(str(path), raw(pair()))


# split


def test_split_detects_a_file_cut_short(tmp_path: Path) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    header, body = _snapshot.read(str(path))
    assert _snapshot.split(header, body)        # whole: fine
    with pytest.raises(FastpathError) as err:
        _snapshot.split(header, body[:-1])
    assert str(err.value) == "The file is cut short in block_v6."
    with pytest.raises(FastpathError) as err:
        _snapshot.split(header, body[:20])
    assert str(err.value) == "The file is cut short in block_v4."


def test_restore_of_a_cut_short_file_writes_nothing(tmp_path: Path) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    path.write_bytes(path.read_bytes()[:-3])
    tries = pair()
    with pytest.raises(FastpathError):
        _snapshot.restore(str(path), tries, NOW)
    assert [t.contents for t in tries] == [{}, {}]


# shift_expiry


def flat(entries: dict[str, bytes]) -> tuple[bytes, bytes]:
    return (b"".join(key(c) for c in entries),
            b"".join(entries.values()))


def test_permanent_entries_are_left_as_they_are() -> None:
    keys, values = flat({"203.0.113.7/32": value(), "192.0.2.0/24":
                         value(0, 3)})
    out = _snapshot.shift_expiry(keys, values, 8, 16, -7 * SEC, NOW)
    assert out == (keys, values, 0)


def test_ttl_entries_move_by_delta_and_expired_ones_are_dropped() -> None:
    keys, values = flat({
        "203.0.113.1/32": value(),                      # permanent
        "203.0.113.2/32": value(NOW + 100 * SEC, 3),    # 100 s - 30 s left
        "203.0.113.3/32": value(NOW + 30 * SEC),        # ends right at now
        "203.0.113.4/32": value(NOW + 10 * SEC),        # expired meanwhile
        "203.0.113.5/32": value(NOW + 31 * SEC, 5),     # 1 s left
    })
    out_keys, out_values, dropped = _snapshot.shift_expiry(
        keys, values, 8, 16, -30 * SEC, NOW)
    assert dropped == 2
    out = {_lists.key_text(out_keys[i * 8:(i + 1) * 8]):
           _lists.entry_fields(out_values[i * 16:(i + 1) * 16])
           for i in range(len(out_keys) // 8)}
    assert out == {"203.0.113.1/32": (0, TAG),
                   "203.0.113.2/32": (NOW + 70 * SEC, 3),
                   "203.0.113.5/32": (NOW + SEC, 5)}
    assert len(out_values) == 3 * 16


def test_a_forward_shift_keeps_everything() -> None:
    keys, values = flat({"2001:db8::/32": value(NOW - SEC)})
    out_keys, out_values, dropped = _snapshot.shift_expiry(
        keys, values, 20, 16, 2 * SEC, NOW)
    assert (out_keys, dropped) == (keys, 0)
    assert _lists.entry_fields(out_values) == (NOW + SEC, TAG)


# restore


def saved_at(tries: list[FakeTrie], path: Path, offset: int,
             monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file written when wall clock minus boot clock was `offset`."""
    with monkeypatch.context() as m:
        m.setattr(_snapshot, "wall_minus_boot_ns", lambda: offset)
        return saved(tries, path)


def test_restore_fills_empty_tries_with_the_expiry_shifted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boot_offset = 1_700_000_000 * SEC
    path = saved_at(pair({"203.0.113.7/32": value(),
                          "198.51.100.0/24": value(NOW + 600 * SEC),
                          "192.0.2.9/32": value(NOW + 5 * SEC)},
                         FULL6), tmp_path / "l", boot_offset, monkeypatch)
    # After the reboot the boot clock is 120 s further behind the wall
    # clock: the host was down for that long.
    monkeypatch.setattr(_snapshot, "wall_minus_boot_ns",
                        lambda: boot_offset + 120 * SEC)
    tries = pair()
    report = _snapshot.restore(str(path), tries, NOW)
    assert report == {"block_v4": (2, 1, 0), "block_v6": (1, 0, 0)}
    assert fields(tries[0]) == {"203.0.113.7/32": (0, TAG),
                                "198.51.100.0/24": (NOW + 480 * SEC, TAG)}
    assert fields(tries[1]) == {"2001:db8:bad::/48": (0, 7)}


def test_restore_keeps_tries_that_hold_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    live = {key("192.0.2.1/32"): value(), key("192.0.2.2/32"): value()}
    tries = [FakeTrie("block_v4", 8, contents=live),
             FakeTrie("block_v6", 20)]
    report = _snapshot.restore(str(path), tries, NOW)
    assert report == {"block_v4": (0, 0, 2), "block_v6": (1, 0, 0)}
    assert tries[0].contents == live and tries[0].updates == 0
    assert fields(tries[1]) == {"2001:db8:bad::/48": (0, 7)}
    # Run again: both now hold entries, nothing is written.
    again = _snapshot.restore(str(path), tries, NOW)
    assert again == {"block_v4": (0, 0, 2), "block_v6": (0, 0, 1)}
    assert tries[1].updates == 1


def test_restore_of_a_missing_file_reports_nothing(tmp_path: Path) -> None:
    tries = pair()
    assert _snapshot.restore(str(tmp_path / "none"), tries, NOW) == {}
    assert [t.updates for t in tries] == [0, 0]


def test_restore_writes_nothing_for_an_all_expired_trie(
        tmp_path: Path) -> None:
    path = saved(pair({"203.0.113.7/32": value(NOW - SEC)}), tmp_path / "l")
    tries = pair()
    report = _snapshot.restore(str(path), tries, NOW)
    assert report == {"block_v4": (0, 1, 0), "block_v6": (0, 0, 0)}
    assert [t.updates for t in tries] == [0, 0]


def test_restore_refuses_a_layout_mismatch(tmp_path: Path) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    tries = [FakeTrie("block_v4", 8, value_size=24),
             FakeTrie("block_v6", 20)]
    with pytest.raises(FastpathError) as err:
        _snapshot.restore(str(path), tries, NOW)
    assert str(err.value) == (
        "%s holds block_v4 entries of another layout (key 8, value 16 "
        "bytes)." % path)
    assert tries[0].contents == {}


def test_restore_ignores_tries_the_file_does_not_hold(
        tmp_path: Path) -> None:
    path = saved(pair(FULL, FULL6), tmp_path / "l")
    allow = [FakeTrie("allow_v4", 8), FakeTrie("allow_v6", 20)]
    assert _snapshot.restore(str(path), allow, NOW) == {}
    assert [t.contents for t in allow] == [{}, {}]
