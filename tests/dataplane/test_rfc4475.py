"""The valid torture messages of RFC 4475 (section 3.1.1) that fit in a
frame, and a phone's keepalive of spaces: SIP for the program and the
model ([step 10]), whatever their oddities.

The messages are in fixtures/rfc4475/, as the RFC gives them. A file
without a CR is stored with LF line ends, the repository's convention for
text, and read back with the CR LF of the RFC; intmeth and mpart01 keep
their bytes as they are (a lone LF in mpart01's signature). Where a byte
could not be checked against the RFC's text:
- mpart01: the 342 bytes of the S/MIME signature come from a base64 copy
  of the RFC's hex dump; their length agrees with Content-Length 553.
- unreason: the reason phrase is the UTF-8 of the Russian text the RFC
  spells out in hex.
- dblreq: one empty line separates the REGISTER from the trailing
  INVITE.
- longreq (3.1.1.7) is left out: with its repeats expanded it is several
  KB, more than a 1500-byte frame holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.module_utils import _abi
from tests.dataplane import model
from tests.dataplane.checks import (
    PLAIN_V4,
    PLAIN_V6,
    TRUSTED_V4,
    build,
    expect,
    load,
    usual_lists,
)
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import Dataplane

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rfc4475"
MESSAGES = ("wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp",
            "dblreq", "semiuri", "transports", "mpart01", "unreason",
            "noreason")
MTU = 1500
# The User-Agent signatures of common scanners: none is in a valid
# torture message.
SCANNERS = (b"sipvicious", b"friendly-scanner", b"sipcli", b"sip-scan",
            b"iwar", b"sipsak", b"vaxasip", b"sundayddr")
MINUTE = 60 * 10**9


def message(name: str) -> bytes:
    data = (FIXTURES / (name + ".sip")).read_bytes()
    return data if b"\r" in data else data.replace(b"\n", b"\r\n")


def test_the_fixtures_are_the_listed_messages() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.sip")) == \
        sorted(MESSAGES)
    for name in MESSAGES:
        data = message(name)
        head, blank, _body = data.partition(b"\r\n\r\n")
        assert blank and b"\n" not in head.replace(b"\r\n", b""), name
        assert 20 + 8 + len(data) <= MTU, name


@pytest.mark.parametrize("name", MESSAGES)
def test_valid_torture_message_is_sip(dataplane: Dataplane,
                                      name: str) -> None:
    """PASSED (or REDIRECTED on the socket's queue) from any source with
    stealth off; with stealth on, the OPTIONS among them are stealth's;
    with scanner signatures, bans and budgets of 1 a minute, each passes
    once and is then limited as the request it is (responses never)."""
    data = message(name)
    is_request = not data.startswith(b"SIP/2.0 ")
    t = load(dataplane, usual_lists(_abi.FP_STEALTH_OFF))
    for src in (PLAIN_V4, PLAIN_V6, TRUSTED_V4):
        expect(dataplane, t, build(src, data), "PASS", "PASSED", "UDP")
    expect(dataplane, t, build(PLAIN_V6, data), "REDIRECT", "REDIRECTED",
           "UDP", rx_queue=XSK_QUEUE)
    if data.startswith(b"OPTIONS "):
        t = load(dataplane, usual_lists())
        expect(dataplane, t, build(PLAIN_V4, data), "DROP",
               "OPTIONS_DROPPED", "UDP")

    t = usual_lists(_abi.FP_STEALTH_OFF)
    t.signatures = [model.Signature(s) for s in SCANNERS]
    t.limits = model.Limits(
        untrusted=[model.Budget(MINUTE, 1)] * _abi.CLASS_SLOTS,
        scanner_ban_ns=MINUTE, ban_ns=MINUTE, flags=_abi.FP_LIMIT_BANS,
        ban_after_ns=MINUTE)
    load(dataplane, t)
    expect(dataplane, t, build(PLAIN_V4, data), "PASS", "PASSED", "UDP")
    if is_request:
        expect(dataplane, t, build(PLAIN_V4, data), "DROP", "RATE_LIMITED",
               "UDP")
    else:
        expect(dataplane, t, build(PLAIN_V4, data), "PASS", "PASSED", "UDP")


def test_phone_keepalive_of_spaces_is_sip(dataplane: Dataplane) -> None:
    """Phones keep NAT bindings open with a few spaces, CR LF or NULs."""
    t = load(dataplane, usual_lists())
    for payload in (b"    ", b" ", b"\r\n\r\n", b"\0\0\0\0", b" \r\n"):
        for src in (PLAIN_V4, PLAIN_V6):
            expect(dataplane, t, build(src, payload), "PASS", "PASSED",
                   "UDP")
            expect(dataplane, t, build(src, payload), "REDIRECT",
                   "REDIRECTED", "UDP", rx_queue=XSK_QUEUE)
