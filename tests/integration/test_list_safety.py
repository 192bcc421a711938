"""bpf_map_entry keeping a list safe on the real kernel: two syncs at once,
a run that waits for the lock and gives up, kill -9 in the middle of a
million-entry sync, owners sharing keys, a damaged saved file, bad input
and a state directory that another user can write.

The module runs as its own process (python -m, with the arguments file
Ansible would hand it), so that two runs can start together and one can be
killed; the kernel's tries are read back directly, and the saved file with
_snapshot.load."""

from __future__ import annotations

import array
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _abi, _lists, _snapshot
from plugins.module_utils._split_list import SplitList
from tests.trie_entries import open_list

REPO = Path(__file__).resolve().parents[2]
MODULE = "ansible_collections.vos.fastpath.plugins.modules.bpf_map_entry"
NOBODY = 65534
V4_HOST = struct.pack("=I", 32)
# 100.64.0.0/10: room for the 1,500,000 distinct addresses of the big lists.
BIG_BASE = 0x64400000
MILLION = 1_000_000
SYNC_SIZE = 200_000
# A run of the module, or the wait for the moment to kill one, takes at
# most this long.
RUN_SECONDS = 120

Kernel = list[dict[bytes, bytes]]


# -- running the module -----------------------------------------------------

def start(pin_dir: Path, workdir: Path, **args: Any) -> subprocess.Popen:
    """The module as its own process, with the arguments file Ansible
    writes; the state directory is workdir/state unless given."""
    args.setdefault("map", "blocklist")
    args["pin_dir"] = str(pin_dir)
    args.setdefault("state_dir", str(workdir / "state"))
    fd, name = tempfile.mkstemp(prefix="args-", suffix=".json",
                                dir=str(workdir))
    with os.fdopen(fd, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"),
               LANG="C")
    return subprocess.Popen([sys.executable, "-m", MODULE, name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(workdir), env=env)


def finish(proc: subprocess.Popen) -> dict[str, Any]:
    """The module's result; a crash (a traceback) is a failure whose msg
    is what it printed, as Ansible reports a MODULE FAILURE."""
    out, err = proc.communicate(timeout=RUN_SECONDS)
    try:
        return json.loads(out.decode())
    except ValueError:
        return dict(failed=True, rc=proc.returncode,
                    msg=(out + err).decode("utf-8", "replace"))


def run(pin_dir: Path, workdir: Path, **args: Any) -> dict[str, Any]:
    return finish(start(pin_dir, workdir, **args))


def succeeded(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("failed"), result.get("msg")
    return result


def one_sentence(result: dict[str, Any], named: Path | None = None) -> str:
    """The failure's message, checked to be one line of under 300
    characters (besides the path it names, which it must name)."""
    assert result.get("failed") is True, result
    msg = result["msg"]
    assert isinstance(msg, str) and msg.endswith("."), msg[:500]
    assert "\n" not in msg and "Traceback" not in msg, msg[:500]
    rest = msg
    if named is not None:
        assert str(named) in msg, msg[:500]
        rest = msg.replace(str(named), "")
    assert len(rest) < 300, "%d characters: %s..." % (len(rest), msg[:500])
    return msg


# -- the kernel and the saved file --------------------------------------------

def kernel(pin_dir: Path, kind: str = "block") -> Kernel:
    """Both tries of a list as {key: raw fp_entry}, v4 first."""
    out = []
    for family in ("v4", "v6"):
        with open_list(pin_dir, kind + "_" + family) as m:
            keys, values = m.lookup_batch(chunk=65536)
            ks, vs = m.key_size, m.full_value_size
        out.append(dict(zip(
            (keys[i:i + ks] for i in range(0, len(keys), ks)),
            (values[i:i + vs] for i in range(0, len(values), vs)),
            strict=True)))
    return out


def saved_path(workdir: Path, kind: str = "block") -> Path:
    return workdir / "state" / "lists" / (kind + "list.list")


def saved(pin_dir: Path, workdir: Path, kind: str = "block") -> Kernel:
    """The saved file folded into what the tries must hold."""
    path = saved_path(workdir, kind)
    assert path.exists(), "no saved list at %s" % path
    ledger = _snapshot.load(str(path), kind + "list", str(pin_dir))
    return [dict(zip(*ledger.target(family).rows(), strict=True))
            for family in (0, 1)]


def everything(pin_dir: Path, workdir: Path) -> tuple:
    """What a run could change: both lists in the kernel, and the files of
    the state directory with their bytes."""
    lists = workdir / "state" / "lists"
    files = dict((p.name, p.read_bytes()) for p in sorted(lists.iterdir())
                 ) if lists.is_dir() else {}
    return kernel(pin_dir), kernel(pin_dir, "allow"), files


def text(key: bytes) -> str:
    return _lists.key_text(key)


def v4_key(address: str) -> bytes:
    return V4_HOST + socket.inet_aton(address)


def permanent(owner: str) -> bytes:
    return _abi.ENTRY.pack(0, _lists.source_tag(owner), 0)


# -- big lists, written fast --------------------------------------------------

_TAILS = ["%d.%d" % (c, d) for c in range(256) for d in range(256)]


def v4_keys(first: int, count: int) -> bytes:
    """The trie keys of `count` consecutive IPv4 addresses from `first` (an
    int), back to back: prefix length 32 in host order, then the address in
    network order."""
    addresses = array.array("I", range(first, first + count))
    if sys.byteorder == "little":
        addresses.byteswap()
    keys = array.array("I", [32]) * (2 * count)
    keys[1::2] = addresses
    return keys.tobytes()


def v4_ids(keys: bytes) -> set[int]:
    """IPv4 trie keys (8 bytes each, back to back) as a set of ints: a
    million of them in a fraction of a second."""
    return set(memoryview(keys).cast("Q"))


def write_range(path: Path, first: int, count: int) -> set[int]:
    """A list file of `count` consecutive IPv4 addresses from `first`, one
    per line; returns their keys as v4_ids."""
    parts = []
    address, end = first, first + count
    while address < end:
        block, offset = divmod(address, 65536)
        stop = min(65536, offset + end - address)
        prefix = "%d.%d." % (block >> 8, block & 255)
        parts.append(prefix + ("\n" + prefix).join(_TAILS[offset:stop])
                     + "\n")
        address += stop - offset
    path.write_text("".join(parts))
    return v4_ids(v4_keys(first, count))


class BigLists:
    """Two lists of a million addresses that share half of them, and 64
    keys of each that the other lacks (to see a sync between them start)."""

    def __init__(self, directory: Path) -> None:
        self.a_path = directory / "a.txt"
        self.b_path = directory / "b.txt"
        self.a = write_range(self.a_path, BIG_BASE, MILLION)
        self.b = write_range(self.b_path, BIG_BASE + MILLION // 2, MILLION)
        self.shared = self.a & self.b
        self.either = self.a | self.b
        sampler = random.Random(0)
        half = range(MILLION // 2)
        self.a_only = [v4_keys(BIG_BASE + i, 1)
                       for i in sampler.sample(half, 64)]
        self.b_only = [v4_keys(BIG_BASE + MILLION + i, 1)
                       for i in sampler.sample(half, 64)]

    def other(self, keys: set[int]) -> tuple[set[int], Path, list[bytes],
                                             list[bytes]]:
        """The list a sync from `keys` (one of the two) goes to: its keys,
        its file, and samples of the keys it adds and of those it
        removes."""
        if keys == self.a:
            return self.b, self.b_path, self.b_only, self.a_only
        return self.a, self.a_path, self.a_only, self.b_only


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigLists:
    return BigLists(tmp_path_factory.mktemp("big"))


def feed_in_kernel(pin_dir: Path) -> set[int]:
    """The blocklist's keys, checked to be all the feed's and permanent
    (a million entries read without one dict entry each)."""
    with open_list(pin_dir, "block_v6") as m:
        assert m.lookup_batch()[0] == b""
    with open_list(pin_dir, "block_v4") as m:
        keys, values = m.lookup_batch(chunk=65536)
    assert values == permanent("feed") * (len(keys) // 8)
    return v4_ids(keys)


def feed_in_file(pin_dir: Path, workdir: Path) -> set[int]:
    """The saved file folded into what the tries must hold, checked to be
    the feed's permanent entries only: their keys."""
    ledger = _snapshot.load(str(saved_path(workdir)), "blocklist",
                            str(pin_dir))
    target = ledger.target(0)
    assert list(target.groups) == [_lists.source_tag("feed")]
    assert not target.expiring and not len(ledger.target(1))
    return v4_ids(b"".join(target.permanent))


# -- 1. two syncs at once -----------------------------------------------------

def test_two_exact_syncs_at_once_leave_one_list_whole(
        maps: Path, tmp_path: Path) -> None:
    first = write_range(tmp_path / "first.txt", BIG_BASE, 1000)
    succeeded(run(maps, tmp_path, src=[str(tmp_path / "first.txt")],
                  state="exact", source="feed"))
    assert feed_in_kernel(maps) == first
    one = write_range(tmp_path / "one.txt", BIG_BASE + 10_000, SYNC_SIZE)
    two = write_range(tmp_path / "two.txt",
                      BIG_BASE + 10_000 + SYNC_SIZE // 2, SYNC_SIZE)
    procs = [start(maps, tmp_path, src=[str(tmp_path / name)],
                   state="exact", source="feed")
             for name in ("one.txt", "two.txt")]
    results = [finish(proc) for proc in procs]
    for result in results:
        if result.get("failed"):
            assert "Another run is changing the same thing" in \
                one_sentence(result)
    assert any(not r.get("failed") for r in results), results
    have = feed_in_kernel(maps)
    assert have in (one, two), (
        "the kernel holds %d entries: %d of the first list, %d of the "
        "second (each has %d)" % (len(have), len(have & one),
                                  len(have & two), SYNC_SIZE))
    assert kernel(maps) == saved(maps, tmp_path)


# -- 2. waiting for the lock --------------------------------------------------

def test_a_run_that_cannot_get_the_lock_names_the_holder_and_changes_nothing(
        maps: Path, tmp_path: Path) -> None:
    # Imported here, so that the other tests of this file also run against
    # code that has no lock (to see them fail there).
    from plugins.module_utils import _lock

    succeeded(run(maps, tmp_path, entries=["203.0.113.1"], source="feed"))
    before = everything(maps, tmp_path)
    holding = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with _lock.hold(_lock.list_key(str(maps), "blocklist"), 0,
                        "the test's own sync of the blocklist"):
            holding.set()
            done.wait(RUN_SECONDS)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        result = run(maps, tmp_path, entries=["203.0.113.2"],
                     state="exact", source="feed", lock_timeout=1)
        waited = time.monotonic() - started
    finally:
        done.set()
        holder.join()
    msg = one_sentence(result)
    assert msg.startswith("Another run is changing the same thing"), msg
    assert "held by pid %d, the test's own sync of the blocklist" % (
        os.getpid()) in msg
    assert "lock_timeout" in msg
    assert waited >= 1
    assert everything(maps, tmp_path) == before


# -- 3. kill -9 in the middle of a million-entry sync -------------------------

class Sync:
    """An exact sync of the feed from one big list to the other, started
    as its own process, and what the kill points watch."""

    def __init__(self, pin_dir: Path, workdir: Path, path: Path,
                 trie: SplitList, coming: list[bytes],
                 going: list[bytes]) -> None:
        self.saved = saved_path(workdir)
        self.marker = Path(str(self.saved) + ".applying")
        self.inode = self.file_id()
        self.trie, self.coming, self.going = trie, coming, going
        self.started = time.monotonic()
        self.proc = start(pin_dir, workdir, src=[str(path)], state="exact",
                          source="feed")

    def kill_when(self, ready: Callable[[Sync], bool]) -> None:
        """SIGKILL as soon as ready(self), polled every millisecond, says
        so."""
        deadline = time.monotonic() + RUN_SECONDS
        while self.proc.poll() is None and time.monotonic() < deadline:
            if ready(self):
                break
            time.sleep(0.001)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=RUN_SECONDS)

    def age(self) -> float:
        return time.monotonic() - self.started

    def maps_changed(self) -> bool:
        """One of the sampled keys the sync adds is in the trie, or one it
        removes is gone. A batch call is not interrupted: the kill lands
        as the first one that changes the trie returns."""
        return any(self.trie.lookup(k) is not None for k in self.coming) \
            or any(self.trie.lookup(k) is None for k in self.going)

    def file_written(self) -> bool:
        """The temporary file that becomes the saved list exists."""
        return any(not name.startswith(self.marker.name) for name in (
            p.name[1:] for p in self.saved.parent.glob(
                ".%s.*.tmp" % self.saved.name)))

    def file_id(self) -> int | None:
        try:
            return self.saved.stat().st_ino
        except FileNotFoundError:
            return None

    def file_replaced(self) -> bool:
        return self.file_id() not in (self.inode, None)


# When the sync is killed, and whether the run after it is the same task
# (else a run of another owner that lists nothing). The first four are
# phases of the run, the last two land while it still reads its input.
KILL_POINTS: list[tuple[str, Callable[[Sync], bool], bool]] = [
    ("as soon as the maps change", Sync.maps_changed, True),
    ("right after the marker appears", lambda s: s.marker.exists(), False),
    ("while the saved file is written", Sync.file_written, True),
    ("right after the saved file is replaced", Sync.file_replaced, False),
    ("0.5 s after the start", lambda s: s.age() >= 0.5, False),
    ("1.5 s after the start", lambda s: s.age() >= 1.5, False),
]


def test_kill_9_at_any_point_of_a_million_entry_sync_loses_nothing_listed(
        maps: Path, tmp_path: Path, big: BigLists) -> None:
    succeeded(run(maps, tmp_path, src=[str(big.a_path)], state="exact",
                  source="feed"))
    current = big.a
    with open_list(maps, "block_v4") as trie:
        for point, ready, same_task in KILL_POINTS:
            point = "killed " + point
            target, path, coming, going = big.other(current)
            sync = Sync(maps, tmp_path, path, trie, coming, going)
            sync.kill_when(ready)
            assert sync.proc.returncode == -signal.SIGKILL, (
                "the sync ended before it could be %s" % point)
            left = sync.marker.exists()

            keys = feed_in_kernel(maps)
            assert big.shared <= keys, "%s: %d entries both lists hold " \
                "were removed" % (point, len(big.shared - keys))
            assert current <= keys or target <= keys, (
                "%s: the kernel holds neither list whole (%d entries of the "
                "old, %d of the new)" % (point, len(keys & current),
                                         len(keys & target)))
            assert keys <= big.either, point
            assert feed_in_file(maps, tmp_path) in (current, target), point

            if same_task:
                result = run(maps, tmp_path, src=[str(path)],
                             state="exact", source="feed")
            else:
                result = run(maps, tmp_path, source="manual")
            succeeded(result)
            assert result["recovered"] is left, point
            assert not sync.marker.exists(), point
            current = feed_in_kernel(maps)
            assert current == feed_in_file(maps, tmp_path), point
            assert current in (big.a, big.b), point


# -- 4. owners sharing keys ---------------------------------------------------

def test_owners_sharing_an_entry_each_keep_their_own_claim(
        maps: Path, tmp_path: Path) -> None:
    shared = v4_key("203.0.113.1")
    succeeded(run(maps, tmp_path, entries=["203.0.113.1", "203.0.113.2"],
                  source="feedA"))
    succeeded(run(maps, tmp_path, entries=["203.0.113.1", "203.0.113.3"],
                  source="feedB"))
    succeeded(run(maps, tmp_path, entries=["203.0.113.2"], state="exact",
                  source="feedA"))
    assert {text(k) for k in kernel(maps)[0]} == {
        "203.0.113.1/32", "203.0.113.2/32", "203.0.113.3/32"}

    succeeded(run(maps, tmp_path, entries=["203.0.113.1"], ttl=60,
                  source="manual"))
    expires, _tag = _lists.entry_fields(kernel(maps)[0][shared])
    assert expires == 0, "feedB's permanent claim was cut to manual's ttl"

    # With feedB's claim gone, manual's ttl is the one left.
    before = _lists.boot_ns()
    succeeded(run(maps, tmp_path, entries=["203.0.113.3"], state="exact",
                  source="feedB"))
    expires, tag = _lists.entry_fields(kernel(maps)[0][shared])
    assert tag == _lists.source_tag("manual")
    assert before < expires <= _lists.boot_ns() + 60 * 10**9

    succeeded(run(maps, tmp_path, entries=["203.0.113.1"], state="absent",
                  source="feedA"))
    assert shared not in kernel(maps)[0]
    ledger = _snapshot.load(str(saved_path(tmp_path)), "blocklist",
                            str(maps))
    assert not [tag for tag, claims in ledger.families[0].items()
                if shared in claims]
    succeeded(run(maps, tmp_path, source="manual"))
    assert {text(k) for k in kernel(maps)[0]} == {
        "203.0.113.2/32", "203.0.113.3/32"}
    assert kernel(maps) == saved(maps, tmp_path)


# -- 5. a damaged saved file --------------------------------------------------

def test_a_damaged_saved_file_fails_the_run_until_restore_sets_it_aside(
        maps: Path, tmp_path: Path) -> None:
    write_range(tmp_path / "feed.txt", 0xC6120000, 10_000)
    succeeded(run(maps, tmp_path, src=[str(tmp_path / "feed.txt")],
                  state="exact", source="feed"))
    path = saved_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = kernel(maps)

    msg = one_sentence(run(maps, tmp_path, entries=["192.0.2.77"],
                           source="manual"), path)
    assert "Nothing was changed" in msg, msg
    assert kernel(maps) == before and path.read_bytes() == data
    assert sorted(os.listdir(path.parent)) == [path.name]

    restored = succeeded(run(maps, tmp_path, source="manual", restore=True))
    aside = Path(restored["set_aside"])
    assert aside.parent == path.parent and aside.read_bytes() == data
    # Ansible 2.19 returns each warning as a structure that holds its msg.
    assert str(aside) in json.dumps(restored.get("warnings")), restored
    assert kernel(maps) == before == saved(maps, tmp_path)

    again = succeeded(run(maps, tmp_path, entries=["192.0.2.77"],
                          source="manual"))
    assert again["added"] == 1
    have = kernel(maps)
    assert len(have[0]) == 10_001 and have == saved(maps, tmp_path)


# -- 6. bad input -------------------------------------------------------------

def binary_file(workdir: Path) -> dict[str, Any]:
    path = workdir / "binary.txt"
    noise = bytearray(random.Random(1).randbytes(65536))
    noise[100:104] = b"\0\0\0\0"
    path.write_bytes(b"203.0.113.8\n" + bytes(noise))
    return dict(src=[str(path)])


def long_line(workdir: Path) -> dict[str, Any]:
    path = workdir / "long.txt"
    path.write_bytes(b"203.0.113.8\n" + b"203.0.113.9" * (1 << 20) + b"\n")
    return dict(src=[str(path)])


REFUSED: dict[str, Any] = {
    "::/0 blocked": dict(entries=["::/0"]),
    "0.0.0.0/0 blocked": dict(entries=["0.0.0.0/0"]),
    "::/0 trusted": dict(map="allowlist", entries=["::/0"]),
    "0.0.0.0/0 trusted": dict(map="allowlist", entries=["0.0.0.0/0"]),
    "ttl abc": dict(entries=["203.0.113.8"], ttl="abc"),
    "ttl 1y": dict(entries=["203.0.113.8"], ttl="1y"),
    "ttl 10**30": dict(entries=["203.0.113.8"], ttl=10**30),
    "ttl of 31 digits": dict(entries=["203.0.113.8"], ttl=str(10**30)),
    "arabic-indic prefix": dict(entries=["203.0.113.0/\u0662\u0664"]),
    "empty source": dict(entries=["203.0.113.8"], source=""),
    "binary src": binary_file,
    "10 MB line": long_line,
}


@pytest.fixture
def seeded(maps: Path, tmp_path: Path) -> tuple:
    """Both lists holding something; everything() then."""
    succeeded(run(maps, tmp_path, entries=["203.0.113.5", "2001:db8::5"],
                  source="feed"))
    succeeded(run(maps, tmp_path, map="allowlist", entries=["192.0.2.20"],
                  source="monitoring"))
    return everything(maps, tmp_path)


@pytest.mark.parametrize("case", REFUSED.values(), ids=list(REFUSED))
def test_bad_input_is_refused_in_one_sentence_and_changes_nothing(
        maps: Path, tmp_path: Path, seeded: tuple, case: Any) -> None:
    args = case(tmp_path) if callable(case) else dict(case)
    args.setdefault("state", "exact")
    args.setdefault("source", "feed" if args.get("map") != "allowlist"
                    else "monitoring")
    one_sentence(run(maps, tmp_path, **args))
    assert everything(maps, tmp_path) == seeded


def test_min_prefix_v4_0_allows_the_whole_internet_on_purpose(
        maps: Path, tmp_path: Path) -> None:
    succeeded(run(maps, tmp_path, entries=["0.0.0.0/0"], min_prefix_v4=0))
    assert {text(k) for k in kernel(maps)[0]} == {"0.0.0.0/0"}


def test_an_ipv4_mapped_address_is_blocked_as_ipv4(
        maps: Path, tmp_path: Path) -> None:
    succeeded(run(maps, tmp_path, entries=["::ffff:198.51.100.66"]))
    v4, v6 = kernel(maps)
    assert ({text(k) for k in v4}, v6) == ({"198.51.100.66/32"}, {})


def test_a_ttl_with_a_unit_expires_that_long_ahead(
        maps: Path, tmp_path: Path) -> None:
    before = _lists.boot_ns()
    succeeded(run(maps, tmp_path, entries=["203.0.113.8"], ttl="1h",
                  source="manual"))
    expires, _tag = _lists.entry_fields(
        kernel(maps)[0][v4_key("203.0.113.8")])
    assert before + 3600 * 10**9 <= expires <= _lists.boot_ns() + \
        3600 * 10**9


# -- 7. a state directory another user can write ------------------------------

@pytest.mark.parametrize("hijacked", ["state", "state/lists"])
def test_a_state_dir_another_user_can_write_is_refused(
        maps: Path, tmp_path: Path, hijacked: str) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    directory = tmp_path / hijacked
    directory.mkdir(exist_ok=True)
    os.chown(directory, NOBODY, NOBODY)
    os.chmod(directory, 0o777)
    one_sentence(run(maps, tmp_path, entries=["203.0.113.9"],
                     source="manual"), directory)
    assert kernel(maps) == [{}, {}]
    assert [p for p in (tmp_path / "state").rglob("*") if not p.is_dir()] \
        == []
