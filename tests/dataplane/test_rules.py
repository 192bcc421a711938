"""Hand-written cases for the decision steps of docs/dataplane.md up to
the blocklist ([step 1] to [step 5], [step 7], and [step 8] for what the
lists pass; bans, [step 6], are in test_limits.py), grouped under the
[step N] they check and named for what they show.

Each test loads explicit tables, builds a few explicit frames and runs them
through the real program (BPF_PROG_TEST_RUN). It checks the XDP action, the
one reason counter that moved (by exactly the frame's length in bytes) and
the one `proto_stats` counter that moved. The reference model must give the
same verdict for the same frame, so these cases pin the model too. The
helpers are in tests/dataplane/checks.py; the SIP payload steps are in
test_rules_sip.py, rate limits and bans in test_limits.py, fingerprints in
test_scanner.py.
"""

from __future__ import annotations

import ipaddress
import struct

from plugins.module_utils import _abi
from tests.dataplane import frames
from tests.dataplane.checks import (
    BLOCKED_V4,
    BLOCKED_V6,
    CLIENT_PORT,
    HOUR_NS,
    JUNK,
    PLAIN_V4,
    PLAIN_V6,
    SERVER_V4,
    SIP_PORT,
    TRUSTED_IN_BLOCKED_V4,
    TRUSTED_IN_BLOCKED_V6,
    TRUSTED_V4,
    TRUSTED_V6,
    build,
    entry,
    expect,
    ipv6_raw,
    load,
    request,
    stun,
    tables,
    usual_lists,
)
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.frames import DSTOPTS, FRAGMENT, HBH, ROUTING, Ext
from tests.dataplane.harness import Dataplane, boot_ns

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
    # [step 8] A source not in the blocklist still passes as NOT_SIP.
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
    """PASSED, and never redirected: [step 14] is for UDP only."""
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


# [step 7] Blocked sources and expiry.


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


def test_blocked_single_addresses_are_found_in_their_hash(
        dataplane: Dataplane) -> None:
    """A /32 or /128 of the blocklist lives in block_v4_hosts or
    block_v6_hosts, and drops its source only."""
    t = load(dataplane, tables(block=(entry("203.0.113.9/32"),
                                      entry("2001:db8:bad::9/128"))))
    assert dataplane.maps["block_v4_hosts"].lookup(
        ipaddress.ip_address("203.0.113.9").packed) is not None
    assert dataplane.maps["block_v4"].lookup_batch()[0] == b""
    for src in ("203.0.113.9", "2001:db8:bad::9"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "DROP", "BLOCKED", "UDP")
    for src in ("203.0.113.8", "2001:db8:bad::8"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "PASS", "PASSED", "UDP")


def test_a_single_address_in_the_trie_still_matches(
        dataplane: Dataplane) -> None:
    """Release 0.1.0 wrote /32 and /128 entries into the tries: they drop
    their sources until the list code moves them to the hashes."""
    t = load(dataplane, tables(block=(
        entry("203.0.113.9/32", in_trie=True),
        entry("2001:db8:bad::9/128", in_trie=True))))
    for src in ("203.0.113.9", "2001:db8:bad::9"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "DROP", "BLOCKED", "UDP")


def test_an_expired_single_address_is_looked_past_to_the_trie(
        dataplane: Dataplane) -> None:
    """An expired entry of the hash is absent: a live prefix of the trie
    around it, or a live copy in the trie while it moves, still matches;
    nothing else does."""
    t = load(dataplane, tables(block=(
        entry("203.0.113.0/24"),
        entry("203.0.113.9/32", expires_ns=1),
        entry("198.51.100.7/32", expires_ns=1),
        entry("198.51.100.7/32", in_trie=True),
        entry("192.0.2.5/32", expires_ns=1),
        entry("2001:db8:bad::/48"),
        entry("2001:db8:bad::9/128", expires_ns=1),
        entry("2001:db8:bae::9/128", expires_ns=1))))
    for src in ("203.0.113.9", "198.51.100.7", "2001:db8:bad::9"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "DROP", "BLOCKED", "UDP")
    for src in ("192.0.2.5", "2001:db8:bae::9"):
        expect(dataplane, t, build(ipaddress.ip_address(src), request()),
               "PASS", "PASSED", "UDP")


def test_a_live_single_address_over_an_expired_copy_in_the_trie_matches(
        dataplane: Dataplane) -> None:
    t = load(dataplane, tables(block=(
        entry("198.51.100.7/32", expires_ns=1, in_trie=True),
        entry("198.51.100.7/32"))))
    expect(dataplane, t, build(ipaddress.IPv4Address("198.51.100.7"),
                               request()), "DROP", "BLOCKED", "UDP")


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


# [step 2], [step 8] Fragments and IPv6 extension headers.


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
