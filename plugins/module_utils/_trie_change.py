# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Making a trie hold its target: the plan, the apply, the undo.

Private to this collection. bpf_map_entry folds the saved ledger into a
_ledger.Target per trie, compares it with what the trie holds
(_lists.Entries), and applies the difference so that a list is never
emptier than both the old and the new list at any instant: writes go
before deletes, and a failure is undone from the kernel's own count of
what it did.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import TYPE_CHECKING

from . import _abi
from ._lists import Entries, entry_fields, key_text

if TYPE_CHECKING:
    from . import _bpf, _ledger


class Plan:
    """What one trie needs to equal its Target: entries to write (new, or
    with another value), keys to delete, and what each held before (None:
    nothing), to put back on a failure."""

    def __init__(self) -> None:
        self.write_keys: list[bytes] = []
        self.write_values: list[bytes] = []
        self.delete: list[bytes] = []
        self.old: dict[bytes, bytes] = {}     # keys the trie holds
        self.new_keys = 0           # of write_keys: not in the trie yet
        self.delete_first = 0       # deletes that must make room first

    def size_after(self, current: int) -> int:
        return current + self.new_keys - len(self.delete)


def plan_target(current: Entries, target: _ledger.Target, managed: set[int],
                remove: set[bytes]) -> Plan:
    """The changes that make a trie hold `target`.

    Entries outside the target go when their owner's tag is `managed` (an
    owner of the ledger) or their key is in `remove` (state absent);
    entries that another tool wrote are left alone. The biggest group of
    the target (most of a big list) is compared with set operations only.
    """
    plan = Plan()
    have = current.keys
    big = max(target.groups, key=lambda t: len(target.groups[t]),
              default=0)
    common = _abi.ENTRY.pack(0, big, 0)
    others = current.others(common)

    def now(key: bytes) -> bytes | None:
        return others.get(key, common) if key in have else None

    def write(key: bytes, value: bytes) -> None:
        old = now(key)
        if old == value:
            return
        plan.write_keys.append(key)
        plan.write_values.append(value)
        if old is None:
            plan.new_keys += 1
        else:
            plan.old[key] = old

    for tag, group in target.groups.items():
        value = _abi.ENTRY.pack(0, tag, 0)
        if tag == big:
            missing = group - have
            plan.write_keys.extend(missing)
            plan.write_values.extend([value] * len(missing))
            plan.new_keys += len(missing)
            for key in [k for k in others if k in group]:
                write(key, value)
        else:
            for key in group:
                write(key, value)
    for key, value in target.expiring.items():
        write(key, value)
    for key in have - target.permanent:
        if key in target.expiring:
            continue
        raw = others.get(key, common)
        if key in remove or entry_fields(raw)[1] in managed:
            plan.delete.append(key)
            plan.old[key] = raw
    return plan


class Done:
    """How far an apply got: the leading write_keys written, and the keys
    deleted (a key already gone counts as deleted)."""

    def __init__(self) -> None:
        self.written = 0
        self.deleted: list[bytes] = []


class ApplyError(OSError):
    """An apply that stopped part way; `done` says how far it got."""

    def __init__(self, cause: OSError, done: Done) -> None:
        OSError.__init__(self, cause.errno, str(cause))
        self.done = done


def _delete(trie: _bpf.Map, keys: list[bytes], done: Done) -> None:
    try:
        trie.delete_batch(b"".join(keys))
    except OSError as e:
        done.deleted.extend(keys[:getattr(e, "done", 0)])
        raise
    done.deleted.extend(keys)


def apply_plan(trie: _bpf.Map, plan: Plan) -> Done:
    """Delete what must make room, write, then delete the rest. Raises
    ApplyError, which says exactly what was done, for undo()."""
    done = Done()
    try:
        _delete(trie, plan.delete[:plan.delete_first], done)
        if plan.write_keys:
            try:
                trie.update_batch(b"".join(plan.write_keys),
                                  b"".join(plan.write_values))
            except OSError as e:
                done.written = getattr(e, "done", 0)
                raise
            done.written = len(plan.write_keys)
        _delete(trie, plan.delete[plan.delete_first:], done)
    except OSError as e:
        raise ApplyError(e, done)
    return done


def undo(trie: _bpf.Map, plan: Plan, done: Done) -> list[str]:
    """Put back what `done` changed; the failures, one line each."""
    failed = []
    for key in plan.write_keys[:done.written]:
        old = plan.old.get(key)
        try:
            if old is None:
                trie.delete(key)
            else:
                trie.update(key, old)
        except OSError as e:
            failed.append("%s in %s (%s)" % (key_text(key), trie.name, e))
    for key in done.deleted:
        try:
            trie.update(key, plan.old[key])
        except OSError as e:
            failed.append("%s in %s (%s)" % (key_text(key), trie.name, e))
    return failed
