# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""What xdp_attach has to change, decided before anything changes.

Private to this collection. Pure: no I/O. plan_present() and
plan_absent() take what _current read and return the steps that _apply
carries out; check mode stops after them.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import TYPE_CHECKING

from . import _abi, _limits
from ._errors import FastpathError

if TYPE_CHECKING:
    from . import _current

NONE, INSTALL, VERIFY, REPLACE, MODE_CHANGE, RELINK = (
    "none", "install", "verify", "replace", "mode_change", "relink")

LINK, NETLINK = "link", "netlink"

# How REPLACE (and VERIFY, RELINK) swaps the program in place for another:
# LINK_UPDATE: the link's program, in one step (BPF_LINK_UPDATE, checked);
# NETLINK_REPLACE: `ip -force`, in one step (kernels without links);
# MOVE: a netlink attachment for a link: detach, then link at once (the
#   kernel refuses a link while a netlink program is attached);
# DETACH_FIRST: another tool's link: detach it, then attach ours.
LINK_UPDATE, NETLINK_REPLACE, MOVE, DETACH_FIRST = (
    "link_update", "netlink_replace", "move", "detach_first")

NO_MAP = ("The object has no %s map (it was built before rate limits and "
          "scanner signatures): the %s given take effect once an object "
          "that has it is attached.")

KNOWN_FLAGS = (_abi.FP_BLOCK_ALL_PORTS | _abi.FP_STEALTH_OFF
               | _abi.FP_MALFORMED_PASS | _abi.FP_SHADOW)


def settings_to_flags(settings: dict, current: int = 0) -> int:
    """fp_settings.flags for the module's settings; bits this collection
    does not know are kept as they are."""
    flags = current & ~KNOWN_FLAGS
    if settings["block_all_ports"]:
        flags |= _abi.FP_BLOCK_ALL_PORTS
    if not settings["stealth"]:
        flags |= _abi.FP_STEALTH_OFF
    if settings["malformed"] == "pass":
        flags |= _abi.FP_MALFORMED_PASS
    if settings["shadow"]:
        flags |= _abi.FP_SHADOW
    return flags


def flags_to_settings(flags: int) -> dict:
    return {
        "block_all_ports": bool(flags & _abi.FP_BLOCK_ALL_PORTS),
        "stealth": not flags & _abi.FP_STEALTH_OFF,
        "malformed": "pass" if flags & _abi.FP_MALFORMED_PASS else "drop",
        "shadow": bool(flags & _abi.FP_SHADOW),
    }


def normalize_ports(ports: list[int]) -> list[int]:
    """Sorted unique ports; raise FastpathError on one out of range."""
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad:
        raise FastpathError("sip_ports must hold ports from 1 to 65535, not "
                            "%s: fix the task's sip_ports." % bad[0])
    return sorted(set(ports))


class Plan:
    """The steps for state=present, decided before any change."""

    def __init__(self) -> None:
        # NONE, INSTALL, VERIFY, REPLACE, MODE_CHANGE or RELINK (the same
        # program, moved from a netlink attachment to a link).
        self.action = NONE
        self.method = NETLINK     # LINK where the kernel has XDP links
        self.swap: str | None = None  # how REPLACE, VERIFY, RELINK swap
        self.relink = False       # a netlink attachment becomes a link
        self.object_maps: list[str] = []  # maps the object declares
        self.target_mode: str | None = None  # native, generic or auto
        self.mode_reason: str | None = None
        self.adopt: dict[str, int] = {}
        self.keep_program = False  # MODE_CHANGE, RELINK: no new program
        self.repin_prog = False
        self.repin_link = False   # pin the link in place as ours
        self.ports_add: list[int] = []
        self.ports_clear: list[int] = []
        self.flags = 0
        self.write_flags = False
        self.limits = _limits.ZERO_LIMITS  # the `limits` value asked for
        self.has_limits = False   # the maps will be there to hold them
        self.has_signatures = False
        self.write_limits = False
        # Every slot of `scanner_sigs` asked for, and those that change.
        self.signatures = list(_limits.NO_SIGNATURES)
        self.signature_writes: dict[int, bytes] = {}
        self.reset_hits: list[int] = []  # scanner_hits slots to zero
        self.make_pin_dir = False
        self.warnings: list[str] = []

    @property
    def maps_changed(self) -> bool:
        """Something changes besides the program itself."""
        return (bool(self.adopt) or self.repin_prog or self.repin_link
                or self.write_flags or self.write_limits
                or bool(self.signature_writes)
                or bool(self.ports_add or self.ports_clear)
                or self.make_pin_dir)

    @property
    def needs_load(self) -> bool:
        return self.action != NONE and not self.keep_program

    @property
    def changed(self) -> bool:
        """VERIFY counts: only a load tells whether the tags differ."""
        return self.action != NONE or self.maps_changed


def foreign_error(ifname: str, prog: dict, program: str,
                  method: str | None = None) -> FastpathError:
    return FastpathError(
        "%s has the XDP program %s (id %s, %s mode%s) attached, which is "
        "not vos.fastpath's %s: detach it, or set force: true to replace it."
        % (ifname, prog["name"] or "(no name)", prog["id"], prog["mode"],
           ", through a BPF link" if method == LINK else "", program))


def swap_for(cur: _current.Current, method: str) -> str:
    """How the program in place gives way to ours in the same mode."""
    if cur.method == LINK:
        return LINK_UPDATE if cur.ours else DETACH_FIRST
    return MOVE if method == LINK else NETLINK_REPLACE


def plan_present(cur: _current.Current, ifname: str, mode: str,
                 program: str, force: bool, ports: list[int], settings: dict,
                 cached_tag: str | None, object_maps: list[str],
                 limits: bytes = _limits.ZERO_LIMITS,
                 signatures: list[bytes] | None = None,
                 move_to_link: bool = False) -> Plan:
    """cur: _current.Current; object_maps: the names of the maps the
    object declares; limits and signatures: the `limits` value and the
    `scanner_sigs` slots asked for (_limits), none by default;
    move_to_link: move our netlink attachment to a link, which the kernel
    can only do with a detach (else it is replaced through netlink, in one
    step)."""
    if cur.bad_pins:
        raise FastpathError(" ".join(msg for _name, msg in
                                     sorted(cur.bad_pins.items())))
    plan = Plan()
    plan.object_maps = sorted(object_maps)
    prog = cur.prog
    if prog and not cur.ours and not force:
        raise foreign_error(ifname, prog, program, cur.method)
    plan.method = LINK if cur.links_supported else NETLINK
    if cur.ours and cur.method == NETLINK and not move_to_link:
        plan.method = NETLINK
    plan.relink = cur.method == NETLINK and plan.method == LINK
    plan.make_pin_dir = not cur.pin_dir_exists
    plan.adopt = dict(cur.adopt)

    in_use = prog["mode"] if prog else None
    if mode != "auto":
        plan.target_mode = mode
        plan.mode_reason = "%s mode requested" % mode
    elif in_use in ("native", "generic"):
        plan.target_mode = in_use
        plan.mode_reason = ("auto: kept %s, the mode already in use, so that "
                            "the program is never detached" % in_use)
    else:
        plan.target_mode = "auto"
        plan.mode_reason = ("auto: native is tried first, generic only if "
                            "the driver refuses native")

    same_mode = in_use == plan.target_mode
    current = cur.ours and cur.uses_pins and cached_tag == prog["tag"]
    if not prog:
        plan.action = INSTALL
    elif not same_mode:
        plan.action = MODE_CHANGE
        plan.keep_program = current
        plan.repin_prog = current and cur.prog_pin_id != prog["id"]
    elif cur.ours and cur.uses_pins and cached_tag in (None, prog["tag"]):
        # Without a remembered tag only a load tells whether it differs.
        plan.action = NONE if cached_tag else VERIFY
        plan.repin_prog = cur.prog_pin_id != prog["id"]
        if mode == "auto":
            plan.mode_reason = ("auto: the program is already attached in "
                                "%s mode" % in_use)
        if plan.action == NONE and plan.relink:
            plan.action = RELINK
            plan.keep_program = True
    else:
        plan.action = REPLACE
    if plan.action in (VERIFY, REPLACE, RELINK):
        plan.swap = swap_for(cur, plan.method)
    # A link that stays in place and is not behind our pin yet. (A new
    # link's pin replaces whatever our link pin held.)
    plan.repin_link = (plan.action == NONE or plan.swap == LINK_UPDATE) \
        and cur.ours and cur.method == LINK and not cur.link_pinned

    plan.flags = settings_to_flags(settings, cur.flags or 0)
    will_exist = set(object_maps) | set(cur.pins) | set(cur.adopt)
    if "sip_ports" in will_exist:
        before = set(cur.ports or ())
        plan.ports_add = sorted(set(ports) - before)
        plan.ports_clear = sorted(before - set(ports))
    if "settings" in will_exist:
        plan.write_flags = plan.flags != (cur.flags or 0)
    plan_limits(plan, cur, will_exist, object_maps, limits, signatures)
    return plan


def plan_limits(plan: Plan, cur: _current.Current, will_exist: set[str],
                object_maps: list[str], limits: bytes,
                signatures: list[bytes] | None) -> None:
    """The `limits` value and the `scanner_sigs` slots to write; each slot
    whose signature changes has its `scanner_hits` zeroed, so that hits
    count for the signature they are shown with."""
    plan.limits = limits
    if signatures is not None:
        plan.signatures = list(signatures)
    plan.has_limits = "limits" in will_exist
    plan.has_signatures = "scanner_sigs" in will_exist
    if plan.has_limits:
        plan.write_limits = limits != (cur.limits or _limits.ZERO_LIMITS)
    if plan.has_signatures:
        plan.signature_writes = _limits.changed_slots(cur.signatures,
                                                      plan.signatures)
    if "scanner_hits" in will_exist:
        plan.reset_hits = sorted(plan.signature_writes)
    asked = (("limits", "limits", limits != _limits.ZERO_LIMITS),
             ("scanner_sigs", "scanner_signatures",
              plan.signatures != _limits.NO_SIGNATURES))
    for name, option, given in asked:
        if given and name not in object_maps:
            plan.warnings.append(NO_MAP % (name, option))


class AbsentPlan:
    def __init__(self) -> None:
        # {id, name, tag, mode, attach_method} to detach
        self.detach: dict | None = None
        self.detach_link_id: int | None = None  # its link, if any
        self.remove_prog_pin = False
        self.remove_link_pin = False
        self.remove_maps: dict[str, int] = {}  # {name: id} pins to remove
        self.maps_in_use_by: list[str] = []  # interfaces keeping the maps
        self.remove_pin_dir = False
        self.warnings: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.detach or self.remove_prog_pin
                    or self.remove_link_pin or self.remove_maps)


def plan_absent(cur: _current.Current, ifname: str, pin_dir: str,
                program: str, force: bool, keep_maps: bool,
                users: dict[int, list], pin_dir_entries: list[str]
                ) -> AbsentPlan:
    """users: {map id: [interfaces]} of programs attached elsewhere;
    pin_dir_entries: the names under pin_dir now."""
    plan = AbsentPlan()
    prog = cur.prog
    if prog and (cur.ours or force):
        plan.detach = cur.summary()
        if cur.link:
            plan.detach_link_id = cur.link["id"]
    elif prog:
        plan.warnings.append(
            "%s has the XDP program %s (id %s) attached, which is not "
            "vos.fastpath's %s: it was left attached (force: true detaches "
            "it)." % (ifname, prog["name"], prog["id"], program))
    prog_pin = _abi.prog_pin_name(ifname)
    plan.remove_prog_pin = cur.prog_pin_id is not None or \
        prog_pin in pin_dir_entries
    # Unless it is what keeps a program that stays attached.
    link_pin = _abi.link_pin_name(ifname)
    plan.remove_link_pin = (cur.link_pin is not None
                            or link_pin in pin_dir_entries) and \
        (plan.detach is not None or not cur.link_pinned)
    if keep_maps or not cur.pins:
        return plan
    in_use = set()
    for found in cur.pins.values():
        in_use.update(users.get(found["id"], ()))
    if in_use:
        plan.maps_in_use_by = sorted(in_use)
        plan.warnings.append(
            "The maps under %s were kept: the program on %s still uses "
            "them." % (pin_dir, ", ".join(plan.maps_in_use_by)))
        return plan
    plan.remove_maps = dict((name, found["id"])
                            for name, found in sorted(cur.pins.items()))
    left = set(pin_dir_entries) - set(plan.remove_maps)
    if plan.remove_prog_pin:
        left.discard(prog_pin)
    if plan.remove_link_pin:
        left.discard(link_pin)
    plan.remove_pin_dir = not left
    return plan
