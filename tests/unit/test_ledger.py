"""The ledger of a list: several owners' claims on the same keys, with and
without ttl, folded into the one value per key that the tries hold."""

from __future__ import annotations

import pytest

from plugins.module_utils import _abi, _ledger, _lists

SEC = 10**9
NOW = 5000 * SEC
A = _lists.source_tag("feedA")
B = _lists.source_tag("feedB")
C = _lists.source_tag("manual")
V4 = 0


def key(cidr: str) -> bytes:
    return _lists.parse_entry(cidr, True)[1]


K1, K2, K3, K4 = (key("192.0.2.%d" % i) for i in range(1, 5))
K6 = key("2001:db8::/48")


def run(ledger: _ledger.Ledger, tag: int, keys: set[bytes],
        state: str = "present", expires_ns: int = 0,
        v6: set[bytes] | None = None
        ) -> tuple[dict[int, tuple[int, int]], int]:
    return _ledger.change(ledger, tag, [set(keys), set(v6 or ())], state,
                          expires_ns)


def folded(ledger: _ledger.Ledger, family: int = V4
           ) -> dict[bytes, tuple[int, int]]:
    """{key: (expires_ns, owner tag)} of what the trie must hold."""
    keys, values = ledger.target(family).rows()
    assert len(keys) == len(set(keys)), "a key folded twice"
    return dict((k, _lists.entry_fields(v))
                for k, v in zip(keys, values, strict=True))


def claims(ledger: _ledger.Ledger, family: int = V4
           ) -> dict[int, tuple[set[bytes], dict[bytes, int]]]:
    return dict((tag, (c.permanent, c.expiring))
                for tag, c in ledger.families[family].items())


# Owners sharing keys


def test_a_key_stays_while_any_owner_lists_it() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2}, "exact")
    run(ledger, B, {K1}, "exact")
    assert folded(ledger) == {K1: (0, min(A, B)), K2: (0, A)}

    counts, unchanged = run(ledger, A, {K2}, "exact")
    assert (counts, unchanged) == ({A: (0, 1)}, 1)
    assert folded(ledger) == {K1: (0, B), K2: (0, A)}
    assert ledger.target(V4).groups == {A: {K2}, B: {K1}}

    counts, unchanged = run(ledger, B, set(), "exact")
    assert (counts, unchanged) == ({B: (0, 1)}, 0)
    assert folded(ledger) == {K2: (0, A)}
    assert ledger.tags() == {A}


@pytest.mark.parametrize("permanent, expiring", [(A, B), (B, A)])
def test_a_ttl_claim_never_shadows_another_owners_permanent_claim(
        permanent: int, expiring: int) -> None:
    for order in ((permanent, expiring), (expiring, permanent)):
        ledger = _ledger.Ledger()
        for tag in order:
            run(ledger, tag, {K1},
                expires_ns=NOW + 60 * SEC if tag == expiring else 0)
        assert folded(ledger) == {K1: (0, permanent)}
        assert ledger.target(V4).expiring == {}
        # The expiring claim is still the other owner's: when it lapses,
        # the permanent one is untouched.
        assert ledger.drop_expired(NOW + 60 * SEC) == {expiring: 1}
        assert folded(ledger) == {K1: (0, permanent)}


@pytest.mark.parametrize("first, later", [(A, B), (B, A)])
def test_each_owners_ttl_counts_for_that_owner_only(first: int,
                                                    later: int) -> None:
    ledger = _ledger.Ledger()
    run(ledger, first, {K1}, expires_ns=NOW + 10 * SEC)
    run(ledger, later, {K1}, expires_ns=NOW + 90 * SEC)
    run(ledger, first, {K2}, expires_ns=NOW + 10 * SEC)
    assert folded(ledger) == {K1: (NOW + 90 * SEC, later),
                              K2: (NOW + 10 * SEC, first)}

    assert ledger.drop_expired(NOW + 10 * SEC) == {first: 2}
    assert folded(ledger) == {K1: (NOW + 90 * SEC, later)}
    assert ledger.tags() == {later}

    assert ledger.drop_expired(NOW + 90 * SEC - 1) == {}
    assert ledger.drop_expired(NOW + 90 * SEC) == {later: 1}
    assert folded(ledger) == {}
    assert ledger.size() == 0 and ledger.tags() == set()


def test_absent_removes_every_owners_claim() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2})
    run(ledger, B, {K1}, expires_ns=NOW + 60 * SEC)
    run(ledger, B, set(), v6={K6})
    counts, unchanged = run(ledger, C, {K1, K3}, "absent", v6={K6})
    assert counts == {A: (0, 1), B: (0, 2)}
    assert unchanged == 1           # K3: nobody listed it
    assert folded(ledger) == {K2: (0, A)}
    assert folded(ledger, 1) == {}
    assert ledger.tags() == {A}


# One owner's run


def test_present_with_ttl_switches_a_permanent_claim_to_expiring() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2})
    run(ledger, A, {K1}, expires_ns=NOW + 60 * SEC)
    assert claims(ledger) == {A: ({K2}, {K1: NOW + 60 * SEC})}
    assert folded(ledger) == {K1: (NOW + 60 * SEC, A), K2: (0, A)}


def test_present_with_ttl_keeps_the_expiry_of_a_live_claim() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1}, expires_ns=NOW + 60 * SEC)
    counts, unchanged = run(ledger, A, {K1}, expires_ns=NOW + 600 * SEC)
    assert (counts, unchanged) == ({}, 1)
    assert claims(ledger) == {A: (set(), {K1: NOW + 60 * SEC})}


def test_present_without_ttl_makes_an_expiring_claim_permanent() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2}, expires_ns=NOW + 60 * SEC)
    run(ledger, A, {K1})
    assert claims(ledger) == {A: ({K1}, {K2: NOW + 60 * SEC})}
    assert folded(ledger) == {K1: (0, A), K2: (NOW + 60 * SEC, A)}
    assert ledger.drop_expired(NOW + 60 * SEC) == {A: 1}
    assert folded(ledger) == {K1: (0, A)}


def test_present_counts_what_it_added_and_what_was_already_there() -> None:
    ledger = _ledger.Ledger()
    assert run(ledger, A, {K1, K2}, v6={K6}) == ({A: (3, 0)}, 0)
    assert run(ledger, A, {K1, K2}, v6={K6}) == ({}, 3)
    assert run(ledger, A, {K1, K3}) == ({A: (1, 0)}, 1)
    assert run(ledger, B, {K1}) == ({B: (1, 0)}, 0)
    assert claims(ledger) == {A: ({K1, K2, K3}, {}), B: ({K1}, {})}


def test_exact_adds_and_removes_only_the_owners_claims() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2})
    run(ledger, A, {K3}, expires_ns=NOW + 60 * SEC)
    run(ledger, B, {K2, K3})
    counts, unchanged = run(ledger, A, {K1, K4}, "exact")
    assert counts == {A: (1, 2)}
    assert unchanged == 1
    assert claims(ledger) == {A: ({K1, K4}, {}), B: ({K2, K3}, {})}
    assert folded(ledger) == {K1: (0, A), K4: (0, A), K2: (0, B),
                              K3: (0, B)}


def test_exact_with_ttl_removes_the_owners_other_claims() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2})
    counts, unchanged = run(ledger, A, {K3}, "exact",
                            expires_ns=NOW + 60 * SEC)
    assert (counts, unchanged) == ({A: (1, 2)}, 0)
    assert claims(ledger) == {A: (set(), {K3: NOW + 60 * SEC})}


def test_exact_with_nothing_forgets_the_owner() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1}, v6={K6})
    ledger.names[A] = "feedA"
    assert run(ledger, A, set(), "exact") == ({A: (0, 2)}, 0)
    assert ledger.size() == 0
    assert ledger.tags() == set() and ledger.names == {}


def test_drop_expired_counts_per_owner_and_keeps_live_claims() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1, K2}, expires_ns=NOW)
    run(ledger, A, {K3}, expires_ns=NOW + 1)
    run(ledger, B, {K1}, expires_ns=NOW, v6={K6})
    assert ledger.drop_expired(NOW) == {A: 2, B: 2}
    assert claims(ledger) == {A: (set(), {K3: NOW + 1})}
    assert claims(ledger, 1) == {}


def test_shift_moves_only_expiries() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1})
    run(ledger, B, {K1, K2}, expires_ns=NOW)
    ledger.shift(-30 * SEC)
    assert claims(ledger) == {A: ({K1}, {}),
                              B: (set(), {K1: NOW - 30 * SEC,
                                          K2: NOW - 30 * SEC})}


def test_copy_is_independent() -> None:
    ledger = _ledger.Ledger()
    run(ledger, A, {K1}, expires_ns=NOW)
    ledger.names[A] = "feedA"
    twin = ledger.copy()
    run(twin, A, {K2})
    twin.names[A] = "renamed"
    assert claims(ledger) == {A: (set(), {K1: NOW})}
    assert ledger.names == {A: "feedA"}


# rows() and add_rows(): the file's rows, read back in whole chunks


def v4_keys(count: int, third: int = 0) -> list[bytes]:
    return [_lists._PREFIX.pack(32) + bytes((10, third, i >> 8, i & 255))
            for i in range(count)]


def same(one: _ledger.Ledger, other: _ledger.Ledger) -> None:
    for family in (0, 1):
        assert claims(one, family) == claims(other, family)


def reread(ledger: _ledger.Ledger) -> _ledger.Ledger:
    out = _ledger.Ledger()
    for family, ksize in ((0, 8), (1, 20)):
        keys, values = ledger.rows(family)
        assert len(keys) // ksize == len(values) // _abi.ENTRY.size
        out.add_rows(family, keys, values, ksize)
    return out


def test_rows_read_back_give_the_same_ledger() -> None:
    ledger = _ledger.Ledger()
    big = v4_keys(_ledger.CHUNK * 2 + 5)                 # one value
    run(ledger, A, set(big))
    run(ledger, B, set(big[:_ledger.CHUNK + 1]))         # shared, > CHUNK
    run(ledger, B, set(v4_keys(3, 1)), expires_ns=NOW + SEC)
    run(ledger, C, {big[7], big[-1]}, expires_ns=NOW + 2 * SEC)
    run(ledger, C, set(), v6={K6})
    run(ledger, A, set(), expires_ns=NOW, v6={key("2001:db8:1::/64")})
    assert ledger.size() == 2 * _ledger.CHUNK + 5 + _ledger.CHUNK + 1 + 3 \
        + 2 + 2
    back = reread(ledger)
    same(back, ledger)
    assert folded(back) == folded(ledger)
    assert folded(back, 1) == folded(ledger, 1)


def test_add_rows_takes_mixed_values_row_by_row() -> None:
    """A chunk whose rows do not all share one value, whichever row
    differs (first, last, one in the middle), is read row by row."""
    keys = v4_keys(_ledger.CHUNK + 3)
    perm_a = _abi.ENTRY.pack(0, A, 0)
    for odd in (0, _ledger.CHUNK // 2, _ledger.CHUNK - 1, _ledger.CHUNK):
        values = [perm_a] * len(keys)
        values[odd] = _abi.ENTRY.pack(NOW, B, 0)
        ledger = _ledger.Ledger()
        ledger.add_rows(V4, b"".join(keys), b"".join(values), 8)
        assert claims(ledger) == {
            A: (set(keys) - {keys[odd]}, {}),
            B: (set(), {keys[odd]: NOW})}


def test_add_rows_keeps_the_latest_expiry_of_an_owners_key() -> None:
    values = [_abi.ENTRY.pack(NOW + 5, A, 0), _abi.ENTRY.pack(NOW + 9, A, 0),
              _abi.ENTRY.pack(NOW + 1, A, 0)]
    ledger = _ledger.Ledger()
    ledger.add_rows(V4, K1 * 3, b"".join(values), 8)
    assert claims(ledger) == {A: (set(), {K1: NOW + 9})}


def test_add_rows_of_nothing_adds_nothing() -> None:
    ledger = _ledger.Ledger()
    ledger.add_rows(V4, b"", b"", 8)
    assert ledger.size() == 0 and ledger.tags() == set()


# The fold


def test_target_groups_each_permanent_key_under_its_lowest_owner() -> None:
    low, high = sorted((A, B))
    ledger = _ledger.Ledger()
    run(ledger, high, {K1, K2})
    run(ledger, low, {K2, K3})
    run(ledger, high, {K4}, expires_ns=NOW)
    target = ledger.target(V4)
    assert target.groups == {low: {K2, K3}, high: {K1}}
    assert target.permanent == {K1, K2, K3}
    assert target.expiring == {K4: _abi.ENTRY.pack(NOW, high, 0)}
    assert len(target) == 4 and K4 in target and K6 not in target
