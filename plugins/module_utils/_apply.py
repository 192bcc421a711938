# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry out an xdp_attach plan, step by step, with undo.

Private to this collection. Each change pushes the step that reverts it;
when a later step fails, the undo steps run newest first. An undo step
that fails is not hidden: the FastpathError says what could not be put
back and the command that does it by hand, and carries the same in
undo_failed for the module's result.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING, Callable

from . import _abi, _host
from ._errors import FastpathError, first_line
from ._plan import INSTALL, MODE_CHANGE, NONE, REPLACE, VERIFY

if TYPE_CHECKING:
    from ._current import Current
    from ._plan import AbsentPlan, Plan

# `ip` errors after which `auto` must not fall back to generic mode: the
# interface, not its driver, is the problem.
NOT_A_REFUSAL = ("does not exist", "already attached",
                 "can't be active at the same time", "Operation not permitted")


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
        error.result["undo_failed"] = failed
    return error


def is_refusal(err: FastpathError) -> bool:
    return not any(text in err.stderr for text in NOT_A_REFUSAL)


def attach_new(host: _host.Host, ifname: str, target: str, pin: str
               ) -> tuple[str, str]:
    """Attach where no program is; (mode, reason)."""
    if target != "auto":
        try:
            host.attach(ifname, target, pin)
        except FastpathError as e:
            e.msg = ("The kernel refused to attach the program to %s in %s "
                     "mode (%s): use mode: auto or another mode."
                     % (ifname, target, first_line(e.stderr)))
            raise
        return target, "%s mode requested" % target
    try:
        host.attach(ifname, "native", pin)
        return "native", "auto: the driver accepted native XDP"
    except FastpathError as e:
        if not is_refusal(e):
            raise
        refusal = first_line(e.stderr)
    try:
        host.attach(ifname, "generic", pin)
    except FastpathError as e:
        e.msg = ("Neither native (%s) nor generic XDP (%s) could be attached "
                 "to %s: see stderr." % (refusal, first_line(e.stderr),
                                         ifname))
        raise
    return "generic", ("auto: the driver refused native XDP (%s), so "
                       "generic XDP is in use" % refusal)


class Outcome:
    """What apply_present did."""

    def __init__(self, plan: Plan) -> None:
        self.action = plan.action
        self.mode_reason = plan.mode_reason
        self.reused_maps: list[str] = []
        self.created_maps: list[str] = []
        self.detached_for_mode_change = False


def undo_pin(host: _host.Host, undo: Undo, path: str) -> None:
    """Record that path was pinned by this run: undo removes it."""
    undo.push("the pin %s" % path, lambda: host.unlink(path), "rm %s" % path)


def apply_present(host: _host.Host, cur: Current, plan: Plan, ifname: str,
                  pin_dir: str, obj: str, program: str,
                  record_tag: Callable[[str], None]) -> Outcome:
    """Carry out plan; record_tag(tag) is called after every load. On a
    failure every step done is undone and FastpathError raised."""
    out = Outcome(plan)
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
        if plan.needs_load or plan.action == MODE_CHANGE:
            host.make_dir(tmp)
        loaded = None
        if plan.needs_load:
            loaded = load_step(host, cur, plan, out, pin_dir, tmp,
                               obj, program, undo)
            record_tag(loaded.tag)
        write_maps(host, cur, plan, pin_dir, undo)
        attach_step(host, cur, plan, out, ifname, tmp, loaded, undo)
        prog_pin = os.path.join(pin_dir, _abi.prog_pin_name(ifname))
        if loaded is not None and out.action != NONE:
            host.rename(loaded.pin, prog_pin)
        elif plan.repin_prog:
            host.unlink(prog_pin)
            host.pin_prog_id(cur.prog["id"], prog_pin)
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
        out.action = REPLACE if loaded.tag != cur.prog["tag"] else NONE
    if out.action == NONE:
        return loaded
    for name in sorted(set(plan.object_maps) - set(reuse)):
        path = os.path.join(pin_dir, name)
        host.rename(os.path.join(loaded.maps_dir, name), path)
        undo_pin(host, undo, path)
        out.created_maps.append(name)
    return loaded


def attach_step(host: _host.Host, cur: Current, plan: Plan, out: Outcome,
                ifname: str, tmp: str, loaded: _host.Loaded | None,
                undo: Undo) -> None:
    if out.action == INSTALL:
        _mode, out.mode_reason = attach_new(host, ifname, plan.target_mode,
                                            loaded.pin)
    elif out.action == REPLACE:
        # ip -force: the kernel swaps the program in one step.
        host.attach(ifname, cur.prog["mode"], loaded.pin, replace=True)
    elif out.action == MODE_CHANGE:
        # Native and generic XDP cannot be active at once: detach first,
        # keeping the old program pinned to put it back on a failure.
        old = os.path.join(tmp, "previous")
        old_mode = cur.prog["mode"]
        host.pin_prog_id(cur.prog["id"], old)
        host.detach(ifname, old_mode)
        out.detached_for_mode_change = True
        undo.push("the %s program on %s" % (old_mode, ifname),
                  lambda: host.attach(ifname, old_mode, old),
                  " ".join(_host.attach_argv("ip", ifname, old_mode, old)))
        _mode, reason = attach_new(host, ifname, plan.target_mode,
                                   old if plan.keep_program else loaded.pin)
        out.mode_reason = "%s; the %s program was detached first" % (
            reason, old_mode)


def write_maps(host: _host.Host, cur: Current, plan: Plan, pin_dir: str,
               undo: Undo) -> None:
    """sip_ports and settings, in the maps the new program will use."""
    ports_path = os.path.join(pin_dir, "sip_ports")
    if plan.ports_add or plan.ports_clear:
        host.write_ports(ports_path, plan.ports_add, plan.ports_clear)
        undo.push("the ports in %s" % ports_path,
                  lambda: host.write_ports(ports_path, plan.ports_clear,
                                           plan.ports_add),
                  _host.by_hand_ports(ports_path, plan.ports_clear,
                                      plan.ports_add))
    settings_path = os.path.join(pin_dir, "settings")
    if plan.write_flags:
        host.write_flags(settings_path, plan.flags)
        before = cur.flags or 0
        undo.push("the settings in %s" % settings_path,
                  lambda: host.write_flags(settings_path, before),
                  _host.by_hand_flags(settings_path, before))


def apply_absent(host: _host.Host, cur: Current, plan: AbsentPlan,
                 ifname: str, pin_dir: str) -> list[str]:
    """Pins first, while the attached program keeps the maps and itself
    alive so that an undo can pin them again; the detach last. Returns
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
        if plan.detach:
            host.detach(ifname, plan.detach["mode"])
    except (FastpathError, OSError) as e:
        raise undo.after(e, "Could not remove the pins under %s (%%s): "
                         "nothing was changed." % pin_dir)
    if plan.remove_pin_dir:
        try:
            host.remove_dir(pin_dir)
        except OSError as e:
            return ["The program is detached and its pins removed, but the "
                    "directory %s could not be removed (%s): remove it by "
                    "hand." % (pin_dir, e)]
    return []
