"""Reference model of the XDP decision function.

A pure-Python statement of the decision steps of docs/dataplane.md, cited
as [step N]. The BPF program is checked against decide() frame by frame,
so this file favours plain, literal code over speed or cleverness.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from plugins.module_utils import _abi

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ETH_HLEN = 14
VLAN_HLEN = 4
VLAN_TPIDS = (0x8100, 0x88A8)
MAX_VLANS = 2
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPV6_FRAGMENT = 44
# Extension headers with the generic (hdr[1] + 1) * 8 length.
IPV6_GENERIC_EXT = (0, 43, 60)
IPV6_EXT = (*IPV6_GENERIC_EXT, IPV6_FRAGMENT)
MAX_IPV6_EXT = 4

UDP_HLEN = 8
TCP_HLEN = 20

V4_CLASSES = {
    IPPROTO_TCP: _abi.FP_PROTO_TCP,
    IPPROTO_UDP: _abi.FP_PROTO_UDP,
    IPPROTO_ICMP: _abi.FP_PROTO_ICMP,
}
V6_CLASSES = {
    IPPROTO_TCP: _abi.FP_PROTO_TCP,
    IPPROTO_UDP: _abi.FP_PROTO_UDP,
    IPPROTO_ICMPV6: _abi.FP_PROTO_ICMP,
}

CRLF_BYTES = b"\r\n"
MAX_CRLF_SKIP = 4
MAX_KEEPALIVE = 4
STUN_MIN = 20
STUN_COOKIE = bytes.fromhex("2112A442")
SIP_RESPONSE = b"SIP/2.0 "
SIP_VERSION_TAIL = b" SIP/2.0"
MAX_METHOD = 32
MAX_REQUEST_LINE = 512
TOKEN_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    b"-.!%*_+`'~"
)
DIGITS = frozenset(b"0123456789")


@dataclass
class Entry:
    """One LPM trie entry (struct fp_entry plus its key)."""

    network: IPNetwork
    expires_ns: int = 0
    source: int = 0

    def live(self, now_ns: int) -> bool:
        return self.expires_ns == 0 or self.expires_ns > now_ns


@dataclass
class Tables:
    """The maps as the program sees them for one run."""

    sip_ports: set[int] = field(default_factory=lambda: {5060})
    allow: list[Entry] = field(default_factory=list)
    block: list[Entry] = field(default_factory=list)
    flags: int = 0
    xsk_queues: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Verdict:
    """XDP action, `stats` index and `proto_stats` index (or None)."""

    action: int
    reason: int
    proto: int | None

    def __str__(self) -> str:
        proto = "-" if self.proto is None else _abi.PROTOS[self.proto]
        action = ACTION_NAMES.get(self.action, str(self.action))
        return f"{action}/{_abi.REASONS[self.reason]}/{proto}"


ACTION_NAMES = {
    _abi.XDP_ABORTED: "ABORTED",
    _abi.XDP_DROP: "DROP",
    _abi.XDP_PASS: "PASS",
    _abi.XDP_TX: "TX",
    _abi.XDP_REDIRECT: "REDIRECT",
}


@dataclass
class Packet:
    """What the parser learnt about a frame with a valid IP header."""

    src: IPAddress
    proto: int          # proto_stats class
    l4: int             # offset of the L4 header in the frame
    ip_end: int         # end of the IP packet (padding excluded)
    reachable: bool     # L4 header usable
    first_frag: bool    # first fragment of a fragmented datagram


def _u16(frame: bytes, off: int) -> int:
    return (frame[off] << 8) | frame[off + 1]


def l3_offset(frame: bytes) -> tuple[int, int] | None:
    """[step 1] (ethertype, offset of the L3 header) after up to two VLAN
    tags."""
    if len(frame) < ETH_HLEN:
        return None
    off = ETH_HLEN
    proto = _u16(frame, off - 2)
    for _round in range(MAX_VLANS):
        if proto not in VLAN_TPIDS:
            break
        if len(frame) < off + VLAN_HLEN:
            return None
        proto = _u16(frame, off + 2)
        off += VLAN_HLEN
    return proto, off


def _l4_fits(frame: bytes, proto: int, l4: int) -> bool:
    # The program checks the L4 header against data_end, not the IP end.
    if proto == _abi.FP_PROTO_UDP:
        return l4 + UDP_HLEN <= len(frame)
    if proto == _abi.FP_PROTO_TCP:
        return l4 + TCP_HLEN <= len(frame)
    return True


def parse_ipv4(frame: bytes, off: int) -> Packet | None:
    """[step 2] for IPv4."""
    present = len(frame) - off
    if present < 20 or frame[off] >> 4 != 4:
        return None
    hlen = (frame[off] & 0x0F) * 4
    total = _u16(frame, off + 2)
    if hlen < 20 or hlen > present or not hlen <= total <= present:
        return None
    frag = _u16(frame, off + 6)
    offset, more = frag & 0x1FFF, bool(frag & 0x2000)
    proto = V4_CLASSES.get(frame[off + 9], _abi.FP_PROTO_OTHER)
    l4 = off + hlen
    reachable = offset == 0 and _l4_fits(frame, proto, l4)
    src = ipaddress.IPv4Address(frame[off + 12:off + 16])
    return Packet(src, proto, l4, off + total, reachable,
                  more and offset == 0)


def walk_ipv6_ext(frame: bytes, off: int,
                  nexthdr: int) -> tuple[int, int, bool, bool]:
    """Follow the extension chain: (nexthdr, l4, reachable, first_frag).

    An unfollowable chain (too long or truncated) yields nexthdr -1, which
    classifies as OTHER.
    """
    first_frag = False
    for _round in range(MAX_IPV6_EXT):
        if nexthdr not in IPV6_EXT:
            return nexthdr, off, True, first_frag
        if nexthdr == IPV6_FRAGMENT:
            if off + 8 > len(frame):
                return -1, off, False, False
            frag = _u16(frame, off + 2)
            if frag >> 3:
                # Later fragment: the class is the fragment's next header.
                return frame[off], off + 8, False, False
            first_frag = first_frag or bool(frag & 1)
            nexthdr, off = frame[off], off + 8
            continue
        if off + 2 > len(frame):
            return -1, off, False, False
        hlen = (frame[off + 1] + 1) * 8
        if off + hlen > len(frame):
            return -1, off, False, False
        nexthdr, off = frame[off], off + hlen
    if nexthdr in IPV6_EXT:
        return -1, off, False, False
    return nexthdr, off, True, first_frag


def parse_ipv6(frame: bytes, off: int) -> Packet | None:
    """[step 2] for IPv6."""
    present = len(frame) - off
    if present < 40 or frame[off] >> 4 != 6:
        return None
    payload = _u16(frame, off + 4)
    if 40 + payload > present:
        return None
    nexthdr, l4, reachable, first_frag = walk_ipv6_ext(
        frame, off + 40, frame[off + 6])
    proto = V6_CLASSES.get(nexthdr, _abi.FP_PROTO_OTHER)
    reachable = reachable and _l4_fits(frame, proto, l4)
    src = ipaddress.IPv6Address(frame[off + 8:off + 24])
    return Packet(src, proto, l4, off + 40 + payload, reachable, first_frag)


def parse(frame: bytes) -> Packet | None:
    """The parsed IP packet, or None for NON_IP."""
    l3 = l3_offset(frame)
    if l3 is None:
        return None
    ethertype, off = l3
    if ethertype == ETH_P_IP:
        return parse_ipv4(frame, off)
    if ethertype == ETH_P_IPV6:
        return parse_ipv6(frame, off)
    return None


def lpm_match(entries: list[Entry], addr: IPAddress, now_ns: int) -> bool:
    """Does a live entry cover addr? An expired entry is treated as absent,
    so a shorter live prefix under an expired longer one still matches.
    Among equal networks the last entry wins, as a later map update would.
    """
    latest: dict[object, Entry] = {}
    for entry in entries:
        latest[entry.network] = entry
    return any(addr in entry.network and entry.live(now_ns)
               for entry in latest.values())


def is_keepalive(payload: bytes) -> bool:
    return len(payload) <= MAX_KEEPALIVE and all(
        b in CRLF_BYTES for b in payload)


def is_stun(payload: bytes) -> bool:
    return (len(payload) >= STUN_MIN and payload[0] & 0xC0 == 0
            and payload[4:8] == STUN_COOKIE)


def strip_crlf(payload: bytes) -> bytes:
    skip = 0
    while skip < MAX_CRLF_SKIP and skip < len(payload) \
            and payload[skip] in CRLF_BYTES:
        skip += 1
    return payload[skip:]


def is_response(text: bytes) -> bool:
    code = text[8:11]
    return (text[:8] == SIP_RESPONSE and len(code) == 3
            and all(b in DIGITS for b in code))


def request_method(text: bytes) -> bytes | None:
    """The method of a valid request line, else None."""
    k = 0
    while k < len(text) and k <= MAX_METHOD and text[k] in TOKEN_CHARS:
        k += 1
    if not 1 <= k <= MAX_METHOD or text[k:k + 1] != b" ":
        return None
    end = text.find(b"\r\n")
    # The method's space may double as the one of " SIP/2.0".
    if end < 8 or end + 2 > MAX_REQUEST_LINE:
        return None
    if text[end - 8:end] != SIP_VERSION_TAIL:
        return None
    return text[:k]


def udp_payload(frame: bytes, pkt: Packet) -> bytes | None:
    """The payload P of [step 9], or None when the UDP length is
    malformed."""
    udp_len = _u16(frame, pkt.l4 + 4)
    start = pkt.l4 + UDP_HLEN
    if pkt.first_frag:
        # The rest of the datagram is in later fragments.
        return frame[start:pkt.ip_end] if udp_len >= UDP_HLEN else None
    if not UDP_HLEN <= udp_len <= pkt.ip_end - pkt.l4:
        return None
    return frame[start:pkt.l4 + udp_len]


def _verdict(action: int, reason: int, proto: int | None,
             flags: int) -> Verdict:
    if action == _abi.XDP_DROP and flags & _abi.FP_SHADOW:
        action = _abi.XDP_PASS
    return Verdict(action, reason, proto)


def _sip_pass(tables: Tables, rx_queue: int, proto: int) -> Verdict:
    # [step 10] Every pass of SIP over UDP may go to an AF_XDP socket.
    if rx_queue in tables.xsk_queues:
        return Verdict(_abi.XDP_REDIRECT, _abi.FP_REDIRECTED, proto)
    return Verdict(_abi.XDP_PASS, _abi.FP_PASSED, proto)


def _trusted(tables: Tables, rx_queue: int, pkt: Packet,
             is_sip: bool) -> Verdict:
    if is_sip and pkt.proto == _abi.FP_PROTO_UDP:
        return _sip_pass(tables, rx_queue, pkt.proto)
    reason = _abi.FP_PASSED if is_sip else _abi.FP_NOT_SIP
    return Verdict(_abi.XDP_PASS, reason, pkt.proto)


def _inspect_udp(frame: bytes, pkt: Packet, tables: Tables,
                 rx_queue: int) -> Verdict:
    flags = tables.flags
    payload = udp_payload(frame, pkt)
    if payload is not None:
        if is_keepalive(payload) or is_stun(payload):
            return _sip_pass(tables, rx_queue, pkt.proto)
        text = strip_crlf(payload)
        if is_response(text):
            return _sip_pass(tables, rx_queue, pkt.proto)
        method = request_method(text)
        if method is not None:
            if method == b"OPTIONS" and not flags & _abi.FP_STEALTH_OFF:
                return _verdict(_abi.XDP_DROP, _abi.FP_OPTIONS_DROPPED,
                                pkt.proto, flags)
            return _sip_pass(tables, rx_queue, pkt.proto)
    if flags & _abi.FP_MALFORMED_PASS:
        return Verdict(_abi.XDP_PASS, _abi.FP_MALFORMED, pkt.proto)
    return _verdict(_abi.XDP_DROP, _abi.FP_MALFORMED, pkt.proto, flags)


def decide(frame: bytes, tables: Tables, now_ns: int,
           rx_queue: int = 0) -> Verdict:
    """The verdict of the program for one frame: [step 1] to [step 10]."""
    pkt = parse(frame)
    if pkt is None:
        return Verdict(_abi.XDP_PASS, _abi.FP_NON_IP, None)
    flags = tables.flags
    # [step 3]
    is_sip = (pkt.reachable
              and pkt.proto in (_abi.FP_PROTO_TCP, _abi.FP_PROTO_UDP)
              and _u16(frame, pkt.l4 + 2) in tables.sip_ports)
    # [step 4]
    if not is_sip and pkt.reachable \
            and not flags & _abi.FP_BLOCK_ALL_PORTS:
        return Verdict(_abi.XDP_PASS, _abi.FP_NOT_SIP, pkt.proto)
    # [step 5]
    if lpm_match(tables.allow, pkt.src, now_ns):
        return _trusted(tables, rx_queue, pkt, is_sip)
    # [step 6]
    if lpm_match(tables.block, pkt.src, now_ns):
        return _verdict(_abi.XDP_DROP, _abi.FP_BLOCKED, pkt.proto, flags)
    # [step 7]
    if not is_sip:
        return Verdict(_abi.XDP_PASS, _abi.FP_NOT_SIP, pkt.proto)
    # [step 8]
    if pkt.proto == _abi.FP_PROTO_TCP:
        return Verdict(_abi.XDP_PASS, _abi.FP_PASSED, pkt.proto)
    # [step 9]
    return _inspect_udp(frame, pkt, tables, rx_queue)
