# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry out an xdp_attach plan, step by step, with undo.

Private to this collection. Each change pushes the step that reverts it;
when a later step fails, the undo steps run newest first. An undo step
that fails is not hidden: the FastpathError says what could not be put
back and the command that does it by hand, and carries the same in
undo_failed for the module's result. The attach step, the program onto
the interface, is _apply_attach's.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING, Callable

from . import _abi, _limits, _messages
from ._apply_attach import LinkPlace, attach_step
from ._errors import FastpathError
from ._plan import NONE, RELINK, REPLACE, VERIFY

if TYPE_CHECKING:
    from . import _host
    from ._current import Current
    from ._plan import AbsentPlan, Plan


class Undo:
    """Steps to revert, newest first, when a later step fails."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], None], str]] = []

    def push(self, what: str, revert: Callable[[], None],
             by_hand: str) -> None:
        """what: the change a revert puts back, in words; by_hand: the
        command that does it when revert fails."""
        self.steps.append((what, revert, by_hand))

    def run(self) -> list[dict]:
        """Revert every step; the ones that failed, as dicts."""
        failed = []
        while self.steps:
            what, revert, by_hand = self.steps.pop()
            try:
                revert()
            except (OSError, FastpathError) as e:
                failed.append(dict(step=what, error=str(e), by_hand=by_hand))
        return failed

    def after(self, error: FastpathError | OSError,
              os_error_msg: str) -> FastpathError:
        """Revert every step after error; the FastpathError to raise, told
        of each step that could not be put back. os_error_msg words an
        OSError (a bpf() call, a bpffs path): one %s for it."""
        failed = self.run()
        if isinstance(error, OSError):
            error = FastpathError(os_error_msg % error)
        return undone(error, failed)


def undone(error: FastpathError, failed: list[dict]) -> FastpathError:
    """error, told that the undo of some steps failed."""
    if failed:
        error.msg = (
            "%s Putting back what this run changed failed for: %s. Do it by "
            "hand: %s" % (error.msg.rstrip(), "; ".join(
                "%s (%s)" % (f["step"], f["error"]) for f in failed),
                "; ".join(f["by_hand"] for f in failed)))
        error.args = (error.msg,)
        error.result["undo_failed"] = \
            list(error.result.get("undo_failed", ())) + failed
    return error


class Outcome:
    """What apply_present did."""

    def __init__(self, plan: Plan, cur: Current) -> None:
        self.action = plan.action
        self.mode_reason = plan.mode_reason
        self.method = cur.method  # link or netlink, once attached
        self.reused_maps: list[str] = []
        self.created_maps: list[str] = []
        self.detached_for_mode_change = False
        self.moved_to_link = False


def undo_pin(host: _host.Host, undo: Undo, path: str) -> None:
    """Record that path was pinned by this run: undo removes it."""
    undo.push("the pin %s" % path, lambda: host.unlink(path), "rm %s" % path)


def apply_present(host: _host.Host, cur: Current, plan: Plan, ifname: str,
                  pin_dir: str, obj: str, program: str,
                  record_tag: Callable[[str], None]) -> Outcome:
    """Carry out plan; record_tag(tag) is called after every load. On a
    failure every step done is undone and FastpathError raised."""
    out = Outcome(plan, cur)
    undo = Undo()
    tmp = os.path.join(pin_dir, "tmp_%d" % os.getpid())
    keep_tmp = False
    try:
        if plan.make_pin_dir:
            host.make_dir(pin_dir)
            undo.push("the new pin directory %s" % pin_dir,
                      lambda: (host.remove_tree(tmp),
                               host.remove_dir(pin_dir)),
                      "rm -r %s" % pin_dir)
        for name, map_id in sorted(plan.adopt.items()):
            path = os.path.join(pin_dir, name)
            host.pin_map_id(map_id, path)
            undo_pin(host, undo, path)
        if plan.action != NONE:
            host.make_dir(tmp)
        loaded = None
        if plan.needs_load:
            loaded = load_step(host, cur, plan, out, pin_dir, tmp,
                               obj, program, undo)
            record_tag(loaded.tag)
        write_maps(host, cur, plan, pin_dir, undo)
        link_pin = os.path.join(pin_dir, _abi.link_pin_name(ifname))
        attach_step(host, cur, plan, out, ifname, tmp, loaded,
                    LinkPlace(host, tmp, link_pin), undo)
        prog_pin = os.path.join(pin_dir, _abi.prog_pin_name(ifname))
        if loaded is not None and out.action not in (NONE, RELINK):
            host.rename(loaded.pin, prog_pin)
        elif plan.repin_prog:
            host.unlink(prog_pin)
            host.pin_prog_id(cur.prog["id"], prog_pin)
        if plan.repin_link:
            # The link stays; a pin of an older one, if any, goes.
            host.repin_link(cur.link["id"], link_pin)
    except (FastpathError, OSError) as e:
        error = undo.after(e, "Could not change the pins under %s (%%s): "
                           "nothing was changed." % pin_dir)
        # The by-hand command of a failed undo may need the old program
        # pinned in tmp.
        keep_tmp = "undo_failed" in error.result
        raise error
    finally:
        if host.exists(tmp) and not keep_tmp:
            host.remove_tree(tmp)
    return out


def load_step(host: _host.Host, cur: Current, plan: Plan, out: Outcome,
              pin_dir: str, tmp: str, obj: str, program: str, undo: Undo
              ) -> _host.Loaded:
    """Load the object reusing our pinned maps; pin the maps it created.
    A VERIFY whose tag matches the attached program's becomes NONE."""
    reuse = dict((name, os.path.join(pin_dir, name))
                 for name in set(cur.pins) | set(plan.adopt)
                 if name in plan.object_maps)
    loaded = host.load(obj, tmp, program, reuse)
    out.reused_maps = sorted(reuse)
    if plan.action == VERIFY:
        out.action = REPLACE if loaded.tag != cur.prog["tag"] else \
            RELINK if plan.relink else NONE
    if out.action in (NONE, RELINK):
        return loaded
    for name in sorted(set(plan.object_maps) - set(reuse)):
        path = os.path.join(pin_dir, name)
        host.rename(os.path.join(loaded.maps_dir, name), path)
        undo_pin(host, undo, path)
        out.created_maps.append(name)
    return loaded


def write_maps(host: _host.Host, cur: Current, plan: Plan, pin_dir: str,
               undo: Undo) -> None:
    """sip_ports, settings, limits and scanner signatures, in the maps the
    new program will use."""
    ports_path = os.path.join(pin_dir, "sip_ports")
    if plan.ports_add or plan.ports_clear:
        host.write_ports(ports_path, plan.ports_add, plan.ports_clear)
        undo.push("the ports in %s" % ports_path,
                  lambda: host.write_ports(ports_path, plan.ports_clear,
                                           plan.ports_add),
                  _messages.by_hand_ports(ports_path, plan.ports_clear,
                                          plan.ports_add))
    settings_path = os.path.join(pin_dir, "settings")
    if plan.write_flags:
        host.write_flags(settings_path, plan.flags)
        before = cur.flags or 0
        undo.push("the settings in %s" % settings_path,
                  lambda: host.write_flags(settings_path, before),
                  _messages.by_hand_flags(settings_path, before))
    write_limit_maps(host, cur, plan, pin_dir, undo)


def write_limit_maps(host: _host.Host, cur: Current, plan: Plan,
                     pin_dir: str, undo: Undo) -> None:
    """The `limits` value, then the signature slots that change, then
    their hit counters zeroed: a hit between the two counts for no
    signature rather than for the one that was replaced. A batch that
    fails half-way has written some slots: their undo is pushed first
    (writing the old values again is harmless)."""
    path = os.path.join(pin_dir, "limits")
    if plan.write_limits:
        limits = cur.limits or _limits.ZERO_LIMITS
        host.write_limits(path, plan.limits)
        undo.push("the limits in %s" % path,
                  lambda: host.write_limits(path, limits),
                  _messages.by_hand_update(path, [(_abi.U32.pack(0),
                                                   limits)]))
    if plan.signature_writes:
        sigs_path = os.path.join(pin_dir, "scanner_sigs")
        have = cur.signatures or _limits.NO_SIGNATURES
        before = dict((slot, have[slot]) for slot in plan.signature_writes)
        undo.push("the signatures in %s" % sigs_path,
                  lambda: host.write_slots(sigs_path, before),
                  _messages.by_hand_slots(sigs_path, before))
        host.write_slots(sigs_path, plan.signature_writes)
    if plan.reset_hits:
        hits_path = os.path.join(pin_dir, "scanner_hits")
        hits = host.read_slots(hits_path)
        counts = dict((slot, hits[slot]) for slot in plan.reset_hits)
        undo.push("the hit counters in %s" % hits_path,
                  lambda: host.write_slots(hits_path, counts),
                  _messages.lost_hits(hits_path, counts))
        host.clear_slots(hits_path, plan.reset_hits)


def apply_absent(host: _host.Host, cur: Current, plan: AbsentPlan,
                 ifname: str, pin_dir: str) -> list[str]:
    """Pins first, while the attached program keeps the maps and itself
    alive so that an undo can pin them again; the detach last (of the link,
    when a link attaches the program), then the link pin. Returns
    warnings."""
    undo = Undo()
    try:
        for name, map_id in sorted(plan.remove_maps.items()):
            path = os.path.join(pin_dir, name)
            host.unlink(path)
            undo.push("the pin %s" % path,
                      lambda map_id=map_id, path=path:
                      host.pin_map_id(map_id, path),
                      "bpftool map pin id %d %s" % (map_id, path))
        if plan.remove_prog_pin:
            path = os.path.join(pin_dir, _abi.prog_pin_name(ifname))
            host.unlink(path)
            if cur.prog_pin_id is not None:
                prog_id = cur.prog_pin_id
                undo.push("the pin %s" % path,
                          lambda: host.pin_prog_id(prog_id, path),
                          "bpftool prog pin id %d %s" % (prog_id, path))
        if plan.detach_link_id is not None:
            host.detach_link(plan.detach_link_id)
        elif plan.detach:
            host.detach(ifname, plan.detach["mode"])
    except (FastpathError, OSError) as e:
        raise undo.after(e, "Could not remove the pins under %s, or detach "
                         "the program (%%s): nothing was changed." % pin_dir)
    if plan.remove_link_pin:
        # After the detach: the pin of a detached link holds nothing.
        path = os.path.join(pin_dir, _abi.link_pin_name(ifname))
        try:
            host.unlink(path)
        except OSError as e:
            return ["The link pin %s could not be removed (%s): remove it by "
                    "hand." % (path, e)]
    if plan.remove_pin_dir:
        try:
            host.remove_dir(pin_dir)
        except OSError as e:
            return ["The program is detached and its pins removed, but the "
                    "directory %s could not be removed (%s): remove it by "
                    "hand." % (pin_dir, e)]
    return []
