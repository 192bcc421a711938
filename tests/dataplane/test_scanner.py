"""Hand-written cases for scanner fingerprints ([step 12] of
docs/dataplane.md), one per rule, named for the rule: the User-Agent
header found after the request line within 1024 bytes of S and before
the empty line that ends the headers, its name in
any case, signatures within the first 128 bytes of its value, the match
that starts first, the slots, the hits and the bans.
"""

from __future__ import annotations

import ipaddress

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.checks import (
    PLAIN_V4,
    PLAIN_V6,
    TRUSTED_V4,
    TRUSTED_V6,
    build,
    expect,
    load,
    usual_lists,
)
from tests.dataplane.harness import Dataplane, mono_floor_ns

SIGS = (b"sipvicious", b"friendly-scanner", b"sipcli", b"iwar")
MINUTE = 60 * 10**9
REQUEST_LINE = b"INVITE sip:bob@example.com SIP/2.0\r\n"
TAIL = b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
UA_LINE_BOUND = 1024
UA_VALUE_BOUND = 128


def fingerprinted(signatures: tuple[bytes | model.Signature, ...] = SIGS,
                  flags: int = 0, **limits: int) -> model.Tables:
    t = usual_lists(flags)
    t.signatures = [s if isinstance(s, model.Signature)
                    else model.Signature(s) for s in signatures]
    t.limits = model.Limits(**limits)
    return t


def with_ua(value: bytes, name: bytes = b"User-Agent: ",
            before: bytes = b"", line: bytes = REQUEST_LINE) -> bytes:
    """A request with a User-Agent line after other header lines."""
    return line + before + name + value + b"\r\n" + TAIL


def scanned(dp: Dataplane, t: model.Tables, payload: bytes,
            slot: int | None, src: model.IPAddress = PLAIN_V4) -> None:
    """SCANNER with slot's hit, or PASSED when slot is None."""
    if slot is None:
        expect(dp, t, build(src, payload), "PASS", "PASSED", "UDP")
    else:
        expect(dp, t, build(src, payload), "DROP", "SCANNER", "UDP",
               signature=slot)


def test_scanner_user_agent_is_dropped_and_counted_per_signature(
        dataplane: Dataplane) -> None:
    """Each signature drops the requests that carry it and counts them in
    its own slot; other User-Agents, responses and TCP pass."""
    t = load(dataplane, fingerprinted())
    for slot, sig in enumerate(SIGS):
        for src in (PLAIN_V4, PLAIN_V6, PLAIN_V4):
            scanned(dataplane, t, with_ua(sig + b"/0.3.4"), slot, src)
    scanned(dataplane, t, with_ua(b"SIPVicious 0.2.8",
                                  line=b"OPTIONS sip:x SIP/2.0\r\n"), 0)
    for phone in (b"Yealink SIP-T46S 66.86.0.15", b"Grandstream GXP2170",
                  b"Linphone/5.2.0 (belle-sip/5.2.0)", b"sip", b""):
        scanned(dataplane, t, with_ua(phone), None)
    response = b"SIP/2.0 200 OK\r\nUser-Agent: sipvicious\r\n\r\n"
    expect(dataplane, t, build(PLAIN_V4, response), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, with_ua(b"sipvicious"),
                               proto=frames.TCP), "PASS", "PASSED", "TCP")
    expect(dataplane, t, build(PLAIN_V4, with_ua(b"sipvicious"), dport=53),
           "PASS", "NOT_SIP", "UDP")
    assert t.scanner_hits[:len(SIGS) + 1] == [4, 3, 3, 3, 0]


def test_first_match_in_the_value_wins_then_the_lowest_slot(
        dataplane: Dataplane) -> None:
    """The signature that starts first in the value wins, whatever its
    slot; of signatures starting at one byte, the lowest slot."""
    t = load(dataplane, fingerprinted((b"friendly-scanner", b"sipvicious",
                                       b"scan")))
    for value, slot in ((b"sipvicious friendly-scanner", 1),
                        (b"friendly-scanner sipvicious", 0),
                        (b"x-scanner sipvicious", 2),
                        (b"sipvicious-scan", 1)):
        scanned(dataplane, t, with_ua(value), slot)
    for sigs, slot in (((b"sipv", b"sipvicious"), 0),
                       ((b"sipvicious", b"sipv"), 0),
                       ((b"cious", b"sipvicious"), 1)):
        t = load(dataplane, fingerprinted(sigs))
        scanned(dataplane, t, with_ua(b"sipvicious"), slot)


def test_scanner_bans_source(dataplane: Dataplane) -> None:
    """With bans on, a fingerprint bans the source (its /32, its /64) for
    scanner_ban_ns, replacing an earlier ban, with the slot that matched
    as its detail; its next packets are BANNED, each counted by the ban
    (the /64's neighbour's too)."""
    t = fingerprinted(scanner_ban_ns=MINUTE)
    t.limits.flags = _abi.FP_LIMIT_BANS
    old = model.source_of(PLAIN_V4, t.limits)
    t.bans[old] = model.Ban(1, _abi.FP_RATE_LIMITED)
    load(dataplane, t)
    start = mono_floor_ns()
    v6_neighbour = ipaddress.IPv6Address("2001:db8:9::77")
    for src, neighbour, theirs in ((PLAIN_V4, PLAIN_V4 + 1, "PASSED"),
                                   (PLAIN_V6, v6_neighbour, "BANNED")):
        scanned(dataplane, t, with_ua(b"friendly-scanner"), 1, src)
        for payload in (b"SIP/2.0 200 OK\r\n\r\n", with_ua(b"Yealink")):
            expect(dataplane, t, build(src, payload), "DROP", "BANNED",
                   "UDP")
            expect(dataplane, t, build(neighbour, payload),
                   "DROP" if theirs == "BANNED" else "PASS", theirs, "UDP")
    bans = dataplane.bans()
    assert set(bans) == set(t.bans) == {
        old, model.source_of(PLAIN_V6, t.limits)}
    for ban in bans.values():
        assert (ban.reason, ban.detail) == (_abi.FP_SCANNER, 1)
        assert 0 <= ban.expires_ns - (start + MINUTE) < 10**9
        assert ban.expires_ns - ban.since_ns == MINUTE
    assert bans[old].packets == t.bans[old].packets == 2
    v6 = model.source_of(PLAIN_V6, t.limits)
    assert bans[v6].packets == t.bans[v6].packets == 4


def test_scanner_ban_ttl_zero_does_not_ban(dataplane: Dataplane) -> None:
    t = fingerprinted()
    t.limits.flags = _abi.FP_LIMIT_BANS
    load(dataplane, t)
    for src in (PLAIN_V4, PLAIN_V6):
        scanned(dataplane, t, with_ua(b"sipcli/v1.8"), 2, src)
        scanned(dataplane, t, with_ua(b"Yealink"), None, src)
    assert dataplane.bans() == {} == t.bans


def test_user_agent_name_is_case_insensitive(dataplane: Dataplane) -> None:
    """The name in any case, then at most 8 spaces or tabs, then a colon;
    the signature in any case too."""
    t = load(dataplane, fingerprinted())
    for name in (b"user-agent:", b"USER-AGENT:", b"uSeR-AgEnT:",
                 b"User-Agent \t:", b"User-Agent" + b" \t" * 4 + b":",
                 b"User-Agent:\t "):
        scanned(dataplane, t, with_ua(b"sipvicious", name), 0)
    for value in (b"SIPVICIOUS", b"SipVicious", b"x FRIENDLY-scanner"):
        scanned(dataplane, t, with_ua(value), 0 if b"V" in value else 1)
    for name in (b"User-Agent" + b" " * 9 + b":", b"User_Agent: ",
                 b"UserAgent: ", b"User-Agentx: ", b"X-User-Agent: ",
                 b" User-Agent: ", b"User-Agen: ", b"User-Agent ",
                 b"User\x2dAgent\x00: ", b"User-\xc1gent: "):
        scanned(dataplane, t, with_ua(b"sipvicious", name), None)


def test_signature_past_value_bound_is_not_seen(
        dataplane: Dataplane) -> None:
    """A signature is seen when all of it lies within the first 128 bytes
    of the value (which starts right after the colon), at every offset."""
    longest = b"friendly-scanner-friendly-scann!"
    t = load(dataplane, fingerprinted((b"sipvicious", longest, b"iwar")))
    for slot, sig in enumerate((b"sipvicious", longest, b"iwar")):
        offsets = range(UA_VALUE_BOUND - len(sig) - 3,
                        UA_VALUE_BOUND - len(sig) + 3)
        if slot == 0:
            offsets = range(0, UA_VALUE_BOUND - len(sig) + 6)
        for at in offsets:
            value = b"0" * at + sig + b"0"
            fits = at + len(sig) <= UA_VALUE_BOUND
            scanned(dataplane, t, with_ua(value, b"User-Agent:"),
                    slot if fits else None)


def test_value_ends_at_cr_or_lf_or_end_of_s(dataplane: Dataplane) -> None:
    """The value stops at the next CR or LF, or where S ends: the UDP
    length, not the frame, says where."""
    t = load(dataplane, fingerprinted())
    for value in (b"foo\rsipvicious", b"foo\nsipvicious", b"sipvic\rious"):
        scanned(dataplane, t, with_ua(value), None)
    at_end = REQUEST_LINE + b"User-Agent: sipvicious"
    scanned(dataplane, t, at_end, 0)
    cut = len(at_end) - len(b"ious")
    expect(dataplane, t, build(PLAIN_V4, at_end, l4_len=8 + cut),
           "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V4, at_end[:cut], pad=b"ious\r\n"),
           "PASS", "PASSED", "UDP")


def test_user_agent_line_past_1024_is_not_seen(dataplane: Dataplane) -> None:
    """The LF before the User-Agent name must lie within the first 1024
    bytes of S (after up to four leading CR or LF), at every position
    around the bound."""
    t = load(dataplane, fingerprinted())
    fixed = len(REQUEST_LINE) + len(b"X-Pad: \r\n")
    for prefix in (b"", b"\r\n\r\n"):
        for lf in range(UA_LINE_BOUND - 9, UA_LINE_BOUND + 9):
            pad = b"X-Pad: " + b"0" * (lf + 1 - fixed) + b"\r\n"
            payload = prefix + with_ua(b"sipvicious", before=pad)
            s = model.strip_crlf(payload)
            assert s.index(b"\nUser-Agent") == lf
            scanned(dataplane, t, payload,
                    0 if lf < UA_LINE_BOUND else None)


def test_only_the_first_user_agent_header_counts(
        dataplane: Dataplane) -> None:
    """The first User-Agent line decides, signature or not; a line that is
    not a User-Agent header (no colon in time) does not count."""
    t = load(dataplane, fingerprinted())
    for before, value, slot in (
            (b"User-Agent: Yealink\r\n", b"sipvicious", None),
            (b"User-Agent: sipcli\r\n", b"Yealink", 2),
            (b"User-Agent sipvicious\r\n", b"friendly-scanner", 1),
            (b"User-Agent: \r\n", b"sipvicious", None)):
        scanned(dataplane, t, with_ua(value, before=before), slot)


def test_user_agent_inside_the_request_line_is_not_seen(
        dataplane: Dataplane) -> None:
    """Header lines start at the LF that ends the request line: a lone LF
    inside the request line does not start one."""
    t = load(dataplane, fingerprinted())
    line = b"INVITE sip:a\nUser-Agent:sipvicious SIP/2.0\r\n"
    scanned(dataplane, t, line + TAIL, None)
    scanned(dataplane, t, with_ua(b"iwar", line=line), 3)


def test_user_agent_after_the_empty_line_is_not_seen(
        dataplane: Dataplane) -> None:
    """The search ends at the empty line that ends the headers, whatever
    the byte of the word the LF falls on: a body is never read."""
    t = load(dataplane, fingerprinted())
    for pad in range(0, 9):
        head = REQUEST_LINE + b"X-Pad: " + b"0" * pad + b"\r\n"
        for blank in (b"\r\n", b"\n"):
            body = b"User-Agent: sipvicious\r\n"
            scanned(dataplane, t, head + blank + body, None)
            scanned(dataplane, t, head + body + blank, 0)


def test_trusted_scanner_passes(dataplane: Dataplane) -> None:
    """A trusted source is exempt from fingerprints: no drop, no hit, no
    ban, OPTIONS included."""
    t = fingerprinted(scanner_ban_ns=MINUTE)
    t.limits.flags = _abi.FP_LIMIT_BANS
    load(dataplane, t)
    for src in (TRUSTED_V4, TRUSTED_V6):
        for line in (REQUEST_LINE, b"OPTIONS sip:x SIP/2.0\r\n"):
            scanned(dataplane, t, with_ua(b"sipvicious", line=line), None,
                    src)
    assert dataplane.bans() == {} and t.scanner_hits == [0] * 32


def test_signature_slots_end_at_len_0_and_skip_bad_lengths(
        dataplane: Dataplane) -> None:
    """Slots are read from 0 to the first len 0; a len under 4 or over 32
    is skipped; 4 and 32 are used."""
    sig = model.Signature
    t = load(dataplane, fingerprinted((
        sig(b"abc"), sig(b"sipvicious"), sig(b"x" * 32, 33), sig(b"iwar"),
        sig(b"y" * 32), sig(b"", 0), sig(b"friendly-scanner"))))
    for value, slot in ((b"abc", None), (b"sipvicious", 1),
                        (b"x" * 33, None), (b"iwar", 3), (b"Y" * 32, 4),
                        (b"y" * 31, None), (b"friendly-scanner", None)):
        scanned(dataplane, t, with_ua(value), slot)
    t = load(dataplane, fingerprinted((sig(b"", 0), sig(b"sipvicious"))))
    scanned(dataplane, t, with_ua(b"sipvicious"), None)
