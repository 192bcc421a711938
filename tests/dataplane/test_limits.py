"""Hand-written cases for rate limits ([step 11]) and bans ([step 6]) of
docs/dataplane.md, one per rule, named for the rule.

The kernel's clocks cannot be set, so time-dependent rules are driven by
writing state: a `rate_state` entry whose TAT lies in the past or the
future, a ban that ends a few hundred ms from now, budgets of seconds or
minutes so that the milliseconds a test takes do not matter. Budgets and
bans run on CLOCK_MONOTONIC (harness.mono_ns()). After the frames, the
program's `rate_state` and `bans_v2` must equal the model's, times within
SLACK (the program's clock is coarse). Bans' counts, since, reason and
detail, pardons and the per-class `rate_limited` counter are in
test_bans.py.
"""

from __future__ import annotations

import ipaddress
import time

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.checks import (
    BLOCKED_V4,
    JUNK,
    PLAIN_V4,
    PLAIN_V6,
    TRUSTED_IN_BLOCKED_V4,
    TRUSTED_V4,
    TRUSTED_V6,
    build,
    expect,
    load,
    request,
    set_flags,
    stun,
    tables,
    usual_lists,
)
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import Dataplane, mono_floor_ns, mono_ns

SECOND = 10**9
MS = 10**6
MINUTE = 60 * SECOND
SLACK = 50 * MS
REGISTER, INVITE, OPTIONS, OTHER, SYN = range(len(_abi.CLASSES))
BANS = _abi.FP_LIMIT_BANS
SIPVICIOUS_UA = b"User-Agent: sipvicious 0.3.4\r\n"
RESPONSE = b"SIP/2.0 200 OK\r\n\r\n"
SYN_ONLY, SYN_ACK, ACK = 0x02, 0x12, 0x10
IP = ipaddress.ip_address


# Tables and state.


def limits(untrusted: dict[int, tuple[int, int]] | None = None,
           trusted: dict[int, tuple[int, int]] | None = None,
           **fields: int) -> model.Limits:
    """fp_limits with (interval_ns, burst) budgets by class."""
    lim = model.Limits(**fields)
    for cls, (interval, burst) in (untrusted or {}).items():
        lim.untrusted[cls] = model.Budget(interval, burst)
    for cls, (interval, burst) in (trusted or {}).items():
        lim.trusted[cls] = model.Budget(interval, burst)
    return lim


def limited(lim: model.Limits, signatures: tuple[bytes, ...] = (),
            flags: int = 0, lists: bool = True) -> model.Tables:
    """The usual lists (or none) with limits and signatures."""
    t = usual_lists(flags) if lists else tables(flags=flags)
    t.limits = lim
    t.signatures = [model.Signature(s) for s in signatures]
    return t


def key(t: model.Tables, addr: model.IPAddress) -> model.Source:
    return model.source_of(addr, t.limits)


def source(family: int, prefixlen: int, addr: str) -> model.Source:
    """A source key written out: the masked address, zero padded."""
    return model.Source(family, prefixlen, IP(addr).packed.ljust(16, b"\0"))


def over(cls: int, tat_ns: int, over_since_ns: int = 0,
         last_drop_ns: int = 0) -> model.Rate:
    tat = [0] * _abi.CLASS_SLOTS
    tat[cls] = tat_ns
    return model.Rate(tat, over_since_ns, last_drop_ns)


def synced(dp: Dataplane, t: model.Tables) -> None:
    """The program's rate_state and bans_v2 are the model's, times within
    SLACK, counts exact; the model then takes the program's exact
    values."""
    rates, bans = dp.rate_state(), dp.bans()
    assert set(rates) == set(t.rate_state)
    assert set(bans) == set(t.bans)
    for k, rate in rates.items():
        mine = t.rate_state[k]
        pairs = list(zip(rate.tat_ns, mine.tat_ns, strict=True)) + [
            (rate.over_since_ns, mine.over_since_ns),
            (rate.last_drop_ns, mine.last_drop_ns)]
        assert all(abs(a - b) <= SLACK for a, b in pairs), (k, rate, mine)
    for k, ban in bans.items():
        mine = t.bans[k]
        assert (ban.reason, ban.detail, ban.packets) == \
            (mine.reason, mine.detail, mine.packets), (k, ban, mine)
        assert abs(ban.expires_ns - mine.expires_ns) <= SLACK, (k, ban, mine)
        assert abs(ban.since_ns - mine.since_ns) <= SLACK, (k, ban, mine)
    t.rate_state, t.bans = rates, bans


def invite(ua: bytes = b"") -> bytes:
    return (b"INVITE sip:bob@example.com SIP/2.0\r\n" + ua
            + b"CSeq: 1 INVITE\r\n\r\n")


def syn(src: model.IPAddress, flags: int = SYN_ONLY, **spec: object) -> bytes:
    return build(src, proto=frames.TCP, tcp_flags=flags, **spec)


# [step 11] Budgets.


def test_request_over_budget_is_rate_limited(dataplane: Dataplane) -> None:
    """One INVITE a minute: the second one and the next are dropped, never
    redirected; classes without a budget pass."""
    t = load(dataplane, limited(limits({INVITE: (MINUTE, 1)})))
    start = mono_floor_ns()
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, request()), "REDIRECT", "REDIRECTED",
               "UDP", rx_queue=XSK_QUEUE)
        for queue in (0, 0, XSK_QUEUE):
            expect(dataplane, t, build(src, request()), "DROP",
                   "RATE_LIMITED", "UDP", rx_queue=queue)
        for method in (b"REGISTER", b"BYE", b"REGISTER"):
            expect(dataplane, t, build(src, request(method)), "PASS",
                   "PASSED", "UDP")
    synced(dataplane, t)
    rate = t.rate_state[key(t, PLAIN_V4)]
    assert 0 <= rate.tat_ns[INVITE] - (start + MINUTE) < SECOND
    assert rate.tat_ns[:INVITE] + rate.tat_ns[INVITE + 1:] == [0] * 7
    assert start <= rate.over_since_ns <= rate.last_drop_ns <= mono_ns()
    assert t.bans == {}


def test_burst_passes_back_to_back(dataplane: Dataplane) -> None:
    """A burst of 5 passes at once, the sixth request does not; a burst of
    0 counts as 1."""
    t = load(dataplane, limited(limits({REGISTER: (MINUTE, 5),
                                        OTHER: (MINUTE, 0)})))
    start = mono_floor_ns()
    for _i in range(5):
        expect(dataplane, t, build(PLAIN_V4, request(b"REGISTER")),
               "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"REGISTER")),
           "DROP", "RATE_LIMITED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"BYE")),
           "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"ACK")),
           "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)
    tat = t.rate_state[key(t, PLAIN_V4)].tat_ns
    assert 0 <= tat[REGISTER] - (start + 5 * MINUTE) < SECOND
    assert 0 <= tat[OTHER] - (start + MINUTE) < SECOND


def test_bucket_refills_over_time(dataplane: Dataplane) -> None:
    """Interval 10 s, burst 3: a source idle for long has its whole burst;
    one whose TAT lies 5, 15 or 25 s ahead has 2, 1 or 0 requests left
    (one more each 10 s). Then in real time: 300 ms later, one more."""
    lim = limits({REGISTER: (10 * SECOND, 3)})
    t = limited(lim, lists=False)
    now = mono_ns()
    cases = ((IP("192.0.2.11"), now - 100 * SECOND, 3),
             (IP("192.0.2.12"), now + 5 * SECOND, 2),
             (IP("192.0.2.13"), now + 15 * SECOND, 1),
             (IP("192.0.2.14"), now + 25 * SECOND, 0),
             (IP("2001:db8:9::1"), 0, 3))
    for src, tat, _left in cases:
        t.rate_state[key(t, src)] = over(REGISTER, tat)
    load(dataplane, t)
    for src, _tat, left in cases:
        for _i in range(left):
            expect(dataplane, t, build(src, request(b"REGISTER")),
                   "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(src, request(b"REGISTER")),
               "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)

    t = load(dataplane, limited(limits({INVITE: (300 * MS, 1)})))
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    time.sleep(0.45)
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)


def test_request_class_is_the_exact_method(dataplane: Dataplane) -> None:
    """REGISTER, INVITE and OPTIONS in upper case have their classes; any
    other method, their other cases included, is OTHER."""
    budgets = {cls: (MINUTE, 1) for cls in (REGISTER, INVITE, OPTIONS,
                                            OTHER)}
    t = load(dataplane, limited(limits(budgets), flags=_abi.FP_STEALTH_OFF))
    for method in (b"REGISTER", b"INVITE", b"OPTIONS", b"register"):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "PASS", "PASSED", "UDP")
    # "register" used OTHER's budget.
    for method in (b"REGISTER", b"INVITE", b"OPTIONS", b"Invite",
                   b"REGISTERX", b"INVITE_", b"BYE",
                   b"!interesting-Method0123456789_*+`.%indeed'~"):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)


def test_trusted_source_gets_its_own_budget(dataplane: Dataplane) -> None:
    """trusted[class] for the allowlist, inside a blocked prefix too; no
    trusted budget, no limit, even where untrusted sources have one."""
    lim = limits({INVITE: (MINUTE, 1), REGISTER: (MINUTE, 1)},
                 trusted={INVITE: (MINUTE, 3)})
    t = load(dataplane, limited(lim))
    for src in (TRUSTED_V4, TRUSTED_IN_BLOCKED_V4, TRUSTED_V6):
        for _i in range(3):
            expect(dataplane, t, build(src, request()), "PASS", "PASSED",
                   "UDP")
        expect(dataplane, t, build(src, request()),
               "DROP", "RATE_LIMITED", "UDP")
        for payload in (request(b"REGISTER"),) * 4 + (JUNK,):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)
    assert t.rate_state[key(t, TRUSTED_V4)].tat_ns[REGISTER] == 0


def test_trusted_source_is_never_banned(dataplane: Dataplane) -> None:
    """Over its budget with bans on and ban_after_ns 0, a trusted source
    is limited but not banned, and a ban written for it does not apply;
    an untrusted source on the same settings is banned."""
    lim = limits({INVITE: (MINUTE, 1)}, trusted={INVITE: (MINUTE, 1)},
                 ban_ns=MINUTE, flags=BANS)
    t = limited(lim)
    written = model.Ban(mono_ns() + MINUTE, _abi.FP_RATE_LIMITED)
    t.bans[key(t, TRUSTED_V6)] = written
    load(dataplane, t)
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
        for _i in range(3):
            expect(dataplane, t, build(src, request()),
                   "DROP", "RATE_LIMITED", "UDP")
        expect(dataplane, t, build(src, request(b"BYE")), "PASS", "PASSED",
               "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"BYE")),
           "DROP", "BANNED", "UDP")
    synced(dataplane, t)
    assert set(t.bans) == {key(t, TRUSTED_V6), key(t, PLAIN_V4)}
    assert t.bans[key(t, TRUSTED_V6)] == written


def test_source_over_budget_for_ban_after_is_banned(
        dataplane: Dataplane) -> None:
    """ban_after_ns 1 s, interval 10 s, burst 2 (B x T = 20 s): a streak of
    drops 16 s long whose last drop is 15 s old goes on, and is banned at
    its next drop, which is still RATE_LIMITED and ends the streak; a
    streak of 0.5 s is not banned; one whose last drop is 25 s old has
    broken, and starts again."""
    lim = limits({INVITE: (10 * SECOND, 2)}, ban_after_ns=SECOND,
                 ban_ns=MINUTE, flags=BANS)
    t = limited(lim, lists=False)
    now = mono_ns()
    long_streak, short_streak, broken = (
        IP("192.0.2.21"), IP("192.0.2.22"), IP("2001:db8:9::22"))
    t.rate_state[key(t, long_streak)] = over(
        INVITE, now + MINUTE, now - 16 * SECOND, now - 15 * SECOND)
    t.rate_state[key(t, short_streak)] = over(
        INVITE, now + MINUTE, now - 500 * MS, now - 100 * MS)
    t.rate_state[key(t, broken)] = over(
        INVITE, now + MINUTE, now - 30 * SECOND, now - 25 * SECOND)
    load(dataplane, t)
    for src in (long_streak, short_streak, broken):
        expect(dataplane, t, build(src, request()),
               "DROP", "RATE_LIMITED", "UDP")
    for src, reason in ((long_streak, "BANNED"), (short_streak, "PASSED"),
                        (broken, "PASSED")):
        expect(dataplane, t, build(src, RESPONSE),
               "DROP" if reason == "BANNED" else "PASS", reason, "UDP")
    synced(dataplane, t)
    assert set(t.bans) == {key(t, long_streak)}
    ban = t.bans[key(t, long_streak)]
    assert ban.reason == _abi.FP_RATE_LIMITED
    assert abs(ban.expires_ns - (now + MINUTE)) < SECOND
    assert t.rate_state[key(t, long_streak)].over_since_ns == 0
    assert t.rate_state[key(t, short_streak)].over_since_ns == now - 500 * MS
    assert t.rate_state[key(t, broken)].over_since_ns > now - SECOND

    # ban_after_ns 0: the first drop bans; ban_ns 0: no ban at all.
    for ban_ns, third in ((MINUTE, "BANNED"), (0, "RATE_LIMITED")):
        t = load(dataplane, limited(limits({INVITE: (MINUTE, 1)},
                                           ban_ns=ban_ns, flags=BANS)))
        expect(dataplane, t, build(PLAIN_V6, request()), "PASS", "PASSED",
               "UDP")
        expect(dataplane, t, build(PLAIN_V6, request()),
               "DROP", "RATE_LIMITED", "UDP")
        expect(dataplane, t, build(PLAIN_V6, request()), "DROP", third,
               "UDP")
        synced(dataplane, t)
        assert bool(t.bans) == bool(ban_ns)


# [step 6] Bans.


def test_banned_source_is_dropped_from_the_first_packet(
        dataplane: Dataplane) -> None:
    """Every packet of a banned source that reaches [step 6] is dropped,
    whatever it holds; other ports skip it unless block_all_ports."""
    t = limited(limits(flags=BANS))
    for src in (PLAIN_V4, PLAIN_V6):
        t.bans[key(t, src)] = model.Ban(mono_ns() + MINUTE, _abi.FP_SCANNER)
    load(dataplane, t)
    for src in (PLAIN_V4, PLAIN_V6):
        for payload in (request(), RESPONSE, b"\r\n", b"  ", stun(), JUNK):
            expect(dataplane, t, build(src, payload), "DROP", "BANNED",
                   "UDP")
        for flags in (SYN_ONLY, ACK):
            expect(dataplane, t, syn(src, flags), "DROP", "BANNED", "TCP")
        expect(dataplane, t, build(src, JUNK, dport=53), "PASS", "NOT_SIP",
               "UDP")
    # A later fragment has no known port: it meets the bans anyway.
    expect(dataplane, t, build(PLAIN_V4, frag_offset=185, l4_raw=JUNK),
           "DROP", "BANNED", "UDP")
    set_flags(dataplane, t, _abi.FP_BLOCK_ALL_PORTS)
    expect(dataplane, t, build(PLAIN_V4, JUNK, dport=53), "DROP", "BANNED",
           "UDP")
    expect(dataplane, t, build(PLAIN_V6, b"ping", proto=frames.ICMPV6),
           "DROP", "BANNED", "ICMP")
    # The neighbours are not banned.
    expect(dataplane, t, build(PLAIN_V4 + 1, request()), "PASS", "PASSED",
           "UDP")
    expect(dataplane, t, build(IP("2001:db8:9:1::1"), request()),
           "PASS", "PASSED", "UDP")


def test_ban_is_looked_up_before_the_blocklist(dataplane: Dataplane) -> None:
    """A blocked source that is also banned counts BANNED; a trusted
    source inside a blocked prefix is exempt from both."""
    t = limited(limits(flags=BANS))
    for src in (BLOCKED_V4, TRUSTED_IN_BLOCKED_V4):
        t.bans[key(t, src)] = model.Ban(mono_ns() + MINUTE,
                                        _abi.FP_RATE_LIMITED)
    load(dataplane, t)
    expect(dataplane, t, build(BLOCKED_V4, request()), "DROP", "BANNED",
           "UDP")
    expect(dataplane, t, build(BLOCKED_V4 + 1, request()), "DROP", "BLOCKED",
           "UDP")
    expect(dataplane, t, build(TRUSTED_IN_BLOCKED_V4, JUNK), "PASS",
           "PASSED", "UDP")


def test_ban_expires(dataplane: Dataplane) -> None:
    """A ban holds while expires_ns is later than now; an expired ban is
    ignored and left in the map."""
    a, b, c = IP("192.0.2.31"), IP("192.0.2.32"), IP("2001:db8:9::32")
    t = limited(limits(flags=BANS), lists=False)
    soon = mono_ns() + 300 * MS
    t.bans[key(t, a)] = model.Ban(soon, _abi.FP_RATE_LIMITED)
    t.bans[key(t, b)] = model.Ban(mono_floor_ns() - 1, _abi.FP_SCANNER)
    t.bans[key(t, c)] = model.Ban(1, _abi.FP_SCANNER)
    load(dataplane, t)
    expect(dataplane, t, build(a, request()), "DROP", "BANNED", "UDP")
    for src in (b, c):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
    deadline = time.monotonic() + 5
    while mono_floor_ns() <= soon and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(dataplane, t, build(a, request()), "PASS", "PASSED", "UDP")
    synced(dataplane, t)
    assert set(t.bans) == {key(t, a), key(t, b), key(t, c)}


def test_bans_ignored_without_flag(dataplane: Dataplane) -> None:
    """Without FP_LIMIT_BANS no ban applies and none is made, by a rate
    limit or a fingerprint."""
    lim = limits({INVITE: (MINUTE, 1)}, ban_ns=MINUTE,
                 scanner_ban_ns=MINUTE)
    t = limited(lim, signatures=(b"sipvicious",))
    written = model.Ban(mono_ns() + MINUTE, _abi.FP_RATE_LIMITED)
    t.bans[key(t, PLAIN_V4)] = written
    load(dataplane, t)
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
        for _i in range(2):
            expect(dataplane, t, build(src, request()),
                   "DROP", "RATE_LIMITED", "UDP")
        expect(dataplane, t, build(src, b"BYE sip:x SIP/2.0\r\n"
                                   + SIPVICIOUS_UA),
               "DROP", "SCANNER", "UDP", signature=0)
        expect(dataplane, t, build(src, request(b"BYE")), "PASS", "PASSED",
               "UDP")
    synced(dataplane, t)
    assert t.bans == {key(t, PLAIN_V4): written}


# Sources.


def test_ipv6_sources_aggregate_to_64(dataplane: Dataplane) -> None:
    """prefix_v6 0 means 64: the addresses of one /64 share a budget and
    a ban; IPv4 sources stay /32."""
    lim = limits({INVITE: (MINUTE, 1)}, flags=BANS)
    t = load(dataplane, limited(lim, lists=False))
    for src, reason in (("2001:db8:9::1", "PASSED"),
                        ("2001:db8:9::2", "RATE_LIMITED"),
                        ("2001:db8:9:0:ffff:ffff:ffff:ffff", "RATE_LIMITED"),
                        ("2001:db8:9:1::1", "PASSED"),
                        ("192.0.2.1", "PASSED"), ("192.0.2.2", "PASSED")):
        expect(dataplane, t, build(IP(src), request()),
               "PASS" if reason == "PASSED" else "DROP", reason, "UDP")
    synced(dataplane, t)
    assert set(t.rate_state) == {
        source(6, 64, "2001:db8:9::"), source(6, 64, "2001:db8:9:1::"),
        source(4, 32, "192.0.2.1"), source(4, 32, "192.0.2.2")}
    # A ban of the /64 holds for all of it.
    t.bans[source(6, 64, "2001:db8:9:1::")] = model.Ban(
        mono_ns() + MINUTE, _abi.FP_SCANNER)
    dataplane.load_state(t)
    for src in ("2001:db8:9:1::1", "2001:db8:9:1:8000::99"):
        expect(dataplane, t, build(IP(src), RESPONSE), "DROP", "BANNED",
               "UDP")
    expect(dataplane, t, build(IP("2001:db8:9:2::1"), RESPONSE),
           "PASS", "PASSED", "UDP")


def test_prefix_settings_change_aggregation(dataplane: Dataplane) -> None:
    """prefix_v4 and prefix_v6 set how much of the address is the source:
    over 32 (IPv4) or 128 (IPv6) means the whole address."""
    cases = (
        ({"prefix_v4": 24}, "192.0.2.1", "192.0.2.200", "198.51.100.1",
         source(4, 24, "192.0.2.0")),
        ({"prefix_v4": 1}, "192.0.2.1", "198.51.100.1", "2001:db8:9::1",
         source(4, 1, "128.0.0.0")),
        ({"prefix_v4": 31}, "192.0.2.4", "192.0.2.5", "192.0.2.6",
         source(4, 31, "192.0.2.4")),
        ({"prefix_v4": 40}, "192.0.2.1", None, "192.0.2.2",
         source(4, 32, "192.0.2.1")),
        ({"prefix_v6": 48}, "2001:db8:9::1", "2001:db8:9:ffff::1",
         "2001:db8:a::1", source(6, 48, "2001:db8:9::")),
        ({"prefix_v6": 100}, "2001:db8:9::1", "2001:db8:9::fff:ffff",
         "2001:db8:9::1000:0", source(6, 100, "2001:db8:9::")),
        ({"prefix_v6": 128}, "2001:db8:9::1", None, "2001:db8:9::2",
         source(6, 128, "2001:db8:9::1")),
        ({"prefix_v6": 200}, "2001:db8:9::1", None, "2001:db8:9::2",
         source(6, 128, "2001:db8:9::1")),
    )
    for prefixes, first, same, other, first_key in cases:
        lim = limits({INVITE: (MINUTE, 1)}, **prefixes)
        t = load(dataplane, limited(lim, lists=False))
        expect(dataplane, t, build(IP(first), request()), "PASS", "PASSED",
               "UDP")
        if same is not None:
            expect(dataplane, t, build(IP(same), request()),
                   "DROP", "RATE_LIMITED", "UDP")
        expect(dataplane, t, build(IP(other), request()), "PASS", "PASSED",
               "UDP")
        synced(dataplane, t)
        assert first_key in t.rate_state, prefixes
        assert len(t.rate_state) == 2, prefixes


# Classes that are not UDP requests.


def test_syn_is_limited_per_source(dataplane: Dataplane) -> None:
    """A TCP segment for a SIP port with SYN set and ACK clear is of class
    SYN; other segments are never limited, nor redirected."""
    t = load(dataplane, limited(limits({SYN: (MINUTE, 2)})))
    for src in (PLAIN_V4, PLAIN_V6):
        for _i in range(2):
            expect(dataplane, t, syn(src), "PASS", "PASSED", "TCP")
        expect(dataplane, t, syn(src), "DROP", "RATE_LIMITED", "TCP")
        expect(dataplane, t, syn(src, 0x03), "DROP", "RATE_LIMITED", "TCP")
        for flags in (SYN_ACK, ACK, 0x18, 0x00):
            expect(dataplane, t, syn(src, flags), "PASS", "PASSED", "TCP",
                   rx_queue=XSK_QUEUE)
        expect(dataplane, t, syn(src, dport=443), "PASS", "NOT_SIP", "TCP")
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, syn(TRUSTED_V4), "PASS", "PASSED", "TCP")
    synced(dataplane, t)
    assert set(t.rate_state) == {key(t, PLAIN_V4), key(t, PLAIN_V6)}


def test_responses_keepalives_and_stun_are_never_limited(
        dataplane: Dataplane) -> None:
    """Every slot of both budget sets at one a minute: only requests and
    SYNs are charged, and slots 5 to 7 never are."""
    every = {cls: (MINUTE, 1) for cls in range(_abi.CLASS_SLOTS)}
    t = load(dataplane, limited(limits(every, trusted=every)))
    for _i in range(3):
        for payload in (RESPONSE, b"\r\n\r\n", b"    ", b"", stun()):
            expect(dataplane, t, build(PLAIN_V4, payload), "PASS", "PASSED",
                   "UDP")
        expect(dataplane, t, syn(PLAIN_V4, ACK), "PASS", "PASSED", "TCP")
        expect(dataplane, t, build(PLAIN_V4, JUNK), "DROP", "MALFORMED",
               "UDP")
        expect(dataplane, t, build(TRUSTED_V4, JUNK), "PASS", "PASSED",
               "UDP")
        expect(dataplane, t, build(PLAIN_V4, request(), frag_offset=185),
               "PASS", "NOT_SIP", "UDP")
    synced(dataplane, t)
    assert t.rate_state == {}
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)
    tat = t.rate_state[key(t, PLAIN_V4)].tat_ns
    assert [i for i, v in enumerate(tat) if v] == [INVITE]


def test_rate_limits_come_before_fingerprints_and_stealth(
        dataplane: Dataplane) -> None:
    """A request is charged before [step 12] and [step 13]: OPTIONS that
    stealth drops and requests of scanners use up the budget."""
    lim = limits({OPTIONS: (MINUTE, 2), INVITE: (MINUTE, 1)})
    t = load(dataplane, limited(lim, signatures=(b"sipvicious",)))
    for src in (PLAIN_V4, PLAIN_V6):
        for _i in range(2):
            expect(dataplane, t, build(src, request(b"OPTIONS")),
                   "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(src, request(b"OPTIONS")),
               "DROP", "RATE_LIMITED", "UDP")
        expect(dataplane, t, build(src, invite(SIPVICIOUS_UA)),
               "DROP", "SCANNER", "UDP", signature=0)
        expect(dataplane, t, build(src, invite(SIPVICIOUS_UA)),
               "DROP", "RATE_LIMITED", "UDP")
    synced(dataplane, t)


# Settings.


def test_shadow_counts_rate_limits_and_bans_without_dropping(
        dataplane: Dataplane) -> None:
    """With FP_SHADOW every counter moves and every ban is made as without
    it; the drops pass."""
    lim = limits({INVITE: (MINUTE, 1)}, ban_ns=MINUTE,
                 scanner_ban_ns=MINUTE, flags=BANS)
    t = load(dataplane, limited(lim, signatures=(b"sipvicious",),
                                flags=_abi.FP_SHADOW))
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "RATE_LIMITED",
           "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"BYE")), "PASS", "BANNED",
           "UDP")
    expect(dataplane, t, build(PLAIN_V6, invite(SIPVICIOUS_UA)),
           "PASS", "SCANNER", "UDP", signature=0)
    expect(dataplane, t, build(PLAIN_V6, RESPONSE), "PASS", "BANNED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, RESPONSE), "PASS", "BANNED", "UDP",
           rx_queue=XSK_QUEUE)
    synced(dataplane, t)
    assert {k: b.reason for k, b in t.bans.items()} == {
        key(t, PLAIN_V4): _abi.FP_RATE_LIMITED,
        key(t, PLAIN_V6): _abi.FP_SCANNER}


def test_empty_new_maps_behave_as_before(dataplane: Dataplane) -> None:
    """limits all zero and no signature: nothing is limited, banned or
    fingerprinted, a written ban is ignored, and no state is made."""
    t = usual_lists()
    t.bans[key(t, PLAIN_V4)] = model.Ban(mono_ns() + MINUTE,
                                         _abi.FP_SCANNER)
    load(dataplane, t)
    for _i in range(4):
        for src in (PLAIN_V4, PLAIN_V6, TRUSTED_V4):
            expect(dataplane, t, build(src, request()), "PASS", "PASSED",
                   "UDP")
            expect(dataplane, t, build(src, invite(SIPVICIOUS_UA)), "PASS",
                   "PASSED", "UDP")
            expect(dataplane, t, syn(src), "PASS", "PASSED", "TCP")
        expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS")
                                   + SIPVICIOUS_UA),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(BLOCKED_V4, request()), "DROP", "BLOCKED",
               "UDP")
    synced(dataplane, t)
    assert t.rate_state == {}


def test_limits_change_applies_from_the_next_packet(
        dataplane: Dataplane) -> None:
    """The limits map is read per packet: removing a budget lets the next
    request through, putting it back limits it again (the state stays), a
    larger burst lets two more through."""
    t = load(dataplane, limited(limits({INVITE: (MINUTE, 1)})))
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()),
           "DROP", "RATE_LIMITED", "UDP")
    for lim, reason in ((limits(), "PASSED"),
                        (limits({INVITE: (MINUTE, 1)}), "RATE_LIMITED"),
                        (limits({INVITE: (MINUTE, 3)}), "PASSED"),
                        (limits({INVITE: (MINUTE, 3)}), "PASSED"),
                        (limits({INVITE: (MINUTE, 3)}), "RATE_LIMITED")):
        t.limits = lim
        dataplane.set_limits(lim)
        expect(dataplane, t, build(PLAIN_V4, request()),
               "PASS" if reason == "PASSED" else "DROP", reason, "UDP")
    synced(dataplane, t)
