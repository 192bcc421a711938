#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bpf_map_entry
short_description: Manage the block and allow lists of the XDP program
version_added: 0.1.0
description:
  - Adds, removes or reconciles addresses and CIDRs in the program's
    pinned maps; IPv4 and IPv6 entries go to the right map of the pair
    (C(block_v4)/C(block_v6) or C(allow_v4)/C(allow_v6)). The blocklist's
    single addresses (/32, /128) go to the hashes C(block_v4_hosts) and
    C(block_v6_hosts), whose lookup costs the same at any size; its
    prefixes stay in the tries.
  - Single addresses that a host running 0.1.0 holds in its blocklist
    tries are moved to the hashes on the first run after the upgrade,
    each written to its hash before it leaves the trie. On a host whose
    program is older than the hashes, everything goes to the tries.
  - Entries have owners (O(source)). Several owners may list the same
    entry, which stays while any of them lists it, and each owner's O(ttl)
    counts for that owner only (the entry expires with the last claim).
    O(state=exact) makes the owner's entries equal to the list and never
    removes what another owner still lists.
  - Every owner's entries are kept in the list's saved file under
    O(state_dir) (or O(save_to)), written and synced to disk before the
    maps change; each run then makes the maps match that file, so a run
    that was stopped half way (even by C(kill -9)) is repaired by the next
    one, and the boot service of the P(vos.fastpath.fastpath#role) role
    restores the lists from it.
  - One run at a time changes a list; a second one waits for the first,
    up to O(lock_timeout).
  - Expired entries are removed at every run.
  - Reads and writes go straight to the C(bpf) system call in batches;
    a million entries take seconds.
  - Invalid input fails with the line or entry at fault and changes
    nothing; a failed write puts back exactly what was there.
author:
  - vos-fastpath contributors (@vos-fastpath)
options:
  map:
    description:
      - Which list.
    type: str
    choices: [blocklist, allowlist]
    required: true
  entries:
    description:
      - Addresses and CIDRs, IPv4 and IPv6 mixed.
    type: list
    elements: str
    default: []
  src:
    description:
      - Files on the target with one address or CIDR per line; C(#)
        starts a comment. Added to O(entries).
    type: list
    elements: path
    default: []
  content:
    description:
      - Lists as text, in the format of O(src), each under a name of your
        choosing that errors cite (for example the path of the file on the
        controller). Added to O(entries). Unlike O(src), nothing has to be
        copied to the target first.
    type: dict
    default: {}
  state:
    description:
      - V(present) adds the entries, V(absent) removes them (whoever owns
        them), V(exact) also removes every entry of the owner that is not
        listed.
    type: str
    choices: [present, absent, exact]
    default: present
  ttl:
    description:
      - Lifetime of this owner's added entries, in seconds or with a unit
        (V(90s), V(15m), V(1h), V(7d), V(2w), or combined as V(1h30m));
        V(0) means permanent, and at most 10 years. The program ignores an
        entry as soon as its last owner's claim expires; the next run
        removes it.
      - An entry the owner already lists keeps its expiry, unless the run
        switches it between permanent and expiring.
    type: raw
    default: 0
  source:
    description:
      - The owner of the entries (1 to 64 printable characters). The maps
        store its CRC-32 in each entry; the saved file keeps every owner's
        claims.
    type: str
    default: default
  protect:
    description:
      - Addresses and networks that must never be blocked. A blocklist
        entry that covers or lies inside one of them fails the task.
    type: list
    elements: str
    default: []
  on_protected:
    description:
      - What a blocklist entry that overlaps (covers or lies inside) a
        O(protect) network does. V(fail) fails the task and changes
        nothing. V(skip) leaves it out, with every entry that overlaps an
        allowlist entry, and reports each in RV(left_out). Skipping is for
        automatic writers such as feeds and the fleet exchange, where one
        bad entry must not stop the rest.
    type: str
    choices: [fail, skip]
    default: fail
  skip_pardoned:
    description:
      - Leave out, and report in RV(left_out), the blocklist entries that
        overlap a source an operator pardoned
        (M(vos.fastpath.xdp_bans) with O(vos.fastpath.xdp_bans#module:lift)).
    type: bool
    default: false
  renew:
    description:
      - Entries this owner already lists with an expiry get this run's
        expiry when it is later (see O(ttl)); they never get an earlier
        one. Counted in RV(renewed).
    type: bool
    default: false
  ttl_jitter:
    description:
      - Spread the expiries of this run's entries over O(ttl) to O(ttl)
        times (1 + O(ttl_jitter)), each entry by a fixed fraction drawn
        from its address, so that a large set added at once does not
        expire at once. A number from 0 to 1; needs a O(ttl).
    type: float
    default: 0
  min_prefix_v4:
    description:
      - The widest IPv4 prefix accepted for blocking or trusting. A wider
        one (for example V(0.0.0.0/0)) fails the task; set this lower to
        allow it on purpose. Removing (V(absent)) is always allowed.
    type: int
    default: 8
  min_prefix_v6:
    description:
      - The widest IPv6 prefix accepted, as O(min_prefix_v4) for IPv4.
    type: int
    default: 32
  lock_timeout:
    description:
      - Seconds to wait for another run that is changing the same list;
        then the task fails naming that run.
    type: int
    default: 60
  strict:
    description:
      - A CIDR with host bits set is an error; with V(false) it is
        normalised to its network.
    type: bool
    default: true
  save_to:
    description:
      - Keep the list's saved file here instead of under O(state_dir).
      - Writing the file counts as a change.
    type: path
  save:
    description:
      - No effect; every list is kept under O(state_dir) (or O(save_to)).
        Deprecated, to be removed in 0.2.0.
    type: bool
  state_dir:
    description:
      - The state directory of the P(vos.fastpath.fastpath#role) role
        (C(fastpath_state_dir)); the list is kept in
        C(lists/blocklist.list) or C(lists/allowlist.list) there. It must
        belong to root and be writable only by it (it is created so).
      - One state directory serves one O(pin_dir).
    type: path
    default: /var/lib/vos-fastpath
  restore:
    description:
      - Report RV(restored) (entries written into empty maps, as after a
        teardown or a lost pin directory) and RV(expired_while_down).
      - When the saved file is damaged, move it aside (as
        C(<file>.damaged-<time>)) with a warning and save the list the
        maps hold in its place, instead of failing. The role's deploy does
        this.
    type: bool
    default: false
extends_documentation_fragment:
  - vos.fastpath.maps
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
  diff_mode:
    description: Returns details on what changed.
    support: full
    details: The first 100 added and removed entries, with counts.
  platform:
    description: Linux hosts with an XDP-capable kernel.
    support: full
    platforms: linux
seealso:
  - module: vos.fastpath.xdp_attach
"""

EXAMPLES = r"""
- name: Block two scanners for a day
  vos.fastpath.bpf_map_entry:
    map: blocklist
    entries: [203.0.113.7, 2001:db8:bad::/48]
    ttl: 86400
    source: manual

- name: Make the feed's entries exactly those of a file
  vos.fastpath.bpf_map_entry:
    map: blocklist
    src: /etc/vos-fastpath/blocklist.txt
    state: exact
    source: feed
    protect: [192.0.2.10, 198.51.100.0/24]

- name: The same from a file on the controller, without copying it
  vos.fastpath.bpf_map_entry:
    map: blocklist
    content:
      feed.txt: "{{ lookup('ansible.builtin.file', 'feed.txt') }}"
    state: exact
    source: feed

- name: Trust the monitoring hosts
  vos.fastpath.bpf_map_entry:
    map: allowlist
    entries: [192.0.2.20, 192.0.2.21]
    source: monitoring

- name: Put the saved blocklist back into new, empty maps
  vos.fastpath.bpf_map_entry:
    map: blocklist
    restore: true
"""

RETURN = r"""
added:
  description: Entries written (new, renewed after expiry, or changed).
  returned: success
  type: int
  sample: 10000
removed:
  description: Entries deleted, expired ones included.
  returned: success
  type: int
  sample: 10000
moved:
  description: Single addresses moved from a blocklist trie to its hash
    (held in a trie by a release before the hashes).
  returned: success
  type: int
  sample: 0
expired_removed:
  description: The owner's claims dropped because they had expired.
  returned: success
  type: int
  sample: 3
unchanged:
  description: Listed entries that were already right.
  returned: success
  type: int
  sample: 990000
renewed:
  description: With O(renew), the owner's entries whose expiry moved
    later.
  returned: success
  type: int
  sample: 40
left_out:
  description: With O(on_protected=skip) or O(skip_pardoned), the entries
    left out (the first 100), each with why (V(protected), V(allowlisted),
    V(pardoned)) and the network it overlaps.
  returned: when O(on_protected=skip) or O(skip_pardoned)
  type: list
  elements: dict
  sample: [{entry: 198.51.100.0/24, reason: allowlisted,
            overlaps: 198.51.100.20/32}]
left_out_count:
  description: How many entries were left out.
  returned: when O(on_protected=skip) or O(skip_pardoned)
  type: int
  sample: 1
total:
  description: Entries in the list (both families) after the run.
  returned: success
  type: int
  sample: 1000000
saved:
  description: Whether the saved list was (or, in check mode, would be)
    written.
  returned: success
  type: bool
  sample: true
owners:
  description: Per owner, the claims this run added, removed, and dropped
    because they had expired.
  returned: success
  type: dict
  sample: {"feedA": {"added": 3, "removed": 1, "expired": 0}}
recovered:
  description: The previous run on this list had stopped between saving
    the list and changing the maps; this run made them match.
  returned: success
  type: bool
  sample: false
set_aside:
  description: With O(restore), where a damaged saved file was moved.
  returned: when the saved file was damaged
  type: str
  sample: /var/lib/vos-fastpath/lists/blocklist.list.damaged-20261201T120000
restored:
  description: With O(restore), the entries written into maps that were
    empty.
  returned: when restore is true
  type: int
  sample: 20000
expired_while_down:
  description: With O(restore), the saved entries whose TTL ran out before
    they could be put back.
  returned: when restore is true
  type: int
  sample: 0
"""

import io
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _defaults, _files, _input, _ledger, _list_guard, _lists, _lock,
    _pins, _snapshot, _trie_change)
from ansible_collections.vos.fastpath.plugins.module_utils._errors import (
    FastpathError)

DIFF_LIMIT = 100


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            map=dict(type="str", required=True,
                     choices=["blocklist", "allowlist"]),
            entries=dict(type="list", elements="str", default=[]),
            src=dict(type="list", elements="path", default=[]),
            content=dict(type="dict", default={}),
            state=dict(type="str", default="present",
                       choices=["present", "absent", "exact"]),
            ttl=dict(type="raw", default=0),
            source=dict(type="str", default="default"),
            protect=dict(type="list", elements="str", default=[]),
            on_protected=dict(type="str", default="fail",
                              choices=["fail", "skip"]),
            skip_pardoned=dict(type="bool", default=False),
            renew=dict(type="bool", default=False),
            ttl_jitter=dict(type="float", default=0.0),
            strict=dict(type="bool", default=True),
            min_prefix_v4=dict(type="int", default=_input.MIN_PREFIX_V4),
            min_prefix_v6=dict(type="int", default=_input.MIN_PREFIX_V6),
            pin_dir=dict(type="path", default=_abi.DEFAULT_PIN_DIR),
            save=dict(type="bool"),
            state_dir=dict(type="path", default=_defaults.STATE_DIR),
            save_to=dict(type="path"),
            restore=dict(type="bool", default=False),
            lock_timeout=dict(type="int", default=_lock.DEFAULT_TIMEOUT),
        ),
        mutually_exclusive=[("save", "save_to")],
        supports_check_mode=True,
    )


def saved_path(params):
    """The file the list is kept in."""
    if params["save_to"]:
        return params["save_to"]
    return _defaults.saved_list(params["state_dir"], params["map"])


def read_input(params):
    """The desired keys as (v4, v6) sets; raises FastpathError."""
    v4, v6 = _lists.parse_lines(params["entries"], params["strict"],
                                "entry %d")
    for path in params["src"]:
        f4, f6 = _lists.read_path(path, params["strict"])
        v4 |= f4
        v6 |= f6
    for name, text in sorted(params["content"].items()):
        if not isinstance(text, str):
            raise FastpathError(
                "content %s is not text: give each list as one string, "
                "for example lookup('file', path)." % name)
        f4, f6 = _lists.parse_file(io.StringIO(text), params["strict"],
                                   "line %%d of %s" % name)
        v4 |= f4
        v6 |= f6
    return v4, v6


def check_input(desired, params):
    """Refuse entries that would block (or trust) too much."""
    if params["state"] == "absent":
        return
    if params["ttl_jitter"] and not 0 < params["ttl_jitter"] <= 1:
        raise FastpathError("ttl_jitter is %s: give a number from 0 to 1"
                            % params["ttl_jitter"])
    if params["ttl_jitter"] and not _input.parse_ttl(params["ttl"]):
        raise FastpathError("ttl_jitter needs a ttl: permanent entries do "
                            "not expire")
    if params["map"] == "blocklist" and params["on_protected"] == "fail":
        check_protected(desired, params["protect"], params["strict"])
    for keys, option in ((desired[0], "min_prefix_v4"),
                         (desired[1], "min_prefix_v6")):
        short = _input.short_prefixes(keys, params[option])
        if short:
            raise FastpathError(_input.short_prefix_error(
                short[0], len(short), params[option], option))


def check_protected(desired, protect, strict):
    p4, p6 = _lists.parse_lines(protect, strict, "protect entry %d")
    hits = (_lists.protected_hits(desired[0], p4)
            + _lists.protected_hits(desired[1], p6))
    if hits:
        entry, guard = hits[0]
        raise FastpathError(
            "The blocklist entry %s would block the protected %s: remove it "
            "from the list (%d such entries)."
            % (_lists.key_text(entry), _lists.key_text(guard), len(hits)))


def skip_guarded(desired, params, result):
    """With on_protected: skip or skip_pardoned, take out of desired (in
    place) the blocklist entries a machine must not write; report them."""
    p = params
    if p["map"] != "blocklist" or p["state"] == "absent":
        return
    guards = []
    if p["on_protected"] == "skip":
        protect = _lists.parse_lines(p["protect"], p["strict"],
                                     "protect entry %d")
        guards += [(_list_guard.PROTECTED, list(protect)),
                   (_list_guard.ALLOWLISTED,
                    kernel_read("the allowlist", lambda: _list_guard.
                                allowlist_keys(p["pin_dir"])))]
    if p["skip_pardoned"]:
        guards.append((_list_guard.PARDONED, kernel_read(
            "the pardons",
            lambda: _list_guard.pardon_keys(p["pin_dir"]))))
    if not guards:
        return
    skipped = _list_guard.split(desired, guards)
    # Not "skipped": Ansible would take the task for skipped.
    result.update(left_out=_list_guard.report(skipped, DIFF_LIMIT),
                  left_out_count=len(skipped))


def diff_text(keys, limit=DIFF_LIMIT):
    shown = sorted(_lists.key_text(k) for k in keys[:limit])
    more = len(keys) - len(shown)
    return "".join(line + "\n" for line in shown) + (
        "... and %d more\n" % more if more else "")


def kernel_read(what, read):
    """read(), with a failed bpf() call as one sentence."""
    try:
        return read()
    except OSError as e:
        raise FastpathError("Could not read %s (%s): run as root, and check "
                            "that the program's maps are still pinned."
                            % (what, e))


def load_ledger(module, path, current, result):
    """The saved ledger; a list saved nowhere yet starts from what the
    maps hold. With restore, a damaged file is set aside (and the maps'
    entries saved anew) instead of failing the run."""
    p = module.params
    try:
        ledger = _snapshot.load(path, p["map"], p["pin_dir"])
    except _snapshot.Damaged as e:
        if not p["restore"]:
            raise FastpathError(
                "%s Nothing was changed: run deploy.yml (or this module with "
                "restore: true), which sets it aside and saves the list the "
                "maps hold, or put back a good copy." % e.msg)
        if module.check_mode:
            module.warn("%s It would be set aside, and the list the maps "
                        "hold saved in its place." % e.msg)
        else:
            aside = _snapshot.set_aside(path)
            module.warn("%s It was moved to %s, and the list the maps hold "
                        "now is saved in its place." % (e.msg, aside))
            result["set_aside"] = aside
        ledger = None
    if ledger is not None:
        return ledger, False
    ledger = _ledger.Ledger()
    for family, entries in enumerate(current):
        ledger.add_rows(family, b"".join(entries.key_list), entries.values,
                        entries.ksize)
    return ledger, True


def owner_report(names, counts, expired):
    """{owner: {added, removed, expired}} of every owner this run changed;
    names maps tags to owners, those that held claims before included."""
    report = {}
    for tag in set(counts) | set(expired):
        name = names.get(tag, "%08x" % tag)
        added, removed = counts.get(tag, (0, 0))
        report[name] = dict(added=added, removed=removed,
                            expired=expired.get(tag, 0))
    return report


def apply(tries, plans):
    """Write every plan; on a failure put back exactly what this run did.
    Returns (None, []) when all went in, else (the trie that failed and
    why, the failures of the undo: empty when all was put back)."""
    for index, (trie, plan) in enumerate(zip(tries, plans)):
        try:
            _trie_change.apply_plan(trie, plan)
        except _trie_change.ApplyError as e:
            failed = _trie_change.undo(trie, plan, e.done)
            for earlier, done_plan in zip(tries[:index], plans[:index]):
                done = _trie_change.Done()
                done.written = len(done_plan.write_keys)
                done.deleted = done_plan.delete
                failed += _trie_change.undo(earlier, done_plan, done)
            return "%s (%s)" % (trie.name, e.strerror or e), failed
    return None, []


def move_exact(tries, plans):
    """Move the exact addresses that an earlier release wrote into a trie
    to their hash; None, or which map failed and why. A failed move loses
    nothing: each address is in one map or both, and the next run moves
    what is left."""
    for trie, plan in zip(tries, plans):
        try:
            trie.move_misplaced(plan)
        except OSError as e:
            return "moving exact addresses out of %s (%s)" % (
                trie.name, e.strerror or e)
    return None


def change(module, tries, result):
    p = module.params
    path = saved_path(p)
    reader = _lists.Reader(tries)
    reader.start()
    try:
        desired = list(read_input(p))
        skip_guarded(desired, p, result)
        check_input(desired, p)
    except FastpathError as e:
        reader.join()
        raise FastpathError("%s. Nothing was changed." % e.msg.rstrip("."))
    current = kernel_read("the %s maps" % p["map"], reader.result)
    check_state_dirs(p, path)
    interrupted = os.path.exists(path + ".applying")
    ledger, fresh = load_ledger(module, path, current, result)
    old_names = dict(ledger.names)

    now = _lists.boot_ns()
    tag = _lists.source_tag(p["source"])
    ttl = _input.parse_ttl(p["ttl"])
    expires = now + ttl * 10**9 if ttl else 0
    jitter = int(ttl * 10**9 * p["ttl_jitter"])
    managed = ledger.tags() | {tag}
    expired = ledger.drop_expired(now)
    renewed = _ledger.renew(ledger, tag, desired, expires, jitter) \
        if p["renew"] and expires and p["state"] != "absent" else 0
    counts, unchanged = _ledger.change(ledger, tag, desired, p["state"],
                                       expires, jitter)
    if tag in ledger.tags():
        ledger.names[tag] = p["source"]
    remove = desired if p["state"] == "absent" else (set(), set())
    plans = [_trie_change.plan_target(current[i], ledger.target(i),
                                      managed, remove[i]) for i in (0, 1)]
    for trie, plan in zip(tries, plans):
        trie.fit(plan)

    added = sum(len(plan.write_keys) for plan in plans)
    removed = sum(len(plan.delete) for plan in plans)
    moved = sum(len(trie.to_move(plan)) for trie, plan in zip(tries, plans))
    dirty = bool(fresh or counts or expired or ledger.names != old_names
                 or interrupted or renewed)
    result.update(
        changed=bool(added or removed or dirty or moved),
        added=added, removed=removed, moved=moved,
        expired_removed=expired.get(tag, 0),
        unchanged=unchanged - renewed, renewed=renewed,
        total=sum(plan.size_after(len(have))
                  for plan, have in zip(plans, current)),
        owners=owner_report({**old_names, **ledger.names}, counts,
                            expired),
        saved=dirty, recovered=interrupted)
    if p["restore"]:
        result["restored"] = sum(len(plan.write_keys)
                                 for plan, have in zip(plans, current)
                                 if not len(have))
        result["expired_while_down"] = sum(expired.values()) if not any(
            len(have) for have in current) else 0
    if interrupted:
        module.warn("The previous change of the %s was interrupted; this "
                    "run made the maps match the saved list again."
                    % p["map"])
    if module._diff:
        owners = "".join("%s: +%d -%d\n" % (name, c["added"], c["removed"])
                         for name, c in sorted(result["owners"].items()))
        added_keys = [k for plan in plans for k in plan.write_keys]
        removed_keys = [k for plan in plans for k in plan.delete]
        result["diff"] = dict(
            before="removed: %d\n%s" % (removed, diff_text(removed_keys)),
            after="added: %d\n%s%s" % (added, diff_text(added_keys), owners),
            before_header="%s (%s)" % (p["map"], p["source"]),
            after_header="%s (%s)" % (p["map"], p["source"]))
    if module.check_mode or not result["changed"]:
        return
    # What the plans were made from is not needed to apply them: a list
    # of a million entries frees its largest sets before the file is
    # written.
    del current, desired, remove, reader
    commit(module, tries, plans, ledger, path, dirty)


def state_dirs(params, path):
    """The directories the saved file lives in, outermost first."""
    if params["save_to"]:
        return [os.path.dirname(path)]
    return [params["state_dir"], os.path.dirname(path)]


def check_state_dirs(params, path):
    """Refuse a state directory another user could write, before anything
    is read from it (commit() creates missing ones)."""
    for directory in state_dirs(params, path):
        if os.path.lexists(directory):
            _pins.check_private_dir(directory, _pins.STATE_DIR)


def commit(module, tries, plans, ledger, path, dirty):
    """Save the ledger, then make the maps match it. A marker next to the
    file tells the next run when this one stopped in between."""
    p = module.params
    marker = path + ".applying"
    old_file = _snapshot.read_bytes(path)
    nothing = dict(changed=False, saved=False)
    for directory in state_dirs(p, path):
        try:
            _pins.make_private_dir(directory, _pins.STATE_DIR)
        except FastpathError as e:
            raise FastpathError(e.msg, **nothing)
    try:
        _files.remove_stale_temps(path)
        _files.write_atomically(marker, b"")
        if dirty:
            _snapshot.save(path, _snapshot.render_parts(
                p["map"], p["pin_dir"], ledger))
    except (IOError, OSError) as e:
        raise FastpathError("Saving the %s to %s failed (%s): nothing was "
                            "changed; fix the path or free space."
                            % (p["map"], path, e.strerror or e), **nothing)
    failure, undo_failed = apply(tries, plans)
    if failure and undo_failed:
        raise FastpathError(
            "Writing %s failed, and %d changes could not be put back (first: "
            "%s): run the same task again; it makes the maps match the saved "
            "list." % (failure, len(undo_failed), undo_failed[0]),
            undo_failed=undo_failed[:DIFF_LIMIT])
    if failure:
        if old_file is None:
            _files.remove(path)
        else:
            _snapshot.save(path, old_file)
    _files.remove(marker)
    if failure:
        raise FastpathError("Writing %s failed; the maps and the saved list "
                            "are as they were before this run." % failure)
    unmoved = move_exact(tries, plans)
    if unmoved:
        module.warn("The list is in place, but %s failed: the program still "
                    "finds those addresses in the trie, and the next run "
                    "moves them." % unmoved)


def main():
    module = build_module()
    p = module.params
    result = dict(changed=False, saved=False)
    try:
        _input.check_owner(p["source"])
        _input.parse_ttl(p["ttl"])
        if p["save"] is not None:
            module.deprecate("save has no effect: every list is kept under "
                             "state_dir (or save_to); remove it.",
                             version="0.2.0", collection_name="vos.fastpath")
        key = _lock.list_key(p["pin_dir"], p["map"])
        with _lock.hold(key, p["lock_timeout"], "%s %s of the %s by owner "
                        "%s" % (module._name, p["state"], p["map"],
                                p["source"])):
            tries = _pins.open_list_maps(p["pin_dir"], p["map"])
            try:
                change(module, tries, result)
            finally:
                for trie in tries:
                    trie.close()
    except FastpathError as e:
        module.fail_json(**dict(result, **e.fail_args()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
