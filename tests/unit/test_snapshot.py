"""The saved file of a list (format vos-fastpath-list/2): what it holds, a
file refused whole when any part of it is damaged, the older format /1
still read, expiry moved across a reboot, and restore into empty tries."""

from __future__ import annotations

import json
import os
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from plugins.module_utils import _abi, _ledger, _lists, _snapshot
from plugins.module_utils._errors import FastpathError

SEC = 10**9
NOW = 5000 * SEC
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
BOOT = "11111111-2222-3333-4444-555555555555"
WALL_MINUS_BOOT = 1_700_000_000 * SEC
A = _lists.source_tag("feedA")
B = _lists.source_tag("feedB")


@pytest.fixture(autouse=True)
def clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One boot, with the wall clock a fixed distance ahead of its clock."""
    monkeypatch.setattr(_snapshot, "boot_id", lambda: BOOT)
    monkeypatch.setattr(_snapshot, "wall_minus_boot_ns",
                        lambda: WALL_MINUS_BOOT)


def key(cidr: str) -> bytes:
    return _lists.parse_entry(cidr, True)[1]


def entry(expires: int = 0, tag: int = A) -> bytes:
    return _abi.ENTRY.pack(expires, tag, 0)


K1, K2, K3 = key("203.0.113.7"), key("198.51.100.0/24"), key("192.0.2.9")
K6 = key("2001:db8:bad::/48")


def ledger() -> _ledger.Ledger:
    """Two owners sharing K1; K2 expiring for both (at different times);
    K3 expiring for B alone; K6 permanent for B."""
    out = _ledger.Ledger()
    _ledger.change(out, A, [{K1}, set()], "present", 0)
    _ledger.change(out, A, [{K2}, set()], "present", NOW + 60 * SEC)
    _ledger.change(out, B, [{K1}, {K6}], "present", 0)
    _ledger.change(out, B, [{K2, K3}, set()], "present", NOW + 600 * SEC)
    out.names = {A: "feedA", B: "feedB"}
    return out


def claims(ledger: _ledger.Ledger) -> list[dict]:
    return [dict((t, (c.permanent, c.expiring)) for t, c in fam.items())
            for fam in ledger.families]


def split(data: bytes) -> tuple[dict, bytes]:
    head, _sep, body = data.partition(b"\n")
    return json.loads(head), body


def join(header: dict, body: bytes, crc: bool = True) -> bytes:
    """A file of this header and body; with crc, a checksum that fits."""
    if crc:
        header = dict(header, crc32=zlib.crc32(body))
    return json.dumps(header).encode() + b"\n" + body


def parse(data: bytes, path: str = "/state/lists/blocklist.list",
          list_name: str = "blocklist",
          pin_dir: str = PIN_DIR) -> _ledger.Ledger:
    return _snapshot.parse(path, data, list_name, pin_dir)


# render / parse


def test_render_then_parse_gives_every_owners_claims_back() -> None:
    saved = ledger()
    back = parse(_snapshot.render("blocklist", PIN_DIR, saved))
    assert claims(back) == claims(saved)
    assert back.names == {A: "feedA", B: "feedB"}
    for family in (0, 1):
        assert back.target(family).rows() == saved.target(family).rows()


def test_the_header_says_what_the_file_holds() -> None:
    header, body = split(_snapshot.render("blocklist", PIN_DIR, ledger()))
    assert header == dict(
        format="vos-fastpath-list/2", list="blocklist", pin_dir=PIN_DIR,
        boot_id=BOOT, wall_minus_boot_ns=WALL_MINUS_BOOT,
        owners={"%08x" % A: "feedA", "%08x" % B: "feedB"},
        maps=[dict(name="block_v4", key_size=8, value_size=16, count=5),
              dict(name="block_v6", key_size=20, value_size=16, count=1)],
        crc32=zlib.crc32(body))
    assert len(body) == 5 * (8 + 16) + 1 * (20 + 16)


def test_an_empty_ledger_is_a_header_and_nothing_else() -> None:
    data = _snapshot.render("allowlist", PIN_DIR, _ledger.Ledger())
    header, body = split(data)
    assert body == b""
    assert [(m["name"], m["count"]) for m in header["maps"]] == [
        ("allow_v4", 0), ("allow_v6", 0)]
    back = parse(data, list_name="allowlist")
    assert back.size() == 0 and back.names == {}


def test_a_big_owner_is_read_back_in_whole_chunks() -> None:
    saved = _ledger.Ledger()
    many = {_lists._PREFIX.pack(32) + (i + 1 << 8).to_bytes(4, "big")
            for i in range(3 * _ledger.CHUNK + 1)}
    _ledger.change(saved, A, [many, set()], "present", 0)
    _ledger.change(saved, B, [{K1}, set()], "present", NOW)
    back = parse(_snapshot.render("blocklist", PIN_DIR, saved))
    assert claims(back) == claims(saved)


# damage: the whole file is checked before anything is used


def good() -> tuple[dict, bytes]:
    return split(_snapshot.render("blocklist", PIN_DIR, ledger()))


def v4_rows(body: bytes) -> tuple[bytes, bytes, bytes]:
    """(keys, values, rest) of a body from good()."""
    return body[:5 * 8], body[5 * 8:5 * 24], body[5 * 24:]


def with_maps(**changes: object) -> bytes:
    header, body = good()
    header["maps"][0].update(changes)
    return join(header, body)


def bad_prefix() -> bytes:
    header, body = good()
    keys, values, rest = v4_rows(body)
    keys = struct.pack("=I", 33) + keys[4:]
    return join(header, keys + values + rest)


def bad_v6_prefix() -> bytes:
    header, body = good()
    v6key = struct.pack("=I", 129) + body[5 * 24 + 4:5 * 24 + 20]
    return join(header, body[:5 * 24] + v6key + body[5 * 24 + 20:])


def flipped() -> bytes:
    data = bytearray(_snapshot.render("blocklist", PIN_DIR, ledger()))
    data[-1] ^= 1
    return bytes(data)


NOT_A_LIST = "it is not a vos-fastpath list file"
DAMAGE: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", NOT_A_LIST),
    "a text list": (lambda: b"203.0.113.7\n198.51.100.0/24\n", NOT_A_LIST),
    "another format": (lambda: join(dict(good()[0], format="other/2"),
                                    good()[1]), NOT_A_LIST),
    "a header that is not an object": (
        lambda: b'["vos-fastpath-list/2"]\n', NOT_A_LIST),
    "no newline after the header": (
        lambda: json.dumps(good()[0]).encode(), NOT_A_LIST),
    "a header that is not UTF-8": (lambda: b"\xff\xfe\n", NOT_A_LIST),
    "the wrong list": (
        lambda: join(dict(good()[0], list="allowlist"), good()[1]),
        "it holds the 'allowlist' list, not the blocklist"),
    "no list": (
        lambda: join({k: v for k, v in good()[0].items() if k != "list"},
                     good()[1]),
        "it holds the None list, not the blocklist"),
    "a flipped bit": (flipped, "its checksum does not match its contents"),
    "no checksum": (
        lambda: join({k: v for k, v in good()[0].items() if k != "crc32"},
                     good()[1], crc=False),
        "its checksum does not match its contents"),
    "cut short, checksum unchanged": (
        lambda: _snapshot.render("blocklist", PIN_DIR, ledger())[:-5],
        "its checksum does not match its contents"),
    "cut short in v6": (lambda: join(good()[0], good()[1][:-5]),
                        "it is cut short in block_v6"),
    "cut short in v4": (lambda: join(good()[0], good()[1][:100]),
                        "it is cut short in block_v4"),
    "trailing bytes": (lambda: join(good()[0], good()[1] + b"xyz"),
                       "3 bytes follow the last row"),
    "a v4 prefix longer than 32": (
        bad_prefix, "a block_v4 key has prefix length 33"),
    "a v6 prefix longer than 128": (
        bad_v6_prefix, "a block_v6 key has prefix length 129"),
    "another key size": (lambda: with_maps(key_size=12),
                         "block_v4 rows of another layout"),
    "another value size": (lambda: with_maps(value_size=24),
                           "block_v4 rows of another layout"),
    "no maps": (
        lambda: join({k: v for k, v in good()[0].items() if k != "maps"},
                     good()[1]),
        "its header is incomplete: 'maps'"),
    "a count that is not a number": (
        lambda: with_maps(count="many"),
        "its header is incomplete: invalid literal for int() with base "
        "10: 'many'"),
    "a map without a key size": (
        lambda: join(dict(good()[0], maps=[dict(name="block_v4",
                                                value_size=16, count=5)]),
                     good()[1]),
        "its header is incomplete: 'key_size'"),
    "an owner tag that is not hex": (
        lambda: join(dict(good()[0], owners={"feed-a": "feedA"}),
                     good()[1]),
        "its header is incomplete: invalid literal for int() with base "
        "16: 'feed-a'"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_file_is_refused_naming_the_file_and_the_cause(
        tmp_path: Path, damage: str) -> None:
    make, cause = DAMAGE[damage]
    path = tmp_path / "blocklist.list"
    data = make()
    path.write_bytes(data)
    with pytest.raises(_snapshot.Damaged) as err:
        _snapshot.load(str(path), "blocklist", PIN_DIR)
    assert str(err.value) == "The saved list %s is damaged (%s)." % (
        path, cause)
    assert path.read_bytes() == data            # looked at, not touched


MALFORMED = {
    "no expiry offset": dict(wall_minus_boot_ns=None),
    "an expiry offset that is not a number": dict(wall_minus_boot_ns="soon"),
    "owners as a list": dict(owners=["feedA"]),
    "maps as a mapping": dict(maps={"block_v4": {}}),
    "maps as lists": dict(maps=[["block_v4", 8, 16, 5]]),
}


@pytest.mark.parametrize("malformed", list(MALFORMED))
def test_a_malformed_header_from_another_boot_is_damage_not_a_crash(
        malformed: str) -> None:
    header, body = good()
    header.update(MALFORMED[malformed], boot_id="another boot")
    header = dict((k, v) for k, v in header.items() if v is not None)
    with pytest.raises(_snapshot.Damaged) as err:
        parse(join(header, body))
    assert str(err.value).startswith(
        "The saved list /state/lists/blocklist.list is damaged (its header "
        "is incomplete: ")


def test_a_file_of_another_pin_dir_is_refused_but_not_damaged() -> None:
    """Another pin directory's list is not set aside as damaged: it is
    some other deployment's state of record."""
    data = _snapshot.render("blocklist", "/sys/fs/bpf/other", ledger())
    with pytest.raises(FastpathError) as err:
        parse(data, path="/state/blocklist.list")
    assert not isinstance(err.value, _snapshot.Damaged)
    assert str(err.value) == (
        "The saved list /state/blocklist.list belongs to the maps pinned "
        "under /sys/fs/bpf/other, not %s: give each pin directory its own "
        "state_dir." % PIN_DIR)


# format /1


def version_1(rows: list[dict[bytes, bytes]],
              wall_minus_boot: int = WALL_MINUS_BOOT) -> bytes:
    """A file as format /1 wrote it: one row per key, the values the tries
    held, no checksum, no pin directory, no boot id."""
    maps, body = [], b""
    for (name, ksize), trie in zip(_snapshot.layouts("blocklist"), rows,
                                   strict=True):
        keys = sorted(trie)
        maps.append(dict(name=name, key_size=ksize, value_size=16,
                         count=len(keys)))
        body += b"".join(keys) + b"".join(trie[k] for k in keys)
    header = dict(format="vos-fastpath-list/1", list="blocklist",
                  wall_minus_boot_ns=wall_minus_boot, maps=maps)
    return json.dumps(header, sort_keys=True).encode() + b"\n" + body


def test_a_format_1_file_is_read_one_owner_per_row() -> None:
    back = parse(version_1([{K1: entry(), K2: entry(NOW, B),
                             K3: entry(0, B)},
                            {K6: entry(NOW + SEC)}]))
    assert claims(back) == [{A: ({K1}, {}), B: ({K3}, {K2: NOW})},
                            {A: (set(), {K6: NOW + SEC})}]
    assert back.names == {}


def test_a_format_1_file_has_its_expiry_moved_by_the_clocks() -> None:
    """Format /1 has no boot id: its offset always counts."""
    back = parse(version_1([{K2: entry(NOW)}, {}],
                           wall_minus_boot=WALL_MINUS_BOOT - 30 * SEC))
    assert claims(back)[0] == {A: (set(), {K2: NOW - 30 * SEC})}


def test_a_damaged_format_1_file_is_refused() -> None:
    data = version_1([{K1: entry()}, {K6: entry()}])
    with pytest.raises(_snapshot.Damaged) as err:
        parse(data[:-3])
    assert "it is cut short in block_v6" in str(err.value)


# expiry across a reboot


def saved_in_another_boot(down: int) -> bytes:
    """The file as the previous boot wrote it; since then the host was
    down for `down` ns, so this boot's clock lags the wall clock by that
    much more."""
    header, body = good()
    header.update(boot_id="previous boot",
                  wall_minus_boot_ns=WALL_MINUS_BOOT - down)
    return join(header, body)


def test_a_file_of_another_boot_has_its_expiries_shifted() -> None:
    back = parse(saved_in_another_boot(120 * SEC))
    saved = ledger()
    saved.shift(-120 * SEC)
    assert claims(back) == claims(saved)
    assert claims(back)[0][A] == ({K1}, {K2: NOW - 60 * SEC})


def test_a_file_of_this_boot_is_not_shifted_when_the_wall_clock_moved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = _snapshot.render("blocklist", PIN_DIR, ledger())
    monkeypatch.setattr(_snapshot, "wall_minus_boot_ns",
                        lambda: WALL_MINUS_BOOT + 3600 * SEC)   # NTP step
    assert claims(parse(data)) == claims(ledger())


# files: save, load, set aside


def test_save_makes_a_private_directory_and_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lists" / "blocklist.list"
    data = _snapshot.render("blocklist", PIN_DIR, ledger())
    _snapshot.save(str(path), data)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert os.listdir(path.parent) == ["blocklist.list"]
    loaded = _snapshot.load(str(path), "blocklist", PIN_DIR)
    assert loaded is not None and claims(loaded) == claims(ledger())


def test_load_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert _snapshot.load(str(tmp_path / "none.list"), "blocklist",
                          PIN_DIR) is None


def test_load_of_a_directory_says_it_could_not_read(tmp_path: Path) -> None:
    with pytest.raises(FastpathError) as err:
        _snapshot.load(str(tmp_path), "blocklist", PIN_DIR)
    assert not isinstance(err.value, _snapshot.Damaged)
    assert str(err.value) == ("Could not read the saved list %s (Is a "
                              "directory)." % tmp_path)


def test_set_aside_keeps_the_damaged_file_for_a_post_mortem(
        tmp_path: Path) -> None:
    path = tmp_path / "blocklist.list"
    path.write_bytes(b"garbage")
    aside = _snapshot.set_aside(str(path))
    assert not path.exists()
    assert aside.startswith(str(path) + ".damaged-")
    assert Path(aside).read_bytes() == b"garbage"


# restore


class FakeTrie:
    """What restore uses of _bpf.Map: a dict of raw keys and values."""

    def __init__(self, name: str, key_size: int,
                 contents: dict[bytes, bytes] | None = None) -> None:
        self.name = name
        self.key_size = key_size
        self.value_size = 16
        self.contents = dict(contents or {})
        self.updates = 0

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes]:
        keys = sorted(self.contents)
        return b"".join(keys), b"".join(self.contents[k] for k in keys)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        self.updates += 1
        count = len(keys) // self.key_size
        assert len(values) == count * self.value_size
        for i in range(count):
            self.contents[keys[i * self.key_size:(i + 1) * self.key_size]] \
                = values[i * self.value_size:(i + 1) * self.value_size]


def pair(v4: dict[bytes, bytes] | None = None) -> list[FakeTrie]:
    return [FakeTrie("block_v4", 8, v4), FakeTrie("block_v6", 20)]


def fields(trie: FakeTrie) -> dict[bytes, tuple[int, int]]:
    return dict((k, _lists.entry_fields(v))
                for k, v in trie.contents.items())


def test_restore_fills_empty_tries_with_the_fold_of_live_claims() -> None:
    tries = pair()
    saved = ledger()
    report = _snapshot.restore(saved, tries, NOW + 60 * SEC)
    # A's claim on K2 has expired; B's keeps it.
    assert report == dict(restored=4, expired=1, kept=0)
    assert fields(tries[0]) == {K1: (0, min(A, B)),
                                K2: (NOW + 600 * SEC, B),
                                K3: (NOW + 600 * SEC, B)}
    assert fields(tries[1]) == {K6: (0, B)}
    assert [t.updates for t in tries] == [1, 1]


def test_restore_after_every_claim_expired_writes_nothing() -> None:
    tries = pair()
    saved = _ledger.Ledger()
    _ledger.change(saved, A, [{K1, K2}, set()], "present", NOW)
    assert _snapshot.restore(saved, tries, NOW) == dict(
        restored=0, expired=2, kept=0)
    assert [t.updates for t in tries] == [0, 0]


def test_restore_leaves_a_trie_that_holds_entries() -> None:
    live = {key("192.0.2.1"): entry(), key("192.0.2.2"): entry(0, B)}
    tries = pair(live)
    report = _snapshot.restore(ledger(), tries, NOW)
    assert report == dict(restored=1, expired=0, kept=2)
    assert tries[0].contents == live and tries[0].updates == 0
    assert fields(tries[1]) == {K6: (0, B)}
    # Again: both hold entries now, nothing is written.
    again = _snapshot.restore(ledger(), tries, NOW)
    assert again == dict(restored=0, expired=0, kept=3)
    assert [t.updates for t in tries] == [0, 1]


def test_restore_without_write_only_counts() -> None:
    tries = pair()
    report = _snapshot.restore(ledger(), tries, NOW, write=False)
    assert report == dict(restored=4, expired=0, kept=0)
    assert [t.contents for t in tries] == [{}, {}]


def test_a_file_restored_after_a_reboot_counts_down_the_rest_of_its_ttl(
        tmp_path: Path) -> None:
    path = tmp_path / "blocklist.list"
    path.write_bytes(saved_in_another_boot(120 * SEC))
    loaded = _snapshot.load(str(path), "blocklist", PIN_DIR)
    assert loaded is not None
    tries = pair()
    report = _snapshot.restore(loaded, tries, NOW)
    # A's K2 claim had 60 s left at the reboot: it lapsed while down.
    assert report == dict(restored=4, expired=1, kept=0)
    assert fields(tries[0])[K2] == (NOW + 480 * SEC, B)
