# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Threat feeds on the controller: fetch, keep, evaluate.

Private to this collection. A feed is pulled over HTTP(S), parsed by
_feed_formats, and kept in a JSON file of the state directory (written
atomically): the last good set, the cursor of the incremental feeds
(APIBAN's next ID, whether the CrowdSec stream has started) and the time
of the pull. Every failure (down, slow, garbage, an HTTP error) raises
Stale, and the caller keeps the previous set. The set a run returns is a
function of the saved state and a time, so a later run can tell what
changed since.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import functools
import http.client
import json
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.error import HTTPError, URLError
from urllib.parse import quote as url_quote
from urllib.parse import urlencode, urlsplit
from urllib.request import HTTPSHandler, Request, build_opener

from . import _files
from ._feed_formats import (Checked, Checker, Stale, check_apiban,
                            parse_apiban, parse_crowdsec, parse_spamhaus,
                            parse_text)

STATE_VERSION = 1
AGENT = "vos-fastpath-feeds"
CHUNK = 1 << 16
# The ID APIBAN's own clients start from: every ban still active.
APIBAN_FIRST_ID = "100"


@dataclass
class Spec:
    """One feed, as the module's options give it."""
    name: str
    format: str
    url: str
    api_key: str | None = None
    headers: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    timeout: float = 30.0
    max_bytes: int = 64 << 20
    validate_certs: bool = True
    ca_path: str | None = None
    ttl: int = 0
    min_interval: int = 0
    honour_duration: bool = True
    max_requests: int = 10
    min_prefix_v4: int = 8
    min_prefix_v6: int = 32

    def source(self) -> str:
        """What the saved cursor belongs to: another URL or query starts
        the feed afresh."""
        return json.dumps([self.format, self.url.rstrip("/"),
                           sorted(self.query.items())])

    def host(self) -> str:
        """host:port of the URL for messages (never its user:password)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        host = "[%s]" % host if ":" in host else host
        try:
            return "%s:%d" % (host, parts.port) if parts.port else host
        except ValueError:
            return host

    def checker(self) -> Checker:
        return Checker(self.min_prefix_v4, self.min_prefix_v6)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str


Fetch = Callable[[Spec, str, dict], Answer]


def _failure(spec: Spec, error: BaseException) -> Stale:
    """The Stale of an exception of the request or of reading its answer."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return Stale("slow", "no answer from %s within %g s" % (
            spec.host(), spec.timeout))
    if isinstance(reason, ConnectionRefusedError):
        return Stale("down", "nothing answers at %s (connection refused)"
                     % spec.host())
    if isinstance(reason, socket.gaierror):
        return Stale("down", "the name of %s does not resolve (%s)"
                     % (spec.host(), reason.strerror or reason))
    if isinstance(reason, ssl.SSLError):
        return Stale("down", "the TLS connection to %s failed (%s)"
                     % (spec.host(), reason))
    if isinstance(error, http.client.IncompleteRead):
        return Stale("down", "%s closed the connection before the whole "
                     "answer came" % spec.host())
    text = getattr(reason, "strerror", None) or str(reason) or \
        type(reason).__name__
    return Stale("down", "could not get an answer from %s (%s)"
                 % (spec.host(), text))


def _read(spec: Spec, response: Any, started: float) -> bytes:
    """The body, in chunks: no more than max_bytes, and no later than
    `timeout` after the request started, however slowly it trickles
    (read1: what one receive gives, not a whole chunk)."""
    read = getattr(response, "read1", response.read)
    chunks, size = [], 0
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > spec.max_bytes:
            raise Stale("garbage", "the answer is larger than max_bytes "
                        "(%d bytes)" % spec.max_bytes)
        if time.monotonic() - started > spec.timeout:
            raise Stale("slow", "no complete answer from %s within %g s"
                        % (spec.host(), spec.timeout))
        chunks.append(chunk)


@functools.lru_cache(maxsize=None)
def _tls_context(ca_path: str | None, validate_certs: bool) -> ssl.SSLContext:
    """One TLS context for every request of the process (of all the pages
    of an APIBAN pull): making one loads the CA store, a fifth of a
    second."""
    context = ssl.create_default_context(cafile=ca_path)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def fetch(spec: Spec, url: str, headers: dict) -> Answer:
    """GET url (urllib: proxies from the environment, redirects
    followed); an HTTP error status is an Answer too (APIBAN says "no new
    bans" with a 400), everything else that fails raises Stale."""
    started = time.monotonic()
    try:
        opener = build_opener(HTTPSHandler(context=_tls_context(
            spec.ca_path, spec.validate_certs)))
        request = Request(url, headers=dict(headers, **{"User-Agent": AGENT}))
        try:
            response = opener.open(request, timeout=spec.timeout)
        except HTTPError as e:
            response = e
        with response:
            body = _read(spec, response, started) if response.fp else b""
            return Answer(response.getcode(), body,
                          response.headers.get("Content-Type", "") or "")
    except Stale:
        raise
    except (URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _failure(spec, e)


def _url(base: str, path: str, query: dict) -> str:
    url = base.rstrip("/") + path
    if query:
        url += ("&" if "?" in url else "?") + urlencode(sorted(query.items()))
    return url


def _ok(spec: Spec, answer: Answer) -> Answer:
    if answer.status == 200:
        return answer
    if answer.status in (401, 403):
        raise Stale("http", "%s refused the request (HTTP %d): check the "
                    "API key or headers" % (spec.host(), answer.status))
    raise Stale("http", "%s answered HTTP %d" % (spec.host(), answer.status))


# The pulls. Each takes the saved state (None on a first run) and returns
# the new one and what was checked; it raises Stale, and then saves
# nothing (but see pull_crowdsec).


@dataclass
class Pulled:
    state: dict
    checked: Checked
    requests: int = 1
    more: bool = False


def pull_list(spec: Spec, state: dict | None, now: float,
              get: Fetch) -> Pulled:
    """A whole list (text or spamhaus): the set is the answer."""
    answer = _ok(spec, get(spec, _url(spec.url, "", spec.query),
                           dict(spec.headers)))
    parse = parse_spamhaus if spec.format == "spamhaus" else parse_text
    checked = parse(answer.body, spec.checker(), answer.content_type)
    return Pulled(dict(entries=checked.entries), checked)


def pull_apiban(spec: Spec, state: dict | None, now: float,
                get: Fetch) -> Pulled:
    """APIBAN, from the saved ID up to "no new bans" (at most
    max_requests pages a run; the next run goes on from there). The set
    is every address seen, newest last, each until `ttl` after it was
    last seen. All or nothing: a failure saves no page of the run."""
    seen = dict(state["seen"]) if state else {}
    cursor = state["cursor"] if state else APIBAN_FIRST_ID
    checker = spec.checker()
    key = url_quote(spec.api_key or "", safe="")
    requests, more = 0, True
    while requests < spec.max_requests:
        answer = get(spec, _url(spec.url, "/%s/banned/%s" % (key, cursor),
                                spec.query), dict(spec.headers))
        requests += 1
        page = parse_apiban(answer.status, answer.body)
        for cidr in check_apiban(page, checker, requests):
            seen.pop(cidr, None)        # seen again: newest now
            seen[cidr] = now
        if page.next_id is None:
            more = False
            break
        cursor = page.next_id
    if spec.ttl:
        seen = {c: t for c, t in seen.items() if t + spec.ttl > now}
    return Pulled(dict(seen=seen, cursor=cursor), checker.result, requests,
                  more)


def crowdsec_needs_startup(spec: Spec, state: dict | None) -> bool:
    return not (state and state.get("started"))


def pull_crowdsec(spec: Spec, state: dict | None, now: float,
                  get: Fetch) -> Pulled:
    """The LAPI decisions stream: startup=true gives every active
    decision, startup=false what changed since this key's last pull (the
    LAPI keeps that cursor). The caller saves started=false before a
    startup=false pull, so that a run that dies after the LAPI moved its
    cursor is followed by a full pull, not by a delta that misses it."""
    startup = crowdsec_needs_startup(spec, state)
    headers = dict(spec.headers)
    headers["X-Api-Key"] = spec.api_key or ""
    query = dict(spec.query, startup="true" if startup else "false")
    answer = _ok(spec, get(spec, _url(spec.url, "/v1/decisions/stream",
                                      query), headers))
    stream = parse_crowdsec(answer.body, spec.checker())
    decisions = {} if startup else dict(state["decisions"])
    gone = {d.key for d in stream.deleted}
    gone_values = {d.cidr for d in stream.deleted if d.key.startswith(
        "value:")}
    for key in list(decisions):
        if key in gone or decisions[key][0] in gone_values:
            del decisions[key]
    for decision in stream.new:
        if decision.key in gone or decision.seconds <= 0:
            continue
        decisions[decision.key] = [decision.cidr,
                                   decision_end(spec, now, decision.seconds)]
    decisions = {k: v for k, v in decisions.items()
                 if not v[1] or v[1] > now}
    return Pulled(dict(decisions=decisions, started=True), stream.checked)


def decision_end(spec: Spec, now: float, seconds: float) -> float:
    """When a decision stops counting: its own duration (honour_duration)
    but never later than ttl; 0 is never (until the LAPI deletes it)."""
    if spec.honour_duration:
        return now + (min(seconds, spec.ttl) if spec.ttl else seconds)
    return now + spec.ttl if spec.ttl else 0


PULLS = {"text": pull_list, "spamhaus": pull_list, "apiban": pull_apiban,
         "crowdsec": pull_crowdsec}


# The set a state stands for at a time: (entries newest first or in the
# feed's order, as the cap keeps them).


def ranked(fmt: str, state: dict, at: float) -> list[str]:
    """The state's entries at time `at`, those the cap keeps first."""
    if fmt in ("text", "spamhaus"):
        return list(state["entries"])
    if fmt == "apiban":
        # seen holds each address once, newest last.
        return [cidr for cidr, _t in reversed(list(state["seen"].items()))
                if not state["ttl"] or _t + state["ttl"] > at]
    live = [(key, cidr) for key, (cidr, end) in state["decisions"].items()
            if not end or end > at]
    live.sort(key=lambda item: _decision_order(item[0]), reverse=True)
    out, taken = [], set()
    for _key, cidr in live:
        if cidr not in taken:
            taken.add(cidr)
            out.append(cidr)
    return out


def _decision_order(key: str) -> tuple[int, str]:
    """Newer LAPI decisions have higher ids."""
    number = key[3:] if key.startswith("id:") else ""
    return (int(number), key) if number.isdigit() else (-1, key)


def evaluate(fmt: str, state: dict | None, at: float,
             cap: int) -> tuple[list[str], int]:
    """(the entries, sorted as the lists print them; how many the cap
    cut)."""
    if state is None:
        return [], 0
    entries = ranked(fmt, state, at)
    kept = entries[:cap]
    return sorted(kept, key=sort_key), len(entries) - len(kept)


def sort_key(cidr: str) -> tuple[int, bytes, int]:
    address, _slash, bits = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return (family, socket.inet_pton(family, address), int(bits))


# The state file.


def state_path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, name + ".json")


class Damaged(Exception):
    pass


_COMMON_KEYS = ("source", "ttl", "fetched_at", "evaluated_at")
_STATE_KEYS = {"text": ("entries",), "spamhaus": ("entries",),
               "apiban": ("seen", "cursor"),
               "crowdsec": ("decisions", "started")}


def load(path: str) -> dict | None:
    """The saved state, None when there is none; Damaged when it cannot
    be read back whole."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise Damaged("%s cannot be read (%s)" % (path, e))
    need = _STATE_KEYS.get(data.get("format")) if isinstance(data, dict) \
        else None
    if need is None or data.get("version") != STATE_VERSION or \
            not all(k in data for k in need + _COMMON_KEYS):
        raise Damaged("%s is not the saved state of a feed" % path)
    return data


def save(path: str, state: dict) -> None:
    data = json.dumps(state, sort_keys=False, separators=(",", ":"))
    _files.write_atomically(path, data.encode("utf-8"))


def set_aside(path: str) -> str:
    aside = "%s.damaged-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
    os.rename(path, aside)
    return aside


def new_state(spec: Spec, pulled: dict, now: float) -> dict:
    return dict(pulled, version=STATE_VERSION, format=spec.format,
                source=spec.source(), ttl=spec.ttl, fetched_at=now,
                evaluated_at=now)
