#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: threat_feed
short_description: Pull a public blocklist (threat feed) on the controller
version_added: 0.2.0
description:
  - Fetches one threat feed over HTTP(S), parses it in its own format,
    checks every entry, and returns the feed's set of addresses and CIDRs
    for M(vos.fastpath.bpf_map_entry) (the C(vos.fastpath.feeds)
    playbook keeps each feed as the blocklist owner C(feed:<name>)).
  - An entry that is not an address, or is wider than O(min_prefix_v4) /
    O(min_prefix_v6), is left out, counted (RV(invalid)) and quoted in a
    warning; it does not fail the task.
  - The feed's state is kept in O(state_dir) as C(<name>.json), written
    atomically after every good pull - the last good set, the cursor of
    the incremental feeds (APIBAN's next ID, whether the CrowdSec stream
    has started) and the time of the pull.
  - When the feed is down (connection refused, a name that does not
    resolve, TLS failure), slow (no whole answer within O(timeout)),
    answers garbage (HTML, cut-short JSON, not the format) or an HTTP
    error, the task does not fail - RV(status) is C(stale), RV(reason)
    says why in one sentence, a warning says so, and the previous set is
    returned unchanged.
  - At most O(cap) entries are returned - the newest of an incremental
    feed, the first ones of a list - and RV(cut) says how many were left
    out.
  - "Runs on the controller (C(delegate_to: localhost), or a play on
    C(localhost)); one run at a time per feed and state directory."
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  name:
    description:
      - The feed's name - 1 to 59 letters, digits, C(.), C(_) or C(-),
        starting with a letter or digit. It names the state file and the
        blocklist owner C(feed:<name>).
    type: str
    required: true
  format:
    description:
      - V(text) - one address or CIDR per line, C(#) starts a comment.
      - V(spamhaus) - Spamhaus DROP or EDROP, C(CIDR ; SBLnnn) lines, C(;)
        comments.
      - V(apiban) - the APIBAN REST API; O(url) is its base
        (U(https://apiban.org/api)), the module asks for
        C(<url>/<api_key>/banned/<ID>) from the saved ID up to the answer
        C({"ipaddress":["no new bans"],"ID":"none"}), at most
        O(max_requests) pages a run. The set is every address fetched
        so far, each until O(ttl) after it was last seen.
      - V(crowdsec) - a CrowdSec LAPI's decisions stream; O(url) is the
        LAPI (U(http://127.0.0.1:8080)), the module asks for
        C(/v1/decisions/stream?startup=true) on its first run, then
        C(startup=false), with O(api_key) (a bouncer key,
        C(cscli bouncers add)) in C(X-Api-Key). Only decisions of type
        C(ban) and scope C(Ip) or C(Range) count (others are RV(ignored));
        deleted decisions leave the set.
    type: str
    choices: [apiban, crowdsec, spamhaus, text]
    required: true
  url:
    description:
      - The list's URL, or the API's base for V(apiban) and V(crowdsec).
        C(http://) or C(https://), without a user and password (give them
        in O(headers)). Requests go through the proxy of the environment
        (C(https_proxy), C(no_proxy)) and follow redirects.
    type: str
    required: true
  api_key:
    description:
      - The key of V(apiban) and V(crowdsec) (required by both, refused
        for the others - give their credentials in O(headers)). Never
        logged; keep it in Ansible Vault.
    type: str
  headers:
    description:
      - HTTP headers sent with every request.
    type: dict
    default: {}
  query:
    description:
      - Query parameters added to every request, for example C(origins)
        V(crowdsec,cscli) for a LAPI (its own decisions, not the community
        blocklist). Changing them starts an incremental feed afresh.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds the whole pull of one request may take (connection and
        the whole answer); longer makes the feed C(stale).
    type: float
    default: 30
  cap:
    description:
      - The most entries returned; the rest is left out with a warning.
    type: int
    default: 100000
  ttl:
    description:
      - For V(apiban), how long an address stays in the set after it was
        last seen; for V(crowdsec), the longest a decision counts. The
        playbook also gives it to the edges as the entries' TTL. Seconds
        or with a unit (V(90s), V(15m), V(1h), V(7d), V(2w)); V(0) is
        permanent.
    type: raw
    default: 0
  honour_duration:
    description:
      - For V(crowdsec), a decision leaves the set when its own duration
        ends (never later than O(ttl)). With V(false) only O(ttl) and the
        LAPI's deletions count.
    type: bool
    default: true
  max_requests:
    description:
      - For V(apiban), the pages asked for at most in one run (250
        addresses each; APIBAN allows a few requests a minute per key).
        RV(more) says when pages are left for the next run.
    type: int
    default: 10
  min_interval:
    description:
      - Pull no more often than this; a run sooner returns the saved set
        (RV(fetched) false). Spamhaus asks for at least one hour between
        pulls of DROP. Seconds or with a unit, as O(ttl).
    type: raw
    default: 0
  max_bytes:
    description:
      - An answer larger than this is garbage.
    type: int
    default: 67108864
  min_prefix_v4:
    description:
      - The widest IPv4 prefix kept; wider entries are left out as
        invalid, as M(vos.fastpath.bpf_map_entry) would refuse them.
    type: int
    default: 8
  min_prefix_v6:
    description:
      - The widest IPv6 prefix kept, as O(min_prefix_v4).
    type: int
    default: 32
  state_dir:
    description:
      - The directory on the controller the feeds' states are kept in,
        created (mode 0700) when missing; it must belong to the user who
        runs the module and be writable only by it.
    type: path
    default: ~/.local/state/vos-fastpath/feeds
  validate_certs:
    description:
      - Check the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle to check the server's certificate against (a LAPI
        with its own CA).
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another run pulling the same feed.
    type: int
    default: 60
attributes:
  check_mode:
    description: Pulls the feed and reports the set and what changed, but
      saves nothing. A CrowdSec stream that has started is not pulled in
      check mode (a pull moves the LAPI's cursor, and the changes it
      returned would be lost); the saved set is returned with a warning.
    support: full
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: The first 100 entries added to and removed from the set.
  platform:
    description: Runs on the controller.
    support: full
    platforms: posix
seealso:
  - module: vos.fastpath.bpf_map_entry
"""

EXAMPLES = r"""
- name: Pull Spamhaus DROP, at most once an hour
  vos.fastpath.threat_feed:
    name: spamhaus-drop
    format: spamhaus
    url: https://www.spamhaus.org/drop/drop.txt
    min_interval: 1h
    ttl: 7d
  delegate_to: localhost
  register: drop

- name: Pull what APIBAN has new since the last run
  vos.fastpath.threat_feed:
    name: apiban
    format: apiban
    url: https://apiban.org/api
    api_key: "{{ vault_apiban_key }}"
    ttl: 7d
    cap: 20000
  delegate_to: localhost

- name: Follow a CrowdSec LAPI's bans, local decisions only
  vos.fastpath.threat_feed:
    name: crowdsec
    format: crowdsec
    url: http://192.0.2.5:8080
    api_key: "{{ vault_crowdsec_bouncer_key }}"
    query:
      origins: crowdsec,cscli
    ttl: 1d
  delegate_to: localhost

- name: Keep the feed's set as its own owner on the edges
  vos.fastpath.bpf_map_entry:
    map: blocklist
    entries: "{{ drop.entries }}"
    state: exact
    source: "{{ drop.owner }}"
    ttl: "{{ drop.ttl }}"
  when: drop.status == 'fresh'
"""

RETURN = r"""
name:
  description: The feed's name.
  returned: always
  type: str
  sample: spamhaus-drop
owner:
  description: The blocklist owner of the feed's entries on the edges.
  returned: always
  type: str
  sample: feed:spamhaus-drop
status:
  description: C(fresh) - RV(entries) is the feed's set now; C(stale) -
    the pull failed, RV(entries) is the previous set, unchanged.
  returned: success
  type: str
  sample: fresh
problem:
  description: Why the feed is stale - C(down), C(slow), C(garbage) or
    C(http); empty when it is fresh.
  returned: success
  type: str
  sample: down
reason:
  description: One sentence saying why the feed is stale, or why it was
    not pulled; empty otherwise.
  returned: success
  type: str
  sample: nothing answers at 192.0.2.5:8080 (connection refused).
fetched:
  description: Whether this run pulled the feed (and RV(status) is about
    that pull); false when the saved set was used (O(min_interval), or a
    started CrowdSec stream in check mode).
  returned: success
  type: bool
  sample: true
entries:
  description: The feed's addresses and CIDRs, at most O(cap), sorted.
  returned: success
  type: list
  elements: str
  sample: [198.51.100.0/24, 203.0.113.7/32]
count:
  description: The number of RV(entries).
  returned: success
  type: int
  sample: 2
cut:
  description: Entries left out because of O(cap).
  returned: success
  type: int
  sample: 0
invalid:
  description: Entries of this pull left out as not addresses or too
    wide.
  returned: success
  type: int
  sample: 1
invalid_samples:
  description: The first 10 of them, each with where it was.
  returned: success
  type: list
  elements: str
  sample: ["line 7: 'example.com' is not an IPv4 or IPv6 address"]
ignored:
  description: For V(crowdsec), decisions that are not bans of an address
    or range.
  returned: success
  type: int
  sample: 0
added:
  description: Entries in RV(entries) that the previous set did not have.
  returned: success
  type: int
  sample: 2
removed:
  description: Entries of the previous set no longer in RV(entries).
  returned: success
  type: int
  sample: 0
ttl:
  description: O(ttl) in seconds, for the edges.
  returned: success
  type: int
  sample: 604800
age:
  description: Seconds since the pull RV(entries) come from; null before
    the first good pull.
  returned: success
  type: float
  sample: 0.2
cursor:
  description: For V(apiban), the ID the next run asks for.
  returned: when format is apiban
  type: str
  sample: "1715280000"
more:
  description: For V(apiban), whether pages were left for the next run
    (O(max_requests)).
  returned: when format is apiban
  type: bool
  sample: false
requests:
  description: HTTP requests this run made.
  returned: success
  type: int
  sample: 1
state_file:
  description: Where the feed's state is kept.
  returned: always
  type: str
  sample: /home/ops/.local/state/vos-fastpath/feeds/spamhaus-drop.json
"""

import os
import re
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _feed_formats, _feeds, _input, _lock)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)

DIFF_LIMIT = 100
# The time of a pull, and what the saved times are compared to.
clock = time.time
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,58}")
_KEYED = ("apiban", "crowdsec")


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            format=dict(type="str", required=True,
                        choices=["apiban", "crowdsec", "spamhaus", "text"]),
            url=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            headers=dict(type="dict", default={}),
            query=dict(type="dict", default={}),
            timeout=dict(type="float", default=30),
            cap=dict(type="int", default=100000),
            ttl=dict(type="raw", default=0),
            honour_duration=dict(type="bool", default=True),
            max_requests=dict(type="int", default=10),
            min_interval=dict(type="raw", default=0),
            max_bytes=dict(type="int", default=64 << 20),
            min_prefix_v4=dict(type="int", default=_input.MIN_PREFIX_V4),
            min_prefix_v6=dict(type="int", default=_input.MIN_PREFIX_V6),
            state_dir=dict(type="path",
                           default="~/.local/state/vos-fastpath/feeds"),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            lock_timeout=dict(type="int", default=_lock.DEFAULT_TIMEOUT),
        ),
        required_if=[("format", "apiban", ("api_key",)),
                     ("format", "crowdsec", ("api_key",))],
        supports_check_mode=True,
    )


def read_spec(p):
    """The feed's Spec; raises FastpathError on bad input."""
    if not _NAME.fullmatch(p["name"]):
        raise FastpathError(
            "name %s is not a feed name: use 1 to 59 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit, for example "
            "spamhaus-drop." % _input.quote(p["name"]))
    if not re.match(r"https?://[^/]", p["url"]):
        raise FastpathError("url %s is not an http:// or https:// URL: give "
                            "the feed's URL." % _input.quote(p["url"]))
    if "@" in urlsplit(p["url"]).netloc:
        raise FastpathError("url has a user and password in it: give them "
                            "in headers, as an Authorization header.")
    if p["api_key"] and p["format"] not in _KEYED:
        raise FastpathError("api_key is only for the apiban and crowdsec "
                            "formats: give a %s feed's credentials in "
                            "headers." % p["format"])
    for option, low in (("cap", 1), ("max_requests", 1), ("max_bytes", 1),
                        ("lock_timeout", 0)):
        if p[option] < low:
            raise FastpathError("%s must be at least %d." % (option, low))
    if not p["timeout"] > 0:
        raise FastpathError("timeout must be more than 0 seconds.")
    for option, bits in (("min_prefix_v4", 32), ("min_prefix_v6", 128)):
        if not 0 <= p[option] <= bits:
            raise FastpathError("%s must be 0 to %d." % (option, bits))
    return _feeds.Spec(
        name=p["name"], format=p["format"], url=p["url"],
        api_key=p["api_key"],
        headers=dict((str(k), str(v)) for k, v in p["headers"].items()),
        query=dict((str(k), str(v)) for k, v in p["query"].items()),
        timeout=p["timeout"], max_bytes=p["max_bytes"],
        validate_certs=p["validate_certs"], ca_path=p["ca_path"],
        ttl=_input.parse_ttl(p["ttl"]),
        min_interval=_input.parse_ttl(p["min_interval"], "min_interval",
                                      "use 0 to pull at every run"),
        honour_duration=p["honour_duration"],
        max_requests=p["max_requests"],
        min_prefix_v4=p["min_prefix_v4"], min_prefix_v6=p["min_prefix_v6"])


def load_state(module, path):
    """The saved state; a damaged one is set aside with a warning (left in
    place in check mode) and the feed starts afresh."""
    try:
        return _feeds.load(path)
    except _feeds.Damaged as e:
        if module.check_mode:
            module.warn("%s: it would be set aside and the feed pulled "
                        "afresh." % e)
        else:
            module.warn("%s: it was moved to %s and the feed is pulled "
                        "afresh." % (e, _feeds.set_aside(path)))
        return None


def when(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds


def pull(module, spec, path, old, now, result):
    """Pull the feed; the new state, or None when the previous set stays
    (result says why)."""
    fresh_start = old is None or old["source"] != spec.source()
    prior = None if fresh_start else old
    # A clock set back makes the last pull look younger than it is: pull.
    if prior and spec.min_interval and \
            0 <= now - prior["fetched_at"] < spec.min_interval:
        result["reason"] = ("The last pull was %s ago, less than "
                            "min_interval." % when(now - prior["fetched_at"]))
        return None
    delta = spec.format == "crowdsec" and \
        not _feeds.crowdsec_needs_startup(spec, prior)
    if delta and module.check_mode:
        result["reason"] = ("A CrowdSec stream is not pulled in check mode: "
                            "a pull moves the LAPI's cursor, and the "
                            "changes it returned would be lost.")
        module.warn("Feed %s: %s Its saved set is returned." % (
            spec.name, result["reason"]))
        return None
    if delta:
        # Until this run's pull is saved, the next run starts afresh.
        save_state(spec, path, dict(prior, started=False))
    result["fetched"] = True
    try:
        pulled = _feeds.PULLS[spec.format](spec, prior, now, _feeds.fetch)
    except _feed_formats.Stale as e:
        result.update(status="stale", problem=e.problem,
                      reason=e.reason[:1].upper() + e.reason[1:] + ".")
        return None
    result.update(invalid=pulled.checked.invalid,
                  invalid_samples=pulled.checked.samples,
                  ignored=pulled.checked.ignored, requests=pulled.requests)
    if spec.format == "apiban":
        result["more"] = pulled.more
    return _feeds.new_state(spec, pulled.state, now)


def warn(module, spec, cap, result, previous_age):
    name = spec.name
    if result["status"] == "stale":
        kept = ("its previous set (%d entries, pulled %s ago) is returned "
                "unchanged" % (result["count"], when(previous_age))
                if previous_age is not None else
                "it has never been pulled, so it has no entries")
        module.warn("Feed %s is stale (%s). %s %s." % (
            name, result["problem"], result["reason"],
            kept[:1].upper() + kept[1:]))
    if result["invalid"]:
        module.warn("Feed %s: %s left out as invalid (first: %s)." % (
            name, "1 entry was" if result["invalid"] == 1 else
            "%d entries were" % result["invalid"],
            result["invalid_samples"][0]))
    if result["cut"]:
        which = ("first" if spec.format in ("text", "spamhaus")
                 else "newest")
        module.warn("Feed %s has %d entries, more than its cap of %d: the "
                    "%s %d are kept, %d left out." % (
                        name, result["count"] + result["cut"], cap, which,
                        cap, result["cut"]))


def run(module, spec, result):
    p = module.params
    path = result["state_file"]
    now = clock()
    old = load_state(module, path)
    previous, previous_cut = _feeds.evaluate(
        old["format"], old, old["evaluated_at"], p["cap"]) if old else ([], 0)
    state = pull(module, spec, path, old, now, result)
    if state is None:           # the previous set stays, as it was
        entries, cut, kept = previous, previous_cut, old
        age = now - old["fetched_at"] if old else None
    else:
        entries, cut = _feeds.evaluate(spec.format, state, now, p["cap"])
        kept, age = state, 0.0
    if spec.format == "apiban":
        result["cursor"] = (kept or {}).get("cursor", _feeds.APIBAN_FIRST_ID)
        result.setdefault("more", False)
    before, after = set(previous), set(entries)
    added = sorted(after - before, key=_feeds.sort_key)
    removed = sorted(before - after, key=_feeds.sort_key)
    result.update(entries=entries, count=len(entries), cut=cut, age=age,
                  added=len(added), removed=len(removed),
                  changed=bool(added or removed))
    warn(module, spec, p["cap"], result,
         (now - old["fetched_at"]) if old else None)
    if module._diff:
        result["diff"] = dict(
            before="entries: %d\n%s" % (len(previous), lines(removed)),
            after="entries: %d\n%s" % (len(entries), lines(added)),
            before_header="feed %s" % spec.name,
            after_header="feed %s" % spec.name)
    if state is not None and not module.check_mode:
        save_state(spec, path, state)


def save_state(spec, path, state):
    try:
        _feeds.save(path, state)
    except OSError as e:
        raise FastpathError(
            "Saving the state of feed %s to %s failed (%s): free space or "
            "fix the directory's permissions, and run again." % (
                spec.name, path, e.strerror or e), changed=False)


def lines(entries):
    shown = entries[:DIFF_LIMIT]
    more = len(entries) - len(shown)
    return "".join(e + "\n" for e in shown) + (
        "... and %d more\n" % more if more else "")


def main():
    module = build_module()
    p = module.params
    result = dict(changed=False, name=p["name"], owner="feed:%s" % p["name"],
                  status="fresh", problem="", reason="", fetched=False,
                  entries=[], count=0, cut=0, invalid=0, invalid_samples=[],
                  ignored=0, added=0, removed=0, ttl=0, age=None,
                  requests=0,
                  state_file=_feeds.state_path(p["state_dir"], p["name"]))
    try:
        spec = read_spec(p)
        result["ttl"] = spec.ttl
        if module.check_mode and not os.path.isdir(p["state_dir"]):
            run(module, spec, result)
        else:
            with _lock.hold("feed-" + spec.name, p["lock_timeout"],
                            "%s of feed %s" % (module._name, spec.name),
                            lock_dir=p["state_dir"]):
                run(module, spec, result)
    except FastpathError as e:
        result.pop("entries", None)
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
