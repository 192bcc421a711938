# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""One family of a list as the list code sees it: one trie.

Private to this collection. A blocklist family is two maps: an LPM trie
for prefixes and a hash for exact addresses (/32, /128), whose lookup
cost does not grow with its size (docs/dataplane.md, [step 7]). SplitList
hides the split: keys and values keep the trie's layout, and each read,
write and delete goes to the map that holds the key's kind. An exact
address found in the trie (written there by a release before the hash)
is `misplaced` until move_misplaced() moves it, and the program finds it
in either map meanwhile.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import struct
import sys
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ._errors import FastpathError
from ._lists import HOSTS

if TYPE_CHECKING:
    from . import _bpf, _trie_change

_PREFIX = struct.Struct("=I")
# The byte of a trie key's prefixlen (a host-order u32, at most 128) that
# holds its value.
_PLEN_BYTE = 0 if sys.byteorder == "little" else 3

TOO_BIG = ("%s would hold %d entries, more than its %d: shorten the list or "
           "aggregate it into wider prefixes. Nothing was changed.")


def to_trie_keys(addrs: bytes, asize: int) -> bytes:
    """Exact addresses (asize bytes each) as full-length trie keys. Column
    by column: a million keys take milliseconds."""
    count = len(addrs) // asize
    ksize = asize + 4
    out = bytearray(count * ksize)
    for j, byte in enumerate(_PREFIX.pack(asize * 8)):
        if byte:
            out[j::ksize] = bytes((byte,)) * count
    for i in range(asize):
        out[4 + i::ksize] = addrs[i::asize]
    return bytes(out)


def to_addrs(keys: bytes, ksize: int) -> bytes:
    """Full-length trie keys as the hash's exact addresses."""
    asize = ksize - 4
    out = bytearray(len(keys) // ksize * asize)
    for i in range(asize):
        out[i::asize] = keys[4 + i::ksize]
    return bytes(out)


def open_family(pin_dir: str, name: str,
                open_map: Callable[[str, str], _bpf.Map]) -> SplitList:
    """A list family by its trie's name (block_v4, allow_v6...), each map
    opened with open_map(pin_dir, map name): the trie, and the blocklist's
    hash where it is pinned (the program there reads it)."""
    trie = open_map(pin_dir, name)
    hosts = HOSTS.get(name)
    if not hosts or not os.path.lexists(os.path.join(pin_dir, hosts)):
        return SplitList(trie, None)
    try:
        return SplitList(trie, open_map(pin_dir, hosts))
    except BaseException:
        trie.close()
        raise


class SplitList:
    """A list family: its trie, and for the blocklist the hash of exact
    addresses (None for the allowlist, and on a host whose program is older
    than the hash: that program reads the trie only, so everything goes
    there)."""

    def __init__(self, trie: _bpf.Map, hosts: _bpf.Map | None) -> None:
        self.trie = trie
        self.hosts = hosts
        self.name = trie.name
        self.key_size = trie.key_size
        self.value_size = self.full_value_size = trie.value_size
        self.max_entries = trie.max_entries
        self.full = (trie.key_size - 4) * 8
        # As the last lookup_batch() found them.
        self.counts = (0, 0)                     # trie, hosts
        self.misplaced: dict[bytes, bytes] = {}  # exact keys in the trie
        self.in_both: set[bytes] = set()         # ... also in the hash

    def close(self) -> None:
        self.trie.close()
        if self.hosts is not None:
            self.hosts.close()

    def __enter__(self) -> SplitList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_exact(self, key: bytes) -> bool:
        """Does the key go to the hash?"""
        return self.hosts is not None and key[_PLEN_BYTE] == self.full

    def _hash_of(self, key: bytes) -> _bpf.Map | None:
        """The hash when the key goes there, else None."""
        return self.hosts if self.is_exact(key) else None

    def count_exact(self, keys: Iterable[bytes]) -> int:
        """How many of the keys go to the hash."""
        if self.hosts is None:
            return 0
        return b"".join(keys)[_PLEN_BYTE::self.key_size].count(self.full)

    def _split(self, keys: bytes) -> tuple[Sequence[int], Sequence[int]]:
        """Indexes of the trie's keys and of the hash's keys."""
        plens = keys[_PLEN_BYTE::self.key_size]
        exact_count = plens.count(self.full)
        if exact_count in (0, len(plens)):     # one map: no Python loop
            every = range(len(plens))
            return (every, []) if not exact_count else ([], every)
        short, exact = [], []
        for i, plen in enumerate(plens):
            (exact if plen == self.full else short).append(i)
        return short, exact

    # -- reads -----------------------------------------------------------

    def lookup_batch(self, chunk: int = 4096) -> tuple[bytes, bytes]:
        """Every entry of both maps, in the trie's layout; an exact key in
        both is given once, with the hash's value (the newer one)."""
        keys, values = self.trie.lookup_batch(chunk)
        ksize, vsize = self.key_size, self.value_size
        if self.hosts is None:
            self.counts = (len(keys) // ksize, 0)
            return keys, values
        addrs, host_values = self.hosts.lookup_batch(chunk)
        host_keys = to_trie_keys(addrs, ksize - 4)
        self.counts = (len(keys) // ksize, len(addrs) // (ksize - 4))
        self.misplaced, self.in_both = {}, set()
        if bytes((self.full,)) in keys[_PLEN_BYTE::ksize]:
            short, exact = self._split(keys)
            short = list(short)
            self.misplaced = dict(
                (keys[i * ksize:(i + 1) * ksize],
                 values[i * vsize:(i + 1) * vsize]) for i in exact)
            hashed = set(host_keys[i:i + ksize]
                         for i in range(0, len(host_keys), ksize))
            self.in_both = hashed & set(self.misplaced)
            if self.in_both:
                kept = short + [i for i in exact
                                if keys[i * ksize:(i + 1) * ksize]
                                not in self.in_both]
                values = b"".join(values[i * vsize:(i + 1) * vsize]
                                  for i in kept)
                keys = b"".join(keys[i * ksize:(i + 1) * ksize]
                                for i in kept)
        return keys + host_keys, values + host_values

    def keys(self) -> list[bytes]:
        keys = self.lookup_batch(chunk=65536)[0]
        return [keys[i:i + self.key_size]
                for i in range(0, len(keys), self.key_size)]

    def lookup(self, key: bytes) -> bytes | None:
        hosts = self._hash_of(key)
        if hosts is not None:
            found = hosts.lookup(key[4:])
            if found is not None:
                return found
        return self.trie.lookup(key)

    # -- writes ----------------------------------------------------------

    def update(self, key: bytes, value: bytes) -> None:
        hosts = self._hash_of(key)
        if hosts is not None:
            hosts.update(key[4:], value)
        else:
            self.trie.update(key, value)

    def delete(self, key: bytes) -> bool:
        """Delete key from the map that holds it (an exact key from both);
        False when it was in neither."""
        found = False
        hosts = self._hash_of(key)
        if hosts is not None:
            found = hosts.delete(key[4:])
            if key not in self.misplaced:
                return found
        return self.trie.delete(key) or found

    def update_batch(self, keys: bytes, values: bytes) -> None:
        """Write every entry, each into its map. On a failure the error's
        `done` counts the leading entries that may have been written: for
        a batch split over both maps, all of them (undoing an entry that
        was not written puts back what it already holds)."""
        ksize, vsize = self.key_size, self.value_size
        count = len(keys) // ksize
        hosts = self.hosts
        short, exact = self._split(keys) if hosts is not None \
            else (range(count), [])
        if hosts is None or not exact:
            self.trie.update_batch(keys, values)
            return
        if not short:
            hosts.update_batch(to_addrs(keys, ksize), values)
            return
        try:
            for part, target in ((exact, hosts), (short, self.trie)):
                part_keys = b"".join(keys[i * ksize:(i + 1) * ksize]
                                     for i in part)
                part_values = b"".join(values[i * vsize:(i + 1) * vsize]
                                       for i in part)
                if target is hosts:
                    part_keys = to_addrs(part_keys, ksize)
                target.update_batch(part_keys, part_values)
        except OSError as e:
            e.done = count    # type: ignore[attr-defined]
            raise

    def delete_batch(self, keys: bytes) -> int:
        """Delete every key from the map that holds it; a key already gone
        counts as deleted. Returns how many were there. On a failure the
        error's `done` counts the leading keys that may be gone (all of
        them for a batch split over both maps)."""
        ksize = self.key_size
        count = len(keys) // ksize
        if self.hosts is None:
            return self.trie.delete_batch(keys)
        short, exact = self._split(keys)
        exact_keys = [keys[i * ksize:(i + 1) * ksize] for i in exact]
        from_trie = [keys[i * ksize:(i + 1) * ksize] for i in short]
        from_trie += [k for k in exact_keys if k in self.misplaced]
        try:
            gone = self.hosts.delete_batch(to_addrs(b"".join(exact_keys),
                                                    ksize))
            return gone + self.trie.delete_batch(b"".join(from_trie))
        except OSError as e:
            if short and exact:
                e.done = count    # type: ignore[attr-defined]
            raise

    # -- the move of exact addresses out of the trie ----------------------

    def to_move(self, plan: _trie_change.Plan) -> list[bytes]:
        """The misplaced keys the plan leaves where they are: those it
        writes go to the hash, those it deletes leave both maps."""
        if not self.misplaced:
            return []
        done = set(plan.write_keys) | set(plan.delete)
        return [k for k in self.misplaced if k not in done]

    def move_misplaced(self, plan: _trie_change.Plan) -> int:
        """Move the exact keys of the trie that the plan left alone into
        the hash, the hash's copy first, so that the program finds each in
        one map or both at every instant. Returns how many moved."""
        if self.hosts is None or not self.misplaced:
            return 0
        moving = self.to_move(plan)
        fresh = [k for k in moving if k not in self.in_both]
        if fresh:
            self.hosts.update_batch(
                to_addrs(b"".join(fresh), self.key_size),
                b"".join(self.misplaced[k] for k in fresh))
        # Every one goes from the trie: those the plan deleted are gone
        # already, those it wrote have a newer copy in the hash.
        self.trie.delete_batch(b"".join(self.misplaced))
        self.misplaced = {}
        self.in_both = set()
        return len(moving)

    # -- room ------------------------------------------------------------

    def fit(self, plan: _trie_change.Plan) -> None:
        """Check that each map holds what the plan leaves in it, and put
        first the deletes that must make room. Writes go before deletes
        otherwise, so that a run stopped half way has removed nothing its
        list still holds. Raises FastpathError naming the map too small."""
        # Counted on joined keys, not key by key: a million writes.
        deleted = set(plan.delete)
        rewritten = [k for k in plan.old if k not in deleted]
        hosts_new = self.count_exact(plan.write_keys) - \
            self.count_exact(rewritten)
        trie_new = plan.new_keys - hosts_new
        trie_del: list[bytes] = []
        hosts_del: list[bytes] = []
        for key in plan.delete:
            if self.is_exact(key) and (key not in self.misplaced
                                       or key in self.in_both):
                hosts_del.append(key)
            else:
                trie_del.append(key)
        first: list[bytes] = []
        for m, have, new, dels in ((self.trie, self.counts[0], trie_new,
                                    trie_del),
                                   (self.hosts, self.counts[1], hosts_new,
                                    hosts_del)):
            if m is None:
                continue
            after = have + new - len(dels)
            if after > m.max_entries:
                raise FastpathError(TOO_BIG % (m.name, after, m.max_entries))
            first += dels[:max(0, have + new - m.max_entries)]
        if first:
            chosen = set(first)
            plan.delete = first + [k for k in plan.delete if k not in chosen]
        plan.delete_first = len(first)
