"""Ethernet frames for the data plane tests: the layers (FrameSpec,
build_frame()) and seeded SIP, STUN and keepalive payloads. The seeded
generator built on them is in frames_gen.py.

Only documentation address ranges are used. Checksums are left at zero
except the IPv4 header one: XDP never checks them.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

try:
    from tests.dataplane.model import IPAddress
except ImportError:  # imported from tests/dataplane itself
    from model import IPAddress

DST_MAC = bytes.fromhex("020000000001")
SRC_MAC = bytes.fromhex("020000000002")
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
TPIDS = (0x8100, 0x88A8)
NON_IP_TYPES = (ETH_P_ARP, 0x88CC, 0x8847, 0x8137, 0x9100, 0x0000)

UDP, TCP, ICMP, ICMPV6, GRE = 17, 6, 1, 58, 47
HBH, ROUTING, FRAGMENT, DSTOPTS = 0, 43, 44, 60
EXT_NAMES = {HBH: "hbh", ROUTING: "rt", DSTOPTS: "dst", FRAGMENT: "frag"}

SIP_PORTS = frozenset({5060, 5061, 5080})
NON_SIP_PORTS = (0, 53, 80, 443, 3478, 5059, 5062, 8080, 16384, 65535)
EXPIRED_NS = 1
MIN_FRAME = 14                   # BPF_PROG_TEST_RUN wants an Ethernet header
SERVER_V4 = ipaddress.IPv4Address("192.0.2.254")
SERVER_V6 = ipaddress.IPv6Address("2001:db8:ffff::1")

TOKEN = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
         b"-.!%*_+`'~")
ILLEGAL = b"@():;<>\"/[]?={}\t\x00\x7f\xc3,"
# OPTIONS is what stealth mode drops: give it a large share.
METHODS = (b"INVITE", b"INVITE", b"REGISTER", b"ACK", b"BYE", b"CANCEL",
           b"SUBSCRIBE", b"NOTIFY", b"MESSAGE", b"INFO") + (b"OPTIONS",) * 6
RESPONSES = (b"100 Trying", b"180 Ringing", b"200 OK", b"401 Unauthorized",
             b"486 Busy Here", b"503 Service Unavailable")
STUN_COOKIE = bytes.fromhex("2112A442")
CATEGORIES = ("trusted", "blocked", "blocked_expired", "allowed_expired",
              "trusted_inside_blocked", "plain")
CATEGORY_WEIGHTS = (10, 10, 10, 10, 8, 52)

Labels = list[str]
T = TypeVar("T")


@dataclass
class AddressPlan:
    """Source addresses by how the tables should treat them."""

    trusted: list[IPAddress] = field(default_factory=list)
    blocked: list[IPAddress] = field(default_factory=list)
    blocked_expired: list[IPAddress] = field(default_factory=list)
    allowed_expired: list[IPAddress] = field(default_factory=list)
    trusted_inside_blocked: list[IPAddress] = field(default_factory=list)
    plain: list[IPAddress] = field(default_factory=list)
    ports: set[int] = field(default_factory=lambda: set(SIP_PORTS))

    def pick(self, rng: random.Random, category: str,
             version: int) -> IPAddress:
        pool = [a for a in getattr(self, category) if a.version == version]
        if not pool:  # a sparse plan: any address of that family
            pool = [a for a in self.plain if a.version == version]
        return rng.choice(pool)


@dataclass
class Ext:
    """One IPv6 extension header; units is hdr[1] of generic ones."""

    kind: int
    units: int = 0
    offset: int = 0
    more: bool = False


@dataclass
class FrameSpec:
    """The parts of one frame; build_frame() turns it into bytes."""

    src: IPAddress
    dst: IPAddress
    proto: int = UDP
    sport: int = 5060
    dport: int = 5060
    payload: bytes = b""
    tcp_flags: int = 0x18            # PSH|ACK
    vlans: list[int] = field(default_factory=list)   # TPIDs, outer first
    ethertype: int | None = None     # override of the L3 ethertype
    l3_raw: bytes | None = None      # a non-IP L3 payload
    version: int | None = None       # override of the IP version nibble
    ihl: int | None = None           # override of the IPv4 IHL
    ip_options: bytes = b""
    frag_offset: int = 0             # IPv4, in 8-byte units
    more_frags: bool = False         # IPv4 MF
    dont_frag: bool = False
    ext: list[Ext] = field(default_factory=list)
    ip_len: int | None = None        # IPv4 total / IPv6 payload length
    ip_len_delta: int = 0            # added to the computed length
    l4_len: int | None = None        # UDP length field override
    l4_raw: bytes | None = None      # replaces the L4 header and payload
    l3_cut: int | None = None        # cut the IP payload, lengths follow
    pad: bytes = b""                 # Ethernet padding after the IP end
    cut: int | None = None           # truncate the final frame


# Builders of raw layers.


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(ethertype: int, l3: bytes,
             vlans: Sequence[int] = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, 100 + i)
                    for i, tpid in enumerate(vlans))
    return DST_MAC + SRC_MAC + tags + struct.pack("!H", ethertype) + l3


def ipv4(src: IPAddress, dst: IPAddress, proto: int, body: bytes, *,
         options: bytes = b"", ihl: int | None = None,
         total: int | None = None, frag: int = 0,
         version: int = 4) -> bytes:
    """IPv4 header + body; frag is the raw flags/offset field."""
    options += b"\0" * (-len(options) % 4)
    hlen = 20 + len(options)
    ihl = hlen // 4 if ihl is None else ihl
    total = hlen + len(body) if total is None else total
    head = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), 0,
                       total & 0xFFFF, 0x1234, frag, 64, proto, 0,
                       src.packed, dst.packed) + options
    csum = checksum(head)
    return head[:10] + struct.pack("!H", csum) + head[12:] + body


def ipv6(src: IPAddress, dst: IPAddress, nexthdr: int, body: bytes, *,
         payload_len: int | None = None, version: int = 6) -> bytes:
    plen = len(body) if payload_len is None else payload_len
    head = struct.pack("!IHBB16s16s", version << 28, plen & 0xFFFF,
                       nexthdr, 64, src.packed, dst.packed)
    return head + body


def ext_chain(exts: list[Ext], last: int) -> bytes:
    """IPv6 extension headers, each pointing at the next one."""
    out = []
    kinds = [e.kind for e in exts[1:]] + [last] if exts else []
    for ext, nexthdr in zip(exts, kinds, strict=True):
        if ext.kind == FRAGMENT:
            field16 = (ext.offset << 3) | int(ext.more)
            out.append(struct.pack("!BBHI", nexthdr, 0, field16, 0xBEEF))
        else:
            # Zero option bytes are Pad1 options: a valid header.
            out.append(bytes((nexthdr, ext.units))
                       + b"\0" * ((ext.units + 1) * 8 - 2))
    return b"".join(out)


def udp(sport: int, dport: int, payload: bytes,
        length: int | None = None) -> bytes:
    length = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, length & 0xFFFF, 0) + payload


def tcp(sport: int, dport: int, payload: bytes,
        flags: int = 0x18) -> bytes:
    # Data offset 5, PSH|ACK unless told.
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags,
                       65535, 0, 0) + payload


def icmp_echo(version: int, payload: bytes) -> bytes:
    kind = 8 if version == 4 else 128
    return struct.pack("!BBHHH", kind, 0, 0, 0x42, 1) + payload


def l4_bytes(spec: FrameSpec) -> bytes:
    if spec.l4_raw is not None:
        return spec.l4_raw
    if spec.proto == UDP:
        return udp(spec.sport, spec.dport, spec.payload, spec.l4_len)
    if spec.proto == TCP:
        return tcp(spec.sport, spec.dport, spec.payload, spec.tcp_flags)
    if spec.proto in (ICMP, ICMPV6):
        return icmp_echo(spec.src.version, spec.payload)
    return spec.payload


def _ip_length(spec: FrameSpec, natural: int) -> int:
    if spec.ip_len is not None:
        return spec.ip_len
    return max(0, natural + spec.ip_len_delta)


def _l3(spec: FrameSpec) -> tuple[int, bytes]:
    body = l4_bytes(spec)
    if spec.src.version == 6:
        body = ext_chain(spec.ext, spec.proto) + body
    if spec.l3_cut is not None:
        body = body[:spec.l3_cut]
    if spec.src.version == 4:
        hlen = 20 + len(spec.ip_options) + (-len(spec.ip_options) % 4)
        frag = ((spec.more_frags << 13) | (spec.dont_frag << 14)
                | spec.frag_offset)
        return ETH_P_IP, ipv4(
            spec.src, spec.dst, spec.proto, body, options=spec.ip_options,
            ihl=spec.ihl, total=_ip_length(spec, hlen + len(body)),
            frag=frag, version=spec.version or 4)
    first = spec.ext[0].kind if spec.ext else spec.proto
    return ETH_P_IPV6, ipv6(
        spec.src, spec.dst, first, body,
        payload_len=_ip_length(spec, len(body)), version=spec.version or 6)


def build_frame(spec: FrameSpec) -> bytes:
    """The frame described by spec, with lengths computed unless set."""
    if spec.l3_raw is not None:
        ethertype, l3 = ETH_P_ARP, spec.l3_raw
    else:
        ethertype, l3 = _l3(spec)
    if spec.ethertype is not None:
        ethertype = spec.ethertype
    frame = ethernet(ethertype, l3, spec.vlans) + spec.pad
    return frame if spec.cut is None else frame[:spec.cut]


# SIP, STUN and keepalive payloads.


def sip_headers(method: bytes, rng: random.Random) -> bytes:
    branch = b"z9hG4bK%08x" % rng.getrandbits(32)
    return (b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" + branch + b"\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: <sip:alice@example.com>;tag=1928301774\r\n"
            b"To: <sip:bob@example.com>\r\n"
            b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
            b"CSeq: 314159 " + method + b"\r\n"
            b"Content-Length: 0\r\n\r\n")


def sip_request(rng: random.Random, method: bytes,
                uri: bytes = b"sip:bob@example.com", sep: bytes = b" ",
                tail: bytes = b" SIP/2.0\r\n") -> bytes:
    return method + sep + uri + tail + sip_headers(method, rng)


def sip_response(rng: random.Random, status: bytes,
                 version: bytes = b"SIP/2.0 ") -> bytes:
    return version + status + b"\r\n" + sip_headers(b"INVITE", rng)


def stun(rng: random.Random, kind: int = 0x0001,
         cookie: bytes = STUN_COOKIE, attrs: bytes = b"") -> bytes:
    return (struct.pack("!HH", kind, len(attrs)) + cookie
            + rng.randbytes(12) + attrs)


def crlf_run(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(b"\r\n") for _i in range(n))


def _token(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(TOKEN) for _i in range(n))


def _uri_for(line_len: int, method: bytes) -> bytes:
    # A URI making "METHOD URI SIP/2.0" exactly line_len bytes long.
    n = max(4, line_len - len(method) - 1 - 8)
    return b"sip:" + b"a" * (n - 4)


# Each request variant: (rng, method) -> (label, payload).
ReqVariant = Callable[[random.Random, bytes], tuple[str, bytes]]


def _req_valid(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    return "", sip_request(rng, m)


def _req_long(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    n = rng.randint(65, 480)
    return f"line={n}", sip_request(rng, m, _uri_for(n, m))


def _req_512(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    # Where the CRLF ends in S: the 512-byte window boundary.
    end = rng.choice((510, 511, 512, 513, rng.randint(490, 530)))
    return f"crlf-end={end}", sip_request(rng, m, _uri_for(end - 2, m))


def _req_method_len(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    n = rng.choice((1, 32, 33, 43, 100, 300, 480, rng.randint(490, 520)))
    if n < 480:
        return f"method{n}", sip_request(rng, _token(rng, n))
    # Around the 512 bound: the method's space doubles as the version's.
    tail = b" SIP/2.0\r\n" + sip_headers(b"X", rng)
    return f"method{n}-bare", _token(rng, n) + tail


def _req_illegal(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    pos = rng.randint(0, len(m))
    bad = m[:pos] + bytes((rng.choice(ILLEGAL),)) + m[pos:]
    return "method-illegal", sip_request(rng, bad)


def _req_lower(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    word = rng.choice((b"options", b"Options", b"OPTIONs", b"invite"))
    return word.decode(), sip_request(rng, word)


def _req_version(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    tail = rng.choice((b"\r\n", b" SIP/2.1\r\n", b" sip/2.0\r\n",
                       b"SIP/2.0\r\n", b" SIP/2.0 \r\n", b" SIP/2.\r\n",
                       b" SIP/2.0"))
    return f"tail={tail!r}", sip_request(rng, m, tail=tail)


def _req_lone(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    lone = rng.choice((b"\n", b"\r"))
    if rng.random() < 0.5:  # inside the URI: the real CRLF still counts
        uri = b"sip:bo" + lone + b"b@example.com"
        return f"lone{lone!r}-uri", sip_request(rng, m, uri)
    tail = rng.choice((b" SIP/2.0" + lone + b"\r\n",
                       b" SIP/2.0" + lone, b" SIP/2.0\r" + lone))
    return f"lone{lone!r}-end", sip_request(rng, m, tail=tail)


def _req_sep(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    sep = rng.choice((b"", b"\t", b"  ", b" \r\n"))
    return f"sep={sep!r}", sip_request(rng, m, sep=sep)


def _req_bare(rng: random.Random, m: bytes) -> tuple[str, bytes]:
    text = rng.choice((b"OPTIONS SIP/2.0\r\n", b"A SIP/2.0\r\n",
                       b" SIP/2.0\r\n", b"OPTIONS sip:x SIP/2.0\r\n",
                       b"OPTIONS SIP/2.0", b"X SIP/2.0\r\n\r\n"))
    return f"bare={text!r}", text


REQUEST_VARIANTS: tuple[tuple[ReqVariant, int], ...] = (
    (_req_valid, 40), (_req_long, 6), (_req_512, 14), (_req_method_len, 8),
    (_req_illegal, 5), (_req_lower, 4), (_req_version, 8), (_req_lone, 8),
    (_req_sep, 5), (_req_bare, 5),
)


def choose(rng: random.Random, table: tuple[tuple[T, int], ...]) -> T:
    items = [item for item, _weight in table]
    return rng.choices(items, [w for _item, w in table])[0]


def request_payload(rng: random.Random) -> tuple[str, bytes]:
    method = rng.choice(METHODS)
    variant = choose(rng, REQUEST_VARIANTS)
    label, payload = variant(rng, method)
    return (method.decode() + (" " + label if label else "")), payload


def response_payload(rng: random.Random) -> tuple[str, bytes]:
    status = rng.choice(RESPONSES)
    if rng.random() < 0.7:
        return "resp " + status[:3].decode(), sip_response(rng, status)
    bad = rng.choice(((b"SIP/2.0 ", b"20"), (b"SIP/2.0 ", b"2a0 OK"),
                      (b"SIP/2.0  ", b"200 OK"), (b"SIP/2.1 ", b"200 OK"),
                      (b"sip/2.0 ", b"200 OK"), (b"SIP/2.0 ", b"200"),
                      (b"SIP/2.0 ", b"200OK"), (b"SIP/2.0", b"200 OK")))
    text = bad[0] + bad[1]
    if bad[1] == b"200":  # 11 bytes exactly, nothing after the code
        return "resp-bare", text
    return f"resp={text[:11]!r}", sip_response(rng, bad[1], bad[0])


def stun_payload(rng: random.Random) -> tuple[str, bytes]:
    attrs = rng.choice((b"", b"\x80\x28\x00\x04" + rng.randbytes(4)))
    kind = rng.choice(("ok", "ok", "resp", "cookie", "hibits", "19"))
    if kind == "resp":
        return "stun-resp", stun(rng, 0x0101, attrs=attrs)
    if kind == "cookie":
        return "stun-badcookie", stun(rng, cookie=b"\x21\x12\xa4\x43")
    if kind == "hibits":
        return "stun-hibits", stun(rng, rng.choice((0x4001, 0x8001, 0xC001)))
    if kind == "19":
        return "stun-19", stun(rng)[:19]
    return "stun", stun(rng, attrs=attrs)


KEEPALIVE_BYTES = b"\r\n \t\0"


def keepalive_payload(rng: random.Random) -> tuple[str, bytes]:
    n = rng.choice((rng.randint(0, 6), rng.randint(0, 18), 16, 17))
    if rng.random() < 0.4:
        data = crlf_run(rng, n)
    else:
        data = bytes(rng.choice(KEEPALIVE_BYTES) for _i in range(n))
    if n and rng.random() < 0.2:
        pos = rng.randrange(n)
        bad = rng.choice((b"x", b"\x0b", b"\x0c", b"\x80", b"\x01"))
        return f"keepalive{n}-dirty", data[:pos] + bad + data[pos + 1:]
    return f"keepalive{n}", data


def garbage_payload(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(("bytes", "http", "rtp", "text", "empty-ish"))
    if kind == "http":
        return "http", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    if kind == "rtp":
        return "rtp", b"\x80\x00" + rng.randbytes(rng.randint(10, 170))
    if kind == "text":
        return "text", _token(rng, rng.randint(1, 60)) + b"\r\n"
    if kind == "empty-ish":
        return "short", rng.randbytes(rng.randint(1, 8))
    return "garbage", rng.randbytes(rng.randint(0, 300))


def sip_udp_payload(rng: random.Random) -> tuple[str, bytes]:
    label, payload = (request_payload(rng) if rng.random() < 0.75
                      else response_payload(rng))
    if rng.random() < 0.25:
        n = rng.randint(0, 6)
        label, payload = f"{label} crlf{n}", crlf_run(rng, n) + payload
    return label, payload
