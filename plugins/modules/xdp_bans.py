#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: xdp_bans
short_description: List, explain and lift the bans of the XDP program
version_added: 0.2.0
description:
  - Lists every ban in force on the host, with its reason. The bans the
    program made itself (map C(bans_v2)) come with their rate class or
    scanner signature, when they were made, when they expire and how
    many packets they have dropped since. Blocklist entries of owners
    other than the inventory's policy (manual blocks, feeds, the fleet
    exchange C(autoban)) come from the list's saved file, with their
    owner and expiry.
  - With O(lift), lifts the program's bans that cover or lie inside the
    given addresses and pardons those sources for O(pardon_time), so that
    the program does not ban them again meanwhile (map C(pardons)). List
    entries are removed by M(vos.fastpath.bpf_map_entry) with
    O(vos.fastpath.bpf_map_entry#module:state=absent), as C(unblock.yml)
    does.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  address:
    description:
      - Only the bans that cover or lie inside this address or CIDR.
    type: str
  lists:
    description:
      - Also list the blocklist entries of every owner but O(skip_owners),
        from the list's saved file under O(state_dir).
    type: bool
    default: true
  skip_owners:
    description:
      - Blocklist owners not listed as bans (the inventory's policy and
        file syncs are lists, not bans).
    type: list
    elements: str
    default: [policy, sync]
  max_list_entries:
    description:
      - At most this many blocklist entries are returned (the newest
        expiries first); RV(list_owners) still counts them all.
    type: int
    default: 1000
  lift:
    description:
      - Addresses and CIDRs whose bans to lift. A pardon is written for
        each source lifted and, for an address or a prefix no wider than
        the program's source aggregation (C(prefix_v4), C(prefix_v6)),
        for its source even when it is not banned now.
    type: list
    elements: str
    default: []
  pardon_time:
    description:
      - How long a lifted source is not banned again by the program, in
        seconds or with a unit (V(90s), V(15m), V(1h), V(7d)); V(0) writes
        no pardon. Rate limits still apply to it.
    type: raw
    default: 1h
  state_dir:
    description:
      - The state directory of the P(vos.fastpath.fastpath#role) role,
        where the lists are kept.
    type: path
    default: /var/lib/vos-fastpath
extends_documentation_fragment:
  - vos.fastpath.maps
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
    details: The bans are read; nothing is lifted or pardoned.
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: The sources lifted and pardoned.
  platform:
    description: Linux hosts with an XDP-capable kernel.
    support: full
    platforms: linux
notes:
  - Times are UTC, converted from the kernel's CLOCK_MONOTONIC (the
    program's bans) or CLOCK_BOOTTIME (list entries).
  - The program counts the packets of each of its own bans. A blocklist
    entry's drops are counted only in the C(BLOCKED) counter, so
    RV(bans[].packets) is null for list entries.
seealso:
  - module: vos.fastpath.bpf_map_entry
  - module: vos.fastpath.xdp_stats
"""

EXAMPLES = r"""
- name: Every ban on the host
  vos.fastpath.xdp_bans:
  register: bans

- name: Why is this address dropped?
  vos.fastpath.xdp_bans:
    address: 203.0.113.7

- name: Lift the program's bans of a customer's PBX and pardon it for a day
  vos.fastpath.xdp_bans:
    lift: [198.51.100.20]
    pardon_time: 1d
"""

RETURN = r"""
bans:
  description: Every ban in force, the program's first (oldest first).
  returned: success
  type: list
  elements: dict
  contains:
    source:
      description: The banned source (the program's) or the list entry.
      type: str
      sample: 198.51.100.7/32
    reason:
      description: V(rate_limited) or V(scanner) for the program's bans;
        V(list) for a blocklist entry.
      type: str
    detail:
      description: The request class (V(REGISTER), V(INVITE),
        V(OPTIONS), V(OTHER), V(SYN)) of a rate-limit ban, the signature
        of a scanner ban, the owner of a list entry (for example
        V(manual), V(autoban), V(feed:apiban)).
      type: str
    since:
      description: When the program made the ban (UTC); null for list
        entries.
      type: str
      sample: "2026-12-01T10:00:00Z"
    expires:
      description: When it ends (UTC); null when it never does.
      type: str
    expires_in:
      description: Seconds until it ends; null when it never does.
      type: int
    packets:
      description: Packets dropped as C(BANNED) since the ban was made;
        null for list entries.
      type: int
    origin:
      description: V(program) or V(blocklist).
      type: str
pardons:
  description: Sources the program will not ban until C(until).
  returned: success
  type: list
  elements: dict
  sample: [{source: 198.51.100.20/32, until: "2026-12-02T10:00:00Z",
            until_in: 86400}]
list_owners:
  description: Blocklist entries in force per owner (every owner).
  returned: success, when O(lists) is true
  type: dict
  sample: {policy: 12, manual: 1, autoban: 40}
lifted:
  description: The program's bans lifted (or, in check mode, that would
    be).
  returned: success
  type: list
  elements: str
pardoned:
  description: The sources pardoned.
  returned: success
  type: list
  elements: str
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _bans, _defaults, _input, _lists, _pins, _snapshot)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            pin_dir=dict(type="path", default=_abi.DEFAULT_PIN_DIR),
            state_dir=dict(type="path", default=_defaults.STATE_DIR),
            address=dict(type="str"),
            lists=dict(type="bool", default=True),
            skip_owners=dict(type="list", elements="str",
                             default=["policy", "sync"]),
            max_list_entries=dict(type="int", default=1000),
            lift=dict(type="list", elements="str", default=[]),
            pardon_time=dict(type="raw", default="1h"),
        ),
        supports_check_mode=True,
    )


def parse_targets(texts, what):
    """[(family, trie key)] of addresses and CIDRs; one sentence on the
    first bad one."""
    out = []
    for text in texts:
        try:
            out.append(_lists.parse_entry(text.strip(), False))
        except FastpathError as e:
            raise FastpathError("%s: %s; give an IPv4 or IPv6 address or "
                                "CIDR. Nothing was changed." % (what, e.msg))
    return out


def matches(source, targets):
    return any(_bans.overlaps(source, family, key)
               for family, key in targets)


def list_bans(params, reader, targets):
    """(list entries as bans, {owner: entries}) from the saved file."""
    path = _defaults.saved_list(params["state_dir"], "blocklist")
    try:
        ledger = _snapshot.load(path, "blocklist", params["pin_dir"])
    except FastpathError as e:
        raise FastpathError("%s Run deploy.yml, which sets a damaged file "
                            "aside." % e.msg)
    if ledger is None:
        return [], {}
    boot_now = _lists.boot_ns()
    owners = {}
    rows = []
    for index, family in enumerate((socket.AF_INET, socket.AF_INET6)):
        for tag, claims in ledger.families[index].items():
            name = ledger.names.get(tag, "%08x" % tag)
            live = [(k, 0) for k in claims.permanent] + [
                (k, exp) for k, exp in claims.expiring.items()
                if exp > boot_now]
            owners[name] = owners.get(name, 0) + len(live)
            if name in params["skip_owners"]:
                continue
            for key, expires in live:
                if targets and not any(
                        f == family and (_lists.covers(key, t)
                                         or _lists.covers(t, key))
                        for f, t in targets):
                    continue
                rows.append((expires, name, key))
    rows.sort(key=lambda r: (-(r[0] or 2 ** 64), r[1], r[2]))
    out = []
    for expires, name, key in rows[:params["max_list_entries"]]:
        left = (expires - boot_now + 10**9 - 1) // 10**9 if expires else None
        out.append(dict(
            source=_lists.key_text(key), reason="list", detail=name,
            since=None, packets=None, origin="blocklist",
            expires=reader.wall(reader.now_mono + (expires - boot_now))
            if expires else None, expires_in=left))
    return out, owners


def lift(module, reader, result):
    """Lift the bans the targets cover and pardon their sources."""
    p = module.params
    targets = parse_targets(p["lift"], "lift")
    pardon_s = _input.parse_ttl(p["pardon_time"], "pardon_time")
    if not (reader.has("bans_v2") and reader.has("pardons")):
        # A host of an older release: its lists are all there is to lift.
        module.warn("%s has no bans_v2 or pardons map: the program there "
                    "predates them, so no ban was lifted and no pardon "
                    "written; deploy this version to get them."
                    % p["pin_dir"])
        return
    limits = reader.limits()
    banned = [key for key in reader.ban_keys() if matches(key, targets)]
    sources = set(banned)
    for family, key in targets:
        source = _bans.source_of(family, key, limits)
        if source is not None:
            sources.add(source)
    pardoned = sorted(sources) if pardon_s else []
    already = set(reader.pardon_keys())
    result.update(lifted=sorted(_bans.source_text(k) for k in banned),
                  pardoned=[_bans.source_text(k) for k in pardoned])
    result["changed"] = bool(banned) or any(k not in already
                                            for k in pardoned)
    if module._diff and result["changed"]:
        result["diff"] = dict(
            before="".join("ban %s\n" % s for s in result["lifted"]),
            after="".join("pardon %s\n" % s for s in result["pardoned"]))
    if module.check_mode or not result["changed"]:
        return
    try:
        # The pardons first: a ban made in between would be lifted
        # anyway, and none is made after.
        _bans.pardon(p["pin_dir"], pardoned,
                     reader.now_mono + pardon_s * 10**9)
        _bans.lift(p["pin_dir"], banned)
    except OSError as e:
        raise FastpathError("Could not lift the bans under %s (%s): run as "
                            "root and run the task again." % (p["pin_dir"], e))


def run(module, result):
    p = module.params
    _pins.check_pin_dir(p["pin_dir"])
    if not os.path.lexists(os.path.join(p["pin_dir"], "stats")):
        raise FastpathError(_pins.NOTHING_PINNED % p["pin_dir"])
    if p["max_list_entries"] < 0:
        raise FastpathError("max_list_entries is %d: give 0 or more."
                            % p["max_list_entries"])
    targets = parse_targets([p["address"]] if p["address"] else [],
                            "address")
    reader = _bans.Reader(p["pin_dir"])
    try:
        if p["lift"]:
            lift(module, reader, result)
            reader = _bans.Reader(p["pin_dir"])
        bans = reader.bans(
            (lambda key: matches(key, targets)) if targets else None)
        pardons = reader.pardons()
    except OSError as e:
        raise FastpathError("Could not read the bans under %s (%s): run as "
                            "root, and check that bpffs is mounted."
                            % (p["pin_dir"], e))
    if p["lists"]:
        rows, owners = list_bans(p, reader, targets)
        bans += rows
        result["list_owners"] = owners
    result.update(bans=bans, pardons=pardons)


def main():
    module = build_module()
    result = dict(changed=False, lifted=[], pardoned=[])
    try:
        run(module, result)
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
