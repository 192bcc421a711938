"""Tables, frames and the check shared by the hand-written data plane
tests (test_rules*.py, test_limits.py, test_scanner.py, test_rfc4475.py).

expect() runs one explicit frame through the real program
(BPF_PROG_TEST_RUN) and through the reference model, and checks that both
give the verdict the test names, with the counters the program moved.

Only documentation addresses are used: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 and 2001:db8::/32.
"""

from __future__ import annotations

import ipaddress
import struct

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import Dataplane, boot_ns, mono_floor_ns

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


def entry(network: str, expires_ns: int = 0, source: int = 0,
          in_trie: bool = False) -> model.Entry:
    return model.Entry(ipaddress.ip_network(network), expires_ns, source,
                       in_trie)


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


def _one(indexes: list[int]) -> int | tuple[int, ...] | None:
    """The one index that moved, None for none, all of them for more."""
    if len(indexes) == 1:
        return indexes[0]
    return tuple(indexes) or None


def expect(dp: Dataplane, t: model.Tables, frame: bytes, action: str,
           reason: str, proto: str | None, rx_queue: int = 0,
           signature: int | None = None,
           limited_class: int | None = None) -> None:
    """The program and the model both give action/reason/proto for frame,
    and the program counts len(frame) bytes under reason (in `stats`, or
    in `stats_ext` for BANNED and SCANNER). signature is the slot whose
    `scanner_hits` counter moves by len(frame) bytes, None for none. A
    RATE_LIMITED frame moves one `rate_limited` counter by len(frame)
    bytes, the model's class (limited_class when given), any other none.
    The model runs with the time read right before the program's run and
    updates the state in t as the program updates its maps."""
    want = (action, reason, proto, len(frame), signature)
    now, mono = boot_ns(), mono_floor_ns()
    got = dp.run(frame, rx_queue)
    program = (model.ACTION_NAMES.get(got.action, str(got.action)),
               _names(got.reasons, model.REASON_NAMES),
               _names(got.protos, _abi.PROTOS), got.bytes_counted,
               _one(got.signatures))
    assert program == want, "program on queue %d, frame %s" % (
        rx_queue, frame.hex())
    if signature is not None:
        assert got.signature_bytes == len(frame)
    limited = _one(got.classes)
    assert (limited is not None) == (reason == "RATE_LIMITED"), (
        "rate_limited moved %r for %s" % (limited, reason))
    if limited is not None:
        assert got.class_bytes == len(frame)
    if limited_class is not None:
        assert limited == limited_class, "rate_limited class"
    verdict = model.decide(frame, t, now, rx_queue, mono)
    pinned = (model.ACTION_NAMES[verdict.action],
              model.REASON_NAMES[verdict.reason],
              None if verdict.proto is None else _abi.PROTOS[verdict.proto],
              len(frame), verdict.signature)
    assert pinned == want, "model on queue %d, frame %s" % (
        rx_queue, frame.hex())
    assert verdict.limited_class == limited, "model's rate_limited class"


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
