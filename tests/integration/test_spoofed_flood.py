"""Floods of spoofed sources against the bounded state of the rate limits
("Bounded state" under "Rate limits and bans" in docs/dataplane.md), on
the program attached to a real veth (test_rate_accuracy.Receiver).

The spoofed sources are IPv6 /64s of 2001:db8::/32: the IPv4 test ranges
hold only 131,840 addresses, fewer than needed to overflow `rate_state`
with room to spare, and `rate_state` and `bans_v2` key both families
alike.
Each flood is a fixed number of frames written back to back, from every
CPU at once: the kernel's LRU maps keep a list of recent entries per CPU
and flush it only when that CPU needs room, so an entry made on a CPU
that the flood does not reach would stay out of the flood's way.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Iterator

import pytest

from plugins.module_utils import _abi
from tests.dataplane import frames
from tests.integration.test_rate_accuracy import (
    SIP_PORT,
    Child,
    Receiver,
    attached,
    limits_value,
    online_cpus,
    packet_socket,
    register_frame,
    source_key,
)

# The roles' default budgets: 15/s burst 30, other requests 25/s burst 50.
DEFAULT_BUDGETS = {
    _abi.FP_CLASS_REGISTER: (1_000_000_000 // 15, 30),
    _abi.FP_CLASS_INVITE: (1_000_000_000 // 15, 30),
    _abi.FP_CLASS_OPTIONS: (1_000_000_000 // 15, 30),
    _abi.FP_CLASS_SYN: (1_000_000_000 // 15, 30),
    _abi.FP_CLASS_OTHER: (1_000_000_000 // 25, 50),
}
BAN_NS = 600 * 1_000_000_000
SCANNER_BAN_NS = 3600 * 1_000_000_000
SIGNATURES = [b"friendly", b"scanner", b"sipcli", b"sipvicious",
              b"vaxsipuseragent", b"pplsip", b"sundayddr", b"iwar",
              b"sipscan"]

RATE_STATE_MAX = _abi.MAPS["rate_state"].max_entries     # 131,072
BANS_MAX = _abi.MAPS["bans_v2"].max_entries              # 65,536
# Spoofed sources of each flood: half again as many as the map holds.
FLOOD_SOURCES = RATE_STATE_MAX * 3 // 2
SCANNER_SOURCES = BANS_MAX * 3 // 2
# The banned source that keeps sending does so once per this many frames.
KEEP_SENDING_EVERY = 100

SERVER_V6 = ipaddress.IPv6Address("2001:db8:ffff::1")
SRC_V6_OFFSET = 14 + 8          # the IPv6 source address in a frame
SCANNER_OPTIONS = (
    b"OPTIONS sip:100@198.19.255.254 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.18.9.9:5060;branch=z9hG4bK-2771906045\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: \"sipvicious\"<sip:100@198.19.255.254>\r\n"
    b"From: \"sipvicious\"<sip:100@198.19.255.254>;tag=6133346332\r\n"
    b"User-Agent: friendly-scanner\r\n"
    b"Call-ID: 1016185916597414419811213\r\n"
    b"Contact: sip:100@198.18.9.9:5060\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n")


@pytest.fixture
def receiver(root_required: None) -> Iterator[Receiver]:
    """A fresh receiver per test: empty rate_state and bans_v2."""
    with attached() as rx:
        yield rx


def spoofed(n: int) -> ipaddress.IPv6Address:
    """The n-th spoofed source: 2001:db8:<n as 32 bits>::1, a /64 each."""
    return ipaddress.IPv6Address((0x20010DB8 << 96) | (n << 64) | 1)


@dataclasses.dataclass
class Share:
    sent: int           # spoofed frames
    extra: int          # interleaved frames


def send_share(ifname: str, template: bytes, count: int, first: int,
               step: int, interleave: bytes | None) -> Share:
    """template from the spoofed sources first, first + step, ... below
    count, one frame each; with interleave, that frame too after every
    KEEP_SENDING_EVERY of them."""
    frame = bytearray(template)
    share = Share(0, 0)
    with packet_socket(ifname) as s:
        for n in range(first, count, step):
            frame[SRC_V6_OFFSET:SRC_V6_OFFSET + 16] = spoofed(n).packed
            s.send(frame)
            share.sent += 1
            if interleave is not None and \
                    share.sent % KEEP_SENDING_EVERY == 0:
                s.send(interleave)
                share.extra += 1
    return share


def flood(rx: Receiver, template: bytes, count: int,
          interleave: bytes | None = None) -> int:
    """template from count spoofed sources, sent from every CPU at once
    (each CPU its share of the sources), as a NIC spreads a flood over
    its queues: every CPU's part of the LRU maps takes part. Returns how
    many interleaved frames were sent."""
    cpus = sorted(online_cpus())
    children = [Child(cpu, send_share, rx.sender, template, count, i,
                      len(cpus), interleave)
                for i, cpu in enumerate(cpus)]
    shares = [Share(**c.result()) for c in children]
    assert sum(share.sent for share in shares) == count
    return sum(share.extra for share in shares)


def send(rx: Receiver, frame: bytes, count: int = 1) -> None:
    with packet_socket(rx.sender) as s:
        for _n in range(count):
            s.send(frame)


@dataclasses.dataclass(frozen=True)
class Ban:
    """A bans_v2 value (struct fp_ban_v2)."""

    expires_ns: int
    since_ns: int
    packets: int
    reason: int
    detail: int


def ban_of(rx: Receiver, addr: ipaddress.IPv4Address) -> Ban | None:
    """The source's ban, or None."""
    raw = rx.maps["bans_v2"].lookup(source_key(addr))
    return None if raw is None else Ban(*_abi.BAN_V2.unpack(raw))


def counts(rx: Receiver) -> dict[str, int]:
    out = {name: rx.packets("stats", i)
           for i, name in enumerate(_abi.REASONS)}
    out.update((name, rx.packets("stats_ext", i))
               for i, name in enumerate(_abi.REASONS_EXT))
    return out


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def scanner_frame(src: ipaddress.IPv4Address | ipaddress.IPv6Address
                  ) -> bytes:
    dst = SERVER_V6 if src.version == 6 else \
        ipaddress.IPv4Address("198.19.255.254")
    return frames.build_frame(frames.FrameSpec(
        src, dst, sport=SIP_PORT, dport=SIP_PORT, payload=SCANNER_OPTIONS))


def test_spoofed_sources_within_their_burst_pass_and_leave_a_ban_alone(
        receiver: Receiver) -> None:
    rx = receiver
    rx.set_limits(limits_value(DEFAULT_BUDGETS, ban_after_ns=0,
                               ban_ns=BAN_NS, bans=True))
    # A real source driven over its REGISTER budget: 30 pass, the 31st is
    # dropped and bans it (ban_after 0), the rest are BANNED.
    real = ipaddress.IPv4Address("198.18.5.5")
    before = counts(rx)
    send(rx, register_frame(real), 40)
    assert moved(before, counts(rx)) == {
        "PASSED": 30, "RATE_LIMITED": 1, "BANNED": 9}
    ban = ban_of(rx, real)
    assert ban is not None
    assert (ban.reason, ban.detail, ban.packets) == (
        _abi.FP_RATE_LIMITED, _abi.FP_CLASS_REGISTER, 9)

    template = register_frame(spoofed(0), SERVER_V6)
    before = counts(rx)
    started = time.monotonic()
    flood(rx, template, FLOOD_SOURCES)
    seconds = time.monotonic() - started
    after = counts(rx)
    entries = rx.entries("rate_state")
    print("\n%d spoofed sources in %.2f s; rate_state holds %d of %d"
          % (FLOOD_SOURCES, seconds, entries, RATE_STATE_MAX))

    # Every spoofed request was within its burst: all passed.
    assert moved(before, after) == {"PASSED": FLOOD_SOURCES}
    # The flood filled rate_state (evicting the real source's budget
    # state) and never grew it past its size.
    assert RATE_STATE_MAX * 0.9 <= entries <= RATE_STATE_MAX
    assert rx.maps["rate_state"].lookup(source_key(real)) is None
    # The ban is untouched and still applies.
    assert ban_of(rx, real) == ban
    assert rx.entries("bans_v2") == 1
    before = counts(rx)
    send(rx, register_frame(real))
    assert moved(before, counts(rx)) == {"BANNED": 1}
    assert ban_of(rx, real) == dataclasses.replace(ban, packets=10)


def test_spoofed_scanner_bans_evict_quiet_bans_not_a_source_still_sending(
        receiver: Receiver) -> None:
    rx = receiver
    rx.set_limits(limits_value(DEFAULT_BUDGETS, ban_after_ns=0,
                               ban_ns=BAN_NS, scanner_ban_ns=SCANNER_BAN_NS,
                               bans=True))
    rx.set_signatures(SIGNATURES)
    # Two real scanners banned by their fingerprint: one goes quiet, the
    # other keeps sending during the flood.
    quiet = ipaddress.IPv4Address("198.18.6.1")
    active = ipaddress.IPv4Address("198.18.6.2")
    before = counts(rx)
    send(rx, scanner_frame(quiet))
    send(rx, scanner_frame(active))
    assert moved(before, counts(rx)) == {"SCANNER": 2}
    assert ban_of(rx, quiet) is not None
    active_ban = ban_of(rx, active)
    assert active_ban is not None
    assert (active_ban.reason, active_ban.detail, active_ban.packets) == (
        _abi.FP_SCANNER, SIGNATURES.index(b"friendly"), 0)

    hits_before = rx.packets("scanner_hits", 0)
    before = counts(rx)
    started = time.monotonic()
    kept_sending = flood(rx, scanner_frame(spoofed(0)), SCANNER_SOURCES,
                         interleave=scanner_frame(active))
    seconds = time.monotonic() - started
    entries = rx.entries("bans_v2")
    print("\n%d spoofed scanner sources in %.2f s; bans_v2 holds %d of %d"
          % (SCANNER_SOURCES, seconds, entries, BANS_MAX))

    # Each spoofed scanner was dropped and banned; the banned source's
    # requests were dropped as BANNED.
    assert moved(before, counts(rx)) == {"SCANNER": SCANNER_SOURCES,
                                         "BANNED": kept_sending}
    assert rx.packets("scanner_hits", 0) - hits_before == SCANNER_SOURCES
    assert BANS_MAX * 0.9 <= entries <= BANS_MAX
    # The source that kept sending keeps its ban, which counted each of
    # its requests; the quiet one lost it.
    assert ban_of(rx, active) == dataclasses.replace(
        active_ban, packets=kept_sending)
    assert ban_of(rx, quiet) is None
    before = counts(rx)
    send(rx, register_frame(active))
    send(rx, register_frame(quiet))
    assert moved(before, counts(rx)) == {"BANNED": 1, "PASSED": 1}
