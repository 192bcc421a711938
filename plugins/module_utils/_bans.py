# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bans the program made (`bans_v2`) and the operator's pardons
(`pardons`): read, lifted and written through bpf().

Private to this collection. A ban's key is a source: an address masked to
the aggregation prefix of `limits` (docs/dataplane.md, Rate limits and
bans). Times in the maps are CLOCK_MONOTONIC ns; what is returned here is
wall-clock time, which is what an operator compares across hosts.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import socket
import struct
import time
from datetime import datetime, timezone

from . import _abi, _limits, _lists, _pins

_PREFIX = struct.Struct("=I")
NEVER = 2 ** 64 - 1


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def wall_time(mono_ns: int, now_mono: int, now_wall: float) -> str:
    """A CLOCK_MONOTONIC time as UTC ISO 8601, to the second."""
    seconds = now_wall - (now_mono - mono_ns) / 1e9
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def source_text(key: bytes) -> str:
    """A `struct fp_source` as CIDR text."""
    family, prefixlen, _reserved, addr = _abi.SOURCE.unpack(key)
    if family == 4:
        return "%s/%d" % (socket.inet_ntop(socket.AF_INET, addr[:4]),
                          prefixlen)
    return "%s/%d" % (socket.inet_ntop(socket.AF_INET6, addr), prefixlen)


def source_lpm_key(key: bytes) -> tuple[int, bytes]:
    """A source as (family index 0/1, list trie key), to compare with list
    entries (_lists.covers)."""
    family, prefixlen, _reserved, addr = _abi.SOURCE.unpack(key)
    if family == 4:
        return 0, _PREFIX.pack(prefixlen) + addr[:4]
    return 1, _PREFIX.pack(prefixlen) + addr


def source_of(family: int, lpm_key: bytes, limits_raw: bytes | None
              ) -> bytes | None:
    """The source key the program uses for a list-style entry (family
    socket.AF_INET or AF_INET6): its address masked to the aggregation
    prefix of `limits`. None when the entry is wider than that prefix:
    it holds many sources."""
    view = _limits.limits_view(limits_raw)
    prefixlen = _PREFIX.unpack_from(lpm_key)[0]
    packed = lpm_key[4:]
    if family == socket.AF_INET:
        agg, fam, bits = view["prefix_v4"], 4, 32
    else:
        agg, fam, bits = view["prefix_v6"], 6, 128
    if prefixlen < agg:
        return None
    masked = (int.from_bytes(packed, "big") >> (bits - agg) << (bits - agg)
              if agg else 0).to_bytes(bits // 8, "big")
    return _abi.SOURCE.pack(fam, agg, 0, masked.ljust(16, b"\0"))


def overlaps(source: bytes, family: int, lpm_key: bytes) -> bool:
    """Does a source overlap a list-style entry (either covers the
    other)?"""
    index, key = source_lpm_key(source)
    if index != (0 if family == socket.AF_INET else 1):
        return False
    return _lists.covers(key, lpm_key) or _lists.covers(lpm_key, key)


class Reader:
    """The bans and pardons of one pin directory, with the clocks read
    once so that every time in one answer agrees."""

    def __init__(self, pin_dir: str) -> None:
        self.pin_dir = pin_dir
        self.now_mono = monotonic_ns()
        self.now_wall = time.time()

    def has(self, name: str) -> bool:
        return os.path.lexists(os.path.join(self.pin_dir, name))

    def _entries(self, name: str, value: struct.Struct
                 ) -> list[tuple[bytes, tuple]]:
        if not self.has(name):
            return []
        with _pins.open_map(self.pin_dir, name) as m:
            keys, values = m.lookup_batch()
        size = _abi.SOURCE.size
        return [(keys[i * size:(i + 1) * size],
                 value.unpack_from(values, i * value.size))
                for i in range(len(values) // value.size)]

    def limits(self) -> bytes | None:
        if not self.has("limits"):
            return None
        with _pins.open_map(self.pin_dir, "limits") as m:
            return m.lookup(_abi.U32.pack(0))

    def signatures(self) -> list[str]:
        if not self.has("scanner_sigs"):
            return []
        with _pins.open_map(self.pin_dir, "scanner_sigs") as m:
            keys, values = m.lookup_batch()
        slots = {}
        for i in range(len(keys) // 4):
            slots[_abi.U32.unpack_from(keys, i * 4)[0]] = values[
                i * _abi.SIGNATURE.size:(i + 1) * _abi.SIGNATURE.size]
        return _limits.signatures_view([slots[i] for i in sorted(slots)])

    def ban_keys(self) -> list[bytes]:
        """The sources with a ban in force."""
        return [key for key, ban in self._entries("bans_v2", _abi.BAN_V2)
                if ban[0] > self.now_mono]

    def bans(self, keep=None) -> list[dict]:
        """Every ban in force whose source keep(key) accepts (all when
        keep is None), oldest first."""
        signatures = self.signatures()
        out = []
        for key, ban in self._entries("bans_v2", _abi.BAN_V2):
            expires, since, packets, reason, detail = ban
            if expires <= self.now_mono or (keep and not keep(key)):
                continue
            out.append(dict(
                source=source_text(key), reason=reason_name(reason),
                detail=detail_name(reason, detail, signatures),
                since=self.wall(since), expires=self.expiry(expires),
                expires_in=self.seconds_left(expires), packets=packets,
                origin="program"))
        out.sort(key=lambda b: (b["since"], b["source"]))
        return out

    def pardons(self) -> list[dict]:
        """Every pardon in force."""
        out = []
        for key, (until, _reserved) in self._entries("pardons",
                                                     _abi.PARDON):
            if until > self.now_mono:
                out.append(dict(source=source_text(key),
                                until=self.expiry(until),
                                until_in=self.seconds_left(until)))
        out.sort(key=lambda p: p["source"])
        return out

    def pardon_keys(self) -> list[bytes]:
        return [key for key, (until, _r) in self._entries("pardons",
                                                          _abi.PARDON)
                if until > self.now_mono]

    def wall(self, mono_ns: int) -> str:
        return wall_time(mono_ns, self.now_mono, self.now_wall)

    def expiry(self, mono_ns: int) -> str | None:
        return None if mono_ns == NEVER else self.wall(mono_ns)

    def seconds_left(self, mono_ns: int) -> int | None:
        if mono_ns == NEVER:
            return None
        return max(0, (mono_ns - self.now_mono + 10**9 - 1) // 10**9)


def reason_name(reason: int) -> str:
    names = {_abi.REASONS.index("RATE_LIMITED"): "rate_limited"}
    names[len(_abi.REASONS) + _abi.REASONS_EXT.index("SCANNER")] = "scanner"
    return names.get(reason, "reason %d" % reason)


def detail_name(reason: int, detail: int, signatures: list[str]) -> str:
    """The request class of a rate-limit ban; the signature of a scanner
    ban (its slot when the signatures changed since)."""
    if reason_name(reason) == "rate_limited":
        return _abi.CLASSES[detail] if detail < len(_abi.CLASSES) else \
            "class %d" % detail
    if detail < len(signatures):
        return signatures[detail]
    return "signature slot %d" % detail


def lift(pin_dir: str, keys: list[bytes]) -> int:
    """Delete these bans; how many were there."""
    if not keys:
        return 0
    with _pins.open_map(pin_dir, "bans_v2") as m:
        return sum(1 for key in keys if m.delete(key))


def pardon(pin_dir: str, keys: list[bytes], until_mono: int) -> None:
    """Pardon these sources until a CLOCK_MONOTONIC time."""
    if not keys:
        return
    value = _abi.PARDON.pack(until_mono, 0)
    with _pins.open_map(pin_dir, "pardons") as m:
        m.update_batch(b"".join(keys), value * len(keys))
