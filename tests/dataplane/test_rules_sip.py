"""Hand-written cases for the SIP steps of docs/dataplane.md: TCP
([step 9]), the UDP payload ([step 10]), stealth ([step 13]), the AF_XDP
hand-over ([step 14]), the flags and the counters. See test_rules.py for
what each case checks.
"""

from __future__ import annotations

import ipaddress

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.checks import (
    BLOCKED_V4,
    BLOCKED_V6,
    HEADERS,
    JUNK,
    PLAIN_V4,
    PLAIN_V6,
    TRUSTED_IN_BLOCKED_V4,
    TRUSTED_V4,
    TRUSTED_V6,
    build,
    expect,
    load,
    request,
    request_line_of,
    request_of_size,
    set_flags,
    stun,
    tables,
    usual_lists,
)
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.frames import DSTOPTS, FRAGMENT, HBH, Ext
from tests.dataplane.harness import Dataplane, boot_ns

# [step 9] TCP.


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


# [step 10] The UDP length.


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


# [step 10] Keepalive and STUN.


def test_crlf_keepalive_passes(dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b"", b"\r", b"\n", b"\r\n", b"\n\n\n", b"\r\n\r\n",
                    b"\n\r\n\r"):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")


def test_keepalive_of_spaces_tabs_and_nul_is_sip(
        dataplane: Dataplane) -> None:
    """Up to 16 bytes, each CR, LF, space, tab or NUL: phones send runs of
    spaces or NULs as well as CR LF."""
    t = load(dataplane, usual_lists())
    for payload in (b" ", b"    ", b"\t", b"\0", b"\0" * 4, b" \r\n",
                    b"\r\n\r\n\r", b"\n" * 5, b"\r\n\0", b"\r\n ",
                    b" " * 16, b"\n" * 16, b"\0" * 16,
                    b"\r\n \t\0" * 3 + b"\0"):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")
        expect(dataplane, t, build(PLAIN_V4, payload), "REDIRECT",
               "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)


def test_keepalive_over_16_bytes_or_with_another_byte_is_malformed(
        dataplane: Dataplane) -> None:
    t = load(dataplane, usual_lists())
    for payload in (b" " * 17, b"\0" * 17, b"\n" * 17, b"\r\n" * 8 + b" ",
                    b"x", b" x", b"\x0b", b"\x0c", b"\r\n\x01",
                    b"\x80", b"\0" * 15 + b"\xff"):
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


# [step 10] Responses.


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


# [step 10] Requests, [step 13] stealth.


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


def test_method_of_43_characters_is_a_request(dataplane: Dataplane) -> None:
    """RFC 4475 `intmeth`: a method token of every kind of token character
    and of any length is a request (class OTHER: not dropped by
    stealth)."""
    t = load(dataplane, usual_lists())
    intmeth = b"!interesting-Method0123456789_*+`.%indeed'~"
    assert len(intmeth) == 43
    every_token_char = b"Az09-.!%*_+`'~"
    for method in (intmeth, b"A", b"X" * 32, b"X" * 33, b"X" * 40,
                   every_token_char * 3, b"X" * 100, b"OPTIONS" * 40):
        expect(dataplane, t, build(PLAIN_V4, request(method)),
               "PASS", "PASSED", "UDP")
        expect(dataplane, t, build(PLAIN_V6, request(method)),
               "REDIRECT", "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)


def test_method_space_within_512_bytes(dataplane: Dataplane) -> None:
    """The method's space lies within the first 512 bytes of S; the CR LF
    that ends the line must too, so a method of 502 characters is the
    longest one (the space doubling as the one of " SIP/2.0")."""
    t = load(dataplane, usual_lists())
    for prefix in (b"", b"\r\n\r\n"):
        for n, verdict in ((500, "PASSED"), (502, "PASSED"),
                           (503, "MALFORMED"), (511, "MALFORMED"),
                           (512, "MALFORMED"), (600, "MALFORMED")):
            action = "PASS" if verdict == "PASSED" else "DROP"
            payload = prefix + b"M" * n + b" SIP/2.0\r\n" + HEADERS
            expect(dataplane, t, build(PLAIN_V4, payload), action, verdict,
                   "UDP")
    # A method running to the end of S, or past 512 bytes with no space.
    expect(dataplane, t, build(PLAIN_V4, b"M" * 900),
           "DROP", "MALFORMED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, b"M" * 520 + b" SIP/2.0\r\n"),
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


# [step 14] AF_XDP redirect.


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
