"""List parsing, planning and rollback, with the kernel boundary faked."""

from __future__ import annotations

import errno
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.module_utils import _abi, _lists
from plugins.module_utils._errors import FastpathError

TAG = _lists.source_tag("feed")
OTHER = _lists.source_tag("manual")
NOW = 10**12


def keys(*cidrs: str) -> set[bytes]:
    v4, v6 = _lists.parse_lines(cidrs, True, "entry %d")
    return v4 | v6


def entries(values: dict[str, tuple[int, int]]) -> _lists.Entries:
    pairs = [(k, _abi.ENTRY.pack(exp, src, 0)) for cidr, (exp, src) in
             values.items() for k in keys(cidr)]
    return _lists.Entries(b"".join(k for k, _v in pairs),
                          b"".join(v for _k, v in pairs), 8, 16)


def texts(found: list[bytes]) -> set[str]:
    return {_lists.key_text(k) for k in found}


def test_lines_with_comments_blanks_and_both_families() -> None:
    v4, v6 = _lists.parse_lines(
        ["# feed", "", "192.0.2.1  # one", "198.51.100.0/24",
         "2001:db8::/32", " 203.0.113.9 "], True, "line %d")
    assert texts(list(v4)) == {"192.0.2.1/32", "198.51.100.0/24",
                               "203.0.113.9/32"}
    assert texts(list(v6)) == {"2001:db8::/32"}


@pytest.mark.parametrize("bad, why", [
    ("192.0.2", "not an IPv4 or IPv6 address"),
    ("1", "not an IPv4 or IPv6 address"),
    ("192.0.2.256", "not an IPv4 or IPv6 address"),
    ("192.0.2.0/33", "invalid prefix length"),
    ("192.0.2.0/x", "invalid prefix length"),
    ("2001:db8::/129", "invalid prefix length"),
    ("192.0.2.1/24", "host bits set"),
])
def test_bad_line_names_its_number(bad: str, why: str) -> None:
    with pytest.raises(FastpathError) as err:
        _lists.parse_lines(["192.0.2.7", bad], True, "line %d of list")
    assert str(err.value).startswith("line 2 of list: ")
    assert why in str(err.value)


def test_host_bits_are_normalised_when_not_strict() -> None:
    v4, _v6 = _lists.parse_lines(["192.0.2.77/24"], False, "line %d")
    assert texts(list(v4)) == {"192.0.2.0/24"}


def test_present_adds_missing_and_leaves_other_owners() -> None:
    current = entries({"192.0.2.1/32": (0, TAG),
                       "192.0.2.2/32": (0, OTHER)})
    plan = _lists.plan_family(current, keys("192.0.2.1", "192.0.2.2",
                                            "192.0.2.3"),
                              "present", TAG, 0, NOW)
    assert texts(plan.write) == {"192.0.2.3/32"}
    assert plan.delete == [] and plan.unchanged == 2


def test_exact_removes_only_the_owners_unlisted_entries() -> None:
    current = entries({"192.0.2.1/32": (0, TAG),
                       "192.0.2.2/32": (0, OTHER),
                       "192.0.2.9/32": (0, TAG)})
    plan = _lists.plan_family(current, keys("192.0.2.1"), "exact", TAG, 0,
                              NOW)
    assert texts(plan.delete) == {"192.0.2.9/32"}
    assert plan.write == []


def test_expired_entries_are_renewed_or_removed() -> None:
    current = entries({"192.0.2.1/32": (NOW - 1, TAG),
                       "192.0.2.2/32": (NOW - 1, TAG),
                       "192.0.2.3/32": (NOW - 1, OTHER),
                       "192.0.2.4/32": (NOW + 10**9, TAG)})
    plan = _lists.plan_family(current, keys("192.0.2.1", "192.0.2.3"),
                              "present", TAG, 0, NOW)
    assert texts(plan.write) == {"192.0.2.1/32", "192.0.2.3/32"}
    assert texts(plan.delete) == {"192.0.2.2/32"}
    assert plan.expired == 1


def test_ttl_switched_on_rewrites_a_permanent_entry() -> None:
    current = entries({"192.0.2.1/32": (0, TAG)})
    plan = _lists.plan_family(current, keys("192.0.2.1"), "present", TAG,
                              NOW + 60 * 10**9, NOW)
    assert texts(plan.write) == {"192.0.2.1/32"}
    assert plan.unchanged == 0


def test_absent_removes_whatever_the_owner() -> None:
    current = entries({"192.0.2.1/32": (0, OTHER)})
    plan = _lists.plan_family(current, keys("192.0.2.1", "192.0.2.5"),
                              "absent", TAG, 0, NOW)
    assert texts(plan.delete) == {"192.0.2.1/32"}
    assert plan.unchanged == 1


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


class FailingTrie:
    """A trie whose batch write fails after the deletes went through."""

    def __init__(self, contents: dict[bytes, bytes]) -> None:
        self.contents = dict(contents)

    def delete_batch(self, joined: bytes) -> None:
        for i in range(0, len(joined), 8):
            del self.contents[joined[i:i + 8]]

    def update_batch(self, joined: bytes, values: bytes) -> None:
        first = joined[:8]
        self.contents[first] = values[:16]
        raise OSError(errno.ENOSPC, "no space")

    def update(self, key: bytes, raw: bytes) -> None:
        self.contents[key] = raw

    def delete(self, key: bytes) -> None:
        self.contents.pop(key, None)


def test_failed_write_puts_everything_back() -> None:
    current = entries({"192.0.2.1/32": (0, TAG), "192.0.2.9/32": (0, TAG)})
    before = {k: current.raw(i) for i, k in enumerate(current.key_list)}
    plan = _lists.plan_family(current, keys("192.0.2.1", "192.0.2.5"),
                              "exact", TAG, 0, NOW)
    trie = FailingTrie(before)
    with pytest.raises(OSError):
        _lists.apply_plan(trie, plan, _abi.ENTRY.pack(0, TAG, 0))
    assert trie.contents == before


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
def test_parse_agrees_with_the_standard_library(address, prefixlen) -> None:
    addr, bits = address
    prefixlen = min(prefixlen, bits)
    text = "%s/%d" % (addr, prefixlen)
    network = ipaddress.ip_network(text, strict=False)
    _family, key = _lists.parse_entry(text, strict=False)
    assert ipaddress.ip_network(_lists.key_text(key)) == network
    if network.network_address != addr:
        with pytest.raises(FastpathError):
            _lists.parse_entry(text, strict=True)
