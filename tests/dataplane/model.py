"""Reference model of the XDP decision function.

A pure-Python statement of the decision steps of docs/dataplane.md, cited
as [step N]. The BPF program is checked against decide() frame by frame,
so this file favours plain, literal code over speed or cleverness.

Time is an input: decide() takes the two clocks the program reads, the
CLOCK_BOOTTIME time of list entries and the CLOCK_MONOTONIC time of budgets
and bans. The state the program keeps between frames (per-source budgets,
bans, scanner hits, rate-limited drops per class) lives in Tables, next
to the configuration (pardons included: only the control plane writes
them), and decide() updates it as the program updates its maps.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

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
TCP_FLAGS = 13          # offset of the flags byte in the TCP header
TCP_SYN = 0x02
TCP_ACK = 0x10

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
KEEPALIVE_BYTES = b"\r\n \t\0"
MAX_KEEPALIVE = 16
MAX_CRLF_SKIP = 4
STUN_MIN = 20
STUN_COOKIE = bytes.fromhex("2112A442")
SIP_RESPONSE = b"SIP/2.0 "
SIP_VERSION_TAIL = b" SIP/2.0"
MAX_REQUEST_LINE = 512
TOKEN_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    b"-.!%*_+`'~"
)
DIGITS = frozenset(b"0123456789")
METHOD_CLASSES = {
    b"REGISTER": _abi.FP_CLASS_REGISTER,
    b"INVITE": _abi.FP_CLASS_INVITE,
    b"OPTIONS": _abi.FP_CLASS_OPTIONS,
}

# [step 12] The User-Agent header and the bounds of the search.
UA_LINE_BOUND = 1024
U64_MAX = (1 << 64) - 1
UA_VALUE_BOUND = 128
UA_NAME = re.compile(rb"(?i)user-agent[ \t]{0,8}:")
SIGNATURE_SLOTS = _abi.MAPS["scanner_sigs"].max_entries

# Every reason by number: `stats`, then `stats_ext` from FP_REASON_MAX on.
REASON_NAMES = _abi.REASONS + _abi.REASONS_EXT


@dataclass
class Entry:
    """One list entry (struct fp_entry plus its key). in_trie puts a
    blocklisted single address in the trie rather than its hash, as
    release 0.1.0 wrote it: where it is found does not change whether it
    matches, so the model never reads it."""

    network: IPNetwork
    expires_ns: int = 0
    source: int = 0
    in_trie: bool = False

    def live(self, now_ns: int) -> bool:
        return self.expires_ns == 0 or self.expires_ns > now_ns


@dataclass
class Budget:
    """struct fp_budget: one request per interval_ns, burst at once."""

    interval_ns: int = 0
    burst: int = 0


def _budgets() -> list[Budget]:
    return [Budget() for _slot in range(_abi.CLASS_SLOTS)]


@dataclass
class Limits:
    """struct fp_limits: every field zero (the default) turns every limit
    and ban off."""

    untrusted: list[Budget] = field(default_factory=_budgets)
    trusted: list[Budget] = field(default_factory=_budgets)
    ban_after_ns: int = 0
    ban_ns: int = 0
    scanner_ban_ns: int = 0
    flags: int = 0
    prefix_v4: int = 0
    prefix_v6: int = 0


@dataclass
class Signature:
    """struct fp_signature: text (zero padded to 32 bytes in the map) and
    its len, len(text) unless given."""

    text: bytes
    length: int | None = None

    @property
    def len(self) -> int:
        return len(self.text) if self.length is None else self.length

    def padded(self) -> bytes:
        return self.text.ljust(_abi.MAX_SIGNATURE_LEN, b"\0")


@dataclass(frozen=True)
class Source:
    """struct fp_source: a source address masked to its prefix."""

    family: int
    prefixlen: int
    addr: bytes         # 16 bytes, IPv4 in the first 4


@dataclass
class Rate:
    """struct fp_rate: a source's budget state."""

    tat_ns: list[int] = field(
        default_factory=lambda: [0] * _abi.CLASS_SLOTS)
    over_since_ns: int = 0
    last_drop_ns: int = 0

    def copy(self) -> Rate:
        return Rate(list(self.tat_ns), self.over_since_ns, self.last_drop_ns)


@dataclass
class Ban:
    """struct fp_ban_v2: when the ban ends, what made it (reason, and
    detail: the request class or the signature slot), when it was made
    and the packets it has dropped since."""

    expires_ns: int
    reason: int
    detail: int = 0
    since_ns: int = 0
    packets: int = 0

    def copy(self) -> Ban:
        return replace(self)


@dataclass
class Pardon:
    """struct fp_pardon: no ban of the source is made until until_ns."""

    until_ns: int


@dataclass
class Tables:
    """The maps as the program sees them: configuration (pardons
    included), then the state that frames change (rate_state, bans_v2,
    and the packets of scanner_hits and rate_limited)."""

    sip_ports: set[int] = field(default_factory=lambda: {5060})
    allow: list[Entry] = field(default_factory=list)
    block: list[Entry] = field(default_factory=list)
    flags: int = 0
    xsk_queues: set[int] = field(default_factory=set)
    limits: Limits = field(default_factory=Limits)
    signatures: list[Signature] = field(default_factory=list)
    rate_state: dict[Source, Rate] = field(default_factory=dict)
    bans: dict[Source, Ban] = field(default_factory=dict)
    pardons: dict[Source, Pardon] = field(default_factory=dict)
    scanner_hits: list[int] = field(
        default_factory=lambda: [0] * SIGNATURE_SLOTS)
    rate_limited: list[int] = field(
        default_factory=lambda: [0] * _abi.CLASS_SLOTS)

    def fork(self) -> Tables:
        """The same configuration with a copy of the state."""
        return replace(
            self,
            rate_state={k: v.copy() for k, v in self.rate_state.items()},
            bans={k: v.copy() for k, v in self.bans.items()},
            scanner_hits=list(self.scanner_hits),
            rate_limited=list(self.rate_limited))


@dataclass(frozen=True)
class Verdict:
    """XDP action, reason (a `stats` index, or FP_REASON_MAX + a
    `stats_ext` index), `proto_stats` index (or None), the signature
    slot whose `scanner_hits` counter moves (or None), and the request
    class whose `rate_limited` counter moves (or None)."""

    action: int
    reason: int
    proto: int | None
    signature: int | None = None
    limited_class: int | None = None

    def __str__(self) -> str:
        proto = "-" if self.proto is None else _abi.PROTOS[self.proto]
        action = ACTION_NAMES.get(self.action, str(self.action))
        hit = "" if self.signature is None else "/sig%d" % self.signature
        if self.limited_class is not None:
            hit += "/" + _abi.CLASSES[self.limited_class]
        return f"{action}/{REASON_NAMES[self.reason]}/{proto}{hit}"


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
    Among equal networks in one map the last entry wins, as a later map
    update would; a single address in both its hash and the trie matches
    when either copy is live.
    """
    latest: dict[object, Entry] = {}
    for entry in entries:
        latest[(entry.network, entry.in_trie)] = entry
    return any(addr in entry.network and entry.live(now_ns)
               for entry in latest.values())


# [step 10] The payload.


def is_keepalive(payload: bytes) -> bool:
    return len(payload) <= MAX_KEEPALIVE and all(
        b in KEEPALIVE_BYTES for b in payload)


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
    while k < len(text) and text[k] in TOKEN_CHARS:
        k += 1
    # The space after the method lies within the first 512 bytes.
    if k == 0 or k >= MAX_REQUEST_LINE or text[k:k + 1] != b" ":
        return None
    end = text.find(b"\r\n")
    # The method's space may double as the one of " SIP/2.0".
    if end < 8 or end + 2 > MAX_REQUEST_LINE:
        return None
    if text[end - 8:end] != SIP_VERSION_TAIL:
        return None
    return text[:k]


def method_class(method: bytes) -> int:
    return METHOD_CLASSES.get(method, _abi.FP_CLASS_OTHER)


def udp_payload(frame: bytes, pkt: Packet) -> bytes | None:
    """The payload P of [step 10], or None when the UDP length is
    malformed."""
    udp_len = _u16(frame, pkt.l4 + 4)
    start = pkt.l4 + UDP_HLEN
    if pkt.first_frag:
        # The rest of the datagram is in later fragments.
        return frame[start:pkt.ip_end] if udp_len >= UDP_HLEN else None
    if not UDP_HLEN <= udp_len <= pkt.ip_end - pkt.l4:
        return None
    return frame[start:pkt.l4 + udp_len]


# [step 12] Scanner fingerprints.


def user_agent_value(text: bytes) -> bytes | None:
    """The value of the first User-Agent header of S whose line follows an
    LF within the first 1024 bytes, from the LF that ends the request line
    on and before the empty line that ends the headers, up to its CR or
    LF."""
    request_line_lf = text.find(b"\r\n") + 1
    for lf in range(request_line_lf, min(len(text), UA_LINE_BOUND)):
        if text[lf] != ord("\n"):
            continue
        if text[lf + 1:lf + 2] in (b"\r", b"\n"):
            return None     # the empty line that ends the headers
        name = UA_NAME.match(text, lf + 1)
        if name is None:
            continue
        value = text[name.end():]
        for end, byte in enumerate(value):
            if byte in CRLF_BYTES:
                return value[:end]
        return value
    return None


def signature_list(signatures: list[Signature]) -> list[tuple[int, bytes]]:
    """(slot, text) of the signatures in use: up to the first len 0, the
    lengths out of 4 to 32 skipped."""
    found = []
    for slot, sig in enumerate(signatures[:SIGNATURE_SLOTS]):
        if sig.len == 0:
            break
        if _abi.MIN_SIGNATURE_LEN <= sig.len <= _abi.MAX_SIGNATURE_LEN:
            found.append((slot, sig.padded()[:sig.len]))
    return found


def scanner_match(text: bytes, signatures: list[Signature]) -> int | None:
    """The slot of the signature that starts first within the first 128
    bytes of the User-Agent value (the lowest slot of those starting at
    one byte), or None."""
    value = user_agent_value(text)
    if value is None:
        return None
    window = value[:UA_VALUE_BOUND].lower()
    in_use = signature_list(signatures)
    for pos in range(len(window)):
        for slot, sig in in_use:
            if window[pos:pos + len(sig)] == sig:
                return slot
    return None


# [step 6], [step 11] Sources, budgets and bans.


def source_of(src: IPAddress, limits: Limits) -> Source:
    """The source: the address masked to the aggregation prefix."""
    if src.version == 4:
        prefix = limits.prefix_v4
        if prefix == 0 or prefix > 32:
            prefix = 32
    else:
        prefix = limits.prefix_v6
        if prefix == 0:
            prefix = 64
        prefix = min(prefix, 128)
    net = ipaddress.ip_network((src, prefix), strict=False)
    return Source(src.version, prefix,
                  net.network_address.packed.ljust(16, b"\0"))


def banned(tables: Tables, src: IPAddress, mono_ns: int) -> bool:
    """[step 6] Is the source banned? A ban that holds counts the packet
    it drops."""
    limits = tables.limits
    if not limits.flags & _abi.FP_LIMIT_BANS:
        return False
    ban = tables.bans.get(source_of(src, limits))
    if ban is None or ban.expires_ns <= mono_ns:
        return False
    ban.packets += 1
    return True


def pardoned(tables: Tables, key: Source, mono_ns: int) -> bool:
    pardon = tables.pardons.get(key)
    return pardon is not None and pardon.until_ns > mono_ns


def ban(tables: Tables, key: Source, mono_ns: int, length_ns: int,
        reason: int, detail: int) -> None:
    """Ban the source for length_ns from now, unless it has a live pardon.
    A ban replaces any earlier ban of the source, its count included; one
    that would end past the clock's range ends at its last value."""
    if pardoned(tables, key, mono_ns):
        return
    tables.bans[key] = Ban(min(mono_ns + length_ns, U64_MAX), reason,
                           detail, mono_ns)


def over_budget(tables: Tables, src: IPAddress, cls: int, trusted: bool,
                mono_ns: int) -> bool:
    """Charge one request of class cls: is it over its source's budget?"""
    limits = tables.limits
    budget = (limits.trusted if trusted else limits.untrusted)[cls]
    if budget.interval_ns == 0:
        return False
    key = source_of(src, limits)
    rate = tables.rate_state.setdefault(key, Rate())
    burst = budget.burst or 1
    # GCRA: fits when TAT' - now <= (B - 1) * T, then TAT = TAT' + T.
    tat = max(rate.tat_ns[cls], mono_ns)
    if tat - mono_ns <= (burst - 1) * budget.interval_ns:
        rate.tat_ns[cls] = tat + budget.interval_ns
        return False
    # Over budget: the streak goes on while drops come within B * T.
    if rate.over_since_ns == 0 or \
            mono_ns - rate.last_drop_ns > burst * budget.interval_ns:
        rate.over_since_ns = mono_ns
    rate.last_drop_ns = mono_ns
    if not trusted and limits.flags & _abi.FP_LIMIT_BANS and limits.ban_ns \
            and mono_ns - rate.over_since_ns >= limits.ban_after_ns:
        # A pardon stops the ban only: the streak ends all the same.
        ban(tables, key, mono_ns, limits.ban_ns, _abi.FP_RATE_LIMITED, cls)
        rate.over_since_ns = 0
    return True


def rate_limited(tables: Tables, pkt: Packet, cls: int, trusted: bool,
                 mono_ns: int) -> Verdict | None:
    """[step 11] The RATE_LIMITED drop of a request over its budget,
    counted under its class in rate_limited; None when it fits."""
    if not over_budget(tables, pkt.src, cls, trusted, mono_ns):
        return None
    tables.rate_limited[cls] += 1
    return _verdict(_abi.XDP_DROP, _abi.FP_RATE_LIMITED, pkt.proto,
                    tables.flags, limited_class=cls)


# The verdicts.


def _verdict(action: int, reason: int, proto: int | None,
             flags: int, signature: int | None = None,
             limited_class: int | None = None) -> Verdict:
    if action == _abi.XDP_DROP and flags & _abi.FP_SHADOW:
        action = _abi.XDP_PASS
    return Verdict(action, reason, proto, signature, limited_class)


def _sip_pass(tables: Tables, rx_queue: int, proto: int) -> Verdict:
    # [step 14] Every pass of SIP over UDP may go to an AF_XDP socket.
    if rx_queue in tables.xsk_queues:
        return Verdict(_abi.XDP_REDIRECT, _abi.FP_REDIRECTED, proto)
    return Verdict(_abi.XDP_PASS, _abi.FP_PASSED, proto)


def _request(text: bytes, cls: int, pkt: Packet, tables: Tables,
             trusted: bool, mono_ns: int, rx_queue: int) -> Verdict:
    flags, limits = tables.flags, tables.limits
    # [step 11]
    limited = rate_limited(tables, pkt, cls, trusted, mono_ns)
    if limited is not None:
        return limited
    # [step 12]
    slot = scanner_match(text, tables.signatures)
    if slot is not None and not trusted:
        tables.scanner_hits[slot] += 1
        if limits.flags & _abi.FP_LIMIT_BANS and limits.scanner_ban_ns:
            ban(tables, source_of(pkt.src, limits), mono_ns,
                limits.scanner_ban_ns, _abi.FP_SCANNER, slot)
        return _verdict(_abi.XDP_DROP, _abi.FP_SCANNER, pkt.proto, flags,
                        slot)
    # [step 13]
    if cls == _abi.FP_CLASS_OPTIONS and not trusted \
            and not flags & _abi.FP_STEALTH_OFF:
        return _verdict(_abi.XDP_DROP, _abi.FP_OPTIONS_DROPPED, pkt.proto,
                        flags)
    return _sip_pass(tables, rx_queue, pkt.proto)


def _inspect_udp(frame: bytes, pkt: Packet, tables: Tables, trusted: bool,
                 mono_ns: int, rx_queue: int) -> Verdict:
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
            return _request(text, method_class(method), pkt, tables,
                            trusted, mono_ns, rx_queue)
    # [step 5] A trusted payload that is not SIP is handled as SIP.
    if trusted:
        return _sip_pass(tables, rx_queue, pkt.proto)
    if flags & _abi.FP_MALFORMED_PASS:
        return Verdict(_abi.XDP_PASS, _abi.FP_MALFORMED, pkt.proto)
    return _verdict(_abi.XDP_DROP, _abi.FP_MALFORMED, pkt.proto, flags)


def decide(frame: bytes, tables: Tables, now_ns: int, rx_queue: int = 0,
           mono_ns: int | None = None) -> Verdict:
    """The verdict of the program for one frame: [step 1] to [step 14].

    now_ns is the CLOCK_BOOTTIME time of list entries, mono_ns the
    CLOCK_MONOTONIC time of budgets and bans (now_ns when not given: the
    two clocks agree on a host that never slept). Updates the state in
    tables as the program updates its maps."""
    mono = now_ns if mono_ns is None else mono_ns
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
    trusted = lpm_match(tables.allow, pkt.src, now_ns)
    # [step 6]
    if not trusted and banned(tables, pkt.src, mono):
        return _verdict(_abi.XDP_DROP, _abi.FP_BANNED, pkt.proto, flags)
    # [step 7]
    if not trusted and lpm_match(tables.block, pkt.src, now_ns):
        return _verdict(_abi.XDP_DROP, _abi.FP_BLOCKED, pkt.proto, flags)
    # [step 8]
    if not is_sip:
        return Verdict(_abi.XDP_PASS, _abi.FP_NOT_SIP, pkt.proto)
    # [step 9]
    if pkt.proto == _abi.FP_PROTO_TCP:
        tcp_flags = frame[pkt.l4 + TCP_FLAGS]
        # [step 11] for a connection attempt.
        if tcp_flags & TCP_SYN and not tcp_flags & TCP_ACK:
            limited = rate_limited(tables, pkt, _abi.FP_CLASS_SYN, trusted,
                                   mono)
            if limited is not None:
                return limited
        return Verdict(_abi.XDP_PASS, _abi.FP_PASSED, pkt.proto)
    # [step 10]
    return _inspect_udp(frame, pkt, tables, trusted, mono, rx_queue)


def frame_source(frame: bytes, tables: Tables) -> Source | None:
    """The rate_state, bans_v2 and pardons key a frame may touch, if it
    is an IP packet."""
    pkt = parse(frame)
    return None if pkt is None else source_of(pkt.src, tables.limits)
