# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who wants what in a list: the saved state of record.

Private to this collection. The kernel's tries hold one value per key, so
they cannot say that two owners list the same address. The ledger can: one
row per (key, owner), kept on disk in the list's saved file. A run changes
its owner's rows, saves the ledger, and only then makes the tries equal to
the ledger folded into one value per key (`Target`): a key stays while any
owner lists it, and expires when the last owner's claim does. Whatever stops
a run half way, the next one folds the same file and converges.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import zlib
from typing import Iterable

from . import _abi

# Rows of one value are recognised in chunks, as in _lists.Entries.
CHUNK = 4096


class Claims:
    """One owner's entries in one family: keys without expiry, and keys
    with their expiry (CLOCK_BOOTTIME ns)."""

    __slots__ = ("permanent", "expiring")

    def __init__(self) -> None:
        self.permanent: set[bytes] = set()
        self.expiring: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.permanent) + len(self.expiring)

    def __contains__(self, key: bytes) -> bool:
        return key in self.permanent or key in self.expiring

    def copy(self) -> Claims:
        out = Claims()
        out.permanent = set(self.permanent)
        out.expiring = dict(self.expiring)
        return out

    def drop(self, keys: Iterable[bytes]) -> list[bytes]:
        """Remove keys; the ones that were claimed."""
        gone = []
        for key in keys:
            if key in self.permanent:
                self.permanent.discard(key)
                gone.append(key)
            elif self.expiring.pop(key, None) is not None:
                gone.append(key)
        return gone


class Target:
    """A family's ledger folded into what its trie must hold: each key once,
    permanent when any owner holds it without expiry (grouped by the lowest
    such owner's tag), else with the latest expiry of its owners."""

    def __init__(self) -> None:
        self.groups: dict[int, set[bytes]] = {}
        self.permanent: set[bytes] = set()
        self.expiring: dict[bytes, bytes] = {}     # key -> raw fp_entry

    def __contains__(self, key: bytes) -> bool:
        return key in self.permanent or key in self.expiring

    def __len__(self) -> int:
        return len(self.permanent) + len(self.expiring)

    def rows(self) -> tuple[list[bytes], list[bytes]]:
        """(keys, raw values) of every entry."""
        keys, values = [], []
        for tag, group in self.groups.items():
            keys.extend(group)
            values.extend([_abi.ENTRY.pack(0, tag, 0)] * len(group))
        keys.extend(self.expiring)
        values.extend(self.expiring.values())
        return keys, values


class Ledger:
    """Every owner's claims on the two tries (v4, v6) of a list."""

    def __init__(self) -> None:
        self.families: list[dict[int, Claims]] = [{}, {}]
        self.names: dict[int, str] = {}     # tag -> owner name, when known

    def claims(self, family: int, tag: int) -> Claims:
        return self.families[family].setdefault(tag, Claims())

    def tags(self) -> set[int]:
        return set(self.families[0]) | set(self.families[1])

    def copy(self) -> Ledger:
        out = Ledger()
        out.families = [dict((t, c.copy()) for t, c in fam.items())
                        for fam in self.families]
        out.names = dict(self.names)
        return out

    def add_rows(self, family: int, keys: bytes, values: bytes,
                 ksize: int) -> None:
        """Add raw rows (keys and fp_entry values as the tries hold them).
        Runs of one value, as the file writes them, take whole chunks."""
        vsize = _abi.ENTRY.size
        count = len(keys) // ksize
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            chunk = values[start * vsize:stop * vsize]
            first = chunk[:vsize]
            if chunk == first * (stop - start):
                self._add(family, keys[start * ksize:stop * ksize], ksize,
                          first)
                continue
            for i in range(start, stop):
                self._add(family, keys[i * ksize:(i + 1) * ksize], ksize,
                          values[i * vsize:(i + 1) * vsize])

    def _add(self, family: int, keys: bytes, ksize: int, raw: bytes) -> None:
        expires, tag, _reserved = _abi.ENTRY.unpack(raw)
        claims = self.claims(family, tag)
        split = [keys[i:i + ksize] for i in range(0, len(keys), ksize)]
        if expires:
            for key in split:
                if expires > claims.expiring.get(key, 0):
                    claims.expiring[key] = expires
        else:
            claims.permanent.update(split)

    def rows(self, family: int) -> tuple[bytes, bytes]:
        """Every row of a family as (keys, values), grouped by owner so
        that add_rows() reads them back in whole chunks."""
        keys, values = [], []
        for tag in sorted(self.families[family]):
            claims = self.families[family][tag]
            keys.extend(claims.permanent)
            values.append(_abi.ENTRY.pack(0, tag, 0) * len(claims.permanent))
            for key, expires in claims.expiring.items():
                keys.append(key)
                values.append(_abi.ENTRY.pack(expires, tag, 0))
        return b"".join(keys), b"".join(values)

    def shift(self, delta_ns: int) -> None:
        """Move every expiry by delta_ns (a restore after a reboot)."""
        for fam in self.families:
            for claims in fam.values():
                for key in claims.expiring:
                    claims.expiring[key] += delta_ns

    def drop_expired(self, now_ns: int) -> dict[int, int]:
        """Forget claims whose time has come: {tag: how many}."""
        dropped: dict[int, int] = {}
        for fam in self.families:
            for tag, claims in fam.items():
                gone = [k for k, e in claims.expiring.items() if e <= now_ns]
                for key in gone:
                    del claims.expiring[key]
                if gone:
                    dropped[tag] = dropped.get(tag, 0) + len(gone)
        self.prune()
        return dropped

    def prune(self) -> None:
        """Forget owners that hold nothing."""
        for fam in self.families:
            for tag in [t for t, c in fam.items() if not len(c)]:
                del fam[tag]
        for tag in set(self.names) - self.tags():
            del self.names[tag]

    def size(self) -> int:
        return sum(len(c) for fam in self.families for c in fam.values())

    def target(self, family: int) -> Target:
        """The family folded into one value per key."""
        out = Target()
        fam = self.families[family]
        holders = [t for t in sorted(fam) if fam[t].permanent]
        if len(holders) == 1:
            out.groups[holders[0]] = out.permanent = fam[holders[0]].permanent
        else:
            for tag in holders:
                mine = fam[tag].permanent - out.permanent
                if mine:
                    out.groups[tag] = mine
                    out.permanent |= mine
        best: dict[bytes, tuple[int, int]] = {}
        for tag in sorted(fam):
            for key, expires in fam[tag].expiring.items():
                if key in out.permanent:
                    continue
                if key not in best or expires > best[key][0]:
                    best[key] = (expires, tag)
        out.expiring = dict((k, _abi.ENTRY.pack(e, t, 0))
                            for k, (e, t) in best.items())
        return out


def jittered(key: bytes, expires_ns: int, jitter_ns: int) -> int:
    """expires_ns moved later by a fixed share of jitter_ns drawn from the
    key (CRC-32), so that a set added at once spreads its expiries."""
    return expires_ns + jitter_ns * zlib.crc32(key) // 0xFFFFFFFF


def renew(ledger: Ledger, tag: int, desired: list[set[bytes]],
          expires_ns: int, jitter_ns: int = 0) -> int:
    """Move the owner's live expiring claims on desired keys to their new
    expiry when it is later (never earlier). Returns how many moved."""
    moved = 0
    for family, keys in enumerate(desired):
        expiring = ledger.claims(family, tag).expiring
        for key in keys:
            old = expiring.get(key)
            new = jittered(key, expires_ns, jitter_ns)
            if old is not None and new > old:
                expiring[key] = new
                moved += 1
    ledger.prune()
    return moved


def change(ledger: Ledger, tag: int, desired: list[set[bytes]], state: str,
           expires_ns: int, jitter_ns: int = 0
           ) -> tuple[dict[int, tuple[int, int]], int]:
    """Apply one owner's run to the ledger (in place).

    present: the owner claims every desired key: a new claim gets
    expires_ns (0: permanent); a live claim keeps its expiry unless the
    run switches it between permanent and expiring; jitter_ns spreads
    new expiries (jittered()). exact: also, the
    owner's claims that are not desired go. absent: the desired keys go
    from every owner. Returns ({tag: (claims added or switched between
    permanent and expiring, claims removed)}, how many desired keys were
    already as asked).
    """
    counts: dict[int, list[int]] = {}
    unchanged = 0

    def count(owner: int, added: int, removed: int) -> None:
        if added or removed:
            c = counts.setdefault(owner, [0, 0])
            c[0] += added
            c[1] += removed

    for family, keys in enumerate(desired):
        fam = ledger.families[family]
        if state == "absent":
            gone: set[bytes] = set()
            for owner, claims in fam.items():
                dropped = claims.drop(keys)
                count(owner, 0, len(dropped))
                gone.update(dropped)
            unchanged += len(keys) - len(gone)
            continue
        claims = ledger.claims(family, tag)
        if expires_ns:
            new = [k for k in keys if k not in claims.expiring]
            switched = sum(1 for k in new if k in claims.permanent)
            claims.permanent.difference_update(new)
            claims.expiring.update(
                (k, jittered(k, expires_ns, jitter_ns)) for k in new)
            count(tag, len(new), 0)       # a switch is a new claim too
            unchanged += len(keys) - len(new)
        else:
            switched = [k for k in claims.expiring if k in keys]
            for key in switched:
                del claims.expiring[key]
            before = len(claims.permanent)
            claims.permanent |= keys
            grown = len(claims.permanent) - before
            count(tag, grown, 0)          # switched ones included
            unchanged += len(keys) - grown
        if state == "exact":
            extra = (claims.permanent - keys) | set(
                k for k in claims.expiring if k not in keys)
            count(tag, 0, len(claims.drop(extra)))
    ledger.prune()
    return dict((t, (a, r)) for t, (a, r) in counts.items()), unchanged
