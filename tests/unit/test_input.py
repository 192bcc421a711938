"""Input checks of bpf_map_entry: quoting input in errors, prefixes too
wide to block or trust, ttls and owner names. Each bad input is refused
with one sentence, asserted from its start."""

from __future__ import annotations

import socket
import struct

import pytest

from plugins.module_utils import _input
from plugins.module_utils._errors import FastpathError

PREFIX = struct.Struct("=I")


def key(cidr: str) -> bytes:
    addr, _slash, plen = cidr.partition("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return PREFIX.pack(int(plen)) + socket.inet_pton(family, addr)


def test_quote_leaves_a_short_entry_as_it_is() -> None:
    assert _input.quote("192.0.2.0/24") == "'192.0.2.0/24'"


def test_quote_cuts_a_long_line_to_forty_characters() -> None:
    quoted = _input.quote("1" * 10_000_000)
    assert quoted == "'" + "1" * 37 + "'..."
    assert len(_input.quote("x" * 40)) == 42      # 40 fit, uncut


def test_quote_escapes_control_and_invisible_characters() -> None:
    assert _input.quote("a\nb\x00c\x1b[31m") == "'a\\nb\\x00c\\x1b[31m'"
    assert _input.quote("evil\u202etxt") == "'evil\\u202etxt'"
    assert _input.quote("it's \\") == "'it\\'s \\\\'"


def test_quote_never_cuts_an_escape_in_half() -> None:
    quoted = _input.quote("\x00" * 100)
    assert quoted == "'" + "\\x00" * 9 + "'..."


def test_short_prefixes_finds_the_widest_first() -> None:
    keys = {key("192.0.2.1/32"), key("10.0.0.0/8"), key("203.0.0.0/7"),
            key("0.0.0.0/0"), key("198.51.100.0/24")}
    assert _input.short_prefixes(keys, _input.MIN_PREFIX_V4) == [
        key("0.0.0.0/0"), key("203.0.0.0/7")]


def test_short_prefixes_of_ipv6_and_of_nothing() -> None:
    keys = {key("2001:db8::/32"), key("2000::/3"), key("2001:db8::1/128")}
    assert _input.short_prefixes(keys, _input.MIN_PREFIX_V6) == [
        key("2000::/3")]
    assert _input.short_prefixes(keys, 0) == []
    assert _input.short_prefixes(set(), 8) == []
    assert _input.short_prefixes({key("192.0.2.1/32")}, 8) == []


def test_short_prefix_error_names_the_entry_and_the_option() -> None:
    assert _input.short_prefix_error(key("203.0.0.0/7"), 3, 8,
                                     "min_prefix_v4") == (
        "203.0.0.0/7 is shorter than /8: a list entry that wide would block "
        "(or trust) a large part of the internet; set min_prefix_v4 lower "
        "to allow it (3 such entries).")
    assert _input.short_prefix_error(key("2000::/3"), 1, 32,
                                     "min_prefix_v6").endswith(
        "set min_prefix_v6 lower to allow it (1 such entry).")


@pytest.mark.parametrize("value, seconds", [
    (0, 0),
    ("0", 0),
    (3600, 3600),
    ("90", 90),
    ("90s", 90),
    ("15m", 900),
    ("1h", 3600),
    ("7d", 7 * 86400),
    ("2w", 14 * 86400),
    ("1h30m", 5400),
    ("1d12h", 36 * 3600),
    (" 1h\n", 3600),
    ("3650d", _input.MAX_TTL_SECONDS),
    (_input.MAX_TTL_SECONDS, _input.MAX_TTL_SECONDS),
])
def test_ttl_in_seconds_or_with_a_unit(value: object, seconds: int) -> None:
    assert _input.parse_ttl(value) == seconds


NOT_A_DURATION = ("is not a duration: give seconds, or a number with s, m, "
                  "h, d or w, for example 90s, 15m, 1h or 7d.")
TOO_LONG = "is longer than 10 years: use ttl 0 for a permanent entry."


@pytest.mark.parametrize("value, message", [
    ("1y", "ttl '1y' " + NOT_A_DURATION),
    ("abc", "ttl 'abc' " + NOT_A_DURATION),
    ("-5", "ttl '-5' " + NOT_A_DURATION),
    (-5, "ttl '-5' " + NOT_A_DURATION),
    ("1.5h", "ttl '1.5h' " + NOT_A_DURATION),
    (1.5, "ttl '1.5' " + NOT_A_DURATION),
    (True, "ttl 'True' " + NOT_A_DURATION),
    (None, "ttl 'None' " + NOT_A_DURATION),
    ("", "ttl '' " + NOT_A_DURATION),
    ("  ", "ttl '  ' " + NOT_A_DURATION),
    ("\u0663\u0660", "ttl '\u0663\u0660' " + NOT_A_DURATION),  # Arabic 30
    ("1h 30m", "ttl '1h 30m' " + NOT_A_DURATION),
    ("1H", "ttl '1H' " + NOT_A_DURATION),
    ("h", "ttl 'h' " + NOT_A_DURATION),
    ("9" * 5000, "ttl '" + "9" * 37 + "'... " + NOT_A_DURATION),
    ("3651d", "ttl '3651d' " + TOO_LONG),
    (_input.MAX_TTL_SECONDS + 1, "ttl '315360001' " + TOO_LONG),
    ("99999999999999999999s", "ttl '99999999999999999999s' " + TOO_LONG),
    (10**30, "ttl '1000000000000000000000000000000' " + TOO_LONG),
])
def test_a_ttl_that_is_not_a_duration_is_one_sentence(
        value: object, message: str) -> None:
    with pytest.raises(FastpathError) as err:
        _input.parse_ttl(value)
    assert str(err.value) == message


@pytest.mark.parametrize("name", ["feed", "manual", "ops team/blocklist",
                                  "x" * 64, "flux-\u00e9t\u00e9"])
def test_an_owner_name_is_kept_as_given(name: str) -> None:
    assert _input.check_owner(name) == name


@pytest.mark.parametrize("name, message", [
    ("", "source must name the owner of the entries, for example feed or "
         "manual."),
    ("  \t", "source must name the owner of the entries"),
    (None, "source must name the owner of the entries"),
    ("x" * 65, "source '%s'... is longer than 64 characters: name the "
               "owner in a word or two" % ("x" * 37)),
    ("feed\n", "source 'feed\\n' contains a control or invisible "
               "character: name the owner with printable characters"),
    ("feed\x1b[2J", "source 'feed\\x1b[2J' contains a control or "
                    "invisible character"),
    ("dee\u202ef", "source 'dee\\u202ef' contains a control or invisible "
                   "character"),
])
def test_a_bad_owner_name_is_one_sentence(name: object,
                                          message: str) -> None:
    with pytest.raises(FastpathError) as err:
        _input.check_owner(name)
    assert str(err.value).startswith(message)
