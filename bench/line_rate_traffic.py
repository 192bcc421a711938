"""The traffic of bench/line_rate.py: trafgen configurations, the
addresses they send from and the blocklists the filters hold.

Sent frames use only 198.18.0.0/15 (IPv4) and 2001:db8::/32 (IPv6):
- blocklisted sources: a seeded sample of 198.18.0.0/15 outside the
  198.18.255.0/24 and 198.19.255.0/24 rows;
- the legitimate source, the banned sources and the server: in those
  rows, which the IPv4 flood never sends from;
- the IPv4 flood: every address of 198.18.0.0/15 outside those rows;
- the IPv6 flood: distinct /64s of 2001:db8::/32.
The rest of a blocklist is a seeded sample of the IPv4 space outside
198.18.0.0/15: those are only keys, no packet goes to or from them.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Sequence
from pathlib import Path

from tests.dataplane.frames import ETH_P_IP, ETH_P_IPV6, UDP, ipv4, udp

SEED = 5060
SIP_PORT = 5060
BENCH_NET = ipaddress.IPv4Network("198.18.0.0/15")
SERVER = ipaddress.IPv4Address("198.19.255.254")
LEGIT = ipaddress.IPv4Address("198.18.255.10")
BANNED = tuple(ipaddress.IPv4Address("198.18.255.100") + i
               for i in range(100))
SERVER_V6 = ipaddress.IPv6Address("2001:db8:ffff::1")
# Every receiving end has this MAC, so that one configuration serves
# them all and the stack takes the frames as its own (PACKET_HOST).
RX_MAC = bytes.fromhex("020000000001")
GEN_MAC = bytes.fromhex("020000000002")
SCANNER_UA = b"sipvicious"
LEGIT_REQUESTS = 10     # within the role's INVITE burst (30)

# trafgen's runtime counters count one byte each, independently, every
# frame: bytes with coprime periods give as many distinct values as the
# product of the periods before any combination comes back.
FLOOD_V4_PERIODS = (255, 256)          # the last two bytes of the address
FLOOD_V4_SOURCES = 2 * 255 * 256       # one template per /16 of the /15
FLOOD_V6_PERIODS = (253, 255, 256)     # bytes 5 to 7 of the address
FLOOD_V6_MAX = 253 * 255 * 256


# -- addresses ------------------------------------------------------------


def _reserved_row(a: int) -> bool:
    """198.18.255.0/24 and 198.19.255.0/24: the legitimate, banned and
    server addresses, never a blocklisted or flood source."""
    return (a >> 8) & 0xFF == 0xFF


def blocklisted_sources(count: int) -> list[ipaddress.IPv4Address]:
    rng = random.Random(SEED)
    lo = int(BENCH_NET.network_address)
    pool = [a for a in range(lo, lo + BENCH_NET.num_addresses)
            if not _reserved_row(a)]
    return [ipaddress.IPv4Address(a) for a in rng.sample(pool, count)]


def _unused_space(a: int) -> bool:
    """Keys drawn for the rest of a list: not 198.18.0.0/15, not 0/8,
    127/8 nor 224/3 (multicast and reserved)."""
    return (a not in _BENCH_RANGE and a >> 24 not in (0, 127)
            and a >> 29 != 7)


_BENCH_RANGE = range(int(BENCH_NET.network_address),
                     int(BENCH_NET.broadcast_address) + 1)


def other_keys(count: int) -> list[str]:
    """count distinct IPv4 addresses outside 198.18.0.0/15, seeded."""
    rng = random.Random(SEED + 1)
    sample = rng.sample(range(1 << 32), count + count // 4 + 1024)
    out = [a for a in sample if _unused_space(a)][:count]
    if len(out) < count:
        raise ValueError("could not draw %d addresses" % count)
    return [str(ipaddress.IPv4Address(a)) for a in out]


def blocklist(entries: int, sources: Sequence[ipaddress.IPv4Address],
              others: Sequence[str]) -> list[str]:
    """entries addresses: the sources first (as many as fit), then
    others."""
    head = [str(a) for a in sources[:entries]]
    return head + list(others[:entries - len(head)])


# -- frames ---------------------------------------------------------------


def invite(src: str, ua: bytes | None = None) -> bytes:
    """A short INVITE, with a User-Agent when given."""
    head = (b"INVITE sip:100@198.19.255.254 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-1\r\n"
            b"From: <sip:200@198.19.255.254>;tag=1\r\n"
            b"To: <sip:100@198.19.255.254>\r\n"
            b"Call-ID: 1@%s\r\n"
            b"CSeq: 1 INVITE\r\n" % (src.encode(), src.encode()))
    if ua is not None:
        head += b"User-Agent: " + ua + b"\r\n"
    return head + b"Content-Length: 0\r\n\r\n"


def frame_v4(src: ipaddress.IPv4Address, ua: bytes | None = None) -> bytes:
    """Ethernet/IPv4/UDP 5060 -> 5060 with the IP header checksum set
    (the UDP checksum 0: none, valid in IPv4)."""
    payload = udp(SIP_PORT, SIP_PORT, invite(str(src), ua))
    l3 = ipv4(src, SERVER, UDP, payload)
    return RX_MAC + GEN_MAC + struct.pack("!H", ETH_P_IP) + l3


def frame_v6(src: ipaddress.IPv6Address) -> bytes:
    body = udp(SIP_PORT, SIP_PORT, invite("[%s]" % src))
    l3 = struct.pack("!IHBB16s16s", 6 << 28, len(body), UDP, 64,
                     src.packed, SERVER_V6.packed) + body
    return RX_MAC + GEN_MAC + struct.pack("!H", ETH_P_IPV6) + l3


# -- trafgen configurations -----------------------------------------------


def _literal(data: bytes) -> str:
    return "{ " + ", ".join("0x%02x" % b for b in data) + " }\n"


def write_literal(path: Path, frames: Sequence[bytes]) -> Path:
    """One trafgen packet per frame: trafgen sends them in turn."""
    path.write_text("".join(_literal(f) for f in frames))
    return path


def _template(data: bytes, dynamic: dict[int, str]) -> str:
    """A trafgen packet whose bytes at the given offsets are the given
    functions (each stands for its own bytes: 1 for a counter, 2 for a
    checksum)."""
    out, i = [], 0
    while i < len(data):
        fn = dynamic.get(i)
        if fn is None:
            out.append("0x%02x" % data[i])
            i += 1
        else:
            out.append(fn)
            i += 2 if fn.startswith("csum") else 1
    return "{ " + ", ".join(out) + " }\n"


_ETH = 14
_V4_CSUM = _ETH + 10
_V4_SRC = _ETH + 12
_V6_SRC = _ETH + 8


def write_flood_v4(path: Path) -> Path:
    """Two templates, 198.18.x.y and 198.19.x.y, whose x counts 0-254
    and y 0-255 at every frame of the template: FLOOD_V4_SOURCES frames
    come from as many distinct sources, none in the reserved rows. The
    IP header checksum is computed for each frame (csumip)."""
    text = ""
    for second in (18, 19):
        src = ipaddress.IPv4Address("198.%d.0.0" % second)
        text += _template(frame_v4(src), {
            _V4_CSUM: "csumip(%d, %d)" % (_ETH, _ETH + 19),
            _V4_SRC + 2: "dinc(0, %d, 1)" % (FLOOD_V4_PERIODS[0] - 1),
            _V4_SRC + 3: "dinc(0, %d, 1)" % (FLOOD_V4_PERIODS[1] - 1)})
    path.write_text(text)
    return path


def write_flood_v6(path: Path) -> Path:
    """One template, 2001:db8:0:XXYY:...::1, whose bytes 5, 6 and 7 of
    the address count with periods 253, 255 and 256: up to FLOOD_V6_MAX
    frames come from as many distinct /64s. No UDP checksum is
    recomputed (IPv6 is off on the receiving end; XDP reads none)."""
    src = ipaddress.IPv6Address("2001:db8::1")
    dyn = {_V6_SRC + 5 + i: "dinc(0, %d, 1)" % (period - 1)
           for i, period in enumerate(FLOOD_V6_PERIODS)}
    path.write_text(_template(frame_v6(src), dyn))
    return path
