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

import errno
import os
from typing import TYPE_CHECKING, Callable

from . import _abi, _host
from ._errors import FastpathError, first_line
from ._plan import (
    DETACH_FIRST,
    INSTALL,
    LINK,
    LINK_UPDATE,
    MODE_CHANGE,
    MOVE,
    NETLINK,
    NONE,
    RELINK,
    REPLACE,
    VERIFY,
)

if TYPE_CHECKING:
    from ._current import Current
    from ._plan import AbsentPlan, Plan

# `ip` errors, and link errors as _host.link_error words them, after which
# `auto` must not fall back to generic mode: the interface, not its
# driver, is the problem.
NOT_A_REFUSAL = ("does not exist", "already attached",
                 "can't be active at the same time", "Operation not permitted",
                 "Can't replace active BPF XDP link", "EBUSY:", "EEXIST:")


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


def is_refusal(err: FastpathError) -> bool:
    return not any(text in err.stderr for text in NOT_A_REFUSAL)


# Link errors that say the interface is taken, not why a driver refuses.
BUSY = (errno.EBUSY, errno.EEXIST, errno.EPERM)


class NoLinks(Exception):
    """The kernel refused a link in generic mode, where no driver can
    refuse one: it has no XDP links."""


class LinkPlace:
    """A new link, pinned in the temporary directory, then moved to its
    place; its undo detaches it wherever it is by then."""

    def __init__(self, host: _host.Host, tmp: str, link_pin: str) -> None:
        self.host = host
        self.pin = os.path.join(tmp, "link")
        self.link_pin = link_pin

    def settle(self, undo: Undo, what: str, by_hand: str,
               then: Callable[[], None] | None = None) -> None:
        """Push the undo of the link (and then `then`), and move its pin
        to its place, over a pin of an older link if there is one."""
        def revert() -> None:
            self.host.detach_link(self.pin)
            self.host.unlink(self.pin)
            if then is not None:
                then()
        undo.push(what, revert, by_hand)
        self.host.rename(self.pin, self.link_pin)
        self.pin = self.link_pin


def attach_in(host: _host.Host, ifname: str, mode: str, pin: str,
              method: str, place: LinkPlace, undo: Undo) -> str:
    """Attach pin's program where none is, in mode, by method; undo
    detaches it. Raise FastpathError with the kernel's error in stderr
    (NoLinks when a generic link is refused)."""
    if method == NETLINK:
        host.attach(ifname, mode, pin)
        undo.push("the program attached to %s" % ifname,
                  lambda: host.detach(ifname, mode),
                  "ip link set dev %s %s off"
                  % (ifname, _host.IP_KEYWORDS[mode]))
        return NETLINK
    try:
        host.create_link(ifname, mode, pin, place.pin)
    except OSError as e:
        if mode == "generic" and e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            raise NoLinks(_host.link_error(e))
        said = _host.link_error(e)
        if mode == "native" and e.errno not in BUSY:
            why = host.driver_says(ifname, mode, pin)
            said += " (%s)" % why if why else ""
        raise FastpathError("Could not attach the program to %s in %s mode "
                            "through a link (%s)." % (ifname, mode, said),
                            stderr=said)
    place.settle(undo, "the link attaching the program to %s" % ifname,
                 "rm %s" % place.link_pin)
    return LINK


def attach_new(host: _host.Host, ifname: str, target: str, pin: str,
               method: str, place: LinkPlace, undo: Undo
               ) -> tuple[str, str, str]:
    """Attach where no program is; (mode, reason, method). A kernel that
    turns out to have no XDP links gets the program through netlink."""
    try:
        return attach_by(host, ifname, target, pin, method, place, undo)
    except NoLinks as e:
        mode, reason, _method = attach_by(host, ifname, target, pin,
                                          NETLINK, place, undo)
        return mode, ("%s; the kernel has no XDP links (a generic link was "
                      "refused: %s), so the program is attached through "
                      "netlink" % (reason, e)), NETLINK


def attach_by(host: _host.Host, ifname: str, target: str, pin: str,
              method: str, place: LinkPlace, undo: Undo
              ) -> tuple[str, str, str]:
    def attach(mode: str) -> str:
        return attach_in(host, ifname, mode, pin, method, place, undo)

    if target != "auto":
        try:
            used = attach(target)
        except FastpathError as e:
            e.msg = ("The kernel refused to attach the program to %s in %s "
                     "mode (%s): use mode: auto or another mode."
                     % (ifname, target, first_line(e.stderr)))
            raise
        return target, "%s mode requested" % target, used
    try:
        used = attach("native")
        return "native", "auto: the driver accepted native XDP", used
    except FastpathError as e:
        if not is_refusal(e):
            raise
        refusal = first_line(e.stderr)
    try:
        used = attach("generic")
    except FastpathError as e:
        e.msg = ("Neither native (%s) nor generic XDP (%s) could be attached "
                 "to %s: see stderr." % (refusal, first_line(e.stderr),
                                         ifname))
        raise
    return "generic", ("auto: the driver refused native XDP (%s), so "
                       "generic XDP is in use" % refusal), used


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


def attach_step(host: _host.Host, cur: Current, plan: Plan, out: Outcome,
                ifname: str, tmp: str, loaded: _host.Loaded | None,
                place: LinkPlace, undo: Undo) -> None:
    if out.action == INSTALL:
        _mode, out.mode_reason, out.method = attach_new(
            host, ifname, plan.target_mode, loaded.pin, plan.method, place,
            undo)
        return
    if out.action == NONE:
        return
    # Every other swap keeps the program in place pinned, so that undo
    # can put it back.
    old = os.path.join(tmp, "previous")
    mode = cur.prog["mode"]
    host.pin_prog_id(cur.prog["id"], old)
    put_back = " ".join(_host.attach_argv("ip", ifname, mode, old))
    new = old if out.action == RELINK or plan.keep_program else loaded.pin
    if out.action == MODE_CHANGE or plan.swap == DETACH_FIRST:
        # Native and generic XDP cannot be active at once, and another
        # tool's link is not ours to update: detach first.
        detach_in_place(host, cur, ifname, old, place, undo, put_back)
        out.detached_for_mode_change = out.action == MODE_CHANGE
        _mode, reason, out.method = attach_new(
            host, ifname, plan.target_mode, new, plan.method, place, undo)
        out.moved_to_link = cur.method == NETLINK and out.method == LINK
        out.mode_reason = "%s; the %s program was detached first" % (
            reason, mode)
    elif plan.swap == LINK_UPDATE:
        update_link(host, cur, ifname, old, loaded, undo, place.link_pin)
    elif plan.swap == MOVE:
        # The kernel refuses a link while a netlink program is attached:
        # detach, and create the link right after (_host.move_to_link).
        host.move_to_link(ifname, mode, old, new, place.pin)
        out.method, out.moved_to_link = LINK, True
        place.settle(undo, "the %s program on %s" % (mode, ifname),
                     put_back, then=lambda: host.attach(ifname, mode, old))
        out.mode_reason = (
            "%s; moved from a netlink attachment to a BPF link, which the "
            "kernel cannot do without a detach" % plan.mode_reason)
    else:
        # ip -force: the kernel swaps the program in one step.
        host.attach(ifname, mode, new, replace=True)


def update_link(host: _host.Host, cur: Current, ifname: str, old: str,
                loaded: _host.Loaded, undo: Undo, link_pin: str) -> None:
    """BPF_LINK_UPDATE: the kernel swaps the program in one step, and only
    if the link still runs the program read."""
    link_id, old_id = cur.link["id"], cur.prog["id"]
    try:
        host.update_link(link_id, loaded.pin, old_id)
    except OSError as e:
        if e.errno == errno.EPERM:
            raise FastpathError(
                "The link on %s no longer runs the program read (id %d): "
                "another tool changed it meanwhile; run again."
                % (ifname, old_id))
        raise FastpathError("Could not update the link on %s (%s)."
                            % (ifname, _host.link_error(e)))
    undo.push("the program of the link on %s" % ifname,
              lambda: host.update_link(link_id, old, loaded.id),
              "rm %s; %s" % (link_pin, " ".join(_host.attach_argv(
                  "ip", ifname, cur.prog["mode"], old))))


def detach_in_place(host: _host.Host, cur: Current, ifname: str, old: str,
                    place: LinkPlace, undo: Undo, put_back: str) -> None:
    """Detach the program in place, pinned at old; undo attaches it again
    as it was: our link through a new link, anything else through
    netlink."""
    mode = cur.prog["mode"]
    what = "the %s program on %s" % (mode, ifname)
    if cur.method != LINK:
        host.detach(ifname, mode)
        undo.push(what, lambda: host.attach(ifname, mode, old), put_back)
        return
    try:
        host.detach_link(cur.link["id"])
    except OSError as e:
        raise FastpathError("Could not detach the link %d on %s (%s)."
                            % (cur.link["id"], ifname, _host.link_error(e)))
    if not cur.ours:
        undo.push(what, lambda: host.attach(ifname, mode, old), put_back)
        return
    again = os.path.join(os.path.dirname(old), "previous_link")

    def relink() -> None:
        host.create_link(ifname, mode, old, again)
        host.rename(again, place.link_pin)
    undo.push(what, relink, put_back)


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
