"""The frames of bench/dataplane.py, their expected verdicts, the
blocklist's addresses and the limits of the program with its new
features on.

Every address of a sent frame is in the benchmark range 198.18.0.0/15.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from plugins.module_utils import _abi, _limits
from tests.dataplane.frames import FrameSpec, build_frame, sip_request

REPO = Path(__file__).resolve().parents[1]

SEED = 5060
SIP_PORT = 5060

# The blocklist is drawn from the same range as the sources (all of it
# but the sources of the frames and SERVER), so the untrusted sources sit
# among listed addresses and their lookups miss as deep in the trie as the
# blocklisted one hits.
BENCH_NET = ipaddress.IPv4Network("198.18.0.0/15")
BLOCKED_SRC = ipaddress.IPv4Address("198.18.42.42")
CLEAN_SRC = ipaddress.IPv4Address("198.19.0.10")      # within its budgets
LIMITED_SRC = ipaddress.IPv4Address("198.19.0.20")    # over its budget
BANNED_SRC = ipaddress.IPv4Address("198.19.0.30")     # banned
SCANNER_SRC = ipaddress.IPv4Address("198.19.0.40")    # sends a signature
SERVER = ipaddress.IPv4Address("198.19.255.254")
UNLISTED = (CLEAN_SRC, LIMITED_SRC, BANNED_SRC, SCANNER_SRC, SERVER)

PHONE_UA = b"Yealink SIP-T46S 66.86.0.15"

# -- "new, limits + fingerprints": the fastpath role's defaults ----------

SECOND = 1_000_000_000
ROLE_DEFAULTS = REPO / "roles" / "fastpath" / "defaults" / "main.yml"
# xdp_attach's `limits` as the role passes them (__fastpath_limits in
# roles/fastpath/vars/main.yml): option key -> role variable.
ROLE_LIMITS = {
    "untrusted": "fastpath_rate_limits",
    "trusted": "fastpath_trusted_rate_limits",
    "bans": "fastpath_bans",
    "ban_after": "fastpath_ban_after",
    "ban_time": "fastpath_ban_time",
    "scanner_ban_time": "fastpath_scanner_ban_time",
    "prefix_v4": "fastpath_source_prefix_v4",
    "prefix_v6": "fastpath_source_prefix_v6",
}
# A timed round is one source's 10^6 requests back to back: for the
# frames whose source must stay within its budget (to pass, or to reach
# the fingerprint or stealth step), every burst is raised to this.
ROOMY_BURST = 1_000_000_000
# The bounds of the User-Agent search (docs/dataplane.md, "Scanner
# fingerprints" among the decision steps).
UA_LINE_BOUND = 1024
UA_VALUE_BOUND = 128
# Fields of _abi.LIMITS: (interval, burst, reserved) per budget slot,
# then ban_after_ns, ban_ns, scanner_ban_ns, flags and the prefixes.
_BUDGET_FIELDS = 3 * 2 * _abi.CLASS_SLOTS
_SCANNER_BAN_FIELD = _BUDGET_FIELDS + 2


@dataclass(frozen=True)
class Features:
    """The role's defaults as the program gets them: the `limits` value
    and the `scanner_sigs` slots, packed by the collection's own code
    (_limits), and the option they came from, for the report."""

    option: dict
    signatures: tuple[str, ...]
    limits: bytes
    slots: tuple[bytes, ...]

    def roomy(self, scanner_ban: bool = True) -> bytes:
        """limits with every burst ROOMY_BURST; without scanner_ban, no
        scanner ban either."""
        fields = list(_abi.LIMITS.unpack(self.limits))
        for burst in range(1, _BUDGET_FIELDS, 3):
            if fields[burst - 1]:           # a budget: its interval is set
                fields[burst] = ROOMY_BURST
        if not scanner_ban:
            fields[_SCANNER_BAN_FIELD] = 0
        return _abi.LIMITS.pack(*fields)

    def last_signature(self) -> bytes:
        return self.slots_text()[-1]

    def slots_text(self) -> list[bytes]:
        out = []
        for slot in self.slots:
            length, _reserved, text = _abi.SIGNATURE.unpack(slot)
            if not length:
                break
            out.append(text[:length])
        return out


def role_features() -> Features:
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    option = {key: defaults[var] for key, var in ROLE_LIMITS.items()}
    signatures = tuple(defaults["fastpath_scanner_signatures"])
    return Features(option, signatures, _limits.limits_value(option),
                    tuple(_limits.signature_slots(list(signatures))))


def source_key(addr: ipaddress.IPv4Address) -> bytes:
    """struct fp_source of an IPv4 address at the default /32."""
    return _abi.SOURCE.pack(4, 32, 0, addr.packed)


# -- frames ---------------------------------------------------------------

Verdict = tuple[int, int]       # (XDP action, reason: stats or stats_ext)
PASSED: Verdict = (_abi.XDP_PASS, _abi.FP_PASSED)


@dataclass(frozen=True)
class Case:
    """One frame and the verdicts expected from each program."""

    key: str
    title: str
    frame: bytes
    release: Verdict        # 0.1.0, and the new program with features off
    limited: Verdict        # the new program with limits and fingerprints
    xdp_filter: int | None  # XDP action; None: not run through xdp-filter

    @property
    def today(self) -> bool:
        """One of the frames of the 0.1.0 benchmark."""
        return self.key in TODAY


TODAY = ("blocked", "options", "invite")


def frame(src: ipaddress.IPv4Address, payload: bytes) -> bytes:
    return build_frame(FrameSpec(src, SERVER, sport=SIP_PORT,
                                 dport=SIP_PORT, payload=payload))


def request(method: bytes) -> bytes:
    return sip_request(random.Random(SEED), method)


def phone_invite() -> bytes:
    """An INVITE as a desk phone sends it, User-Agent and SDP included."""
    sdp = (b"v=0\r\n"
           b"o=- 20005 20005 IN IP4 198.19.0.10\r\n"
           b"s=SDP data\r\n"
           b"c=IN IP4 198.19.0.10\r\n"
           b"t=0 0\r\n"
           b"m=audio 11780 RTP/AVP 0 8 18 9 101\r\n"
           b"a=rtpmap:0 PCMU/8000\r\n"
           b"a=rtpmap:8 PCMA/8000\r\n"
           b"a=rtpmap:18 G729/8000\r\n"
           b"a=fmtp:18 annexb=no\r\n"
           b"a=rtpmap:9 G722/8000\r\n"
           b"a=rtpmap:101 telephone-event/8000\r\n"
           b"a=fmtp:101 0-15\r\n"
           b"a=ptime:20\r\n"
           b"a=sendrecv\r\n")
    head = (b"INVITE sip:2001@198.19.255.254:5060 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.19.0.10:5060;branch=z9hG4bK1836582611"
            b";rport\r\n"
            b"From: \"Desk 2000\" <sip:2000@198.19.255.254:5060>"
            b";tag=2915481957\r\n"
            b"To: <sip:2001@198.19.255.254:5060>\r\n"
            b"Call-ID: 2840566283@198.19.0.10\r\n"
            b"CSeq: 2 INVITE\r\n"
            b"Contact: <sip:2000@198.19.0.10:5060>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Authorization: Digest username=\"2000\", realm=\"edge\", "
            b"nonce=\"Y2xkZXYtc2lwLTE3MDAwMDAwMDA=\", "
            b"uri=\"sip:2001@198.19.255.254:5060\", "
            b"response=\"6629fae49393a05397450978507c4ef1\", "
            b"algorithm=MD5\r\n"
            b"Allow: INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, "
            b"NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE"
            b"\r\n"
            b"Max-Forwards: 70\r\n"
            b"User-Agent: " + PHONE_UA + b"\r\n"
            b"Allow-Events: talk,hold,conference,refer,check-sync\r\n"
            b"Supported: replaces\r\n")
    return head + b"Content-Length: %d\r\n\r\n" % len(sdp) + sdp


# Bytes tried as the filler of the end-of-bound fingerprint's value.
FILLERS = b"abcdefghijklmnopqrstuvwxyz0123456789 -./();_"
FILLER_PROBE_RUNS = 2_000       # runs of each in the probe


def end_of_bound_scanner(sig: bytes, filler: bytes = b"x",
                         line_shift: int = 0, value_shift: int = 0
                         ) -> bytes:
    """An INVITE whose User-Agent line starts right after the first
    UA_LINE_BOUND bytes (its LF is the last byte that counts) and whose
    value is a space, the filler byte repeated, then the signature sig,
    its last byte the UA_VALUE_BOUND-th of the value: the search finds it
    as late as its bounds allow. The shifts move the line or the
    signature one byte past its bound, for the check that the bounds are
    where they should be."""
    head = (b"INVITE sip:100@198.19.255.254 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.19.0.40:5060;branch=z9hG4bK-3061781\r\n"
            b"From: <sip:100@198.19.0.40>;tag=6436363836\r\n"
            b"To: <sip:100@198.19.255.254>\r\n"
            b"Call-ID: 1716383916@198.19.0.40\r\n"
            b"CSeq: 1 INVITE\r\n"
            b"Max-Forwards: 70\r\n"
            b"Contact: <sip:100@198.19.0.40:5060>\r\n")
    pad_name = b"X-Pad: "
    pad = UA_LINE_BOUND + line_shift - len(head) - len(pad_name) - 2
    head += pad_name + b"x" * pad + b"\r\n"      # its LF: byte bound - 1
    value = b" " + filler * (UA_VALUE_BOUND + value_shift - 1 - len(sig)) + sig
    if (len(head), len(value)) != (UA_LINE_BOUND + line_shift,
                                   UA_VALUE_BOUND + value_shift):
        raise ValueError("end-of-bound frame built wrong")
    return (head + b"User-Agent:" + value + b"\r\n"
            b"Content-Length: 0\r\n\r\n")


def scanner_case(features: Features, filler: bytes) -> Case:
    """The end-of-bound fingerprint: the last signature in slot order."""
    sig = features.last_signature()
    return Case("scanner", "fingerprint at the end of the bound (drop)",
                frame(SCANNER_SRC, end_of_bound_scanner(sig, filler)),
                PASSED, (_abi.XDP_DROP, _abi.FP_SCANNER), None)


def cases(features: Features, filler: bytes = b"x") -> list[Case]:
    drop = _abi.XDP_DROP
    return [
        Case("blocked", "blocklisted INVITE (drop)",
             frame(BLOCKED_SRC, request(b"INVITE")),
             (drop, _abi.FP_BLOCKED), (drop, _abi.FP_BLOCKED), drop),
        Case("options", "stealth OPTIONS (drop)",
             frame(CLEAN_SRC, request(b"OPTIONS")),
             (drop, _abi.FP_OPTIONS_DROPPED),
             (drop, _abi.FP_OPTIONS_DROPPED), _abi.XDP_PASS),
        Case("invite", "valid INVITE (pass)",
             frame(CLEAN_SRC, request(b"INVITE")), PASSED, PASSED,
             _abi.XDP_PASS),
        Case("phone", "phone INVITE, User-Agent (pass)",
             frame(CLEAN_SRC, phone_invite()), PASSED, PASSED, None),
        Case("limited", "INVITE over budget (drop)",
             frame(LIMITED_SRC, request(b"INVITE")), PASSED,
             (drop, _abi.FP_RATE_LIMITED), None),
        Case("banned", "INVITE from a banned source (drop)",
             frame(BANNED_SRC, request(b"INVITE")), PASSED,
             (drop, _abi.FP_BANNED), None),
        scanner_case(features, filler),
    ]


def beyond_bound_frames(features: Features, filler: bytes) -> list[bytes]:
    """The end-of-bound scanner with its line, then its signature, one
    byte past the bound: requests that must pass."""
    sig = features.last_signature()
    return [frame(SCANNER_SRC, end_of_bound_scanner(sig, filler,
                                                    line_shift=1)),
            frame(SCANNER_SRC, end_of_bound_scanner(sig, filler,
                                                    value_shift=1))]


# -- blocklist addresses --------------------------------------------------


def blocklist(count: int) -> list[int]:
    """count distinct IPv4 addresses (as ints), BLOCKED_SRC first.

    The first ones come from BENCH_NET (198.18.0.0/15) but for the
    addresses of the sent frames, shuffled. The rest, only needed for the
    1,000,000-entry list, are synthetic keys: a seeded sample of the whole
    32-bit space outside BENCH_NET. They are only LPM-trie keys in a test
    run: no packet is ever sent to or from them, and no frame carries one.
    """
    rng = random.Random(SEED)
    blocked = int(BLOCKED_SRC)
    sent = {blocked, *(int(a) for a in UNLISTED)}
    dense = [a for a in range(int(BENCH_NET.network_address),
                              int(BENCH_NET.broadcast_address) + 1)
             if a not in sent]
    rng.shuffle(dense)
    out = [blocked, *dense[:count - 1]]
    if len(out) < count:
        out += _synthetic(rng, count - len(out))
    return out


def dense_count() -> int:
    """How many blocklist entries come from BENCH_NET at most."""
    return BENCH_NET.num_addresses - len(UNLISTED)


def _synthetic(rng: random.Random, need: int) -> list[int]:
    lo = int(BENCH_NET.network_address)
    hi = int(BENCH_NET.broadcast_address)
    sample = rng.sample(range(1 << 32), need + 4096)  # distinct
    out = [a for a in sample if not lo <= a <= hi][:need]
    if len(out) < need:
        raise ValueError("could not draw %d synthetic addresses" % need)
    return out


def packed(addrs: Sequence[int]) -> list[bytes]:
    return [a.to_bytes(4, "big") for a in addrs]
