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
    pinned LPM tries; IPv4 and IPv6 entries go to the right map of the
    pair (C(block_v4)/C(block_v6) or C(allow_v4)/C(allow_v6)).
  - Entries carry an owner (O(source)); O(state=exact) makes the owner's
    entries equal to the list and leaves other owners' entries alone.
  - Expired entries of the owner are removed at every run.
  - Reads and writes go straight to the C(bpf) system call in batches;
    a million entries take seconds.
  - Invalid input fails with the line or entry at fault and changes
    nothing; a failed write puts back what was there.
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
      - Lifetime of added entries in seconds; V(0) means permanent. The
        program ignores an entry as soon as it expires; the next run
        removes it.
      - An entry that exists and is live keeps its expiry.
    type: int
    default: 0
  source:
    description:
      - The owner of the entries, stored as its CRC-32 in each entry.
    type: str
    default: default
  protect:
    description:
      - Addresses and networks that must never be blocked. A blocklist
        entry that covers or lies inside one of them fails the task.
    type: list
    elements: str
    default: []
  strict:
    description:
      - A CIDR with host bits set is an error; with V(false) it is
        normalised to its network.
    type: bool
    default: true
  save_to:
    description:
      - Keep the whole list (every owner, both families) in this file on
        the target, rewritten whenever the list changes or the file
        differs from the maps. The boot service of the
        P(vos.fastpath.fastpath#role) role restores the lists from it after
        a reboot.
      - Writing the file counts as a change.
    type: path
  save:
    description:
      - Keep the list as O(save_to) does, in the file of this list under
        O(state_dir) (C(lists/blocklist.list) or C(lists/allowlist.list)),
        where the boot service of the P(vos.fastpath.fastpath#role) role
        looks for it.
    type: bool
    default: false
  state_dir:
    description:
      - The state directory of the P(vos.fastpath.fastpath#role) role
        (C(fastpath_state_dir)), used by O(save) and O(restore).
    type: path
    default: /var/lib/vos-fastpath
  restore:
    description:
      - Before anything else, put the saved list (O(save) or O(save_to))
        back into the maps when both of them are empty, as after a
        teardown or a lost pin directory. Maps that hold entries are left
        as they are.
      - Restoring counts as a change; RV(restored) says how many entries.
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

- name: Trust the monitoring hosts, keeping the list for the boot service
  vos.fastpath.bpf_map_entry:
    map: allowlist
    entries: [192.0.2.20, 192.0.2.21]
    source: monitoring
    save: true

- name: Put the saved blocklist back into new, empty maps
  vos.fastpath.bpf_map_entry:
    map: blocklist
    save: true
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
expired_removed:
  description: Of RV(removed), the owner's expired entries.
  returned: success
  type: int
  sample: 3
unchanged:
  description: Listed entries that were already right.
  returned: success
  type: int
  sample: 990000
total:
  description: Entries in the list (both families) after the run.
  returned: success
  type: int
  sample: 1000000
saved:
  description: Whether the saved list (O(save) or O(save_to)) was (or, in
    check mode, would be) written.
  returned: success
  type: bool
  sample: true
restored:
  description: With O(restore), the entries put back from the saved list.
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _defaults, _lists, _snapshot)
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
            ttl=dict(type="int", default=0),
            source=dict(type="str", default="default"),
            protect=dict(type="list", elements="str", default=[]),
            strict=dict(type="bool", default=True),
            pin_dir=dict(type="path", default=_abi.DEFAULT_PIN_DIR),
            save=dict(type="bool", default=False),
            state_dir=dict(type="path", default=_defaults.STATE_DIR),
            save_to=dict(type="path"),
            restore=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("save", "save_to")],
        supports_check_mode=True,
    )


def saved_path(params):
    """The file the list is kept in, or None."""
    if params["save_to"]:
        return params["save_to"]
    if params["save"]:
        return _defaults.saved_list(params["state_dir"], params["map"])
    return None


def read_input(params):
    """The desired keys as (v4, v6) sets; raises FastpathError."""
    v4, v6 = _lists.parse_lines(params["entries"], params["strict"],
                                "entry %d")
    for path in params["src"]:
        try:
            # Read in blocks: a million lines are never held as a list.
            with open(path) as f:
                f4, f6 = _lists.parse_file(
                    f, params["strict"], "line %%d of %s" % path)
        except (IOError, OSError) as e:
            raise FastpathError("Could not read %s: %s"
                                % (path, e.strerror))
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


def diff_text(keys, limit=DIFF_LIMIT):
    shown = sorted(_lists.key_text(k) for k in keys[:limit])
    more = len(keys) - len(shown)
    return "".join(line + "\n" for line in shown) + (
        "... and %d more\n" % more if more else "")


def open_tries(params):
    try:
        return _lists.open_pair(params["pin_dir"], params["map"])
    except OSError as e:
        raise FastpathError("Could not open the %s maps under %s (%s): run "
                            "as root, and check that bpffs is mounted."
                            % (params["map"], params["pin_dir"], e))


def kernel_read(what, read):
    """read(), with a failed bpf() call as one sentence."""
    try:
        return read()
    except OSError as e:
        raise FastpathError("Could not read %s (%s): run as root, and check "
                            "that the program's maps are still pinned."
                            % (what, e))


def restore(module, tries, path, result):
    """Put the saved list back into maps that are empty (new maps after a
    teardown or a lost pin directory)."""
    try:
        report = _snapshot.restore_list(tries, path,
                                        write=not module.check_mode)
    except OSError as e:
        raise FastpathError("Could not restore %s into the %s maps (%s): "
                            "run as root, and check that the program's maps "
                            "are still pinned."
                            % (path, module.params["map"], e))
    result.update(restored=report["restored"] if report else 0,
                  expired_while_down=report["expired"] if report else 0)
    if result["restored"]:
        result["changed"] = True


def apply(tries, plans, value):
    """Write every plan; on a failure put back what this run changed."""
    done = []
    for trie, plan in zip(tries, plans):
        try:
            _lists.apply_plan(trie, plan, value)
        except OSError as e:
            undo_failed = []
            for undo in done:
                try:
                    _lists.undo_plan(*undo)
                except OSError as undo_error:
                    undo_failed.append("%s (%s)" % (undo[0].name, undo_error))
            if undo_failed:
                raise FastpathError(
                    "Writing %s failed (%s), and putting back what this run "
                    "had changed failed too for %s: run the same task again "
                    "to converge." % (trie.name, e, ", ".join(undo_failed)),
                    undo_failed=undo_failed)
            raise FastpathError("Writing %s failed (%s); everything this run "
                                "had changed was put back." % (trie.name, e))
        done.append((trie, plan))


def save(module, tries, tries_raw, path, result):
    """Keep the list in path when the maps hold other entries than the
    file; tries_raw is what the maps hold now."""
    if not _snapshot.differs(path, tries_raw):
        return
    result.update(saved=True, changed=True)
    if module.check_mode:
        return
    try:
        _snapshot.save(path, module.params["map"], tries, tries_raw)
    except (IOError, OSError) as e:
        raise FastpathError(
            "The list was applied, but saving it to %s failed (%s): fix the "
            "path, or a reboot will restore an older list." % (path, e))


def change(module, tries, result):
    p = module.params
    path = saved_path(p)
    if p["restore"] and not path:
        raise FastpathError("restore needs the saved list: set save: true "
                            "(or save_to).")
    if p["restore"]:
        restore(module, tries, path, result)
    reader = _lists.Reader(tries)
    reader.start()
    try:
        desired = read_input(p)
        if p["map"] == "blocklist" and p["state"] != "absent":
            check_protected(desired, p["protect"], p["strict"])
    except FastpathError as e:
        reader.join()
        raise FastpathError("%s. Nothing was changed." % e.msg.rstrip("."))
    current = kernel_read("the %s maps" % p["map"], reader.result)

    now = _lists.boot_ns()
    tag = _lists.source_tag(p["source"])
    expires = now + p["ttl"] * 10**9 if p["ttl"] else 0
    plans = [_lists.plan_family(current[i], desired[i], p["state"], tag,
                                expires, now) for i in (0, 1)]

    sizes = [len(have) - len(plan.delete) + len(plan.write)
             - sum(1 for k in plan.write if k in plan.old)
             for plan, have in zip(plans, current)]
    for trie, size in zip(tries, sizes):
        if size > trie.max_entries:
            raise FastpathError(
                "%s would hold %d entries, more than its %d: shorten the "
                "list or aggregate it into wider prefixes. Nothing was "
                "changed." % (trie.name, size, trie.max_entries))

    added = [k for plan in plans for k in plan.write]
    removed = [k for plan in plans for k in plan.delete]
    result.update(
        changed=bool(added or removed) or result["changed"],
        added=len(added), removed=len(removed),
        expired_removed=sum(plan.expired for plan in plans),
        unchanged=sum(plan.unchanged for plan in plans),
        total=sum(sizes))
    if module._diff:
        result["diff"] = dict(
            before="removed: %d\n%s" % (len(removed), diff_text(removed)),
            after="added: %d\n%s" % (len(added), diff_text(added)),
            before_header="%s (%s)" % (p["map"], p["source"]),
            after_header="%s (%s)" % (p["map"], p["source"]))

    wrote = bool(added or removed)
    if wrote and not module.check_mode:
        apply(tries, plans, _abi.ENTRY.pack(expires, tag, 0))
    if path and result["changed"] and module.check_mode:
        result["saved"] = True      # the maps would change, so would it
    elif path:
        tries_raw = reader.raw
        if wrote:
            tries_raw = kernel_read("the %s maps" % p["map"], lambda: [
                t.lookup_batch(chunk=65536) for t in tries])
        save(module, tries, tries_raw, path, result)


def main():
    module = build_module()
    p = module.params
    result = dict(changed=False, saved=False)
    try:
        if p["ttl"] < 0:
            raise FastpathError("ttl must be 0 (permanent) or a number of "
                                "seconds, not %d." % p["ttl"])
        tries = open_tries(p)
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
