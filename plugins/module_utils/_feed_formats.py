# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wire formats of the threat feeds: what a feed answered, parsed.

Private to this collection. Pure functions, bytes in, addresses and
cursors out; nothing here opens a connection or a file. A feed's answer
is third-party input: an entry that is not an address (or is wider than
a list takes) is counted and reported, never fatal; an answer that is not
the format at all raises Stale("garbage", ...), so that the feed's last
good set is kept.

- text: one address or CIDR per line, `#` starts a comment.
- spamhaus: the DROP/EDROP text files, `CIDR ; SBLnnn` lines, `;`
  comments.
- apiban: the JSON of GET /api/<key>/banned/<ID>, {"ipaddress": [...],
  "ID": "<next ID>"}, and its HTTP 400 {"ipaddress": ["no new bans"],
  "ID": "none"} once nothing is new.
- crowdsec: the LAPI's GET /v1/decisions/stream, {"new": [...],
  "deleted": [...]}, either list null when empty.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from . import _lists
from ._errors import FastpathError
from ._input import quote

FORMATS = ("apiban", "crowdsec", "spamhaus", "text")

# Bad entries an answer may have that a result quotes, at most.
SAMPLE_LIMIT = 10

# APIBAN's IDs are decimal timestamps; anything else in a URL path is
# refused.
_APIBAN_ID = re.compile(r"[0-9]{1,20}")
_NO_NEW_BANS = "no new bans"

# Go's time.Duration.String(): "3h59m55.756182786s", "-12.159171034s".
_GO_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_DURATION = re.compile(r"[+-]?(?:[0-9]*\.?[0-9]+(?:ns|us|\u00b5s|\u03bcs"
                          r"|ms|s|m|h))+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
             "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class Stale(Exception):
    """A pull that gave nothing usable: `problem` is down, slow, garbage
    or http, `reason` says why in a few words (no final stop)."""

    def __init__(self, problem: str, reason: str) -> None:
        super(Stale, self).__init__(reason)
        self.problem = problem
        self.reason = reason


@dataclass
class Checked:
    """The entries of one answer: valid ones as CIDR text in the feed's
    order, without repeats; bad ones counted, the first few quoted."""
    entries: list[str] = field(default_factory=list)
    invalid: int = 0
    samples: list[str] = field(default_factory=list)
    ignored: int = 0


class Checker:
    """Turns a feed's entries into CIDRs a list takes, or counts them as
    invalid: not an address, or wider than min_prefix_v4/v6 (bpf_map_entry
    would refuse the whole list for one such entry)."""

    def __init__(self, min_prefix_v4: int, min_prefix_v6: int) -> None:
        self.min_prefix = {socket.AF_INET: min_prefix_v4,
                           socket.AF_INET6: min_prefix_v6}
        self.result = Checked()
        self._seen: set[str] = set()

    def bad(self, where: str, why: str) -> None:
        self.result.invalid += 1
        if len(self.result.samples) < SAMPLE_LIMIT:
            self.result.samples.append("%s: %s" % (where, why))

    def add(self, text: str, where: str) -> str | None:
        """The entry's CIDR (host bits cleared), or None when it is bad."""
        try:
            family, key = _lists.parse_entry(text.strip(), strict=False)
        except FastpathError as e:
            self.bad(where, e.msg)
            return None
        cidr = _lists.key_text(key)
        bits = int(cidr.rsplit("/", 1)[1])
        if bits < self.min_prefix[family]:
            self.bad(where, "%s is wider than /%d" % (
                cidr, self.min_prefix[family]))
            return None
        if cidr not in self._seen:
            self._seen.add(cidr)
            self.result.entries.append(cidr)
        return cidr


def _text(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return text[1:] if text.startswith("\ufeff") else text


def _looks_like_html(body: bytes, content_type: str) -> bool:
    head = body.lstrip()[:15].lower()
    return "html" in content_type.lower() or head.startswith(
        (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def _check_lines(checker: Checker, body: bytes, content_type: str,
                 comment: str, what: str) -> Checked:
    """Entries of a line format; the part of a line from `comment` on is
    a comment. Garbage when it is an HTML page, empty, or when most of its
    lines are not addresses."""
    if _looks_like_html(body, content_type):
        raise Stale("garbage", "the answer is an HTML page, not %s" % what)
    if not body.strip():
        raise Stale("garbage", "the answer is empty, not %s" % what)
    for number, line in enumerate(_text(body).splitlines(), 1):
        entry = line.split(comment, 1)[0].strip()
        if entry:
            checker.add(entry, "line %d" % number)
    result = checker.result
    if result.invalid > len(result.entries):
        raise Stale("garbage", "%d of its %d entries are not addresses, so "
                    "it is not %s (first: %s)"
                    % (result.invalid, result.invalid + len(result.entries),
                       what, result.samples[0]))
    return result


def parse_text(body: bytes, checker: Checker,
               content_type: str = "") -> Checked:
    """A plain list: one address or CIDR per line, `#` comments."""
    return _check_lines(checker, body, content_type, "#",
                        "a list of addresses")


def parse_spamhaus(body: bytes, checker: Checker,
                   content_type: str = "") -> Checked:
    """Spamhaus DROP or EDROP: `CIDR ; SBLnnn` lines, `;` comments (the
    file's header: list name, Last-Modified, Expires)."""
    return _check_lines(checker, body, content_type, ";",
                        "a Spamhaus DROP list")


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(_text(body))
    except ValueError as e:
        if _looks_like_html(body, ""):
            raise Stale("garbage", "the answer is an HTML page, not %s"
                        % what)
        raise Stale("garbage", "the answer is not %s: its JSON is cut "
                    "short or broken (%s)" % (what, e))


@dataclass
class ApibanPage:
    """One answer of GET /api/<key>/banned/<ID>: its addresses, and the ID
    to ask for next (None: nothing more is new)."""
    addresses: list[str]
    next_id: str | None


def parse_apiban(status: int, body: bytes) -> ApibanPage:
    """An APIBAN answer. 200 with a list and a numeric ID is a page; the
    400 {"ipaddress": ["no new bans"], "ID": "none"} says nothing is new
    (some answers give the message as a string, not a list); "ID":
    "unauthorized" is a refused key (403) or the rate limit (429)."""
    data = _json(body, "an APIBAN answer")
    if not isinstance(data, dict) or "ipaddress" not in data \
            or "ID" not in data:
        raise Stale("garbage", "the answer is not an APIBAN answer (it has "
                    "no ipaddress and ID)")
    addresses, next_id = data["ipaddress"], data["ID"]
    message = addresses[0] if isinstance(addresses, list) and \
        len(addresses) == 1 else addresses
    if next_id == "none" and message == _NO_NEW_BANS:
        return ApibanPage([], None)
    if next_id == "unauthorized" or status in (401, 403, 429):
        if status == 429 or message == "rate limit exceeded":
            raise Stale("http", "APIBAN's rate limit was exceeded (HTTP %d): "
                        "pull it less often" % status)
        raise Stale("http", "APIBAN refused the API key (HTTP %d)" % status)
    if status != 200:
        raise Stale("http", "APIBAN answered HTTP %d (%s)" % (
            status, quote(str(message))))
    if not isinstance(addresses, list) or not all(
            isinstance(a, str) for a in addresses):
        raise Stale("garbage", "the answer is not an APIBAN answer "
                    "(ipaddress is not a list of strings)")
    if next_id == "none":
        return ApibanPage(addresses, None)
    if not isinstance(next_id, str) or not _APIBAN_ID.fullmatch(next_id):
        raise Stale("garbage", "the answer is not an APIBAN answer (its ID "
                    "%s is not a number)" % quote(str(next_id)))
    return ApibanPage(addresses, next_id)


def check_apiban(page: ApibanPage, checker: Checker,
                 number: int) -> list[str]:
    """The page's valid addresses as CIDRs, in its order (repeats of
    earlier pages included: they were seen again)."""
    found = [checker.add(address, "page %d, address %d" % (number, index))
             for index, address in enumerate(page.addresses, 1)]
    return [cidr for cidr in found if cidr is not None]


def go_duration(text: str) -> float:
    """Seconds of a Go time.Duration as LAPI writes it ("3h59m55.7s",
    "-12.1s", "150ms"); ValueError when it is not one."""
    if text == "0":
        return 0.0
    if not isinstance(text, str) or len(text) > 64 or \
            not _GO_DURATION.fullmatch(text):
        raise ValueError("%s is not a duration" % quote(str(text)))
    seconds = sum(float(number) * _GO_UNITS[unit]
                  for number, unit in _GO_PART.findall(text))
    return -seconds if text.startswith("-") else seconds


@dataclass
class Decision:
    """A CrowdSec ban of an address or range: `key` tells decisions apart
    (the LAPI's id), `seconds` is how long it has left."""
    key: str
    cidr: str
    seconds: float


@dataclass
class Stream:
    new: list[Decision]
    deleted: list[Decision]
    checked: Checked


def _decisions(items: Any, what: str, checker: Checker,
               deleted: bool) -> list[Decision]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Stale("garbage", "the answer is not a CrowdSec decisions "
                    "stream (%s is not a list)" % what)
    found = []
    for index, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(
                item.get("value"), str):
            raise Stale("garbage", "the answer is not a CrowdSec decisions "
                        "stream (%s %d has no value)" % (what, index))
        where = "%s %d" % (what, index)
        scope = str(item.get("scope", "")).lower()
        kind = str(item.get("type", "")).lower()
        # A deleted decision is looked up by its id; a new one must be a
        # ban of an address or range to block anything.
        if not deleted and (kind != "ban" or scope not in ("ip", "range")):
            checker.result.ignored += 1
            continue
        key = ("id:%s" % item["id"] if item.get("id") is not None
               else "value:%s" % item["value"])
        if deleted:
            found.append(Decision(key, _normalised(item["value"]), 0.0))
            continue
        try:
            seconds = go_duration(item.get("duration", ""))
        except ValueError as e:
            checker.bad(where, "its duration %s" % e)
            continue
        cidr = checker.add(item["value"], where)
        if cidr is not None:
            found.append(Decision(key, cidr, seconds))
    return found


def _normalised(value: str) -> str:
    """A deleted decision's value as the CIDR a new one was kept as."""
    try:
        return _lists.key_text(_lists.parse_entry(value.strip(), False)[1])
    except FastpathError:
        return value


def parse_crowdsec(body: bytes, checker: Checker) -> Stream:
    """A LAPI decisions stream: the new bans (type ban, scope Ip or
    Range; others are counted as ignored) and the deleted decisions."""
    data = _json(body, "a CrowdSec decisions stream")
    if not isinstance(data, dict) or "new" not in data \
            or "deleted" not in data:
        raise Stale("garbage", "the answer is not a CrowdSec decisions "
                    "stream (it has no new and deleted)")
    new = _decisions(data["new"], "new decision", checker, False)
    deleted = _decisions(data["deleted"], "deleted decision", checker, True)
    return Stream(new, deleted, checker.result)
