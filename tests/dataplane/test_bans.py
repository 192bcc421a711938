"""Hand-written cases for what a ban records, pardons and the per-class
count of rate-limited drops (docs/dataplane.md, "Rate limits and bans",
[step 6], [step 11], [step 12]), one per rule, named for the rule.

A ban in `bans_v2` records when it was made (since_ns), what made it
(reason, and detail: the request class or the signature slot) and how
many packets it has dropped. A live entry of `pardons` keeps a source
from being banned, and changes nothing else. `rate_limited` counts each
RATE_LIMITED drop under its class. The program's maps are compared with
the model's after the frames (test_limits.synced()).
"""

from __future__ import annotations

import ipaddress
import time

from plugins.module_utils import _abi
from tests.dataplane import model
from tests.dataplane.checks import (
    PLAIN_V4,
    PLAIN_V6,
    TRUSTED_V4,
    TRUSTED_V6,
    build,
    expect,
    load,
    request,
    set_flags,
)
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import Dataplane, mono_floor_ns, mono_ns
from tests.dataplane.test_limits import (
    BANS,
    INVITE,
    MINUTE,
    MS,
    OPTIONS,
    OTHER,
    REGISTER,
    RESPONSE,
    SIPVICIOUS_UA,
    SYN,
    invite,
    key,
    limited,
    limits,
    syn,
    synced,
)

IP = ipaddress.ip_address
HOUR = 60 * MINUTE
SIGS = (b"friendly-scanner", b"sipcli", b"sipvicious")
# One source and one request per class; OPTIONS with stealth off passes.
CLASS_REQUESTS = (
    (REGISTER, IP("192.0.2.41"), request(b"REGISTER")),
    (INVITE, IP("2001:db8:9:41::1"), request(b"INVITE")),
    (OPTIONS, IP("192.0.2.43"), request(b"OPTIONS")),
    (OTHER, IP("2001:db8:9:44::1"), request(b"BYE")),
)
CLASS_SOURCES = (*(src for _cls, src, _payload in CLASS_REQUESTS),
                 IP("192.0.2.45"))
# A scanner's request of a class without a budget: sipvicious, slot 2.
SCAN = b"BYE sip:bob@example.com SIP/2.0\r\n" + SIPVICIOUS_UA + b"\r\n"
SCAN_SLOT = 2


def per_class_requests() -> list[tuple[int, model.IPAddress, bytes, str]]:
    """(class, source, frame, proto) for every class, SYN over TCP."""
    found = [(cls, src, build(src, payload), "UDP")
             for cls, src, payload in CLASS_REQUESTS]
    return found + [(SYN, CLASS_SOURCES[-1], syn(CLASS_SOURCES[-1]), "TCP")]


def one_a_minute(**fields: int) -> model.Limits:
    return limits({cls: (MINUTE, 1) for cls in range(len(_abi.CLASSES))},
                  **fields)


def frame_proto(frame: bytes) -> str:
    pkt = model.parse(frame)
    assert pkt is not None
    return _abi.PROTOS[pkt.proto]


def grown(dp: Dataplane, before: list[tuple[int, int]]
          ) -> list[tuple[int, int]]:
    return [(p - p0, b - b0) for (p, b), (p0, b0)
            in zip(dp.counters("rate_limited"), before, strict=True)]


# What a ban records.


def test_rate_limit_ban_records_since_reason_and_class(
        dataplane: Dataplane) -> None:
    """A ban for staying over budget records when it was made, the reason
    RATE_LIMITED and the class of the drop that made it, for each class;
    it lasts ban_ns from since_ns and has dropped nothing yet."""
    t = limited(one_a_minute(ban_ns=MINUTE, flags=BANS),
                flags=_abi.FP_STEALTH_OFF, lists=False)
    load(dataplane, t)
    start = mono_floor_ns()
    for cls, _src, frame, proto in per_class_requests():
        expect(dataplane, t, frame, "PASS", "PASSED", proto)
        expect(dataplane, t, frame, "DROP", "RATE_LIMITED", proto,
               limited_class=cls)
    end = mono_ns()
    synced(dataplane, t)
    assert set(t.bans) == {key(t, src) for src in CLASS_SOURCES}
    for cls, src, _frame, _proto in per_class_requests():
        ban = t.bans[key(t, src)]
        assert (ban.reason, ban.detail, ban.packets) == \
            (_abi.FP_RATE_LIMITED, cls, 0), _abi.CLASSES[cls]
        assert start <= ban.since_ns <= end
        assert ban.expires_ns - ban.since_ns == MINUTE


def test_scanner_ban_records_the_signature_slot(
        dataplane: Dataplane) -> None:
    """A scanner ban records the reason SCANNER and the slot of the
    signature that matched, and lasts scanner_ban_ns from since_ns."""
    t = limited(limits(scanner_ban_ns=HOUR, flags=BANS), signatures=SIGS,
                lists=False)
    load(dataplane, t)
    sources = (PLAIN_V4, PLAIN_V6, IP("192.0.2.47"))
    start = mono_floor_ns()
    for slot, (src, sig) in enumerate(zip(sources, SIGS, strict=True)):
        expect(dataplane, t, build(src, invite(b"User-Agent: " + sig
                                               + b"/1.0\r\n")),
               "DROP", "SCANNER", "UDP", signature=slot)
    end = mono_ns()
    synced(dataplane, t)
    for slot, src in enumerate(sources):
        ban = t.bans[key(t, src)]
        assert (ban.reason, ban.detail, ban.packets) == \
            (_abi.FP_SCANNER, slot, 0)
        assert start <= ban.since_ns <= end
        assert ban.expires_ns - ban.since_ns == HOUR


def test_each_banned_packet_adds_one_to_the_ban(
        dataplane: Dataplane) -> None:
    """Every packet a ban drops adds 1 to its packets, from what the
    control plane wrote, in shadow mode too; an expired ban counts
    nothing, nor does a ban while bans are off."""
    t = limited(limits(flags=BANS), lists=False)
    live = model.Ban(mono_ns() + MINUTE, _abi.FP_SCANNER, 3, 1000, 7)
    expired = model.Ban(mono_floor_ns() - 1, _abi.FP_RATE_LIMITED, 1, 1000,
                        9)
    t.bans[key(t, PLAIN_V6)] = live
    t.bans[key(t, PLAIN_V4)] = expired
    load(dataplane, t)
    frames = (build(PLAIN_V6, request()), build(PLAIN_V6, RESPONSE),
              syn(PLAIN_V6), build(IP("2001:db8:9::99"), b"\r\n"))
    for frame in frames:
        expect(dataplane, t, frame, "DROP", "BANNED", frame_proto(frame))
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    set_flags(dataplane, t, _abi.FP_SHADOW)
    expect(dataplane, t, build(PLAIN_V6, request()), "PASS", "BANNED", "UDP",
           rx_queue=XSK_QUEUE)
    synced(dataplane, t)
    assert t.bans[key(t, PLAIN_V6)].packets == 7 + len(frames) + 1
    assert t.bans[key(t, PLAIN_V4)].packets == 9
    t.limits = limits()
    dataplane.set_limits(t.limits)
    expect(dataplane, t, build(PLAIN_V6, request()), "PASS", "PASSED", "UDP")
    synced(dataplane, t)
    assert t.bans[key(t, PLAIN_V6)].packets == 7 + len(frames) + 1


def test_a_new_ban_starts_its_count_again(dataplane: Dataplane) -> None:
    """A ban that replaces an expired one of the source has its own since,
    reason, detail and a count from 0."""
    t = limited(limits({INVITE: (MINUTE, 1)}, ban_ns=MINUTE, flags=BANS),
                lists=False)
    t.bans[key(t, PLAIN_V4)] = model.Ban(mono_floor_ns() - 1,
                                         _abi.FP_SCANNER, 2, 1000, 50)
    load(dataplane, t)
    start = mono_floor_ns()
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request()), "DROP", "RATE_LIMITED",
           "UDP", limited_class=INVITE)
    expect(dataplane, t, build(PLAIN_V4, RESPONSE), "DROP", "BANNED",
           "UDP")
    synced(dataplane, t)
    ban = t.bans[key(t, PLAIN_V4)]
    assert (ban.reason, ban.detail, ban.packets) == \
        (_abi.FP_RATE_LIMITED, INVITE, 1)
    assert ban.since_ns >= start


def test_a_trusted_sources_ban_counts_no_packet(
        dataplane: Dataplane) -> None:
    """A ban written for a trusted source drops nothing ([step 5]), so its
    packets stays as written."""
    t = limited(limits(flags=BANS))
    for src in (TRUSTED_V4, TRUSTED_V6):
        t.bans[key(t, src)] = model.Ban(mono_ns() + MINUTE, _abi.FP_SCANNER,
                                        0, 1000, 4)
    load(dataplane, t)
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
        expect(dataplane, t, syn(src), "PASS", "PASSED", "TCP")
    bans = dataplane.bans()
    assert [bans[key(t, src)].packets for src in (TRUSTED_V4, TRUSTED_V6)] \
        == [4, 4], "a trusted source's packets were counted by its ban"


# Pardons.


def test_live_pardon_prevents_both_kinds_of_ban(dataplane: Dataplane) -> None:
    """With a pardon ending later than now, a source over budget and a
    scanner are dropped and counted as without it (RATE_LIMITED with its
    class, SCANNER with its slot) but not banned; the streak still ends at
    the drop that would have banned. A pardon of a /64 covers all of it;
    a source without one is banned."""
    lim = limits({INVITE: (MINUTE, 1)}, ban_ns=MINUTE,
                 scanner_ban_ns=MINUTE, flags=BANS)
    t = limited(lim, signatures=SIGS, lists=False)
    for src in (PLAIN_V4, PLAIN_V6):
        t.pardons[key(t, src)] = model.Pardon(mono_ns() + HOUR)
    load(dataplane, t)
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
        for _i in range(3):
            expect(dataplane, t, build(src, request()), "DROP",
                   "RATE_LIMITED", "UDP", limited_class=INVITE)
            rate = dataplane.rate(key(t, src))
            assert rate is not None and rate.over_since_ns == 0
        expect(dataplane, t, build(src, SCAN), "DROP", "SCANNER", "UDP",
               signature=SCAN_SLOT)
        expect(dataplane, t, build(src, RESPONSE), "PASS", "PASSED", "UDP")
    neighbour = IP("2001:db8:9::2")        # PLAIN_V6's /64
    expect(dataplane, t, build(neighbour, SCAN), "DROP", "SCANNER", "UDP",
           signature=SCAN_SLOT)
    expect(dataplane, t, build(neighbour, RESPONSE), "PASS", "PASSED", "UDP")
    synced(dataplane, t)
    assert t.bans == {}
    # The same frames from sources without a pardon: banned.
    for other in (IP("192.0.2.48"), IP("2001:db8:9:1::2")):
        expect(dataplane, t, build(other, SCAN), "DROP", "SCANNER", "UDP",
               signature=SCAN_SLOT)
        expect(dataplane, t, build(other, RESPONSE), "DROP", "BANNED", "UDP")
    other = IP("192.0.2.49")
    expect(dataplane, t, build(other, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(other, request()), "DROP", "RATE_LIMITED",
           "UDP", limited_class=INVITE)
    expect(dataplane, t, build(other, RESPONSE), "DROP", "BANNED", "UDP")
    synced(dataplane, t)
    assert len(t.bans) == 3
    assert dataplane.pardons() == t.pardons


def test_expired_pardon_does_not_prevent_a_ban(dataplane: Dataplane) -> None:
    """A pardon whose until_ns is not later than now is ignored: the
    source is banned, for a rate limit and for a fingerprint; one that
    ends during the test stops bans until it ends."""
    lim = limits({INVITE: (MINUTE, 1)}, ban_ns=MINUTE,
                 scanner_ban_ns=MINUTE, flags=BANS)
    t = limited(lim, signatures=SIGS, lists=False)
    over, scanner, later = IP("192.0.2.51"), IP("2001:db8:9:52::1"), \
        IP("192.0.2.53")
    t.pardons[key(t, over)] = model.Pardon(mono_floor_ns() - 1)
    t.pardons[key(t, scanner)] = model.Pardon(1)
    soon = mono_ns() + 300 * MS
    t.pardons[key(t, later)] = model.Pardon(soon)
    load(dataplane, t)
    expect(dataplane, t, build(over, request()), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(over, request()), "DROP", "RATE_LIMITED",
           "UDP", limited_class=INVITE)
    expect(dataplane, t, build(scanner, SCAN), "DROP", "SCANNER", "UDP",
           signature=SCAN_SLOT)
    expect(dataplane, t, build(later, SCAN), "DROP", "SCANNER", "UDP",
           signature=SCAN_SLOT)
    synced(dataplane, t)
    assert set(t.bans) == {key(t, over), key(t, scanner)}
    deadline = time.monotonic() + 5
    while mono_floor_ns() <= soon and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(dataplane, t, build(later, SCAN), "DROP", "SCANNER", "UDP",
           signature=SCAN_SLOT)
    expect(dataplane, t, build(later, RESPONSE), "DROP", "BANNED", "UDP")
    synced(dataplane, t)
    ban = t.bans[key(t, later)]
    assert (ban.reason, ban.detail) == (_abi.FP_SCANNER, SCAN_SLOT)


def test_pardon_does_not_lift_a_ban_in_force(dataplane: Dataplane) -> None:
    """A source banned before its pardon stays banned until the ban ends:
    only deleting the ban lifts it."""
    t = limited(limits(flags=BANS), lists=False)
    t.bans[key(t, PLAIN_V4)] = model.Ban(mono_ns() + MINUTE,
                                         _abi.FP_RATE_LIMITED, INVITE)
    t.pardons[key(t, PLAIN_V4)] = model.Pardon(mono_ns() + HOUR)
    load(dataplane, t)
    expect(dataplane, t, build(PLAIN_V4, request()), "DROP", "BANNED", "UDP")
    del t.bans[key(t, PLAIN_V4)]
    dataplane.load_state(t)
    expect(dataplane, t, build(PLAIN_V4, request()), "PASS", "PASSED", "UDP")


# The per-class count of RATE_LIMITED drops.


def test_rate_limited_drops_are_counted_per_class(
        dataplane: Dataplane) -> None:
    """Each RATE_LIMITED drop adds its frame to the rate_limited counter of
    its class, UDP classes and SYN alike, trusted sources and shadow mode
    included; requests that fit, and other drops, count nothing there. The
    classes add up to the RATE_LIMITED count of stats."""
    every = {cls: (MINUTE, 1) for cls in range(len(_abi.CLASSES))}
    t = limited(limits(every, trusted={INVITE: (MINUTE, 1)}),
                signatures=SIGS, flags=_abi.FP_STEALTH_OFF)
    load(dataplane, t)
    before = dataplane.counters("rate_limited")
    stats_before = dataplane.counters("stats")[_abi.FP_RATE_LIMITED]
    drops = [0] * _abi.CLASS_SLOTS
    sizes = [0] * _abi.CLASS_SLOTS
    for cls, _src, frame, proto in per_class_requests():
        expect(dataplane, t, frame, "PASS", "PASSED", proto)
        for _i in range(cls + 1):       # a different count per class
            expect(dataplane, t, frame, "DROP", "RATE_LIMITED", proto,
                   limited_class=cls)
            drops[cls] += 1
            sizes[cls] += len(frame)
    expect(dataplane, t, build(TRUSTED_V4, request()), "PASS", "PASSED",
           "UDP")
    expect(dataplane, t, build(TRUSTED_V4, request()), "DROP",
           "RATE_LIMITED", "UDP", limited_class=INVITE)
    drops[INVITE] += 1
    sizes[INVITE] += len(build(TRUSTED_V4, request()))
    set_flags(dataplane, t, _abi.FP_SHADOW | _abi.FP_STEALTH_OFF)
    frame = syn(CLASS_SOURCES[-1])
    expect(dataplane, t, frame, "PASS", "RATE_LIMITED", "TCP",
           limited_class=SYN)
    drops[SYN] += 1
    sizes[SYN] += len(frame)
    assert grown(dataplane, before) == list(zip(drops, sizes, strict=True))
    assert t.rate_limited == drops
    stats_after = dataplane.counters("stats")[_abi.FP_RATE_LIMITED]
    assert stats_after[0] - stats_before[0] == sum(drops)
    assert stats_after[1] - stats_before[1] == sum(sizes)
