# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""One xdp_attach task from start to end: read, plan, apply, report.

Private to this collection. Shared by the xdp_attach module and the boot
service (vos-fastpath-boot), which runs the same steps without Ansible.
`module` is anything with AnsibleModule's params, check_mode, _diff,
warn(), run_command() and get_bin_path().

The data flows through here once, in this order, under the interface's
lock (_lock), so that two runs never change one interface at once:
  _limits             the limits and scanner signatures asked for, checked
  _host.Host          the kernel boundary (ip, bpftool, bpf(), pins)
  _current.read_current   what is there now
  _tag_cache, _elf    the tag of the object's last load, its maps
  _plan.plan_present  what has to change (pure; check mode stops here)
  _apply.apply_present    the changes, with undo
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING

from . import (
    _abi,
    _apply,
    _current,
    _elf,
    _facts,
    _limits,
    _lock,
    _plan,
    _tag_cache,
)
from ._errors import FastpathError

if TYPE_CHECKING:
    from . import _host

# xdp_attach's lock_timeout when a task (or boot.json) leaves it out.
LOCK_TIMEOUT = _lock.DEFAULT_TIMEOUT

MOVED_TO_LINK = (
    "%s was moved from a netlink attachment to a BPF link: the kernel "
    "refuses a link while a netlink program is attached, so the program was "
    "detached and the link created right after, and packets that arrived in "
    "between (milliseconds) were not filtered. From now on `ip link set dev "
    "%s xdp off` and other loaders cannot remove it.")
GENERIC_UNDER_AUTO = (
    "%s runs the program in generic XDP mode (%s): the verdicts are the "
    "same, but each packet costs more. Remove the cause and set mode "
    "native, or require native mode (fastpath_require_native) to refuse "
    "generic.")


def check_pin_dir(host: _host.Host, pin_dir: str) -> None:
    if host.bpffs_mount(pin_dir) is None:
        raise FastpathError(_facts.NOT_ON_BPFFS % pin_dir)
    if not host.exists(os.path.dirname(pin_dir.rstrip("/"))):
        raise FastpathError(
            "The parent of pin_dir %s does not exist: create it first."
            % pin_dir)


def state_view(tag: str | None, mode: str | None, ports: list[int] | None,
               flags: int | None, method: str | None = None,
               limits: bytes | None = None,
               signatures: list[bytes] | None = None) -> dict:
    """What diff shows of the program and its maps (None: no such map)."""
    return dict(tag=tag, mode=mode, attach_method=method, sip_ports=ports,
                settings=(_plan.flags_to_settings(flags)
                          if flags is not None else None),
                limits=(_limits.limits_view(limits)
                        if limits is not None else None),
                scanner_signatures=(_limits.signatures_view(signatures)
                                    if signatures is not None else None))


def run(module, host: _host.Host, result: dict) -> None:
    """The whole task, filling result as it goes (a failure's result
    keeps what was known). Raises FastpathError."""
    p = module.params
    ifname = p["interface"]
    result.update(changed=False, interface=ifname, pin_dir=p["pin_dir"],
                  prog_pin=os.path.join(p["pin_dir"],
                                        _abi.prog_pin_name(ifname)),
                  link_pin=os.path.join(p["pin_dir"],
                                        _abi.link_pin_name(ifname)))
    try:
        with _lock.hold(_lock.interface_key(ifname), p["lock_timeout"],
                        "xdp_attach state=%s on %s" % (p["state"], ifname)):
            if p["state"] == "present":
                present(module, host, result)
            else:
                absent(module, host, result)
    except OSError as e:
        raise FastpathError("A bpf() call or bpffs path failed (%s): run as "
                            "root and check that bpffs is mounted." % e)


def present(module, host: _host.Host, result: dict) -> None:
    p = module.params
    ifname, pin_dir, program = p["interface"], p["pin_dir"], p["program"]
    if not os.path.isfile(p["object"]):
        raise FastpathError(
            "The object %s does not exist on this host: build it with "
            "'make' and copy it here first." % p["object"])
    ports = _plan.normalize_ports(p["sip_ports"])
    limits = _limits.limits_value(p.get("limits"))
    signatures = _limits.signature_slots(p.get("scanner_signatures"))
    check_pin_dir(host, pin_dir)
    cur = _current.read_current(host, ifname, pin_dir, program)

    cache = _tag_cache.TagCache()
    key = _tag_cache.cache_key(p["object"], host.tool("bpftool"))
    cached_tag = cache.lookup(key)
    object_maps = _elf.map_names(p["object"])
    plan = _plan.plan_present(cur, ifname, p["mode"], program, p["force"],
                              ports, p["settings"], cached_tag, object_maps,
                              limits, signatures,
                              p["move_to_link"])
    for warning in plan.warnings:
        module.warn(warning)
    unchanged = plan.action == _plan.NONE
    result.update(
        changed=plan.changed,
        action=_plan.REPLACE if plan.action == _plan.VERIFY
        else plan.action,
        mode="native" if plan.target_mode == "auto" else plan.target_mode,
        mode_reason=plan.mode_reason,
        detached_for_mode_change=plan.action == _plan.MODE_CHANGE,
        prog_id=cur.prog["id"] if unchanged else None,
        tag=cur.prog["tag"] if unchanged else cached_tag,
        replaced=None if unchanged or not cur.prog
        or plan.action == _plan.RELINK else cur.summary(),
        attach_method=cur.method if unchanged else plan.method,
        link_id=cur.link["id"] if unchanged and cur.link else None,
        moved_to_link=plan.relink and plan.action != _plan.NONE,
        maps=dict((name, os.path.join(pin_dir, name))
                  for name in object_maps),
        reused_maps=sorted((set(cur.pins) | set(cur.adopt))
                           & set(object_maps)),
        created_maps=sorted(set(object_maps) - set(cur.pins)
                            - set(cur.adopt)) if plan.needs_load else [],
        sip_ports=ports, settings=_plan.flags_to_settings(plan.flags),
        limits=_limits.limits_view(plan.limits),
        scanner_signatures=_limits.signatures_view(plan.signatures),
        scanner_hits_reset=plan.reset_hits)

    if plan.changed and not module.check_mode:
        def record_tag(tag: str) -> None:
            try:
                cache.record(key, tag)
            except (IOError, OSError) as e:
                module.warn("Could not remember the program tag in %s (%s): "
                            "the next run loads the object again."
                            % (cache.path, e))

        out = _apply.apply_present(host, cur, plan, ifname, pin_dir,
                                   p["object"], program, record_tag)
        prog, link, _ifindex = _current.read_attachment(host, ifname)
        now = prog or {}
        result.update(
            changed=out.action != _plan.NONE or plan.maps_changed,
            action=out.action, mode_reason=out.mode_reason,
            detached_for_mode_change=out.detached_for_mode_change,
            moved_to_link=out.moved_to_link,
            mode=now.get("mode"), prog_id=now.get("id"), tag=now.get("tag"),
            attach_method=_facts.attach_method(link, prog),
            link_id=link["id"] if link else None,
            created_maps=out.created_maps,
            replaced=None if out.action in (_plan.NONE, _plan.RELINK)
            else cur.summary())
        if out.moved_to_link:
            module.warn(MOVED_TO_LINK % (ifname, ifname))
    elif cur.prog and plan.action == _plan.NONE:
        result["mode"] = cur.prog["mode"]
    if p["mode"] == "auto" and result["mode"] == "generic":
        module.warn(GENERIC_UNDER_AUTO % (ifname, result["mode_reason"]))
    if module._diff:
        result["diff"] = dict(
            before=state_view(cur.prog and cur.prog["tag"],
                              cur.prog and cur.prog["mode"], cur.ports,
                              cur.flags, cur.method, cur.limits,
                              cur.signatures),
            after=state_view(result["tag"], result["mode"], ports,
                             plan.flags, result["attach_method"],
                             plan.limits if plan.has_limits else None,
                             plan.signatures if plan.has_signatures
                             else None),
            before_header=ifname, after_header=ifname)


def absent(module, host: _host.Host, result: dict) -> None:
    p = module.params
    ifname, pin_dir, program = p["interface"], p["pin_dir"], p["program"]
    cur = _current.read_current(host, ifname, pin_dir, program)
    detaching = cur.prog and (cur.ours or p["force"])
    users = {}
    if not p["keep_maps"] and cur.pins:
        users = host.attached_map_ids(ifname if detaching else None)
    entries = host.listdir(pin_dir) if cur.pin_dir_exists else []
    plan = _plan.plan_absent(cur, ifname, pin_dir, program, p["force"],
                             p["keep_maps"], users, entries)
    for warning in plan.warnings:
        module.warn(warning)
    result.update(
        changed=plan.changed,
        action="detach" if plan.detach else "none",
        mode=cur.prog and cur.prog["mode"] if not plan.detach else None,
        attach_method=None if plan.detach else cur.method,
        detached=plan.detach, removed_maps=sorted(plan.remove_maps))
    if module._diff:
        result["diff"] = dict(
            before=state_view(cur.prog and cur.prog["tag"],
                              cur.prog and cur.prog["mode"], cur.ports,
                              cur.flags, cur.method, cur.limits,
                              cur.signatures),
            after=state_view(None if plan.detach else
                             cur.prog and cur.prog["tag"],
                             result["mode"],
                             None if plan.remove_maps else cur.ports,
                             None if plan.remove_maps else cur.flags,
                             result["attach_method"],
                             None if plan.remove_maps else cur.limits,
                             None if plan.remove_maps else cur.signatures),
            before_header=ifname, after_header=ifname)
    if plan.changed and not module.check_mode:
        for warning in _apply.apply_absent(host, cur, plan, ifname, pin_dir):
            module.warn(warning)
