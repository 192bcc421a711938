# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block and allow list entries: parsing, planning, applying.

Private to this collection. Entries are handled as the tries' own keys
(bytes: prefixlen in host order, then the address), so that a list of a
million entries is parsed, compared and written without one Python object
per address beyond those keys.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import socket
import struct
import threading
import time
import zlib
from typing import IO, Iterable

from . import _abi, _bpf, _facts
from ._errors import FastpathError

LISTS = {"blocklist": ("block_v4", "block_v6"),
         "allowlist": ("allow_v4", "allow_v6")}

_PREFIX = struct.Struct("=I")
_FULL_V4 = _PREFIX.pack(32)
_FULL_V6 = _PREFIX.pack(128)


def source_tag(name: str) -> int:
    """The u32 stored in fp_entry.source for an owner's name (never 0)."""
    return zlib.crc32(name.encode("utf-8")) or 1


def boot_ns() -> int:
    """Now on CLOCK_BOOTTIME, the clock the program compares expiry to."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * 1e9)


def _host_bits(packed: bytes, prefixlen: int, bits: int) -> int:
    value = int.from_bytes(packed, "big")
    return value & ((1 << (bits - prefixlen)) - 1)


def _masked(packed: bytes, prefixlen: int, bits: int) -> bytes:
    value = int.from_bytes(packed, "big")
    value &= ~((1 << (bits - prefixlen)) - 1) & ((1 << bits) - 1)
    return value.to_bytes(bits // 8, "big")


def parse_entry(text: str, strict: bool) -> tuple[int, bytes]:
    """One address or CIDR as (family, key); raises FastpathError."""
    addr, slash, plen = text.partition("/")
    family, bits, full = ((socket.AF_INET6, 128, _FULL_V6) if ":" in addr
                          else (socket.AF_INET, 32, _FULL_V4))
    try:
        packed = socket.inet_pton(family, addr)
    except (OSError, ValueError):
        raise FastpathError("'%s' is not an IPv4 or IPv6 address" % text)
    if not slash:
        return family, full + packed
    if not plen.isdigit() or int(plen) > bits:
        raise FastpathError("'%s' has an invalid prefix length" % text)
    prefixlen = int(plen)
    if _host_bits(packed, prefixlen, bits):
        if strict:
            raise FastpathError(
                "'%s' has host bits set: write %s/%d, or set strict: false "
                "to normalise" % (text, _ntop(family,
                                              _masked(packed, prefixlen,
                                                      bits)), prefixlen))
        packed = _masked(packed, prefixlen, bits)
    return family, _PREFIX.pack(prefixlen) + packed


def parse_lines(lines: Iterable[str], strict: bool, where: str,
                first: int = 1) -> tuple[set[bytes], set[bytes]]:
    """Keys of every entry of `lines` as (v4 set, v6 set). `where` names
    the origin in errors, e.g. "line %d of /etc/blocklist"; `first` is
    the number of the first line."""
    v4, v6 = set(), set()
    add4, add6 = v4.add, v6.add
    pton = socket.inet_pton
    af4 = socket.AF_INET
    for number, raw in enumerate(lines, first):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # The common case, a plain IPv4 address, without the general path.
        if "/" not in line and ":" not in line:
            try:
                add4(_FULL_V4 + pton(af4, line))
                continue
            except OSError:
                pass
        try:
            family, key = parse_entry(line, strict)
        except FastpathError as e:
            raise FastpathError("%s: %s" % (where % number, e))
        (add4 if family == af4 else add6)(key)
    return v4, v6


BLOCK = 1 << 22


def parse_file(f: IO[str], strict: bool, where: str
               ) -> tuple[set[bytes], set[bytes]]:
    """parse_lines for a file, read in blocks of whole lines. A block of
    bare IPv4 addresses, one per line (a big feed), takes a fast path;
    any other block, or one the fast path rejects, is parsed line by line,
    which also finds the number of a bad line."""
    v4, v6 = set(), set()
    pton = socket.inet_pton
    af4 = socket.AF_INET
    first = 1
    while True:
        block = f.read(BLOCK)
        if not block:
            return v4, v6
        if not block.endswith("\n"):
            block += f.readline()
        lines = block.split("\n")
        if lines[-1] == "":
            lines.pop()
        if "#" not in block and "/" not in block and ":" not in block:
            try:
                v4.update([_FULL_V4 + pton(af4, line)
                           for line in lines if line])
                first += len(lines)
                continue
            except OSError:
                pass
        b4, b6 = parse_lines(lines, strict, where, first)
        v4 |= b4
        v6 |= b6
        first += len(lines)


def key_text(key: bytes) -> str:
    """A trie key as the CIDR an operator writes."""
    prefixlen = _PREFIX.unpack_from(key)[0]
    family = socket.AF_INET if len(key) == 8 else socket.AF_INET6
    return "%s/%d" % (_ntop(family, key[4:]), prefixlen)


def _ntop(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


def covers(key: bytes, address_key: bytes) -> bool:
    """Does the network of `key` contain, or overlap, that of
    `address_key` (same family)?"""
    plen = _PREFIX.unpack_from(key)[0]
    other = _PREFIX.unpack_from(address_key)[0]
    bits = (len(key) - 4) * 8
    shortest = min(plen, other)
    return _masked(key[4:], shortest, bits) == \
        _masked(address_key[4:], shortest, bits)


class Entries:
    """Every entry of a trie as read in one batch: the keys as a set, and
    the raw values of the entries that are not `common` (one value that
    most entries share: the owner's, without expiry) in a dict."""

    CHUNK = 4096

    def __init__(self, keys: bytes, values: bytes, ksize: int,
                 vsize: int) -> None:
        self.key_list = [keys[i:i + ksize]
                         for i in range(0, len(keys), ksize)]
        self.keys = set(self.key_list)
        self.values = values
        self.vsize = vsize

    def __len__(self) -> int:
        return len(self.key_list)

    def raw(self, index: int) -> bytes:
        return self.values[index * self.vsize:(index + 1) * self.vsize]

    def fields(self) -> dict[bytes, tuple[int, int]]:
        """{key: (expires_ns, source)} of every entry."""
        return dict((key, entry_fields(self.raw(i)))
                    for i, key in enumerate(self.key_list))

    def others(self, common: bytes) -> dict[bytes, bytes]:
        """{key: raw} of every entry whose value is not `common`. Whole
        chunks of common values are skipped with one comparison."""
        out = {}
        size = self.vsize * self.CHUNK
        same = common * self.CHUNK
        for start in range(0, len(self.key_list), self.CHUNK):
            if self.values[start * self.vsize:start * self.vsize + size] \
                    == same:
                continue
            stop = min(start + self.CHUNK, len(self.key_list))
            for i in range(start, stop):
                raw = self.raw(i)
                if raw != common:
                    out[self.key_list[i]] = raw
        return out


def entry_fields(raw: bytes) -> tuple[int, int]:
    """(expires_ns, source) of a raw fp_entry value."""
    expires, source, _reserved = _abi.ENTRY.unpack(raw)
    return expires, source


class Plan:
    """What one family's trie needs: keys to write, keys to delete, and
    the old values of what they touch (to put back on a failure)."""

    def __init__(self) -> None:
        self.write: list[bytes] = []  # keys to (re)write with our value
        self.delete: list[bytes] = []  # keys to remove
        # key -> raw value, for keys written or deleted
        self.old: dict[bytes, bytes] = {}
        self.expired = 0      # of delete: expired entries of the owner
        self.unchanged = 0


def plan_family(current: Entries, desired: set[bytes], state: str, tag: int,
                expires_ns: int, now: int) -> Plan:
    """The changes that make one trie right for this owner.

    present: every desired key exists (a live entry of another owner is
    left as it is); exact: also, the owner's entries that are not desired
    go; absent: the desired keys go, whoever owns them. In every state the
    owner's expired entries go (or are renewed when desired).

    Entries holding the owner's value without expiry (`permanent`, most of
    a big list) are handled with set operations only; the others one by
    one. A million unchanged entries cost little more than reading them.
    """
    plan = Plan()
    permanent = _abi.ENTRY.pack(0, tag, 0)
    others = current.others(permanent)
    have = current.keys

    def old(key: bytes) -> bytes:
        return others.get(key, permanent)

    if state == "absent":
        plan.delete = list(desired & have)
        plan.unchanged = len(desired) - len(plan.delete)
    else:
        plan.write = list(desired - have)
        plan.unchanged = len(desired) - len(plan.write)
        for key, raw in others.items():
            if key not in desired:
                continue
            have_expires, have_source = entry_fields(raw)
            if have_expires and have_expires <= now:
                plan.write.append(key)      # expired: absent, so renew
            elif have_source == tag and bool(have_expires) != bool(
                    expires_ns):
                plan.write.append(key)      # ttl switched on or off
            else:
                continue
            plan.unchanged -= 1
        if expires_ns:
            # Live permanent entries of the owner that are listed again
            # with a ttl get it.
            switched = [k for k in desired & have if k not in others]
            plan.write.extend(switched)
            plan.unchanged -= len(switched)

    extra = have - desired
    for key in extra:
        raw = others.get(key)
        if raw is None:                     # the owner's, permanent
            if state == "exact":
                plan.delete.append(key)
            continue
        have_expires, have_source = entry_fields(raw)
        if have_source != tag:
            continue
        if have_expires and have_expires <= now:
            plan.delete.append(key)
            plan.expired += 1
        elif state == "exact":
            plan.delete.append(key)
    plan.old = dict((key, old(key)) for key in plan.delete)
    plan.old.update((key, old(key)) for key in plan.write if key in have)
    return plan


def apply_plan(trie: _bpf.Map, plan: Plan, value: bytes) -> None:
    """Delete, then write; on a failure put back what was there."""
    deleted: list[bytes] = []
    try:
        if plan.delete:
            trie.delete_batch(b"".join(plan.delete))
            deleted = plan.delete
        if plan.write:
            trie.update_batch(b"".join(plan.write), value * len(plan.write))
    except OSError:
        _restore(trie, plan, deleted)
        raise


def undo_plan(trie: _bpf.Map, plan: Plan) -> None:
    """Put back what a fully applied plan changed."""
    _restore(trie, plan, plan.delete)


def _restore(trie: _bpf.Map, plan: Plan, deleted: list[bytes]) -> None:
    for key in plan.write:
        raw = plan.old.get(key)
        if raw is None:
            trie.delete(key)
        else:
            trie.update(key, raw)
    for key in deleted:
        trie.update(key, plan.old[key])


def open_pair(pin_dir: str, list_name: str) -> list[_bpf.Map]:
    """The v4 and v6 tries of a list, opened from their pins."""
    if _facts.bpffs_mount(pin_dir) is None:
        raise FastpathError(_facts.NOT_ON_BPFFS % pin_dir)
    tries = []
    for name in LISTS[list_name]:
        path = os.path.join(pin_dir, name)
        if not os.path.exists(path):
            for trie in tries:
                trie.close()
            raise FastpathError(
                "The map %s is not pinned under %s: attach the program "
                "with vos.fastpath.xdp_attach first, or set pin_dir."
                % (name, pin_dir))
        tries.append(_bpf.Map.open_pinned(path))
    return tries


class Reader(threading.Thread):
    """Reads tries in the background while Python parses the input: the
    thread only makes the bpf() calls, which release the GIL, so the kernel
    walks the tries on one core while the parser runs on another. The
    Python side of the read (Entries) waits until the parser is done."""

    def __init__(self, tries: list[_bpf.Map]) -> None:
        threading.Thread.__init__(self)
        self.tries = tries
        self.raw: list[tuple[bytes, bytes]] | None = None
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self.raw = [t.lookup_batch(chunk=65536) for t in self.tries]
        except OSError as e:
            self.error = e

    def result(self) -> list[Entries]:
        """Entries of each trie."""
        self.join()
        if self.error:
            raise self.error
        return [Entries(keys, values, t.key_size, t.value_size)
                for t, (keys, values) in zip(self.tries, self.raw)]


def protected_hits(desired: set[bytes], protected: set[bytes]
                   ) -> list[tuple[bytes, bytes]]:
    """(entry, protected) pairs where a desired entry of one family covers
    or lies inside a protected network. Cheap for a million entries: a
    protected network is looked up once per prefix length in use."""
    if not protected or not desired:
        return []
    hits = []
    lengths = sorted({_PREFIX.unpack_from(k)[0] for k in
                      {key[:4] for key in desired}})
    bits = (len(next(iter(protected))) - 4) * 8
    for guard in protected:
        guard_len = _PREFIX.unpack_from(guard)[0]
        for length in lengths:
            if length <= guard_len:
                key = _PREFIX.pack(length) + _masked(guard[4:], length, bits)
                if key in desired:
                    hits.append((key, guard))
        if lengths[-1] > guard_len:
            hits.extend((key, guard) for key in desired
                        if _PREFIX.unpack_from(key)[0] > guard_len and
                        covers(key, guard))
    return hits
