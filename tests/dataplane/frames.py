"""Seeded generator of Ethernet frames for the data plane tests.

generate() starts from valid SIP traffic and applies random mutations
aimed at every branch of the decision steps of docs/dataplane.md;
random_frames() is plain fuzz. Only documentation address ranges are
used. Checksums are left at zero except the IPv4 header one: XDP never
checks them.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

try:
    from tests.dataplane.model import Entry, IPAddress
except ImportError:  # imported from tests/dataplane itself
    from model import Entry, IPAddress

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


def tcp(sport: int, dport: int, payload: bytes) -> bytes:
    # Data offset 5, PSH|ACK.
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18,
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
        return tcp(spec.sport, spec.dport, spec.payload)
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
    n = rng.choice((1, 31, 32, 32, 33, 33, 40))
    return f"method{n}", sip_request(rng, _token(rng, n))


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


def _choose(rng: random.Random, table: tuple[tuple[T, int], ...]) -> T:
    items = [item for item, _weight in table]
    return rng.choices(items, [w for _item, w in table])[0]


def request_payload(rng: random.Random) -> tuple[str, bytes]:
    method = rng.choice(METHODS)
    variant = _choose(rng, REQUEST_VARIANTS)
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


def keepalive_payload(rng: random.Random) -> tuple[str, bytes]:
    n = rng.randint(0, 6)
    data = crlf_run(rng, n)
    if n and rng.random() < 0.2:
        pos = rng.randrange(n)
        data = data[:pos] + rng.choice((b" ", b"\0", b"x")) + data[pos + 1:]
        return f"keepalive{n}-dirty", data
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


# Base frames: valid traffic before mutation.


def _sip_port(rng: random.Random, addrs: AddressPlan) -> int:
    return rng.choice(sorted(addrs.ports))


def _non_sip_port(rng: random.Random, addrs: AddressPlan) -> int:
    ports = [p for p in NON_SIP_PORTS if p not in addrs.ports]
    return rng.choice(ports)


def _base_udp(rng: random.Random, spec: FrameSpec, addrs: AddressPlan,
              kind: str) -> str:
    maker = {"sip": sip_udp_payload, "stun": stun_payload,
             "keepalive": keepalive_payload,
             "garbage": garbage_payload}.get(kind)
    spec.proto = UDP
    if maker is None:  # plain UDP to another port
        spec.dport = _non_sip_port(rng, addrs)
        spec.payload = rng.randbytes(rng.randint(0, 200))
        return f"udp:{spec.dport}"
    label, spec.payload = maker(rng)
    spec.dport = _sip_port(rng, addrs)
    if rng.random() < 0.1:
        spec.dport = _non_sip_port(rng, addrs)
    return f"udp:{spec.dport} {label}"


def _base_tcp(rng: random.Random, spec: FrameSpec, addrs: AddressPlan,
              sip: bool) -> str:
    spec.proto = TCP
    spec.sport = rng.randint(1024, 65535)
    if sip:
        label, spec.payload = sip_udp_payload(rng)
        spec.dport = _sip_port(rng, addrs)
        return f"tcp:{spec.dport} {label}"
    spec.payload = rng.randbytes(rng.randint(0, 200))
    spec.dport = _non_sip_port(rng, addrs)
    return f"tcp:{spec.dport}"


def _base_other(rng: random.Random, spec: FrameSpec) -> str:
    v6 = spec.src.version == 6
    if rng.random() < 0.5:
        spec.proto = ICMPV6 if v6 else ICMP
        spec.payload = rng.randbytes(rng.randint(0, 56))
        return "icmp"
    spec.proto = rng.choice((GRE, 132, 50, 59, 1 if v6 else 58, 255))
    spec.payload = rng.randbytes(rng.randint(0, 120))
    if spec.proto == GRE:
        spec.payload = b"\x00\x00\x08\x00" + spec.payload
    return f"proto={spec.proto}"


def _base_non_ip(rng: random.Random, spec: FrameSpec) -> str:
    spec.ethertype = rng.choice(NON_IP_TYPES)
    # An ARP request body (28 bytes) serves for every non-IP type.
    spec.l3_raw = (struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + SRC_MAC
                   + bytes(4) + bytes(6) + bytes(4))
    return f"ethertype={spec.ethertype:04x}"


BASE_KINDS = (("sip", 45), ("stun", 8), ("keepalive", 8), ("garbage", 5),
              ("udp", 5), ("tcp-sip", 8), ("tcp", 4), ("other", 8),
              ("non-ip", 3))


def base_frame(rng: random.Random,
               addrs: AddressPlan) -> tuple[FrameSpec, Labels]:
    version = 6 if rng.random() < 0.4 else 4
    category = rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
    src = addrs.pick(rng, category, version)
    dst = SERVER_V6 if version == 6 else SERVER_V4
    spec = FrameSpec(src, dst, sport=rng.choice((5060, 5060, 40000)))
    kind = _choose(rng, BASE_KINDS)
    if kind == "non-ip":
        what = _base_non_ip(rng, spec)
    elif kind == "other":
        what = _base_other(rng, spec)
    elif kind.startswith("tcp"):
        what = _base_tcp(rng, spec, addrs, kind == "tcp-sip")
    else:
        what = _base_udp(rng, spec, addrs, kind)
    return spec, [f"v{version}", what, "src=" + category]


# Mutations.


def _natural_body(spec: FrameSpec) -> int:
    return len(l4_bytes(spec))


def _mutate_vlan(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    n = rng.choices((0, 1, 2, 3), (72, 14, 11, 3))[0]
    if n:
        spec.vlans = [rng.choice(TPIDS) for _i in range(n)]
        labels.append(f"vlan{n}")


def _ihl_options(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    r = rng.random()
    if r < 0.10:
        n = rng.randint(1, 10)  # option words: IHL 6..15
        spec.ip_options = b"\x01" * (4 * n - 1) + b"\x00"
        labels.append(f"ihl={5 + n}")
    elif r < 0.14:
        spec.ihl = rng.choice((0, 1, 4, 4, 6, 15))
        labels.append(f"ihl-field={spec.ihl}")


def _v4_length(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    if rng.random() >= 0.10:
        return
    hlen = 20 + len(spec.ip_options)
    body = _natural_body(spec)
    kind = rng.choice(("+1", "+n", "-1", "-n", "=hdr", "=hdr+4", "<hdr",
                       "=0"))
    if kind in ("+1", "-1"):
        spec.ip_len_delta = int(kind)
    elif kind == "+n":
        spec.ip_len_delta = rng.randint(2, 200)
    elif kind == "-n":
        spec.ip_len_delta = -rng.randint(1, max(1, body))
    else:
        spec.ip_len = {"=hdr": hlen, "=hdr+4": hlen + 4, "=0": 0,
                       "<hdr": max(0, hlen - rng.randint(1, 20))}[kind]
    labels.append("iplen" + kind)


def _v4_fragment(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    r = rng.random()
    spec.dont_frag = rng.random() < 0.3
    if r < 0.07:
        spec.more_frags = True
        _first_fragment_udp_len(rng, spec)
        labels.append("frag-first")
    elif r < 0.14:
        spec.frag_offset = rng.choice((1, 2, 185, 0x1FFF))
        spec.more_frags = rng.random() < 0.5
        _later_fragment_body(rng, spec)
        labels.append("frag-later")


def _first_fragment_udp_len(rng: random.Random, spec: FrameSpec) -> None:
    # The UDP length covers the whole datagram, beyond this fragment.
    if spec.proto == UDP and rng.random() < 0.8:
        spec.l4_len = 8 + len(spec.payload) + rng.randint(0, 1400)


def _later_fragment_body(rng: random.Random, spec: FrameSpec) -> None:
    if rng.random() < 0.5:
        spec.l4_raw = rng.randbytes(rng.randint(0, 200))


def _mutate_v4(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    _ihl_options(rng, spec, labels)
    _v4_length(rng, spec, labels)
    _v4_fragment(rng, spec, labels)
    if rng.random() < 0.015:
        spec.version = rng.choice((0, 5, 6))
        labels.append(f"ipver={spec.version}")


def _random_ext(rng: random.Random) -> Ext:
    kind = rng.choice((HBH, ROUTING, DSTOPTS, FRAGMENT))
    if kind != FRAGMENT:
        return Ext(kind, units=rng.choice((0, 0, 1, 3)))
    flavour = rng.choices(("atomic", "first", "later"), (1, 2, 2))[0]
    if flavour == "later":
        return Ext(kind, offset=rng.choice((1, 3, 0x1FFF)),
                   more=rng.random() < 0.5)
    return Ext(kind, more=flavour == "first")


def _ext_label(ext: Ext) -> str:
    if ext.kind != FRAGMENT:
        return EXT_NAMES[ext.kind]
    if ext.offset:
        return "frag-later"
    return "frag-first" if ext.more else "frag-atomic"


def _mutate_v6_ext(rng: random.Random, spec: FrameSpec,
                   labels: Labels) -> None:
    if rng.random() >= 0.45:
        return
    n = rng.choices((1, 2, 3, 4, 5), (28, 22, 18, 18, 14))[0]
    spec.ext = [_random_ext(rng) for _i in range(n)]
    if any(e.kind == FRAGMENT and e.offset for e in spec.ext):
        _later_fragment_body(rng, spec)
    elif any(e.kind == FRAGMENT and e.more for e in spec.ext):
        _first_fragment_udp_len(rng, spec)
    chain = ",".join(map(_ext_label, spec.ext))
    labels.append(f"ext={n}[{chain}]")


def _mutate_v6(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    _mutate_v6_ext(rng, spec, labels)
    r = rng.random()
    if r < 0.08:
        spec.ip_len_delta = rng.choice((1, -1, -8, rng.randint(2, 100),
                                        -rng.randint(1, 100)))
        labels.append(f"plen{spec.ip_len_delta:+d}")
    elif r < 0.10:
        spec.ip_len = 0
        labels.append("plen=0")
    if rng.random() < 0.015:
        spec.version = rng.choice((0, 4, 7))
        labels.append(f"ipver={spec.version}")


def _mutate_udp_len(rng: random.Random, spec: FrameSpec,
                    labels: Labels) -> None:
    if spec.proto != UDP or spec.l4_raw is not None or rng.random() >= 0.16:
        return
    exact = 8 + len(spec.payload)
    spec.l4_len = rng.choice((
        rng.randint(0, 9), rng.randint(0, 9), exact, exact - 1, exact + 1,
        exact + rng.randint(2, 64), 0xFFFF,
        rng.choice((0x0105, 0x0207, 0x1000, 0xFF00)),
        rng.randint(8, max(8, exact)),
    ))
    labels.append(f"ulen={spec.l4_len}/{exact}")


def _mutate_tail(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    if rng.random() < 0.2:
        n = rng.choice((1, 4, 8, rng.randint(1, 64)))
        spec.pad = bytes(n) if rng.random() < 0.5 else rng.randbytes(n)
        labels.append(f"pad{n}")
    if rng.random() < 0.06 and spec.l3_raw is None:
        spec.l3_cut = rng.choice((rng.randint(0, 24), rng.randint(0, 96)))
        labels.append(f"l3cut={spec.l3_cut}")


def _mutate_l2(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    _mutate_vlan(rng, spec, labels)
    if spec.l3_raw is None and rng.random() < 0.02:
        v6 = spec.src.version == 6
        spec.ethertype = ETH_P_IP if v6 else ETH_P_IPV6
        labels.append("ethertype-swap")


def mutate(rng: random.Random, spec: FrameSpec, labels: Labels) -> None:
    """Random mutations of a valid base frame, recorded in labels."""
    _mutate_l2(rng, spec, labels)
    if spec.l3_raw is None:
        if spec.src.version == 4:
            _mutate_v4(rng, spec, labels)
        else:
            _mutate_v6(rng, spec, labels)
        _mutate_udp_len(rng, spec, labels)
    _mutate_tail(rng, spec, labels)


def _raw_cut(rng: random.Random, frame: bytes,
             labels: Labels) -> bytes:
    if rng.random() >= 0.05:
        return frame
    limit = len(frame) if rng.random() < 0.5 else min(len(frame), 100)
    # BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
    cut = rng.randint(MIN_FRAME, max(MIN_FRAME, limit - 1))
    labels.append(f"cut={cut}/{len(frame)}")
    return frame[:cut]


def rx_queue(rng: random.Random) -> int:
    return 0 if rng.random() < 0.7 else rng.randint(1, 3)


def generate(rng: random.Random, count: int,
             addrs: AddressPlan) -> Iterator[tuple[str, bytes, int]]:
    """(label, frame, rx_queue) for count mutated SIP-ish frames."""
    for _i in range(count):
        spec, labels = base_frame(rng, addrs)
        mutate(rng, spec, labels)
        frame = _raw_cut(rng, build_frame(spec), labels)
        queue = rx_queue(rng)
        if queue:
            labels.append(f"q{queue}")
        yield " ".join(labels), frame, queue


# Fuzz.

FUZZ_CHUNKS = (b"\r", b"\n", b"\r\n", b" ", b"SIP/2.0", b" SIP/2.0\r\n",
               b"OPTIONS", b"INVITE", b"!", b"~", STUN_COOKIE, b"\0", b"@")


def _fuzz_payload(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(0, 1400))
    chunks = [rng.choice(FUZZ_CHUNKS) if rng.random() < 0.7
              else rng.randbytes(rng.randint(1, 8))
              for _i in range(rng.randint(0, 80))]
    return b"".join(chunks)


def _fuzz_l4(rng: random.Random, proto: int, ports: list[int]) -> bytes:
    payload = _fuzz_payload(rng)
    dport = rng.choice(ports) if rng.random() < 0.7 else rng.getrandbits(16)
    length = None if rng.random() < 0.5 else rng.getrandbits(16)
    if proto == UDP:
        return udp(rng.getrandbits(16), dport, payload, length)
    if proto == TCP:
        return tcp(rng.getrandbits(16), dport, payload)
    return payload


def _fuzz_ip(rng: random.Random, ports: list[int]) -> bytes:
    proto = rng.choice((UDP, UDP, UDP, TCP, ICMP, ICMPV6, HBH, ROUTING,
                        FRAGMENT, DSTOPTS, rng.getrandbits(8)))
    body = _fuzz_l4(rng, proto, ports)
    src, dst = rng.randbytes(16), rng.randbytes(16)
    if rng.random() < 0.5:
        options = rng.randbytes(rng.choice((0, 0, 4, 40)))
        return ipv4(ipaddress.IPv4Address(src[:4]),
                    ipaddress.IPv4Address(dst[:4]), proto, body,
                    options=options)
    return ipv6(ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst),
                proto, body)


def random_frames(rng: random.Random, count: int,
                  ports: frozenset[int] = SIP_PORTS) -> Iterator[bytes]:
    """Fuzz: random bytes, a share behind a valid Ethernet+IP prefix."""
    port_list = sorted(ports)
    for _i in range(count):
        if rng.random() < 0.5:
            yield rng.randbytes(rng.randint(MIN_FRAME, 1600))
            continue
        l3 = _fuzz_ip(rng, port_list)
        ethertype = ETH_P_IP if l3[0] >> 4 == 4 else ETH_P_IPV6
        vlans = [rng.choice(TPIDS) for _i in range(rng.choice((0, 0, 1, 2)))]
        frame = ethernet(ethertype, l3, vlans)
        frame += rng.randbytes(rng.choice((0, 0, rng.randint(1, 64))))
        if rng.random() < 0.3:
            frame = frame[:rng.randint(MIN_FRAME, len(frame))]
        yield frame[:1600]


# The default address plan.


def _entries(spec: tuple[tuple[str, int], ...], source: int) -> list[Entry]:
    return [Entry(ipaddress.ip_network(net), expires, source)
            for net, expires in spec]


def _addresses(*texts: str) -> list[IPAddress]:
    return [ipaddress.ip_address(t) for t in texts]


def default_plan(
        live_expires_ns: int,
) -> tuple[AddressPlan, list[Entry], list[Entry]]:
    """Plan, allow entries and block entries over documentation ranges.

    live_expires_ns is the expiry of the live entries with a TTL (the
    caller's now + 1 hour); others never expire or expired at 1 ns.
    """
    ttl, gone = live_expires_ns, EXPIRED_NS
    allow = _entries((
        ("192.0.2.10/32", 0), ("198.51.100.0/24", ttl),
        ("198.18.0.0/16", 0), ("192.0.2.77/32", gone),
        # Expired /32 inside a live /24: the longest prefix hides it.
        ("198.51.100.77/32", gone), ("203.0.113.200/32", gone),
        ("203.0.113.7/32", 0), ("198.19.5.0/24", ttl),
        ("2001:db8:1::10/128", 0), ("2001:db8:2:1::/64", ttl),
        ("2001:db8:3::/48", 0), ("2001:db8:3::99/128", gone),
        ("2001:db8:4::/48", gone), ("2001:db8:5::200/128", gone),
        ("2001:db8:bad::7/128", 0), ("2001:db8:bad:1::/64", ttl),
    ), source=1)
    block = _entries((
        ("203.0.113.0/24", 0), ("198.19.0.0/16", ttl),
        ("192.0.2.66/32", ttl), ("192.0.2.99/32", gone),
        ("203.0.113.50/32", gone), ("198.19.200.0/24", gone),
        ("2001:db8:bad::/48", 0), ("2001:db8:5::/48", ttl),
        ("2001:db8:6::66/128", ttl), ("2001:db8:6::99/128", gone),
        ("2001:db8:bad::50/128", gone), ("2001:db8:5:ff::/64", gone),
    ), source=2)
    plan = AddressPlan(
        trusted=_addresses(
            "192.0.2.10", "198.51.100.1", "198.51.100.254", "198.18.0.1",
            "198.18.77.9", "2001:db8:1::10", "2001:db8:2:1::1",
            "2001:db8:2:1:ffff::5", "2001:db8:3::1", "2001:db8:3:abcd::1"),
        blocked=_addresses(
            "203.0.113.1", "203.0.113.99", "198.19.0.1", "198.19.42.42",
            "192.0.2.66", "2001:db8:bad::1", "2001:db8:bad:ffff::1",
            "2001:db8:5::1", "2001:db8:6::66"),
        blocked_expired=_addresses(
            "192.0.2.99", "203.0.113.50", "198.19.200.1", "2001:db8:6::99",
            "2001:db8:bad::50", "2001:db8:5:ff::1"),
        allowed_expired=_addresses(
            "192.0.2.77", "198.51.100.77", "203.0.113.200",
            "2001:db8:3::99", "2001:db8:4::1", "2001:db8:5::200"),
        trusted_inside_blocked=_addresses(
            "203.0.113.7", "198.19.5.1", "198.19.5.200", "2001:db8:bad::7",
            "2001:db8:bad:1::1", "2001:db8:bad:1::abcd"),
        plain=_addresses(
            "192.0.2.1", "192.0.2.2", "192.0.2.150", "192.0.2.255",
            "2001:db8:9::1", "2001:db8:ffff::2", "2001:db8:2:2::1"),
    )
    return plan, allow, block
