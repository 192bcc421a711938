"""Seeded generator of Ethernet frames for the data plane tests.

generate() starts from valid SIP traffic (frames.py's payloads) and
applies random mutations aimed at every branch of the decision steps of
docs/dataplane.md; random_frames() is plain fuzz. default_plan() is the
address plan and lists they run against.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Iterator

from tests.dataplane.frames import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    DSTOPTS,
    ETH_P_IP,
    ETH_P_IPV6,
    EXPIRED_NS,
    EXT_NAMES,
    FRAGMENT,
    GRE,
    HBH,
    ICMP,
    ICMPV6,
    MIN_FRAME,
    NON_IP_TYPES,
    NON_SIP_PORTS,
    ROUTING,
    SERVER_V4,
    SERVER_V6,
    SIP_PORTS,
    SRC_MAC,
    STUN_COOKIE,
    TCP,
    TPIDS,
    UDP,
    AddressPlan,
    Ext,
    FrameSpec,
    Labels,
    build_frame,
    choose,
    ethernet,
    garbage_payload,
    ipv4,
    ipv6,
    keepalive_payload,
    l4_bytes,
    sip_udp_payload,
    stun_payload,
    tcp,
    udp,
)
from tests.dataplane.model import Entry, IPAddress

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
    kind = choose(rng, BASE_KINDS)
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
