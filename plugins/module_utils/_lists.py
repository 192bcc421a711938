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

import functools
import socket
import struct
import threading
import time
import zlib
from typing import IO, Iterable

from . import _abi, _bpf
from ._errors import FastpathError
from ._input import quote

LISTS = {"blocklist": ("block_v4", "block_v6"),
         "allowlist": ("allow_v4", "allow_v6")}
# The hash of a trie's exact addresses (/32, /128), looked up first.
HOSTS = {"block_v4": "block_v4_hosts", "block_v6": "block_v6_hosts"}

_PREFIX = struct.Struct("=I")
_FULL_V4 = _PREFIX.pack(32)
_FULL_V6 = _PREFIX.pack(128)
# ::ffff:a.b.c.d, an IPv4 address written as IPv6.
_MAPPED = b"\0" * 10 + b"\xff\xff"


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
    """One address or CIDR as (family, key); raises FastpathError, which
    quotes at most the start of `text`.

    An IPv4-mapped address (::ffff:a.b.c.d/N) becomes its IPv4 network
    (a.b.c.d/N-96): the program looks an IPv4 source up in the IPv4 trie
    only, so in the IPv6 trie it would match nothing."""
    addr, slash, plen = text.partition("/")
    family, bits, full = ((socket.AF_INET6, 128, _FULL_V6) if ":" in addr
                          else (socket.AF_INET, 32, _FULL_V4))
    try:
        packed = socket.inet_pton(family, addr)
    except (OSError, ValueError):
        raise FastpathError("%s is not an IPv4 or IPv6 address"
                            % quote(text))
    mapped = family == socket.AF_INET6 and packed.startswith(_MAPPED)
    if not slash:
        if mapped:
            return socket.AF_INET, _FULL_V4 + packed[12:]
        return family, full + packed
    # ASCII digits only (str.isdigit() takes any script's), and at most
    # three: int() of a 5,000-digit string raises.
    if not (0 < len(plen) <= 3 and plen.isascii() and plen.isdigit()) \
            or int(plen) > bits:
        raise FastpathError("%s has an invalid prefix length: write /0 to "
                            "/%d in digits 0-9" % (quote(text), bits))
    prefixlen = int(plen)
    if mapped:
        if prefixlen < 96:
            raise FastpathError(
                "%s is an IPv4-mapped prefix shorter than /96: write the "
                "IPv4 network instead (::ffff:a.b.c.d/N is a.b.c.d/N-96)"
                % quote(text))
        family, bits = socket.AF_INET, 32
        packed, prefixlen = packed[12:], prefixlen - 96
    if _host_bits(packed, prefixlen, bits):
        if strict:
            raise FastpathError(
                "%s has host bits set: write %s/%d, or set strict: false "
                "to normalise" % (quote(text),
                                  _ntop(family, _masked(packed, prefixlen,
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
            except (OSError, ValueError):   # ValueError: a NUL, a surrogate
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
    """parse_lines for a text file (or the `content` of a list), read in
    blocks of whole lines so that a million lines are never one list."""
    v4: set[bytes] = set()
    v6: set[bytes] = set()
    first = 1
    while True:
        block = f.read(BLOCK)
        if not block:
            return v4, v6
        if not block.endswith("\n"):
            block += f.readline()
        first += _parse_block(block, strict, where, first, v4, v6)


def read_path(path: str, strict: bool) -> tuple[set[bytes], set[bytes]]:
    """The keys of the list file at `path` as (v4 set, v6 set). The file
    is read as bytes and decoded here, so that one that is not UTF-8 text
    (or has a NUL byte) is refused with the line and column of the first
    bad byte rather than a UnicodeDecodeError; a line longer than a block
    is refused too, so memory stays bounded whatever the file holds."""
    where = "line %%d of %s" % path.replace("%", "%%")
    v4: set[bytes] = set()
    v6: set[bytes] = set()
    first = 1
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return v4, v6
                if not block.endswith(b"\n"):
                    rest = f.readline(BLOCK)
                    if len(rest) == BLOCK and not rest.endswith(b"\n"):
                        raise FastpathError(
                            "line %d of %s is longer than %d bytes: give a "
                            "text file with one address or CIDR per line."
                            % (first + block.count(b"\n"), path, BLOCK))
                    block += rest
                first += _parse_block(_decoded(block, first, path), strict,
                                      where, first, v4, v6)
    except OSError as e:
        raise FastpathError("Could not read %s: %s." % (path,
                                                        e.strerror or e))


def _decoded(block: bytes, first: int, path: str) -> str:
    """A block of whole lines of a list file as text; `first` is the
    number of its first line."""
    bad = block.find(b"\0")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
    if bad >= 0:
        start = block.rfind(b"\n", 0, bad) + 1
        raise FastpathError(
            "line %d of %s is not text (byte 0x%02x at column %d): give a "
            "text file with one address or CIDR per line."
            % (first + block.count(b"\n", 0, bad), path, block[bad],
               len(block[start:bad].decode("utf-8", "replace")) + 1))
    if first == 1 and text.startswith("\ufeff"):
        text = text[1:]                 # the BOM some editors write
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def _parse_block(block: str, strict: bool, where: str, first: int,
                 v4: set[bytes], v6: set[bytes]) -> int:
    """Adds the keys of a block of whole lines to `v4` and `v6`; returns
    its number of lines. A block of bare IPv4 addresses, one per line (a
    big feed), takes a fast path; any other block, or one the fast path
    rejects, is parsed line by line, which also finds the number of a bad
    line."""
    lines = block.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "#" not in block and "/" not in block and ":" not in block:
        # Iterated in C: map() of bound methods, no Python loop.
        try:
            v4.update(map(_FULL_V4.__add__, map(
                functools.partial(socket.inet_pton, socket.AF_INET),
                filter(None, lines))))
            return len(lines)
        except (OSError, ValueError):   # ValueError: a NUL, a surrogate
            pass
    b4, b6 = parse_lines(lines, strict, where, first)
    v4 |= b4
    v6 |= b6
    return len(lines)


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
        self.ksize = ksize
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
