# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attach step of an xdp_attach plan, each change with its undo.

Private to this collection. attach_step() puts the program on the
interface for _apply.apply_present: where no program is (attach_new:
through a link or netlink, `auto` falling back to generic mode only on a
driver's refusal, netlink on a kernel that turns out to have no XDP
links), or in the place of the program there (a link update, `ip
-force`, the move of a netlink attachment to a link, or a detach first;
see docs/developer-guide.md). A new link is pinned in the temporary
directory, then moved to its place (LinkPlace).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import os
from typing import TYPE_CHECKING, Callable

from . import _messages
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
)

if TYPE_CHECKING:
    from . import _host
    from ._apply import Outcome, Undo
    from ._current import Current
    from ._plan import Plan


# `ip` errors, and link errors as _messages.link_error words them, after
# which `auto` must not fall back to generic mode: the interface, not its
# driver, is the problem.
NOT_A_REFUSAL = ("does not exist", "already attached",
                 "can't be active at the same time", "Operation not permitted",
                 "Can't replace active BPF XDP link", "EBUSY:", "EEXIST:")


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
                  % (ifname, _messages.IP_KEYWORDS[mode]))
        return NETLINK
    try:
        host.create_link(ifname, mode, pin, place.pin)
    except OSError as e:
        if mode == "generic" and e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            raise NoLinks(_messages.link_error(e))
        said = _messages.link_error(e)
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
    put_back = " ".join(_messages.attach_argv("ip", ifname, mode, old))
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
                            % (ifname, _messages.link_error(e)))
    undo.push("the program of the link on %s" % ifname,
              lambda: host.update_link(link_id, old, loaded.id),
              "rm %s; %s" % (link_pin, " ".join(_messages.attach_argv(
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
                            % (cur.link["id"], ifname,
                               _messages.link_error(e)))
    if not cur.ours:
        undo.push(what, lambda: host.attach(ifname, mode, old), put_back)
        return
    again = os.path.join(os.path.dirname(old), "previous_link")

    def relink() -> None:
        host.create_link(ifname, mode, old, again)
        host.rename(again, place.link_pin)
    undo.push(what, relink, put_back)
