"""Hand-written cases for each decision step of docs/dataplane.md, grouped
under the [step N] they check and named for what they show.

Each test loads explicit tables, builds a few explicit frames and runs them
through the real program (BPF_PROG_TEST_RUN). It checks the XDP action, the
one `stats` counter that moved (by exactly the frame's length in bytes) and
the one `proto_stats` counter that moved. The reference model must give the
same verdict for the same frame, so these cases pin the model too.

Only documentation addresses are used: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 and 2001:db8::/32.
"""

from __future__ import annotations

import ipaddress
import struct

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.frames import DSTOPTS, FRAGMENT, HBH, ROUTING, Ext
from tests.dataplane.harness import Dataplane, boot_ns

ACTIONS = {name: code for code, name in model.ACTION_NAMES.items()}

SIP_PORT = 5060
CLIENT_PORT = 40000          # a source port that is not a SIP port
HOUR_NS = 3600 * 10**9

SERVER_V4 = ipaddress.IPv4Address("192.0.2.254")
SERVER_V6 = ipaddress.IPv6Address("2001:db8:ffff::1")

PLAIN_V4 = ipaddress.IPv4Address("192.0.2.1")
TRUSTED_V4 = ipaddress.IPv4Address("198.51.100.10")
BLOCKED_V4 = ipaddress.IPv4Address("203.0.113.9")
TRUSTED_IN_BLOCKED_V4 = ipaddress.IPv4Address("203.0.113.7")
PLAIN_V6 = ipaddress.IPv6Address("2001:db8:9::1")
TRUSTED_V6 = ipaddress.IPv6Address("2001:db8:1::10")
BLOCKED_V6 = ipaddress.IPv6Address("2001:db8:bad::1")
TRUSTED_IN_BLOCKED_V6 = ipaddress.IPv6Address("2001:db8:bad::7")

HEADERS = (b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
           b"Max-Forwards: 70\r\n"
           b"From: <sip:alice@example.com>;tag=1928301774\r\n"
           b"To: <sip:bob@example.com>\r\n"
           b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
           b"CSeq: 1 INVITE\r\n"
           b"Content-Length: 0\r\n\r\n")
JUNK = b"\x80\x00\x12\x34junk that is not SIP at all\x00\xff"


# Tables.


def entry(network: str, expires_ns: int = 0,
          source: int = 0) -> model.Entry:
    return model.Entry(ipaddress.ip_network(network), expires_ns, source)


def tables(allow: tuple[model.Entry, ...] = (),
           block: tuple[model.Entry, ...] = (), flags: int = 0,
           sip_ports: tuple[int, ...] = (SIP_PORT,)) -> model.Tables:
    return model.Tables(sip_ports=set(sip_ports), allow=list(allow),
                        block=list(block), flags=flags,
                        xsk_queues={XSK_QUEUE})


def usual_lists(flags: int = 0) -> model.Tables:
    """One trusted and one blocked source per family, and a trusted host
    inside each blocked prefix."""
    return tables(
        allow=(entry("198.51.100.10/32"), entry("203.0.113.7/32"),
               entry("2001:db8:1::10/128"), entry("2001:db8:bad::7/128")),
        block=(entry("203.0.113.0/24", source=2),
               entry("2001:db8:bad::/48", source=2)),
        flags=flags)


def load(dp: Dataplane, t: model.Tables) -> model.Tables:
    """Make the program's maps equal to t; returns t for the model."""
    dp.load_tables(t)
    return t


def set_flags(dp: Dataplane, t: model.Tables, flags: int) -> None:
    t.flags = flags
    dp.set_flags(flags)


# The check.


def _names(indexes: list[int], names: tuple[str, ...]) -> str | None:
    return "+".join(names[i] for i in indexes) or None


def expect(dp: Dataplane, t: model.Tables, frame: bytes, action: str,
           reason: str, proto: str | None, rx_queue: int = 0) -> None:
    """The program and the model both give action/reason/proto for frame,
    and the program counts len(frame) bytes under reason."""
    want = (action, reason, proto, len(frame))
    got = dp.run(frame, rx_queue)
    program = (model.ACTION_NAMES.get(got.action, str(got.action)),
               _names(got.reasons, _abi.REASONS),
               _names(got.protos, _abi.PROTOS), got.bytes_counted)
    assert program == want, "program on queue %d, frame %s" % (
        rx_queue, frame.hex())
    verdict = model.decide(frame, t, boot_ns(), rx_queue)
    pinned = (model.ACTION_NAMES[verdict.action],
              _abi.REASONS[verdict.reason],
              None if verdict.proto is None else _abi.PROTOS[verdict.proto],
              len(frame))
    assert pinned == want, "model on queue %d, frame %s" % (
        rx_queue, frame.hex())


# Frames.


def build(src: ipaddress.IPv4Address | ipaddress.IPv6Address,
          payload: bytes = b"", **spec: object) -> bytes:
    """A frame from src to the server; UDP to 5060 unless spec says
    otherwise (spec: the fields of frames.FrameSpec)."""
    dst = SERVER_V4 if src.version == 4 else SERVER_V6
    spec.setdefault("sport", CLIENT_PORT)
    return frames.build_frame(frames.FrameSpec(
        src=src, dst=dst, payload=payload, **spec))


def request(method: bytes = b"INVITE", uri: bytes = b"sip:bob@example.com",
            tail: bytes = b" SIP/2.0\r\n") -> bytes:
    return method + b" " + uri + tail + HEADERS


def request_line_of(length: int, method: bytes = b"INVITE") -> bytes:
    """A request whose first line, CR LF included, is length bytes."""
    fixed = len(method + b" sip: SIP/2.0\r\n")
    line = method + b" sip:" + b"a" * (length - fixed) + b" SIP/2.0\r\n"
    assert len(line) == length
    return line + HEADERS


def request_of_size(size: int, method: bytes = b"INVITE") -> bytes:
    """A valid request of exactly size bytes."""
    line = method + b" sip:bob@example.com SIP/2.0\r\n"
    filler = size - len(line) - len(b"X: \r\n\r\n")
    assert filler >= 0
    payload = line + b"X: " + b"a" * filler + b"\r\n\r\n"
    assert len(payload) == size
    return payload


def stun(kind: int = 0x0001, cookie: bytes = frames.STUN_COOKIE,
         attrs: bytes = b"") -> bytes:
    return (struct.pack("!HH", kind, len(attrs)) + cookie
            + bytes(range(1, 13)) + attrs)


def ipv6_raw(src: ipaddress.IPv6Address, nexthdr: int, body: bytes) -> bytes:
    return frames.ethernet(frames.ETH_P_IPV6,
                           frames.ipv6(src, SERVER_V6, nexthdr, body))


# [step 1] Ethernet.


def test_short_frame_is_non_ip(dataplane: Dataplane) -> None:
    """A frame that ends inside the Ethernet header and its tags, or inside
    the IP header, passes as NON_IP, even from a blocked source with
    block_all_ports (BPF_PROG_TEST_RUN refuses frames under 14 bytes)."""
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    whole_v4 = build(BLOCKED_V4, request())
    whole_v6 = build(BLOCKED_V6, request())
    one_tag = build(BLOCKED_V4, request(), vlans=[0x8100])
    two_tags = build(BLOCKED_V4, request(), vlans=[0x8100, 0x8100])
    for frame in (
            whole_v4[:14],              # Ethernet header, no IP header
            one_tag[:14],               # the tag is missing
            one_tag[:17],               # the tag is cut
            two_tags[:21],              # the second tag is cut
            whole_v4[:14 + 19],         # IPv4 header cut, source inside
            whole_v6[:14 + 39],         # IPv6 header cut, source inside
    ):
        expect(dataplane, t, frame, "PASS", "NON_IP", None)


def test_arp_is_non_ip(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1,
                      frames.SRC_MAC, BLOCKED_V4.packed, bytes(6),
                      SERVER_V4.packed)
    expect(dataplane, t, frames.ethernet(frames.ETH_P_ARP, arp), "PASS",
           "NON_IP", None)
    expect(dataplane, t, frames.ethernet(frames.ETH_P_ARP, arp, [0x8100]),
           "PASS", "NON_IP", None)


def test_two_vlan_tags_are_skipped(dataplane: Dataplane) -> None:
    """The source and the payload are read after one or two 802.1Q tags."""
    t = load(dataplane, usual_lists())
    for vlans in ([0x8100], [0x8100, 0x8100]):
        expect(dataplane, t, build(BLOCKED_V4, request(), vlans=vlans),
               "DROP", "BLOCKED", "UDP")
        expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS"),
                                   vlans=vlans),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(PLAIN_V6, request(), vlans=vlans),
               "PASS", "PASSED", "UDP")


def test_third_vlan_tag_is_non_ip(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for vlans in ([0x8100] * 3, [0x88A8, 0x8100, 0x8100]):
        expect(dataplane, t, build(BLOCKED_V4, request(), vlans=vlans),
               "PASS", "NON_IP", None)


def test_qinq_8021ad_then_8021q(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for vlans in ([0x88A8], [0x88A8, 0x8100], [0x8100, 0x88A8]):
        expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS"),
                                   vlans=vlans),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(BLOCKED_V6, request(), vlans=vlans),
               "DROP", "BLOCKED", "UDP")


def test_tpid_0x9100_is_not_a_vlan_tag(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    expect(dataplane, t, build(BLOCKED_V4, request(), vlans=[0x9100]),
           "PASS", "NON_IP", None)


# [step 2] IP headers.


def test_ipv4_ihl_below_5_is_non_ip(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for ihl in (0, 4):
        expect(dataplane, t, build(BLOCKED_V4, request(), ihl=ihl),
               "PASS", "NON_IP", None)


def test_ipv4_header_beyond_frame_is_non_ip(dataplane: Dataplane) -> None:
    """IHL 15 (60 bytes) with 40 bytes of IP packet in the frame."""
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    frame = build(BLOCKED_V4, ihl=15, l4_raw=bytes(20), ip_len=40)
    expect(dataplane, t, frame, "PASS", "NON_IP", None)


def test_ipv4_total_length_beyond_frame_is_non_ip(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    expect(dataplane, t, build(BLOCKED_V4, request(), ip_len_delta=1),
           "PASS", "NON_IP", None)
    # The same frame is valid with the right length.
    expect(dataplane, t, build(BLOCKED_V4, request()),
           "DROP", "BLOCKED", "UDP")


def test_ipv4_header_longer_than_total_length_is_non_ip(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    expect(dataplane, t, build(BLOCKED_V4, request(), ip_len=19),
           "PASS", "NON_IP", None)
    expect(dataplane, t, build(BLOCKED_V4, request(),
                               ip_options=b"\x01" * 4, ip_len=20),
           "PASS", "NON_IP", None)


def test_ip_version_must_match_the_ethertype(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for frame in (
            build(BLOCKED_V4, request(), version=6),
            build(BLOCKED_V4, request(), ethertype=frames.ETH_P_IPV6),
            build(BLOCKED_V6, request(), version=4),
            build(BLOCKED_V6, request(), ethertype=frames.ETH_P_IP),
    ):
        expect(dataplane, t, frame, "PASS", "NON_IP", None)


def test_ipv4_options_move_the_l4_header(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for options in (b"\x01" * 4, b"\x01" * 40):
        expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS"),
                                   ip_options=options),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(PLAIN_V4, request(), ip_options=options),
               "PASS", "PASSED", "UDP")


def test_ipv6_payload_length_beyond_frame_is_non_ip(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    expect(dataplane, t, build(BLOCKED_V6, request(), ip_len_delta=1),
           "PASS", "NON_IP", None)
    expect(dataplane, t, build(BLOCKED_V6, request()),
           "DROP", "BLOCKED", "UDP")


def test_truncated_l4_header_is_unreachable(dataplane: Dataplane) -> None:
    """A UDP header under 8 or a TCP header under 20 bytes: the port is
    unknown, so the blocklist applies even without block_all_ports."""
    t = load(dataplane, usual_lists())
    udp7 = frames.udp(CLIENT_PORT, SIP_PORT, b"")[:7]
    tcp19 = frames.tcp(CLIENT_PORT, SIP_PORT, b"")[:19]
    for src, action, reason in ((PLAIN_V4, "PASS", "NOT_SIP"),
                                (BLOCKED_V4, "DROP", "BLOCKED"),
                                (PLAIN_V6, "PASS", "NOT_SIP"),
                                (BLOCKED_V6, "DROP", "BLOCKED")):
        expect(dataplane, t, build(src, l4_raw=udp7), action, reason, "UDP")
        expect(dataplane, t, build(src, proto=frames.TCP, l4_raw=tcp19),
               action, reason, "TCP")


def test_udp_header_in_padding_is_malformed(dataplane: Dataplane) -> None:
    """The L4 header is reachable when it fits in the frame, but a UDP
    length must fit before the IP end: here there is no byte before it."""
    t = load(dataplane, usual_lists())
    padding = frames.udp(CLIENT_PORT, SIP_PORT, b"\r\n")
    frame = build(PLAIN_V4, l4_raw=b"", pad=padding)
    expect(dataplane, t, frame, "DROP", "MALFORMED", "UDP")


# [step 3], [step 4] SIP ports and other ports.


def test_non_sip_port_passes_as_not_sip(dataplane: Dataplane) -> None:
    """The destination port decides, not the source port (5060 here)."""
    t = load(dataplane, usual_lists())
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, JUNK, sport=SIP_PORT, dport=53),
               "PASS", "NOT_SIP", "UDP")
        expect(dataplane, t, build(src, JUNK, proto=frames.TCP,
                                   sport=SIP_PORT, dport=80),
               "PASS", "NOT_SIP", "TCP")
        expect(dataplane, t, build(src, request(b"OPTIONS"),
                                   sport=SIP_PORT, dport=5061),
               "PASS", "NOT_SIP", "UDP")


def test_sip_ports_map_decides_which_ports_are_sip(
        dataplane: Dataplane) -> None:
    t = load(dataplane, tables(sip_ports=(5080, 65535)))
    for port in (5080, 65535):
        expect(dataplane, t, build(PLAIN_V4, JUNK, dport=port),
               "DROP", "MALFORMED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, JUNK, dport=SIP_PORT),
           "PASS", "NOT_SIP", "UDP")


def test_non_sip_port_from_blocked_source_passes_without_block_all_ports(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for src in (BLOCKED_V4, BLOCKED_V6):
        expect(dataplane, t, build(src, JUNK, dport=53),
               "PASS", "NOT_SIP", "UDP")
        expect(dataplane, t, build(src, proto=frames.TCP, dport=443),
               "PASS", "NOT_SIP", "TCP")
    expect(dataplane, t, build(BLOCKED_V4, b"ping", proto=frames.ICMP),
           "PASS", "NOT_SIP", "ICMP")


def test_block_all_ports_drops_blocked_source_on_any_port(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for src in (BLOCKED_V4, BLOCKED_V6):
        expect(dataplane, t, build(src, JUNK, dport=53),
               "DROP", "BLOCKED", "UDP")
        expect(dataplane, t, build(src, proto=frames.TCP, dport=443),
               "DROP", "BLOCKED", "TCP")
    # [step 7] A source not in the blocklist still passes as NOT_SIP.
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, JUNK, dport=53),
               "PASS", "NOT_SIP", "UDP")


def test_blocked_icmp_with_block_all_ports(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    expect(dataplane, t, build(BLOCKED_V4, b"ping", proto=frames.ICMP),
           "DROP", "BLOCKED", "ICMP")
    expect(dataplane, t, build(BLOCKED_V6, b"ping", proto=frames.ICMPV6),
           "DROP", "BLOCKED", "ICMP")
    expect(dataplane, t, build(BLOCKED_V4, bytes(8), proto=frames.GRE),
           "DROP", "BLOCKED", "OTHER")
    expect(dataplane, t, build(PLAIN_V4, b"ping", proto=frames.ICMP),
           "PASS", "NOT_SIP", "ICMP")


# [step 5] Trusted sources.


def test_trusted_udp_sip_passes_and_skips_payload_checks(
        dataplane: Dataplane) -> None:
    """Junk, OPTIONS and a bad UDP length from the allowlist all pass."""
    t = load(dataplane, usual_lists())
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, JUNK), "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(src, request(b"OPTIONS")),
               "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(src, request(), l4_len=3),
               "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(src, request(), l4_len=0xFFFF),
               "PASS", "PASSED", "UDP")


def test_trusted_tcp_sip_counts_passed(dataplane: Dataplane) -> None:
    """PASSED, and never redirected: [step 10] is for UDP only."""
    t = load(dataplane, usual_lists())
    for src in (TRUSTED_V4, TRUSTED_V6):
        frame = build(src, JUNK, proto=frames.TCP)
        expect(dataplane, t, frame, "PASS", "PASSED", "TCP")
        expect(dataplane, t, frame, "PASS", "PASSED", "TCP",
               rx_queue=XSK_QUEUE)


def test_trusted_non_sip_counts_not_sip(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, JUNK, dport=53),
               "PASS", "NOT_SIP", "UDP")
        expect(dataplane, t, build(src, JUNK, dport=53),
               "PASS", "NOT_SIP", "UDP", rx_queue=XSK_QUEUE)
    expect(dataplane, t, build(TRUSTED_V4, b"ping", proto=frames.ICMP),
           "PASS", "NOT_SIP", "ICMP")
    expect(dataplane, t, build(TRUSTED_V4, JUNK, frag_offset=185),
           "PASS", "NOT_SIP", "UDP")


def test_trusted_inside_blocked_prefix_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_BLOCK_ALL_PORTS))
    for trusted in (TRUSTED_IN_BLOCKED_V4, TRUSTED_IN_BLOCKED_V6):
        expect(dataplane, t, build(trusted, JUNK), "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(trusted, JUNK, dport=53),
               "PASS", "NOT_SIP", "UDP")
        neighbour = trusted + 1
        expect(dataplane, t, build(neighbour, request()),
               "DROP", "BLOCKED", "UDP")


# [step 6] Blocked sources and expiry.


def test_blocked_source_is_dropped(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (request(), b"\r\n", stun(), JUNK):
        expect(dataplane, t, build(BLOCKED_V4, payload),
               "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(BLOCKED_V4, request()),
           "DROP", "BLOCKED", "UDP", rx_queue=XSK_QUEUE)
    expect(dataplane, t, build(BLOCKED_V4, request(), proto=frames.TCP),
           "DROP", "BLOCKED", "TCP")
    # The whole /24 is blocked; its neighbour /24 is not.
    expect(dataplane, t, build(ipaddress.IPv4Address("203.0.113.255"),
                               request()),
           "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(ipaddress.IPv4Address("203.0.112.255"),
                               request()),
           "PASS", "PASSED", "UDP")


def test_blocked_ipv6_source_is_dropped(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for src in ("2001:db8:bad::1", "2001:db8:bad:ffff:ffff:ffff:ffff:ffff"):
        expect(dataplane, t, build(ipaddress.IPv6Address(src), request()),
               "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(BLOCKED_V6, request(), proto=frames.TCP),
           "DROP", "BLOCKED", "TCP")
    expect(dataplane, t, build(ipaddress.IPv6Address("2001:db8:bae::1"),
                               request()),
           "PASS", "PASSED", "UDP")


def test_expired_block_entry_does_not_match(dataplane: Dataplane) -> None:
    """expires_ns at or before now: treated as absent."""
    just_past = boot_ns() - 1
    t = load(dataplane, tables(block=(
        entry("203.0.113.0/24", expires_ns=1),
        entry("198.51.100.0/24", expires_ns=just_past),
        entry("2001:db8:bad::/48", expires_ns=1))))
    for src in (BLOCKED_V4, ipaddress.IPv4Address("198.51.100.1"),
                BLOCKED_V6):
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(src, JUNK), "DROP", "MALFORMED", "UDP")


def test_expired_entry_is_looked_past_to_a_shorter_live_prefix(
        dataplane: Dataplane) -> None:
    """An expired entry is absent, so a live prefix around it still
    matches, through several expired levels, in both families."""
    t = load(dataplane, tables(block=(
        entry("203.0.113.0/24"),
        entry("203.0.113.0/28", expires_ns=1),
        entry("203.0.113.0/30", expires_ns=1),
        entry("203.0.113.9/32", expires_ns=1),
        entry("2001:db8:bad::/48"),
        entry("2001:db8:bad::/64", expires_ns=1),
        entry("2001:db8:bad::1/128", expires_ns=1))))
    for src in ("203.0.113.9", "203.0.113.1", "2001:db8:bad::1"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "DROP", "BLOCKED", "UDP")


def test_expired_allow_entry_inside_a_live_one_still_trusts(
        dataplane: Dataplane) -> None:
    t = load(dataplane, tables(
        allow=(entry("198.51.100.0/24"),
               entry("198.51.100.7/32", expires_ns=1)),
        block=(entry("198.51.100.0/24"),)))
    expect(dataplane, t, build(ipaddress.IPv4Address("198.51.100.7"),
                               request()), "PASS", "PASSED", "UDP")


def test_live_ttl_block_entry_matches(dataplane: Dataplane) -> None:
    later = boot_ns() + HOUR_NS
    t = load(dataplane, tables(block=(
        entry("203.0.113.0/24", expires_ns=later, source=7),
        entry("2001:db8:bad::/48", expires_ns=later, source=7))))
    for src in (BLOCKED_V4, BLOCKED_V6):
        expect(dataplane, t, build(src, request()), "DROP", "BLOCKED", "UDP")


def test_expired_allow_entry_does_not_trust(dataplane: Dataplane) -> None:
    t = load(dataplane, tables(
        allow=(entry("198.51.100.10/32", expires_ns=1),
               entry("203.0.113.7/32", expires_ns=1),
               entry("2001:db8:1::10/128", expires_ns=1)),
        block=(entry("203.0.113.0/24"),)))
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, JUNK), "DROP", "MALFORMED", "UDP")
        expect(dataplane, t, build(src, request(b"OPTIONS")),
               "DROP", "OPTIONS_DROPPED", "UDP")
    expect(dataplane, t, build(TRUSTED_IN_BLOCKED_V4, request()),
           "DROP", "BLOCKED", "UDP")


def test_live_ttl_allow_entry_trusts(dataplane: Dataplane) -> None:
    later = boot_ns() + HOUR_NS
    t = load(dataplane, tables(
        allow=(entry("198.51.100.0/24", expires_ns=later),
               entry("2001:db8:1::/48", expires_ns=later))))
    for src in (TRUSTED_V4, TRUSTED_V6):
        expect(dataplane, t, build(src, JUNK), "PASS", "PASSED", "UDP")


# [step 2], [step 7] Fragments and IPv6 extension headers.


def test_later_fragment_from_blocked_source_is_dropped(
        dataplane: Dataplane) -> None:
    """A non-first fragment has no reachable L4 header: the blocklist
    applies without block_all_ports."""
    t = load(dataplane, usual_lists())
    for offset, more in ((185, False), (1, True), (0x1FFF, False)):
        frame = build(BLOCKED_V4, proto=frames.UDP, frag_offset=offset,
                      more_frags=more, l4_raw=request()[:64])
        expect(dataplane, t, frame, "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(BLOCKED_V4, proto=frames.TCP,
                               frag_offset=185, l4_raw=JUNK),
           "DROP", "BLOCKED", "TCP")


def test_later_fragment_from_plain_source_is_not_sip(
        dataplane: Dataplane) -> None:
    """Even when its first bytes look like a UDP header to 5060."""
    t = load(dataplane, usual_lists())
    fake_udp = frames.udp(CLIENT_PORT, SIP_PORT, JUNK)
    frame = build(PLAIN_V4, frag_offset=185, l4_raw=fake_udp)
    expect(dataplane, t, frame, "PASS", "NOT_SIP", "UDP")
    frame = build(PLAIN_V4, frag_offset=2, more_frags=True, l4_raw=fake_udp)
    expect(dataplane, t, frame, "PASS", "NOT_SIP", "UDP")


def test_ipv6_later_fragment_from_blocked_source_is_dropped(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for ext in ([Ext(FRAGMENT, offset=185)],
                [Ext(HBH), Ext(FRAGMENT, offset=1, more=True)]):
        frame = build(BLOCKED_V6, ext=ext, l4_raw=request()[:64])
        expect(dataplane, t, frame, "DROP", "BLOCKED", "UDP")


def test_ipv6_later_fragment_from_plain_source_is_not_sip(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    fake_udp = frames.udp(CLIENT_PORT, SIP_PORT, JUNK)
    frame = build(PLAIN_V6, ext=[Ext(FRAGMENT, offset=185)], l4_raw=fake_udp)
    expect(dataplane, t, frame, "PASS", "NOT_SIP", "UDP")
    frame = build(PLAIN_V6, proto=frames.TCP,
                  ext=[Ext(FRAGMENT, offset=3, more=True)], l4_raw=JUNK)
    expect(dataplane, t, frame, "PASS", "NOT_SIP", "TCP")


def test_ipv6_chain_of_four_ext_headers_reaches_udp(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    chain = [Ext(HBH, units=1), Ext(ROUTING), Ext(FRAGMENT),
             Ext(DSTOPTS, units=3)]
    expect(dataplane, t, build(PLAIN_V6, request(b"OPTIONS"), ext=chain),
           "DROP", "OPTIONS_DROPPED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, JUNK, ext=chain),
           "DROP", "MALFORMED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, request(), ext=chain),
           "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, JUNK, ext=chain, dport=53),
           "PASS", "NOT_SIP", "UDP")


def test_ipv6_chain_of_five_is_unreachable_and_other(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    chain = [Ext(HBH), Ext(DSTOPTS), Ext(ROUTING), Ext(DSTOPTS),
             Ext(DSTOPTS)]
    expect(dataplane, t, build(PLAIN_V6, request(b"OPTIONS"), ext=chain),
           "PASS", "NOT_SIP", "OTHER")
    expect(dataplane, t, build(BLOCKED_V6, request(), ext=chain),
           "DROP", "BLOCKED", "OTHER")
    expect(dataplane, t, build(TRUSTED_V6, request(), ext=chain),
           "PASS", "NOT_SIP", "OTHER")


def test_ipv6_truncated_ext_header_is_other(dataplane: Dataplane) -> None:
    """The packet (and the frame) ends inside an extension header."""
    t = load(dataplane, usual_lists())
    hbh_of_16_in_8 = bytes((frames.UDP, 1)) + bytes(6)
    frag_of_8_in_4 = bytes((frames.UDP, 0, 0, 0))
    for body, first in ((hbh_of_16_in_8, HBH), (frag_of_8_in_4, FRAGMENT)):
        expect(dataplane, t, ipv6_raw(PLAIN_V6, first, body),
               "PASS", "NOT_SIP", "OTHER")
        expect(dataplane, t, ipv6_raw(BLOCKED_V6, first, body),
               "DROP", "BLOCKED", "OTHER")


def test_ipv6_udp_header_missing_after_ext_chain_is_unreachable(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    frame = build(BLOCKED_V6, ext=[Ext(HBH)], l4_raw=b"")
    expect(dataplane, t, frame, "DROP", "BLOCKED", "UDP")
    frame = build(PLAIN_V6, ext=[Ext(HBH)], l4_raw=b"")
    expect(dataplane, t, frame, "PASS", "NOT_SIP", "UDP")


# [step 8] TCP.


def test_tcp_to_sip_port_passes(dataplane: Dataplane) -> None:
    """Regression: TCP to 5060 was dropped as malformed. TCP payload is
    never inspected, and TCP is never redirected."""
    t = load(dataplane, usual_lists())
    for src in (PLAIN_V4, PLAIN_V6):
        for payload in (b"", request(), request(b"OPTIONS"), JUNK):
            frame = build(src, payload, proto=frames.TCP)
            expect(dataplane, t, frame, "PASS", "PASSED", "TCP")
        expect(dataplane, t, build(src, JUNK, proto=frames.TCP),
               "PASS", "PASSED", "TCP", rx_queue=XSK_QUEUE)


# [step 9] The UDP length.


def test_udp_length_low_byte_under_8_does_not_let_blocked_source_through(
        dataplane: Dataplane) -> None:
    """Regression: the UDP length is 16 bits; 0x0105 is not under 8."""
    t = load(dataplane, usual_lists())
    payload = request_of_size(0x0104 - 8)
    expect(dataplane, t, build(BLOCKED_V4, payload, l4_len=0x0105),
           "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(BLOCKED_V4, payload, l4_len=0x0104),
           "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, payload, l4_len=0x0104),
           "PASS", "PASSED", "UDP")
    options = request_of_size(0x0104 - 8, b"OPTIONS")
    expect(dataplane, t, build(PLAIN_V4, options, l4_len=0x0104),
           "DROP", "OPTIONS_DROPPED", "UDP")
    # One byte more than the packet holds.
    expect(dataplane, t, build(PLAIN_V4, payload, l4_len=0x0105),
           "DROP", "MALFORMED", "UDP")


def test_udp_length_below_8_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for length in (0, 1, 7):
        expect(dataplane, t, build(PLAIN_V4, request(), l4_len=length),
               "DROP", "MALFORMED", "UDP")
        expect(dataplane, t, build(PLAIN_V6, b"", l4_len=length),
               "DROP", "MALFORMED", "UDP")
    # Exactly 8: an empty payload, a keepalive.
    expect(dataplane, t, build(PLAIN_V4, b"", l4_len=8),
           "PASS", "PASSED", "UDP")


def test_udp_length_beyond_ip_end_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    payload = request()
    exact = 8 + len(payload)
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, payload, l4_len=exact + 1),
               "DROP", "MALFORMED", "UDP")
        expect(dataplane, t, build(src, payload, l4_len=0xFFFF),
               "DROP", "MALFORMED", "UDP")
        # The missing byte is in the padding: still beyond the IP end.
        expect(dataplane, t, build(src, payload, l4_len=exact + 1,
                                   pad=b"\r\n"),
               "DROP", "MALFORMED", "UDP")


def test_payload_is_exactly_udp_length_minus_8(dataplane: Dataplane) -> None:
    """Bytes of the IP packet after the UDP length are not payload."""
    t = load(dataplane, usual_lists())
    frame = build(PLAIN_V4, b"\r\n" + JUNK, l4_len=8 + 2)
    expect(dataplane, t, frame, "PASS", "PASSED", "UDP")
    line = b"INVITE sip:bob@example.com SIP/2.0"
    frame = build(PLAIN_V6, line + b"\r\n", l4_len=8 + len(line))
    expect(dataplane, t, frame, "DROP", "MALFORMED", "UDP")


def test_ethernet_padding_is_not_payload(dataplane: Dataplane) -> None:
    """Regression: the payload ends at udp.len and the IP end, never at the
    frame end."""
    t = load(dataplane, usual_lists())
    for src in (PLAIN_V4, PLAIN_V6):
        for keepalive in (b"", b"\r\n", b"\r\n\r\n"):
            for pad in (bytes(32), b"x" * 6, b"\r\n\r\n\r\n"):
                expect(dataplane, t, build(src, keepalive, pad=pad),
                       "PASS", "PASSED", "UDP")
        line = b"INVITE sip:bob@example.com SIP/2.0"
        expect(dataplane, t, build(src, line, pad=b"\r\n"),
               "DROP", "MALFORMED", "UDP")
        expect(dataplane, t, build(src, stun()[:19], pad=b"\0"),
               "DROP", "MALFORMED", "UDP")


def test_first_fragment_uses_bytes_to_ip_end(dataplane: Dataplane) -> None:
    """A first fragment needs only udp.len >= 8; P runs to the IP end."""
    t = load(dataplane, usual_lists())
    part = request()[:60]
    whole = 8 + 1400
    expect(dataplane, t, build(PLAIN_V4, part, more_frags=True,
                               l4_len=whole),
           "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS")[:60],
                               more_frags=True, l4_len=whole),
           "DROP", "OPTIONS_DROPPED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, part, more_frags=True, l4_len=7),
           "DROP", "MALFORMED", "UDP")
    # P stops at the IP end, not at the frame end.
    expect(dataplane, t, build(PLAIN_V4, b"\r\n", more_frags=True,
                               l4_len=whole, pad=JUNK),
           "PASS", "PASSED", "UDP")
    # Not a fragment (DF alone, or MF clear): the length must fit.
    expect(dataplane, t, build(PLAIN_V4, part, dont_frag=True,
                               l4_len=whole),
           "DROP", "MALFORMED", "UDP")
    # IPv6: a fragment header with offset 0 and M set; an atomic fragment
    # (M clear) is not a first fragment.
    expect(dataplane, t, build(PLAIN_V6, part, l4_len=whole,
                               ext=[Ext(FRAGMENT, more=True)]),
           "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, part, l4_len=whole,
                               ext=[Ext(FRAGMENT)]),
           "DROP", "MALFORMED", "UDP")


# [step 9] Keepalive and STUN.


def test_crlf_keepalive_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b"", b"\r", b"\n", b"\r\n", b"\n\n\n", b"\r\n\r\n",
                    b"\n\r\n\r"):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")


def test_five_byte_crlf_is_not_keepalive_and_is_malformed(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b"\r\n\r\n\r", b"\n" * 5, b"\r\n\0", b"\r\n ", b"x"):
        expect(dataplane, t, build(PLAIN_V4, payload),
               "DROP", "MALFORMED", "UDP")


def test_stun_binding_request_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    software = b"\x80\x22\x00\x04test"
    for payload in (stun(), stun(0x0101), stun(attrs=software),
                    stun(0x0001) + JUNK):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")


def test_stun_with_bad_cookie_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (stun(cookie=b"\x21\x12\xa4\x43"),
                    stun(cookie=b"\x42\xa4\x12\x21")):
        expect(dataplane, t, build(PLAIN_V4, payload),
               "DROP", "MALFORMED", "UDP")


def test_stun_with_high_bits_or_under_20_bytes_is_malformed(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (stun(0x4001), stun(0x8001), stun(0xC001), stun()[:19]):
        expect(dataplane, t, build(PLAIN_V4, payload),
               "DROP", "MALFORMED", "UDP")


# [step 9] Responses.


def test_response_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b"SIP/2.0 200 OK\r\n" + HEADERS,
                    b"SIP/2.0 100",         # nothing after the code
                    b"SIP/2.0 999 x",
                    b"\r\n\r\nSIP/2.0 486 Busy Here\r\n" + HEADERS):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")


def test_bad_response_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b"SIP/2.0 20", b"SIP/2.0 20x", b"SIP/2.0 20 OK\r\n",
                    b"SIP/2.0 2a0 OK\r\n", b"SIP/2.1 200 OK",
                    b"sip/2.0 200 OK\r\n", b"SIP/2.0  200 OK\r\n",
                    b"SIP/2.0200 OK\r\n"):
        expect(dataplane, t, build(PLAIN_V4, payload),
               "DROP", "MALFORMED", "UDP")


# [step 9] Requests and stealth.


def test_leading_crlf_does_not_hide_options(dataplane: Dataplane) -> None:
    """Regression: "\\r\\nOPTIONS ..." must be OPTIONS_DROPPED."""
    t = load(dataplane, usual_lists())
    for prefix in (b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n\n\n"):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, prefix + request(b"OPTIONS")),
                   "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(PLAIN_V4, prefix + request()),
               "PASS", "PASSED", "UDP")


def test_five_leading_crlf_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for method in (b"INVITE", b"OPTIONS"):
        expect(dataplane, t, build(PLAIN_V4, b"\r\n\r\n\r" + request(method)),
               "DROP", "MALFORMED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, b"\n" * 5 + b"SIP/2.0 200 OK\r\n"),
           "DROP", "MALFORMED", "UDP")


def test_options_from_untrusted_is_dropped(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for src in (PLAIN_V4, PLAIN_V6):
        expect(dataplane, t, build(src, request(b"OPTIONS")),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(src, request(b"OPTIONS")),
               "DROP", "OPTIONS_DROPPED", "UDP", rx_queue=XSK_QUEUE)
        expect(dataplane, t, build(src, b"OPTIONS sip:x SIP/2.0\r\n"),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(src, request()), "PASS", "PASSED", "UDP")


def test_stealth_off_passes_options(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists(_abi.FP_STEALTH_OFF))
    for src in (PLAIN_V4, PLAIN_V6):
        frame = build(src, request(b"OPTIONS"))
        expect(dataplane, t, frame, "PASS", "PASSED", "UDP")
        expect(dataplane, t, frame, "REDIRECT", "REDIRECTED", "UDP",
               rx_queue=XSK_QUEUE)
    # Stealth off does not open the blocklist or let junk through.
    expect(dataplane, t, build(BLOCKED_V4, request(b"OPTIONS")),
           "DROP", "BLOCKED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, JUNK), "DROP", "MALFORMED", "UDP")


def test_lowercase_options_is_not_stealth_dropped(
        dataplane: Dataplane) -> None:
    """Only the exact method OPTIONS is dropped; other tokens are requests."""
    t = load(dataplane, usual_lists())
    for method in (b"options", b"Options", b"OPTIONs", b"OPTION",
                   b"OPTIONSX", b"XOPTIONS"):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "PASS", "PASSED", "UDP")


def test_request_line_longer_than_64_bytes_passes(
        dataplane: Dataplane) -> None:
    """Regression: long request lines were malformed."""
    t = load(dataplane, usual_lists())
    for length in (64, 65, 100, 300, 511):
        expect(dataplane, t, build(PLAIN_V4, request_line_of(length)),
               "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(PLAIN_V6,
                                   request_line_of(length, b"OPTIONS")),
               "DROP", "OPTIONS_DROPPED", "UDP")


def test_request_line_crlf_at_512_boundary(dataplane: Dataplane) -> None:
    """The CR LF must end within the first 512 bytes of S, which starts
    after the leading CR/LF bytes."""
    t = load(dataplane, usual_lists())
    for prefix in (b"", b"\r\n", b"\r\n\r\n"):
        at_512 = prefix + request_line_of(512)
        at_513 = prefix + request_line_of(513)
        expect(dataplane, t, build(PLAIN_V4, at_512), "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(PLAIN_V4, at_513),
               "DROP", "MALFORMED", "UDP")
        expect(dataplane, t, build(PLAIN_V4,
                                   prefix + request_line_of(512, b"OPTIONS")),
               "DROP", "OPTIONS_DROPPED", "UDP")
        expect(dataplane, t, build(PLAIN_V4,
                                   prefix + request_line_of(513, b"OPTIONS")),
               "DROP", "MALFORMED", "UDP")
    # A payload that ends right after the CR LF at 512.
    expect(dataplane, t, build(PLAIN_V6, request_line_of(512)[:512]),
           "PASS", "PASSED", "UDP")


def test_method_of_32_chars_passes_33_is_malformed(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    every_token_char = b"Az09-.!%*_+`'~"
    for method in (b"A", b"X" * 32, every_token_char,
                   every_token_char * 2 + b"ABCD"):
        assert len(method) <= 32
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "PASS", "PASSED", "UDP")
    for method in (b"X" * 33, b"X" * 40):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "DROP", "MALFORMED", "UDP")


def test_method_with_illegal_char_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for method in (b"INV@ITE", b"INVITE:", b"IN/VITE", b"INVIT\xc3E",
                   b"<INVITE>", b"INV\0ITE", b"OPTIONS\t", b""):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "DROP", "MALFORMED", "UDP")
    # A tab is not the space after the method.
    expect(dataplane, t, build(PLAIN_V4, b"OPTIONS\tsip:x SIP/2.0\r\n"),
           "DROP", "MALFORMED", "UDP")


def test_missing_sip_version_is_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for tail in (b"\r\n", b" SIP/2.1\r\n", b" sip/2.0\r\n", b"SIP/2.0\r\n",
                 b" SIP/2.0 \r\n", b" SIP/2.0x\r\n", b" SIP/2.0\r\r\n",
                 b" SIP/2.0", b" SIP/2.",
                 # A lone LF does not end the line, whatever precedes it.
                 b" SIP/2.0\n", b" SIP/2.0\n\n", b" SIP/2.0x\n",
                 b" SIP/2.0\r\r\n"):
        for method in (b"INVITE", b"OPTIONS"):
            expect(dataplane, t, build(PLAIN_V4, request(method, tail=tail)),
                   "DROP", "MALFORMED", "UDP")


def test_only_the_first_line_is_the_request_line(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    payload = b"INVITE sip:bob@example.com\r\nX: SIP/2.0\r\n\r\n"
    expect(dataplane, t, build(PLAIN_V4, payload), "DROP", "MALFORMED", "UDP")


def test_junk_is_dropped_as_malformed(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    http = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    rtp = b"\x80\x00\x00\x01\x00\x00\x00\xa0\xde\xad\xbe\xef" + bytes(160)
    for payload in (JUNK, http, rtp, b"hello world", bytes(100)):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload),
                   "DROP", "MALFORMED", "UDP")


# Flags.


def test_malformed_pass_flag_passes_but_counts_malformed(
        dataplane: Dataplane) -> None:
    """Passed to the stack, counted MALFORMED, never redirected; other
    drops are unchanged."""
    t = load(dataplane, usual_lists(_abi.FP_MALFORMED_PASS))
    for frame in (build(PLAIN_V4, JUNK), build(PLAIN_V6, JUNK),
                  build(PLAIN_V4, request(), l4_len=7),
                  build(PLAIN_V4, request(), l4_len=0xFFFF)):
        expect(dataplane, t, frame, "PASS", "MALFORMED", "UDP")
        expect(dataplane, t, frame, "PASS", "MALFORMED", "UDP",
               rx_queue=XSK_QUEUE)
    expect(dataplane, t, build(PLAIN_V4, request(b"OPTIONS")),
           "DROP", "OPTIONS_DROPPED", "UDP")
    expect(dataplane, t, build(BLOCKED_V4, JUNK), "DROP", "BLOCKED", "UDP")


def test_shadow_mode_passes_every_drop_with_same_counters(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    drops = (
        (build(BLOCKED_V4, request()), "BLOCKED"),
        (build(BLOCKED_V6, request()), "BLOCKED"),
        (build(PLAIN_V4, request(b"OPTIONS")), "OPTIONS_DROPPED"),
        (build(PLAIN_V4, JUNK), "MALFORMED"),
        (build(PLAIN_V6, request(), l4_len=3), "MALFORMED"),
    )
    for frame, reason in drops:
        expect(dataplane, t, frame, "DROP", reason, "UDP")
    set_flags(dataplane, t, _abi.FP_SHADOW)
    for frame, reason in drops:
        expect(dataplane, t, frame, "PASS", reason, "UDP")
        expect(dataplane, t, frame, "PASS", reason, "UDP",
               rx_queue=XSK_QUEUE)
    # Blocked on any port, in shadow mode too.
    set_flags(dataplane, t, _abi.FP_SHADOW | _abi.FP_BLOCK_ALL_PORTS)
    expect(dataplane, t, build(BLOCKED_V4, b"ping", proto=frames.ICMP),
           "PASS", "BLOCKED", "ICMP")
    # What passes is unchanged, redirect included.
    frame = build(PLAIN_V4, request())
    expect(dataplane, t, frame, "PASS", "PASSED", "UDP")
    expect(dataplane, t, frame, "REDIRECT", "REDIRECTED", "UDP",
           rx_queue=XSK_QUEUE)


# [step 10] AF_XDP redirect.


def test_redirect_to_af_xdp_socket_on_its_queue(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (request(), b"\r\n", stun(), b"SIP/2.0 200 OK\r\n",
                    b"\r\n" + request()):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload),
                   "REDIRECT", "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)


def test_no_socket_on_queue_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for queue in (0, 2, 3):
        expect(dataplane, t, build(PLAIN_V4, request()),
               "PASS", "PASSED", "UDP", rx_queue=queue)


def test_trusted_udp_sip_is_redirected_too(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for src in (TRUSTED_V4, TRUSTED_V6, TRUSTED_IN_BLOCKED_V4):
        expect(dataplane, t, build(src, JUNK),
               "REDIRECT", "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)


def test_only_passing_sip_udp_is_redirected(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for frame, action, reason, proto in (
            (build(PLAIN_V4, JUNK, dport=53), "PASS", "NOT_SIP", "UDP"),
            (build(PLAIN_V4, b"ping", proto=frames.ICMP), "PASS", "NOT_SIP",
             "ICMP"),
            (build(PLAIN_V4, request(), frag_offset=185), "PASS", "NOT_SIP",
             "UDP"),
            (build(BLOCKED_V4, request()), "DROP", "BLOCKED", "UDP"),
            (build(PLAIN_V4, JUNK), "DROP", "MALFORMED", "UDP"),
            (frames.ethernet(frames.ETH_P_ARP, bytes(28)), "PASS", "NON_IP",
             None),
    ):
        expect(dataplane, t, frame, action, reason, proto,
               rx_queue=XSK_QUEUE)


# Counters.


def test_bytes_count_whole_frame_including_padding(
        dataplane: Dataplane) -> None:
    """expect() checks bytes == len(frame); here the frames carry padding
    (and tags) that are not part of the IP packet."""
    t = load(dataplane, usual_lists())
    pad = bytes(range(200))
    for frame, action, reason, proto in (
            (build(PLAIN_V4, b"\r\n", pad=pad), "PASS", "PASSED", "UDP"),
            (build(PLAIN_V6, request(), pad=pad, vlans=[0x88A8, 0x8100]),
             "PASS", "PASSED", "UDP"),
            (build(BLOCKED_V4, request(), pad=pad), "DROP", "BLOCKED",
             "UDP"),
            (build(PLAIN_V4, JUNK, pad=pad), "DROP", "MALFORMED", "UDP"),
            (build(PLAIN_V4, JUNK, dport=53, pad=pad), "PASS", "NOT_SIP",
             "UDP"),
            (frames.ethernet(frames.ETH_P_ARP, bytes(28)) + pad, "PASS",
             "NON_IP", None),
            (build(PLAIN_V4, request_of_size(1400)), "PASS", "PASSED",
             "UDP"),
    ):
        expect(dataplane, t, frame, action, reason, proto)
    expect(dataplane, t, build(PLAIN_V4, request(), pad=pad),
           "REDIRECT", "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)


def test_proto_classes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for frame, proto in (
            (build(PLAIN_V4, JUNK, proto=frames.TCP, dport=80), "TCP"),
            (build(PLAIN_V6, JUNK, proto=frames.TCP, dport=80), "TCP"),
            (build(PLAIN_V4, JUNK, dport=53), "UDP"),
            (build(PLAIN_V6, JUNK, dport=53), "UDP"),
            (build(PLAIN_V4, b"ping", proto=frames.ICMP), "ICMP"),
            (build(PLAIN_V6, b"ping", proto=frames.ICMPV6), "ICMP"),
            (build(PLAIN_V4, bytes(8), proto=frames.GRE), "OTHER"),
            (build(PLAIN_V6, bytes(8), proto=frames.GRE), "OTHER"),
            # Each family's own ICMP only.
            (build(PLAIN_V4, bytes(8), proto=frames.ICMPV6), "OTHER"),
            (build(PLAIN_V6, bytes(8), proto=frames.ICMP), "OTHER"),
            (build(PLAIN_V6, b"", proto=59), "OTHER"),   # no next header
            (build(PLAIN_V6, b"ping", proto=frames.ICMPV6,
                   ext=[Ext(HBH), Ext(DSTOPTS)]), "ICMP"),
    ):
        expect(dataplane, t, frame, "PASS", "NOT_SIP", proto)


def test_each_frame_adds_one_packet_to_stats_and_ip_to_proto_stats(
        dataplane: Dataplane) -> None:
    load(dataplane, usual_lists())
    ip_frames = [build(PLAIN_V4, request()), build(BLOCKED_V6, request()),
                 build(PLAIN_V4, JUNK), build(PLAIN_V4, request(b"OPTIONS")),
                 build(PLAIN_V4, request(), frag_offset=185)]
    non_ip = [frames.ethernet(frames.ETH_P_ARP, bytes(28))]
    stats = sum(p for p, _bytes in dataplane.counters("stats"))
    protos = sum(p for p, _bytes in dataplane.counters("proto_stats"))
    for frame in ip_frames + non_ip:
        dataplane.test_run(frame)
        dataplane.test_run(frame, XSK_QUEUE)
    grown = sum(p for p, _bytes in dataplane.counters("stats")) - stats
    assert grown == 2 * len(ip_frames + non_ip)
    grown = sum(p for p, _bytes in dataplane.counters("proto_stats")) - protos
    assert grown == 2 * len(ip_frames)


def test_request_line_end_is_found_at_every_position_in_a_word(
        dataplane: Dataplane) -> None:
    """The line is scanned eight bytes at a time: the CR LF, a lone LF or
    CR before it, and an LF followed by a vertical tab (a byte the word
    scan could confuse with a second LF) at every offset of a word."""
    t = load(dataplane, tables())
    src = ipaddress.IPv4Address("192.0.2.77")
    for length in range(21, 46):
        expect(dataplane, t, build(src, request_line_of(length)),
               "PASS", "PASSED", "UDP")
        line = request_line_of(length)
        for cut in range(1, length - 1):
            for noise in (b"\n", b"\r", b"\r\n", b"\n\x0b", b"\r\r\n"):
                broken = line[:cut] + noise + line[cut:]
                verdict = model.decide(build(src, broken), t, boot_ns())
                expect(dataplane, t, build(src, broken),
                       model.ACTION_NAMES[verdict.action],
                       _abi.REASONS[verdict.reason], "UDP")
