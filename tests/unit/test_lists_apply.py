"""Planning and applying a trie's changes, and putting back exactly what
was done when the kernel refuses part way: a failure is injected at every
element of every call, and the undo checked after each."""

from __future__ import annotations

import errno

import pytest

from plugins.module_utils import _abi, _ledger, _lists, _trie_change
from plugins.module_utils._split_list import SplitList

SEC = 10**9
NOW = 5000 * SEC
A = _lists.source_tag("feedA")
B = _lists.source_tag("feedB")
FOREIGN = _lists.source_tag("another tool")


class KernelError(OSError):
    """What _bpf.BpfError is to the code under test: `done` is how many
    leading elements of a batch call were handled."""

    def __init__(self, code: int, done: int = 0) -> None:
        OSError.__init__(self, code, "injected %s" % errno.errorcode[code])
        self.done = done


class FakeTrie:
    """An LPM trie as the kernel keeps it, in a dict. Batch calls handle
    their elements in order and stop at the first failure, saying how many
    they handled; delete_batch goes on past a key that is already gone,
    as _bpf.Map.delete_batch does. fail() makes the Nth element (counted
    across calls) of the named operations fail once."""

    name = "block_v4"
    key_size = 8
    value_size = 16

    def __init__(self, entries: dict[bytes, bytes],
                 max_entries: int = 64) -> None:
        self.entries = dict(entries)
        self.max_entries = max_entries
        self.calls: list[tuple[str, list[bytes]]] = []
        self.faults: list[list] = []        # [operations, elements left]

    def fail(self, at: int, *operations: str) -> None:
        self.faults.append([set(operations), at])

    def _step(self, operation: str, done: int) -> None:
        for fault in self.faults:
            if operation not in fault[0]:
                continue
            if fault[1] == 0:
                self.faults.remove(fault)
                raise KernelError(errno.EIO, done)
            fault[1] -= 1

    def _split(self, data: bytes, size: int) -> list[bytes]:
        return [data[i:i + size] for i in range(0, len(data), size)]

    def _put(self, key: bytes, value: bytes, done: int) -> None:
        if key not in self.entries and \
                len(self.entries) >= self.max_entries:
            raise KernelError(errno.ENOSPC, done)
        self.entries[key] = value

    def update_batch(self, keys: bytes, values: bytes) -> None:
        keys_ = self._split(keys, self.key_size)
        values_ = self._split(values, self.value_size)
        self.calls.append(("update_batch", keys_))
        for done, (key, value) in enumerate(zip(keys_, values_, strict=True)):
            self._step("update_batch", done)
            self._put(key, value, done)

    def delete_batch(self, keys: bytes) -> int:
        keys_ = self._split(keys, self.key_size)
        self.calls.append(("delete_batch", keys_))
        deleted = 0
        for done, key in enumerate(keys_):
            self._step("delete_batch", done)
            if self.entries.pop(key, None) is not None:
                deleted += 1
        return deleted

    def update(self, key: bytes, value: bytes) -> None:
        self.calls.append(("update", [key]))
        self._step("update", 0)
        self._put(key, value, 0)

    def delete(self, key: bytes) -> bool:
        self.calls.append(("delete", [key]))
        self._step("delete", 0)
        return self.entries.pop(key, None) is not None

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes]:
        keys = sorted(self.entries)
        return b"".join(keys), b"".join(self.entries[k] for k in keys)

    def changes(self) -> list[str]:
        """The calls that changed something, as 'operation count'."""
        return ["%s %d" % (op, len(keys)) for op, keys in self.calls
                if keys]


def key(cidr: str) -> bytes:
    return _lists.parse_entry(cidr, True)[1]


def entry(expires: int = 0, tag: int = A) -> bytes:
    return _abi.ENTRY.pack(expires, tag, 0)


def read(trie: FakeTrie | SplitList) -> _lists.Entries:
    keys, values = trie.lookup_batch()
    return _lists.Entries(keys, values, trie.key_size, trie.value_size)


KEEP = key("192.0.2.1")             # A, permanent: stays as it is
TO_TTL = key("192.0.2.2")           # A, permanent -> expiring
TO_PERM = key("192.0.2.3")          # B, expiring -> A permanent
GONE_A = key("192.0.2.4")           # A: no longer claimed
GONE_B = key("192.0.2.5")           # B (expiring): no longer claimed
FOREIGN_KEPT = key("198.51.100.0/24")   # another tool's: left alone
FOREIGN_ABSENT = key("198.51.100.9")    # another tool's, but state absent
NEW = [key("203.0.113.%d" % i) for i in range(1, 5)]

ORIGINAL = {
    KEEP: entry(),
    TO_TTL: entry(),
    TO_PERM: entry(NOW, B),
    GONE_A: entry(),
    GONE_B: entry(NOW, B),
    FOREIGN_KEPT: entry(0, FOREIGN),
    FOREIGN_ABSENT: entry(0, FOREIGN),
}


def target() -> _ledger.Target:
    """A's permanent keys (two of them new), A's expiring keys (one new),
    and a new permanent key of B's."""
    ledger = _ledger.Ledger()
    _ledger.change(ledger, A, [{KEEP, TO_PERM, NEW[0], NEW[1]}, set()],
                   "present", 0)
    _ledger.change(ledger, A, [{TO_TTL, NEW[2]}, set()], "present",
                   NOW + 60 * SEC)
    _ledger.change(ledger, B, [{NEW[3]}, set()], "present", 0)
    return ledger.target(0)


def planned(trie: FakeTrie) -> _trie_change.Plan:
    """The plan, with the deletes that must make room first, as the list
    code makes it (a family without a hash: the trie alone)."""
    family = SplitList(trie, None)
    plan = _trie_change.plan_target(read(family), target(), {A, B},
                                    {FOREIGN_ABSENT})
    family.fit(plan)
    return plan


def wanted() -> dict[bytes, bytes]:
    keys, values = target().rows()
    out = dict(zip(keys, values, strict=True))
    out[FOREIGN_KEPT] = entry(0, FOREIGN)
    return out


# plan_target


def test_plan_writes_new_and_changed_keys_and_deletes_unclaimed_ones() -> None:
    plan = planned(FakeTrie(ORIGINAL))
    writes = dict(zip(plan.write_keys, plan.write_values, strict=True))
    assert writes == {NEW[0]: entry(), NEW[1]: entry(),
                      NEW[2]: entry(NOW + 60 * SEC), NEW[3]: entry(0, B),
                      TO_TTL: entry(NOW + 60 * SEC), TO_PERM: entry()}
    assert len(plan.write_keys) == len(writes)
    assert plan.new_keys == 4
    assert sorted(plan.delete) == sorted([GONE_A, GONE_B, FOREIGN_ABSENT])
    assert plan.old == {k: ORIGINAL[k] for k in (
        TO_TTL, TO_PERM, GONE_A, GONE_B, FOREIGN_ABSENT)}
    assert plan.delete_first == 0
    assert plan.size_after(len(ORIGINAL)) == len(wanted())


def test_plan_leaves_entries_of_owners_it_does_not_manage() -> None:
    trie = FakeTrie(ORIGINAL)
    plan = _trie_change.plan_target(read(trie), target(), {A}, set())
    # B is not managed here: its unclaimed key stays, its key that A now
    # claims is still written.
    assert sorted(plan.delete) == [GONE_A]
    assert TO_PERM in plan.write_keys
    assert FOREIGN_KEPT not in plan.write_keys + plan.delete


def test_plan_deletes_any_owners_key_listed_for_removal() -> None:
    trie = FakeTrie(ORIGINAL)
    plan = _trie_change.plan_target(read(trie), _ledger.Target(), set(),
                                    {FOREIGN_ABSENT, GONE_B, NEW[0]})
    assert sorted(plan.delete) == sorted([FOREIGN_ABSENT, GONE_B])
    assert plan.write_keys == []


def test_plan_of_a_trie_that_already_matches_is_empty() -> None:
    trie = FakeTrie(wanted())
    plan = planned(trie)
    assert (plan.write_keys, plan.delete, plan.old) == ([], [], {})


def test_plan_rewrites_a_foreign_entry_the_target_claims() -> None:
    trie = FakeTrie({NEW[0]: entry(0, FOREIGN)})
    plan = _trie_change.plan_target(read(trie), target(), {A, B}, set())
    assert NEW[0] in plan.write_keys
    assert plan.old[NEW[0]] == entry(0, FOREIGN)


# apply_plan


def test_apply_makes_the_trie_equal_to_the_target() -> None:
    trie = FakeTrie(ORIGINAL)
    done = _trie_change.apply_plan(trie, planned(trie))
    assert trie.entries == wanted()
    assert done.written == 6 and len(done.deleted) == 3
    again = _trie_change.plan_target(read(trie), target(), {A, B}, set())
    assert again.write_keys == []


def test_writes_go_before_deletes() -> None:
    trie = FakeTrie(ORIGINAL)
    _trie_change.apply_plan(trie, planned(trie))
    assert trie.changes() == ["update_batch 6", "delete_batch 3"]


@pytest.mark.parametrize("room, first", [(11, 0), (10, 1), (9, 2), (8, 3)])
def test_near_capacity_only_the_needed_deletes_go_first(room: int,
                                                        first: int) -> None:
    """Seven entries, four new, three to delete: the peak is eleven."""
    trie = FakeTrie(ORIGINAL, max_entries=room)
    plan = planned(trie)
    assert plan.delete_first == first
    _trie_change.apply_plan(trie, plan)
    assert trie.entries == wanted()
    expected = ["delete_batch %d" % first] if first else []
    expected += ["update_batch 6"]
    expected += ["delete_batch %d" % (3 - first)] if first < 3 else []
    assert trie.changes() == expected
    if first:
        assert trie.calls[0][1] == plan.delete[:first]


def test_a_trie_that_cannot_hold_the_writes_is_refused_by_the_fake() -> None:
    """The fake enforces max_entries, so the tests above prove the room."""
    trie = FakeTrie(ORIGINAL, max_entries=10)
    plan = planned(trie)
    plan.delete_first = 0
    with pytest.raises(_trie_change.ApplyError) as err:
        _trie_change.apply_plan(trie, plan)
    assert err.value.errno == errno.ENOSPC
    new = [i for i, k in enumerate(plan.write_keys) if k not in ORIGINAL]
    assert err.value.done.written == new[3]     # 7 + 3 new: full
    assert _trie_change.undo(trie, plan, err.value.done) == []
    assert trie.entries == ORIGINAL


def test_a_key_someone_else_deleted_counts_as_deleted() -> None:
    trie = FakeTrie(ORIGINAL)
    plan = planned(trie)
    del trie.entries[plan.delete[0]]
    done = _trie_change.apply_plan(trie, plan)
    assert done.deleted == plan.delete
    assert trie.entries == wanted()


def test_a_key_someone_else_deleted_before_a_failure_is_put_back() -> None:
    trie = FakeTrie(ORIGINAL)
    plan = planned(trie)
    del trie.entries[plan.delete[0]]
    trie.fail(2, "delete_batch")
    with pytest.raises(_trie_change.ApplyError) as err:
        _trie_change.apply_plan(trie, plan)
    assert err.value.done.deleted == plan.delete[:2]
    assert _trie_change.undo(trie, plan, err.value.done) == []
    assert trie.entries == ORIGINAL


# Fault injection at every element


def steps(room: int) -> list[tuple[str, int]]:
    """(operation, element) of every element apply_plan hands the kernel."""
    trie = FakeTrie(ORIGINAL, max_entries=room)
    _trie_change.apply_plan(trie, planned(trie))
    counted: dict[str, int] = {}
    out = []
    for op, keys in trie.calls:
        for _key in keys:
            out.append((op, counted.get(op, 0)))
            counted[op] = counted.get(op, 0) + 1
    return out


def undo_steps(trie: FakeTrie, plan: _trie_change.Plan, done: _trie_change.Done
               ) -> list[bytes]:
    """The keys undo() will put back, in its order."""
    return plan.write_keys[:done.written] + done.deleted


ROOMS = [64, 9]     # plenty; and so tight that two deletes go first
FAULTS = [(room, op, n) for room in ROOMS for op, n in steps(room)]


def failed_apply(room: int, op: str, n: int
                 ) -> tuple[FakeTrie, _trie_change.Plan, _trie_change.Done]:
    trie = FakeTrie(ORIGINAL, max_entries=room)
    plan = planned(trie)
    trie.fail(n, op)
    with pytest.raises(_trie_change.ApplyError) as err:
        _trie_change.apply_plan(trie, plan)
    assert err.value.errno == errno.EIO
    return trie, plan, err.value.done


def test_every_element_is_a_fault_point() -> None:
    assert len(steps(64)) == 9          # six writes, three deletes
    assert len(steps(9)) == 9
    assert {op for _room, op, _n in FAULTS} == {"update_batch",
                                                "delete_batch"}


@pytest.mark.parametrize("room, op, n", FAULTS)
def test_a_failure_at_any_element_is_undone_exactly(room: int, op: str,
                                                    n: int) -> None:
    trie, plan, done = failed_apply(room, op, n)
    # done says exactly what the kernel did: it is what undo puts back.
    assert len(undo_steps(trie, plan, done)) == sum(
        1 for k in set(ORIGINAL) | set(trie.entries)
        if ORIGINAL.get(k) != trie.entries.get(k))
    assert _trie_change.undo(trie, plan, done) == []
    assert trie.entries == ORIGINAL


@pytest.mark.parametrize("room, op, n", FAULTS)
def test_a_failing_undo_returns_each_failure(room: int, op: str,
                                             n: int) -> None:
    """For every failed apply, an undo that fails at each of its steps in
    turn reports that step, and puts back every other one."""
    trie, plan, done = failed_apply(room, op, n)
    undone = undo_steps(trie, plan, done)
    after = dict(trie.entries)
    for m, stuck in enumerate(undone):
        trie.entries = dict(after)
        trie.fail(m, "update", "delete")
        failed = _trie_change.undo(trie, plan, done)
        assert failed == ["%s in block_v4 (%s)" % (
            _lists.key_text(stuck), "[Errno 5] injected EIO")]
        assert trie.faults == []
        # All is back but the stuck key, left as the failed apply left it.
        expected = dict(ORIGINAL)
        expected.pop(stuck, None)
        if stuck in after:
            expected[stuck] = after[stuck]
        assert trie.entries == expected


@pytest.mark.parametrize("room, op, n", FAULTS)
def test_an_undo_that_fails_throughout_reports_every_step(
        room: int, op: str, n: int) -> None:
    trie, plan, done = failed_apply(room, op, n)
    undone = undo_steps(trie, plan, done)
    for _step in undone:
        trie.fail(0, "update", "delete")
    failed = _trie_change.undo(trie, plan, done)
    assert len(failed) == len(undone)
    assert [f.split(" in ")[0] for f in failed] == [
        _lists.key_text(k) for k in undone]
