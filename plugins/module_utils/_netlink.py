# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""XDP through rtnetlink: the RTM_SETLINK of `ip link set dev X xdp...`.

Private to this collection. Two changes go through rtnetlink from here
rather than `ip`, called through _host.Host: the move of a netlink
attachment to a BPF link, which the kernel cannot do in one step (it
refuses a link while a netlink program is attached), so that the detach
and the link follow each other without a process start in between; and
the driver's own words for a refused link, which the kernel keeps from
BPF_LINK_CREATE but gives to netlink.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import os
import socket
import struct

from . import _bpf, _bpf_link
from ._errors import FastpathError
from ._messages import attach_argv, link_error


# XDP through rtnetlink (include/uapi/linux/rtnetlink.h, if_link.h).
RTM_SETLINK = 19
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
IFLA_XDP, NLA_F_NESTED = 43, 1 << 15
IFLA_XDP_FD, IFLA_XDP_FLAGS, IFLA_XDP_EXPECTED_FD = 1, 3, 8
XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_FLAGS_REPLACE = 1 << 0, 1 << 4
# The flag of each attach mode, for netlink and for BPF_LINK_CREATE.
XDP_MODE_FLAGS = {"generic": _bpf_link.XDP_FLAGS_SKB_MODE,
                  "native": _bpf_link.XDP_FLAGS_DRV_MODE}


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def netlink_set_xdp(ifindex: int, prog_fd: int, flags: int,
                    expected_fd: int | None = None) -> None:
    """Attach prog_fd (-1: detach) on ifindex with one RTM_SETLINK, as
    `ip link set dev X xdp...` does; with expected_fd, only if the program
    attached now is that fd's (XDP_FLAGS_REPLACE, 5.7+). Raise OSError with
    the kernel's message."""
    xdp = _nla(IFLA_XDP_FD, struct.pack("=i", prog_fd))
    if expected_fd is not None:
        flags |= XDP_FLAGS_REPLACE
        xdp += _nla(IFLA_XDP_EXPECTED_FD, struct.pack("=i", expected_fd))
    xdp += _nla(IFLA_XDP_FLAGS, struct.pack("=I", flags))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex, 0, 0) + \
        _nla(IFLA_XDP | NLA_F_NESTED, xdp)
    request = struct.pack("=IHHII", 16 + len(body), RTM_SETLINK,
                          NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                       socket.NETLINK_ROUTE) as sock:
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.send(request)
        reply = sock.recv(65536)
    size, kind, reply_flags = struct.unpack_from("=IHH", reply)
    if kind != NLMSG_ERROR:
        raise OSError(errno.EPROTO, "unexpected rtnetlink reply %d" % kind)
    err = -struct.unpack_from("=i", reply, 16)[0]
    if not err:
        return
    said = ""
    offset = 16 + 4 + 16        # nlmsghdr, error, the request's nlmsghdr
    while reply_flags & NLM_F_ACK_TLVS and offset + 4 <= size:
        length, attr = struct.unpack_from("=HH", reply, offset)
        if length < 4:
            break
        if attr == NLMSGERR_ATTR_MSG:
            said = reply[offset + 4:offset + length].split(b"\0")[0].decode(
                "utf-8", "replace")
        offset += (length + 3) & ~3
    error = OSError(err, "%s%s" % (os.strerror(err),
                                   " (%s)" % said if said else ""))
    error.said = said       # the kernel's own words, or ""
    raise error


def driver_says(ifname: str, mode: str, prog_pin: str) -> str | None:
    """Why the driver refuses prog_pin's program in mode, in its own
    words, or None. The kernel keeps the message of a refused link to
    a tracepoint; netlink returns it. A refused netlink attach changes
    nothing; one that the driver takes after all is detached at
    once."""
    try:
        ifindex = socket.if_nametoindex(ifname)
        fd = _bpf.obj_get(prog_pin)
    except OSError:
        return None
    flags = XDP_MODE_FLAGS[mode]
    try:
        netlink_set_xdp(ifindex, fd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except OSError as e:
        return getattr(e, "said", "") or None
    else:
        netlink_set_xdp(ifindex, -1, flags, expected_fd=fd)
        return None
    finally:
        os.close(fd)


def move_to_link(ifname: str, mode: str, old_pin: str,
                 prog_pin: str, link_pin: str) -> None:
    """Swap old_pin's program, attached to ifname through netlink in
    mode, for a link of prog_pin's program pinned at link_pin. The
    kernel refuses a link while a netlink program is attached (EBUSY),
    so the program is detached first, only if it is still old_pin's,
    and the link created right after, with every fd already open. If
    the link fails, old_pin's program is attached again before the
    FastpathError is raised; if that fails too, the error's
    undo_failed says so."""
    ifindex = socket.if_nametoindex(ifname)
    flags = XDP_MODE_FLAGS[mode]
    fds = []
    try:
        fds.append(_bpf.obj_get(old_pin))
        fds.append(_bpf.obj_get(prog_pin))
        old_fd, new_fd = fds
        try:
            netlink_set_xdp(ifindex, -1, flags, expected_fd=old_fd)
        except OSError as e:
            raise FastpathError(
                "Could not detach the program on %s to move it to a "
                "BPF link (%s): it was left attached as it was; if "
                "another tool changed it meanwhile, run again."
                % (ifname, e.strerror))
        try:
            _bpf_link.pin_link(
                _bpf_link.link_create_xdp(new_fd, ifindex, flags), link_pin)
        except OSError as e:
            error = FastpathError(
                "The kernel refused a BPF link for the program on %s in "
                "%s mode (%s): the program attached before is attached "
                "again through netlink, as it was; run again once the "
                "cause is gone." % (ifname, mode, link_error(e)))
            try:
                netlink_set_xdp(ifindex, old_fd,
                                flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
            except OSError as back:
                by_hand = " ".join(attach_argv("ip", ifname, mode,
                                               old_pin))
                error = FastpathError(
                    "The kernel refused a link for the program on %s "
                    "in %s mode (%s), and attaching the program that "
                    "was there again failed (%s): %s has no XDP program; "
                    "attach it by hand: %s" % (
                        ifname, mode, link_error(e), back, ifname,
                        by_hand),
                    undo_failed=[dict(
                        step="the %s program on %s" % (mode, ifname),
                        error=str(back), by_hand=by_hand)])
            raise error
    finally:
        for fd in fds:
            os.close(fd)
