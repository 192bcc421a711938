# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""BPF links through the bpf() syscall: create, update, detach, find, read.

Private to this collection. The syscall itself and the structures that
links share with maps and programs (an id, an fd's info) are _bpf's.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes
import errno
import os

from ._bpf import (
    BPF_OBJ_GET_INFO_BY_FD,
    BpfError,
    _GetFdById,
    _InfoByFd,
    bpf,
    obj_pin,
)


# BPF links: an XDP attachment that only its holder (a pin, an fd) can
# change or remove; XDP links came with Linux 5.9. Commands, attach type,
# link type and flags of include/uapi/linux/bpf.h and if_link.h.
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31
BPF_LINK_DETACH = 34
BPF_XDP = 37                # enum bpf_attach_type
BPF_LINK_TYPE_XDP = 6       # enum bpf_link_type
BPF_F_REPLACE = 1 << 2      # LINK_UPDATE: only if old_prog_fd is attached
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


class _LinkCreate(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32),
                ("target_ifindex", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class _LinkUpdate(ctypes.Structure):
    _fields_ = [("link_fd", ctypes.c_uint32),
                ("new_prog_fd", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("old_prog_fd", ctypes.c_uint32)]


class _LinkDetach(ctypes.Structure):
    _fields_ = [("link_fd", ctypes.c_uint32)]


class LinkInfo(ctypes.Structure):
    """struct bpf_link_info, the fields this collection reads: for an XDP
    link the union that starts at offset 16 begins with xdp.ifindex (0
    once the link is detached)."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("prog_id", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
                ("ifindex", ctypes.c_uint32),
                ("_union", ctypes.c_uint32 * 7)]


def link_create_xdp(prog_fd: int, ifindex: int, mode_flags: int) -> int:
    """An fd for a new XDP link of prog_fd on ifindex (mode_flags:
    XDP_FLAGS_SKB_MODE or XDP_FLAGS_DRV_MODE). Closing the last fd of an
    unpinned link detaches the program."""
    attr = _LinkCreate(prog_fd=prog_fd, target_ifindex=ifindex,
                       attach_type=BPF_XDP, flags=mode_flags)
    return bpf(BPF_LINK_CREATE, attr, "create an XDP link")


def link_update(link_fd: int, new_prog_fd: int, old_prog_fd: int) -> None:
    """Swap the link's program in one step, only if it still runs
    old_prog_fd's program (EPERM otherwise)."""
    attr = _LinkUpdate(link_fd=link_fd, new_prog_fd=new_prog_fd,
                       flags=BPF_F_REPLACE, old_prog_fd=old_prog_fd)
    bpf(BPF_LINK_UPDATE, attr, "update an XDP link")


def link_detach(link_fd: int) -> None:
    """Detach the link's program; the link stays, defunct, while pinned."""
    bpf(BPF_LINK_DETACH, _LinkDetach(link_fd=link_fd), "detach a link")


def link_fd_by_id(link_id: int) -> int:
    attr = _GetFdById(id=link_id)
    return bpf(BPF_LINK_GET_FD_BY_ID, attr, "open link id %d" % link_id)


def link_next_id(start: int) -> int | None:
    """The id of the link after start (0: the first), or None."""
    attr = _GetFdById(id=start)
    try:
        bpf(BPF_LINK_GET_NEXT_ID, attr, "list links")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return attr.next_id


def link_info(fd: int) -> LinkInfo:
    info = LinkInfo()
    attr = _InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info),
                     info=ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "read link info")
    return info


def is_link_fd(fd: int) -> bool:
    """Whether fd is a BPF link (a pin opens as a map, program or link,
    and their info structures differ)."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:bpf-link"
    except OSError:
        return False


def pin_link(link_fd: int, path: str) -> None:
    """Pin a new link and close its fd. If the pin fails the link is
    detached first: the kernel frees a link from a work queue, a
    moment after its last fd, and the interface must be free at
    once for what comes next."""
    try:
        obj_pin(link_fd, path)
    except OSError:
        try:
            link_detach(link_fd)
        except OSError:
            pass        # closing the fd frees it, a moment later
        raise
    finally:
        os.close(link_fd)
