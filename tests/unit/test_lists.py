"""List parsing, planning and rollback, with the kernel boundary faked."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plugins.module_utils import _lists
from plugins.module_utils._errors import FastpathError

TAG = _lists.source_tag("feed")
OTHER = _lists.source_tag("manual")
NOW = 10**12


def keys(*cidrs: str) -> set[bytes]:
    v4, v6 = _lists.parse_lines(cidrs, True, "entry %d")
    return v4 | v6


def texts(found: list[bytes]) -> set[str]:
    return {_lists.key_text(k) for k in found}


def test_lines_with_comments_blanks_and_both_families() -> None:
    v4, v6 = _lists.parse_lines(
        ["# feed", "", "192.0.2.1  # one", "198.51.100.0/24",
         "2001:db8::/32", " 203.0.113.9 "], True, "line %d")
    assert texts(list(v4)) == {"192.0.2.1/32", "198.51.100.0/24",
                               "203.0.113.9/32"}
    assert texts(list(v6)) == {"2001:db8::/32"}


NOT_AN_ADDRESS = " is not an IPv4 or IPv6 address"
BAD_V4_LENGTH = " has an invalid prefix length: write /0 to /32 in digits 0-9"


@pytest.mark.parametrize("bad, message", [
    ("192.0.2", "'192.0.2'" + NOT_AN_ADDRESS),
    ("1", "'1'" + NOT_AN_ADDRESS),
    ("192.0.2.256", "'192.0.2.256'" + NOT_AN_ADDRESS),
    ("192.0.2.1\x00", "'192.0.2.1\\x00'" + NOT_AN_ADDRESS),
    ("192.0.2.1\udcff", "'192.0.2.1\\udcff'" + NOT_AN_ADDRESS),
    ("\u0661\u0669\u0662.0.2.1", "'\u0661\u0669\u0662.0.2.1'"
     + NOT_AN_ADDRESS),
    ("fe80::1%eth0", "'fe80::1%eth0'" + NOT_AN_ADDRESS),
    ("1" * 10_000_000, "'%s'...%s" % ("1" * 37, NOT_AN_ADDRESS)),
    ("192.0.2.0/33", "'192.0.2.0/33'" + BAD_V4_LENGTH),
    ("192.0.2.0/x", "'192.0.2.0/x'" + BAD_V4_LENGTH),
    ("192.0.2.0/", "'192.0.2.0/'" + BAD_V4_LENGTH),
    ("192.0.2.0/+24", "'192.0.2.0/+24'" + BAD_V4_LENGTH),
    ("203.0.113.0/\u0662\u0664", "'203.0.113.0/\u0662\u0664'"
     + BAD_V4_LENGTH),
    ("203.0.113.0/\uff12\uff14", "'203.0.113.0/\uff12\uff14'"
     + BAD_V4_LENGTH),
    ("192.0.2.0/99999999999999999999", "'192.0.2.0/99999999999999999999'"
     + BAD_V4_LENGTH),
    ("192.0.2.0/" + "9" * 5000, "'192.0.2.0/%s'...%s" % ("9" * 27,
                                                         BAD_V4_LENGTH)),
    ("2001:db8::/129", "'2001:db8::/129' has an invalid prefix length: "
     "write /0 to /128 in digits 0-9"),
    ("192.0.2.1/24", "'192.0.2.1/24' has host bits set: write "
     "192.0.2.0/24, or set strict: false to normalise"),
    ("::ffff:198.51.100.66/120", "'::ffff:198.51.100.66/120' has host "
     "bits set: write 198.51.100.0/24, or set strict: false to normalise"),
    ("::ffff:198.51.100.0/95", "'::ffff:198.51.100.0/95' is an "
     "IPv4-mapped prefix shorter than /96: write the IPv4 network instead "
     "(::ffff:a.b.c.d/N is a.b.c.d/N-96)"),
])
def test_bad_line_names_its_number(bad: str, message: str) -> None:
    with pytest.raises(FastpathError) as err:
        _lists.parse_lines(["192.0.2.7", bad], True, "line %d of list")
    assert str(err.value) == "line 2 of list: " + message


@pytest.mark.parametrize("mapped, ipv4", [
    ("::ffff:198.51.100.66", "198.51.100.66/32"),
    ("::FFFF:c633:6442", "198.51.100.66/32"),
    ("::ffff:198.51.100.66/128", "198.51.100.66/32"),
    ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
    ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
])
def test_an_ipv4_mapped_address_is_its_ipv4_address(
        mapped: str, ipv4: str) -> None:
    v4, v6 = _lists.parse_lines([mapped], True, "line %d")
    assert texts(list(v4)) == {ipv4} and v6 == set()


def test_a_mapped_address_with_host_bits_is_normalised_if_not_strict(
) -> None:
    v4, _v6 = _lists.parse_lines(["::ffff:198.51.100.66/120"], False,
                                 "line %d")
    assert texts(list(v4)) == {"198.51.100.0/24"}


def test_read_path_reads_a_list_file(tmp_path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf192.0.2.1\r\n# feed\r\n"
                        b"198.51.100.0/24  # office\r\n::ffff:203.0.113.9\n"
                        b"2001:db8::/32")
    v4, v6 = _lists.read_path(str(listing), True)
    assert texts(list(v4)) == {"192.0.2.1/32", "198.51.100.0/24",
                               "203.0.113.9/32"}
    assert texts(list(v6)) == {"2001:db8::/32"}


def test_read_path_agrees_with_parse_file_across_blocks(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_lists, "BLOCK", 64)
    lines = ["192.0.2.%d" % i for i in range(1, 60)]
    lines[40] = "2001:db8::%d/128  # v6" % 40
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines))
    with open(listing) as f:
        expected = _lists.parse_file(f, True, "line %d")
    assert _lists.read_path(str(listing), True) == expected


@pytest.mark.parametrize("data, message", [
    (b"192.0.2.1\n192.0.2.2\n10.\xff.0.1\n",
     "line 3 of {} is not text (byte 0xff at column 4): give a text file "
     "with one address or CIDR per line."),
    (b"192.0.2.1\n\xc3\xa9t\xc3\xa9 \xe9\n",
     "line 2 of {} is not text (byte 0xe9 at column 5): give a text file "),
    (b"192.0.2.1\n192.0.2.2\x00\n",
     "line 2 of {} is not text (byte 0x00 at column 10): give a text file "),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00",
     "line 1 of {} is not text (byte 0x00 at column 8)"),
    (b"\xff\xfe1\x009\x002\x00",
     "line 1 of {} is not text (byte 0xff at column 1)"),
])
def test_read_path_refuses_a_file_that_is_not_text(
        tmp_path, data: bytes, message: str) -> None:
    listing = tmp_path / "list.bin"
    listing.write_bytes(data)
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(listing), True)
    assert str(err.value).startswith(message.format(listing))


def test_read_path_counts_lines_across_blocks(tmp_path,
                                              monkeypatch) -> None:
    monkeypatch.setattr(_lists, "BLOCK", 64)
    lines = [b"192.0.2.%d" % i for i in range(1, 60)]
    lines[50] = b"192.0.2.\xff"
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(listing), True)
    assert str(err.value).startswith(
        "line 51 of %s is not text (byte 0xff at column 9)" % listing)


def test_read_path_refuses_a_line_longer_than_a_block(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_lists, "BLOCK", 64)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"192.0.2.1\n192.0.2.2\n" + b"1" * 1000 + b"\n")
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(listing), True)
    assert str(err.value) == (
        "line 3 of %s is longer than 64 bytes: give a text file with one "
        "address or CIDR per line." % listing)


def test_read_path_names_the_line_of_a_bad_entry(tmp_path) -> None:
    listing = tmp_path / "100%.txt"
    listing.write_text("192.0.2.1\n203.0.113.0/\u0662\u0664\n")
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(listing), True)
    assert str(err.value).startswith(
        "line 2 of %s: '203.0.113.0/\u0662\u0664' has an invalid prefix "
        "length" % listing)


def test_read_path_of_a_file_that_cannot_be_read(tmp_path) -> None:
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(tmp_path / "missing"), True)
    assert str(err.value) == ("Could not read %s: No such file or "
                              "directory." % (tmp_path / "missing"))
    with pytest.raises(FastpathError) as err:
        _lists.read_path(str(tmp_path), True)
    assert str(err.value) == "Could not read %s: Is a directory." % tmp_path


def test_host_bits_are_normalised_when_not_strict() -> None:
    v4, _v6 = _lists.parse_lines(["192.0.2.77/24"], False, "line %d")
    assert texts(list(v4)) == {"192.0.2.0/24"}


def test_protected_address_inside_or_around_a_blocked_entry() -> None:
    desired = keys("192.0.2.0/24", "203.0.113.5")
    guard = keys("192.0.2.10")
    assert [(texts([e]), texts([g])) for e, g in
            _lists.protected_hits(desired, guard)] == [
        ({"192.0.2.0/24"}, {"192.0.2.10/32"})]
    wide_guard = keys("203.0.113.0/24")
    assert [(texts([e]), texts([g])) for e, g in
            _lists.protected_hits(desired, wide_guard)] == [
        ({"203.0.113.5/32"}, {"203.0.113.0/24"})]
    assert not _lists.protected_hits(desired, keys("198.51.100.1"))


def test_file_blocks_take_the_fast_path_and_keep_line_numbers(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_lists, "BLOCK", 64)
    lines = ["192.0.2.%d" % i for i in range(1, 40)]
    lines[30] = "192.0.2.999"
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    with open(listing) as f, pytest.raises(FastpathError) as err:
        _lists.parse_file(f, True, "line %d of list")
    assert str(err.value).startswith("line 31 of list: '192.0.2.999'")

    lines[30] = "192.0.2.31  # commented"
    lines.append("2001:db8::1")
    listing.write_text("\n".join(lines))
    with open(listing) as f:
        v4, v6 = _lists.parse_file(f, True, "line %d")
    assert len(v4) == 39 and texts(list(v6)) == {"2001:db8::1/128"}


@given(st.one_of(st.ip_addresses(v=4).map(lambda a: (a, 32)),
                 st.ip_addresses(v=6).map(lambda a: (a, 128))),
       st.integers(min_value=0, max_value=128))
@example((ipaddress.ip_address("::ffff:198.51.100.66"), 128), 120)
@example((ipaddress.ip_address("::ffff:198.51.100.66"), 128), 95)
def test_parse_agrees_with_the_standard_library(address, prefixlen) -> None:
    addr, bits = address
    prefixlen = min(prefixlen, bits)
    text = "%s/%d" % (addr, prefixlen)
    network = ipaddress.ip_network(text, strict=False)
    if bits == 128 and addr.ipv4_mapped is not None:
        if prefixlen < 96:
            with pytest.raises(FastpathError):
                _lists.parse_entry(text, strict=False)
            return
        # ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/N-96.
        addr = addr.ipv4_mapped
        network = ipaddress.ip_network("%s/%d" % (addr, prefixlen - 96),
                                       strict=False)
    _family, key = _lists.parse_entry(text, strict=False)
    assert ipaddress.ip_network(_lists.key_text(key)) == network
    if network.network_address != addr:
        with pytest.raises(FastpathError):
            _lists.parse_entry(text, strict=True)
