# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of what an operator or a feed hands to bpf_map_entry.

Private to this collection. Input that is hostile or careless (a prefix
that blocks half the internet, a ttl of a thousand years, an owner's name
of a megabyte) is refused here with one short sentence, before anything
is changed. Nothing here touches the kernel.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
import socket
import struct
import sys

from ._errors import FastpathError

# The shortest prefix a list takes unless the operator allows wider ones:
# a /7 of IPv4 is 1/128 of the address space.
MIN_PREFIX_V4 = 8
MIN_PREFIX_V6 = 32

# A ttl longer than this is a mistake (and would overflow the u64 expiry
# in nanoseconds long before any sane value): 0 is the permanent entry.
MAX_TTL_SECONDS = 10 * 365 * 86400

# Characters of input an error message quotes at most.
QUOTE_LIMIT = 40

OWNER_MAX = 64

_PREFIX = struct.Struct("=I")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# [0-9], not \d: \d takes the digits of every script.
_SECONDS = re.compile(r"[0-9]+")
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+")
_PART = re.compile(r"([0-9]+)([smhdw])")
# No duration worth writing is longer; a longer string is refused unread.
_DURATION_MAX_CHARS = 64
_NOT_A_DURATION = ("%s %s is not a duration: give seconds, or a number "
                   "with s, m, h, d or w, for example 90s, 15m, 1h or 7d.")
_NO_OWNER = ("source must name the owner of the entries, for example "
             "feed or manual.")


def _escaped(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if char.isprintable():
        return char
    return repr(char)[1:-1]     # \n, \x00, \u202e: as Python writes them


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` in single quotes for an error message: control and other
    invisible characters escaped as repr() does, and cut to `limit`
    characters with "..." after the quote, so that a 10 MB line or a
    terminal escape in a feed never ends up whole in a message or log."""
    pieces = [_escaped(char) for char in text[:limit]]
    if len(text) <= limit and sum(len(p) for p in pieces) <= limit:
        return "'%s'" % "".join(pieces)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > limit - 3:
            break
        kept.append(piece)
        used += len(piece)
    return "'%s'..." % "".join(kept)


def _cidr(key: bytes) -> str:
    family = socket.AF_INET if len(key) == 8 else socket.AF_INET6
    return "%s/%d" % (socket.inet_ntop(family, key[4:]),
                      _PREFIX.unpack_from(key)[0])


def short_prefixes(keys: set[bytes], min_len: int) -> list[bytes]:
    """The keys (of one family's trie: prefixlen in host order, then the
    address) whose prefix is shorter than `min_len`, widest first. A list
    of a million addresses costs one pass over the prefix lengths."""
    if min_len <= 0 or not keys:
        return []
    # The prefix lengths in use, from one column of the joined keys: the
    # byte of the host-order u32 that holds a length up to 128.
    ksize = len(next(iter(keys)))
    column = 0 if sys.byteorder == "little" else 3
    if min(b"".join(keys)[column::ksize]) >= min_len:
        return []
    short = {_PREFIX.pack(length) for length in range(min_len)}
    return sorted((key for key in keys if key[:4] in short),
                  key=lambda key: (_PREFIX.unpack_from(key)[0], key[4:]))


def short_prefix_error(key: bytes, count: int, min_len: int,
                       option: str) -> str:
    """The sentence that refuses `count` entries shorter than `min_len`,
    naming the widest (`key`) and the option that allows them."""
    return ("%s is shorter than /%d: a list entry that wide would block "
            "(or trust) a large part of the internet; set %s lower to "
            "allow it (%d such %s)."
            % (_cidr(key), min_len, option, count,
               "entry" if count == 1 else "entries"))


def _seconds(digits: str) -> int:
    # int() of thousands of digits raises; any number this long is over
    # the bound, whatever its unit.
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(MAX_TTL_SECONDS)):
        return MAX_TTL_SECONDS + 1
    return int(digits)


def parse_ttl(value: object, what: str = "ttl",
              zero: str = "use ttl 0 for a permanent entry") -> int:
    """Seconds of a ttl: an int, a string of digits, or numbers with a
    unit (90s, 15m, 1h, 7d, 2w, 1h30m); 0 is a permanent entry. A float, a
    bool, a negative number or a unit we do not know is refused rather
    than guessed at. what names the option in a refusal, zero says what
    to give instead of a time longer than 10 years."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FastpathError(_NOT_A_DURATION % (what, quote(str(value))))
    if isinstance(value, int):
        if value < 0:
            raise FastpathError(_NOT_A_DURATION % (what, quote(str(value))))
        seconds = value
    else:
        text = value.strip()
        if len(text) > _DURATION_MAX_CHARS:
            raise FastpathError(_NOT_A_DURATION % (what, quote(value)))
        if _SECONDS.fullmatch(text):
            seconds = _seconds(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(_seconds(number) * _UNITS[unit]
                          for number, unit in _PART.findall(text))
        else:
            raise FastpathError(_NOT_A_DURATION % (what, quote(value)))
    if seconds > MAX_TTL_SECONDS:
        raise FastpathError("%s %s is longer than 10 years: %s."
                            % (what, quote(str(value)), zero))
    return seconds


def check_owner(name: object) -> str:
    """The owner's name (the `source` option), unchanged: its CRC is the
    tag every entry carries, so it must be a name a person can read back
    in a diff or a log."""
    if not isinstance(name, str) or not name.strip():
        raise FastpathError(_NO_OWNER)
    if len(name) > OWNER_MAX:
        raise FastpathError(
            "source %s is longer than %d characters: name the owner in a "
            "word or two, for example feed or manual."
            % (quote(name), OWNER_MAX))
    if not all(char.isprintable() for char in name):
        raise FastpathError(
            "source %s contains a control or invisible character: name "
            "the owner with printable characters, for example feed or "
            "manual."
            % quote(name))
    return name
