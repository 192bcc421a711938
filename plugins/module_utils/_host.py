# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel boundary of xdp_attach: every read and change it makes.

Private to this collection. bpf() goes through _bpf, `ip` and `bpftool`
through the one Runner, bpffs paths through os. Nothing here decides
anything: _current reads through it, _apply changes through it, and the
unit tests replace it with a fake that records each call.

Pin layout under pin_dir: one pin per map, by its name (shared by every
interface of the host); one pin per interface for its program
(_abi.prog_pin_name) and one for the BPF link that attaches it
(_abi.link_pin_name); a transient tmp_<pid> directory while a load is in
flight.

A program attaches through a BPF link where the kernel has them (5.9 and
later): only the link's holder, the pin, can change or remove it, so a
stray `ip link set dev X xdp off` or another loader's netlink attach
fails instead of removing the program. `ip` attaches through netlink on
older kernels. One change goes through rtnetlink from here rather than
`ip`: the move of a netlink attachment to a link, which the kernel cannot
do in one step (it refuses a link while a netlink program is attached),
so that the detach and the link follow each other without a process
start in between.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import socket
import struct
from typing import Sequence

from . import _abi, _bpf, _facts, _pins
from ._errors import FastpathError, first_line
from ._runner import Runner

LOG_TAIL_LINES = 30

# Attach modes as `ip -json link` names them, and `ip link set` keywords.
IP_KEYWORDS = {"native": "xdpdrv", "generic": "xdpgeneric",
               "offload": "xdpoffload"}


def verifier_tail(stderr: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the verifier log in bpftool's stderr (the whole
    stderr's tail when there is no log)."""
    text = stderr or ""
    begin = text.find("-- BEGIN PROG LOAD LOG --")
    end = text.find("-- END PROG LOAD LOG --")
    if begin >= 0 and end > begin:
        text = text[begin + len("-- BEGIN PROG LOAD LOG --"):end]
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def load_failure(stderr: str | None, obj: str, program: str) -> str:
    """The sentence for a failed `bpftool prog loadall`."""
    err = stderr or ""
    reuse = re.search(r"couldn't reuse pinned map at '([^']+)'", err)
    if reuse:
        return ("The pinned map %s does not have the layout of the map of "
                "the same name in %s: nothing was changed; save its entries "
                "and remove the pin, or choose another pin_dir."
                % (reuse.group(1), obj))
    if "PROG LOAD LOG" in err:
        return ("The kernel's verifier rejected %s from %s: fix the "
                "program; the program attached before was left as it was. "
                "The verifier log ends with:\n%s"
                % (program, obj, verifier_tail(err)))
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    return ("bpftool could not load %s (%s): check that it is an XDP object "
            "built for this kernel; nothing was changed."
            % (obj, errors[0] if errors else first_line(err)))


def attach_argv(ip: str, ifname: str, mode: str, pin: str,
                replace: bool = False) -> list[str]:
    return ([ip] + (["-force"] if replace else [])
            + ["link", "set", "dev", ifname, IP_KEYWORDS[mode], "pinned",
               pin])


def hex_bytes(data: bytes) -> str:
    return " ".join("%02x" % b for b in data)


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
XDP_MODE_FLAGS = {"generic": _bpf.XDP_FLAGS_SKB_MODE,
                  "native": _bpf.XDP_FLAGS_DRV_MODE}


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


def link_error(e: OSError) -> str:
    """A failed bpf() link call in words: 'ERANGE: Numerical result out of
    range'. The kernel gives no message for a link, only the number."""
    return "%s: %s" % (errno.errorcode.get(e.errno, str(e.errno)),
                       os.strerror(e.errno) if e.errno else e)


class Loaded:
    """A program loaded under a temporary pin."""

    def __init__(self, pin: str, prog_id: int, tag: str,
                 maps_dir: str) -> None:
        self.pin = pin
        self.id = prog_id
        self.tag = tag
        self.maps_dir = maps_dir


class Host:
    """Every read and change of kernel state that xdp_attach makes."""

    def __init__(self, module) -> None:
        self.runner = Runner(module)

    def tool(self, name: str) -> str:
        return self.runner.path(name)

    # Reads.

    def link(self, ifname: str) -> dict:
        out, _err = self.runner.run(
            [self.tool("ip"), "-json", "link", "show", "dev", ifname],
            lambda rc, out, err: "Interface %s was not found (%s): check "
            "the interface name on this host." % (ifname, first_line(err)))
        return json.loads(out or "[]")[0]

    def attached(self, ifname: str) -> dict | None:
        """{id, name, tag, mode} of the XDP program on ifname, or None."""
        return _facts.attached_program(self.link(ifname))

    def links_supported(self) -> bool:
        return _facts.xdp_link_support()

    def xdp_link(self, ifindex: int | None, prog: dict | None
                 ) -> dict | None:
        """{id, prog_id, ifindex} of the BPF link that attaches prog on
        ifindex, or None (no program, or attached through netlink)."""
        if not prog:
            return None
        return _facts.xdp_link_of(_facts.xdp_links(), ifindex, prog)

    def pinned_link(self, path: str) -> dict | None:
        """{id, prog_id, ifindex} of the XDP link pinned at path (ifindex
        0: detached), or None when there is no link pin there."""
        if not os.path.lexists(path):
            return None
        try:
            fd = _bpf.obj_get(path)
        except OSError:
            return None
        try:
            if not _bpf.is_link_fd(fd):
                return None
            info = _bpf.link_info(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if info.type != _bpf.BPF_LINK_TYPE_XDP:
            return None
        return {"id": info.id, "prog_id": info.prog_id,
                "ifindex": info.ifindex}

    def bpffs_mount(self, path: str) -> str | None:
        """The bpffs mount point that holds path, or None."""
        return _facts.bpffs_mount(path)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def map_layouts(self, pin_dir: str) -> dict[str, dict]:
        """{name: layout with its id} of the contract's maps pinned under
        pin_dir."""
        found = {}
        for name in _abi.MAPS:
            path = os.path.join(pin_dir, name)
            if not os.path.lexists(path):
                continue
            try:
                with _bpf.Map.open_pinned(path) as m:
                    found[name] = dict(_abi.map_layout(m), id=m.id,
                                       name=m.name)
            except OSError as e:
                raise FastpathError(
                    "The pin %s cannot be opened as a map (%s): remove it "
                    "or choose another pin_dir." % (path, e))
        return found

    def program_maps(self, prog_id: int) -> dict[str, dict]:
        """{name: layout with its id} of the maps a loaded program uses."""
        found = {}
        for map_id in _facts.program_map_ids(prog_id):
            try:
                with _bpf.Map(_bpf.map_fd_by_id(map_id)) as m:
                    found[m.name] = dict(_abi.map_layout(m), id=m.id,
                                         name=m.name)
            except OSError:
                continue
        return found

    def pinned_prog_id(self, path: str) -> int | None:
        if not os.path.lexists(path):
            return None
        try:
            fd = _bpf.obj_get(path)
        except OSError:
            return None
        try:
            return _bpf.prog_info(fd).id
        except OSError:
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _open(ref: str | int) -> _bpf.Map:
        """A map by its pin path or its id."""
        if isinstance(ref, int):
            return _bpf.Map(_bpf.map_fd_by_id(ref))
        return _bpf.Map.open_pinned(ref)

    def read_ports(self, ref: str | int) -> list[int]:
        with self._open(ref) as m:
            keys, values = m.lookup_batch()
        return [_abi.U32.unpack_from(keys, i * 4)[0]
                for i in range(len(values)) if values[i:i + 1] != b"\0"]

    def read_flags(self, ref: str | int) -> int:
        with self._open(ref) as m:
            raw = m.lookup(_abi.U32.pack(0))
        return _abi.SETTINGS.unpack(raw)[0] if raw else 0

    def attached_map_ids(self, skip_ifname: str | None) -> dict[int, list]:
        """{map id: [interfaces]} over every XDP program attached on the
        host, except on skip_ifname."""
        users: dict[int, list] = {}
        for link in _facts.links(self.runner, self.tool("ip")):
            prog = _facts.attached_program(link)
            if link["ifname"] == skip_ifname or not prog or not prog["id"]:
                continue
            for map_id in _facts.program_map_ids(prog["id"]):
                users.setdefault(map_id, []).append(link["ifname"])
        return users

    # Changes.

    def check_private_dir(self, path: str) -> None:
        """Refuse a pin directory that is not root's alone (_pins)."""
        _pins.check_private_dir(path, _pins.PIN_DIR)

    def make_dir(self, path: str) -> None:
        """A new directory of root's alone; one that exists is refused."""
        os.mkdir(path, 0o700)
        try:
            _pins.check_private_dir(path, _pins.PIN_DIR)
        except FastpathError:
            os.rmdir(path)
            raise

    def remove_dir(self, path: str) -> None:
        os.rmdir(path)

    def remove_tree(self, path: str) -> None:
        if not os.path.lexists(path):
            return
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                self.remove_tree(full)
            else:
                os.unlink(full)
        os.rmdir(path)

    def unlink(self, path: str) -> None:
        try:
            os.unlink(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def pin_map_id(self, map_id: int, path: str) -> None:
        self._pin(_bpf.map_fd_by_id(map_id), path)

    def pin_prog_id(self, prog_id: int, path: str) -> None:
        self._pin(_bpf.prog_fd_by_id(prog_id), path)

    def repin_link(self, link_id: int, path: str) -> None:
        """Pin the link at path, in the place of whatever is pinned there.
        The fd keeps the link attached while its old pin, if that was the
        pin, goes."""
        fd = _bpf.link_fd_by_id(link_id)
        try:
            self.unlink(path)
            _bpf.obj_pin(fd, path)
        finally:
            os.close(fd)

    @staticmethod
    def _pin(fd: int, path: str) -> None:
        try:
            _bpf.obj_pin(fd, path)
        finally:
            os.close(fd)

    def load(self, obj: str, tmp_dir: str, program: str,
             reuse: dict[str, str]) -> Loaded:
        """Load every program of obj as XDP under tmp_dir/progs, reusing
        the pinned maps of reuse {name: path}; every map of the object is
        pinned again under tmp_dir/maps. Raise FastpathError with the tail
        of the verifier log when the kernel refuses it."""
        progs = os.path.join(tmp_dir, "progs")
        maps_dir = os.path.join(tmp_dir, "maps")
        argv = [self.tool("bpftool"), "prog", "loadall", obj, progs,
                "type", "xdp"]
        for name in sorted(reuse):
            argv += ["map", "name", name, "pinned", reuse[name]]
        argv += ["pinmaps", maps_dir]
        try:
            self.runner.run(argv, lambda rc, out, err:
                            load_failure(err, obj, program))
        except FastpathError as e:
            e.stderr = verifier_tail(e.stderr)
            raise
        pin = os.path.join(progs, program)
        if not os.path.lexists(pin):
            names = sorted(os.listdir(progs)) if os.path.isdir(progs) else []
            raise FastpathError(
                "%s has no program named %s (it has %s): set program to one "
                "of them." % (obj, program, ", ".join(names) or "none"),
                cmd=argv)
        fd = _bpf.obj_get(pin)
        try:
            info = _bpf.prog_info(fd)
        finally:
            os.close(fd)
        return Loaded(pin, info.id, bytes(info.tag).hex(), maps_dir)

    def attach(self, ifname: str, mode: str, pin: str,
               replace: bool = False) -> None:
        self.runner.run(attach_argv(self.tool("ip"), ifname, mode, pin,
                                    replace),
                        "Could not attach the program to %s in %s mode: see "
                        "stderr." % (ifname, mode))

    def detach(self, ifname: str, mode: str) -> None:
        self.runner.run([self.tool("ip"), "link", "set", "dev", ifname,
                         IP_KEYWORDS.get(mode, "xdp"), "off"],
                        "Could not detach the XDP program of %s: see "
                        "stderr." % ifname)

    # Changes through BPF links. They raise OSError (_bpf.BpfError): the
    # caller words it, knowing what it was doing.

    def create_link(self, ifname: str, mode: str, prog_pin: str,
                    link_pin: str) -> None:
        """Attach the program pinned at prog_pin to ifname in mode through
        a new link, pinned at link_pin: the pin is what keeps it attached.
        If the pin fails, the link is detached: nothing stays attached."""
        ifindex = socket.if_nametoindex(ifname)
        prog_fd = _bpf.obj_get(prog_pin)
        try:
            link_fd = _bpf.link_create_xdp(prog_fd, ifindex,
                                           XDP_MODE_FLAGS[mode])
        finally:
            os.close(prog_fd)
        self._pin_link(link_fd, link_pin)

    @staticmethod
    def _pin_link(link_fd: int, path: str) -> None:
        """Pin a new link and close its fd. If the pin fails the link is
        detached first: the kernel frees a link from a work queue, a
        moment after its last fd, and the interface must be free at
        once for what comes next."""
        try:
            _bpf.obj_pin(link_fd, path)
        except OSError:
            try:
                _bpf.link_detach(link_fd)
            except OSError:
                pass        # closing the fd frees it, a moment later
            raise
        finally:
            os.close(link_fd)

    def update_link(self, link_id: int, prog_pin: str,
                    old_prog_id: int) -> None:
        """Swap the link's program for prog_pin's in one step, only if it
        still runs old_prog_id (EPERM otherwise)."""
        fds = []
        try:
            fds.append(_bpf.link_fd_by_id(link_id))
            fds.append(_bpf.obj_get(prog_pin))
            fds.append(_bpf.prog_fd_by_id(old_prog_id))
            _bpf.link_update(*fds)
        finally:
            for fd in fds:
                os.close(fd)

    def detach_link(self, ref: str | int) -> None:
        """Detach the program of a link, by its pin or its id; a pin, if
        any, stays, of a link that attaches nothing."""
        fd = _bpf.link_fd_by_id(ref) if isinstance(ref, int) else \
            _bpf.obj_get(ref)
        try:
            _bpf.link_detach(fd)
        finally:
            os.close(fd)

    def driver_says(self, ifname: str, mode: str, prog_pin: str
                    ) -> str | None:
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

    def move_to_link(self, ifname: str, mode: str, old_pin: str,
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
                self._pin_link(_bpf.link_create_xdp(new_fd, ifindex, flags),
                               link_pin)
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

    def write_ports(self, ref: str | int, ports: list[int],
                    clear: Sequence[int] = ()) -> None:
        """sip_ports[p] = 1 for ports, 0 for clear; additions first so that
        the map never lacks a port of both sets."""
        keys = [_abi.U32.pack(p) for p in ports] + \
            [_abi.U32.pack(p) for p in clear]
        values = b"\1" * len(ports) + b"\0" * len(clear)
        with self._open(ref) as m:
            m.update_batch(b"".join(keys), values)

    def write_flags(self, ref: str | int, flags: int) -> None:
        with self._open(ref) as m:
            m.update(_abi.U32.pack(0), _abi.SETTINGS.pack(flags, 0))


# The commands that do a change by hand, for what an undo could not do.


def by_hand_update(path: str, entries: list[tuple[bytes, bytes]]) -> str:
    return "; ".join("bpftool map update pinned %s key hex %s value hex %s"
                     % (path, hex_bytes(key), hex_bytes(value))
                     for key, value in entries)


def by_hand_ports(path: str, ports: list[int], clear: list[int]) -> str:
    return by_hand_update(path, [(_abi.U32.pack(p), b"\1") for p in ports]
                          + [(_abi.U32.pack(p), b"\0") for p in clear])


def by_hand_flags(path: str, flags: int) -> str:
    return by_hand_update(path, [(_abi.U32.pack(0),
                                  _abi.SETTINGS.pack(flags, 0))])
