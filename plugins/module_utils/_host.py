# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel boundary of xdp_attach: every read and change it makes.

Private to this collection. bpf() goes through _bpf (links through
_bpf_link), rtnetlink through _netlink, `ip` and `bpftool` through the one
Runner, bpffs paths through os; the words of a failure are _messages'.
Nothing here decides anything: _current reads through it, _apply changes
through it, and the unit tests replace it with a fake that records each
call.

Pin layout under pin_dir: one pin per map, by its name (shared by every
interface of the host); one pin per interface for its program
(_abi.prog_pin_name) and one for the BPF link that attaches it
(_abi.link_pin_name); a transient tmp_<pid> directory while a load is in
flight.

A program attaches through a BPF link where the kernel has them (5.9 and
later): only the link's holder, the pin, can change or remove it, so a
stray `ip link set dev X xdp off` or another loader's netlink attach
fails instead of removing the program. `ip` attaches through netlink on
older kernels. One change goes through rtnetlink (_netlink) rather than
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
import socket
from . import _abi, _bpf, _bpf_link, _facts, _netlink, _pins
from ._map_io import MapIO
from ._errors import FastpathError, first_line
from ._messages import IP_KEYWORDS, attach_argv, load_failure, verifier_tail
from ._runner import Runner

# The kernel keeps the first 15 characters of a program's name.
PROG_NAME_LEN = 15


class Loaded:
    """A program loaded under a temporary pin."""

    def __init__(self, pin: str, prog_id: int, tag: str,
                 maps_dir: str) -> None:
        self.pin = pin
        self.id = prog_id
        self.tag = tag
        self.maps_dir = maps_dir


def pinned_fd(path: str) -> int | None:
    """An fd of the object pinned at path, or None when there is none (or
    it cannot be opened)."""
    if not os.path.lexists(path):
        return None
    try:
        return _bpf.obj_get(path)
    except OSError:
        return None


class Host(MapIO):
    """Every read and change of kernel state that xdp_attach makes (the
    values in the maps: MapIO)."""

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
        fd = pinned_fd(path)
        if fd is None:
            return None
        try:
            if not _bpf_link.is_link_fd(fd):
                return None
            info = _bpf_link.link_info(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if info.type != _bpf_link.BPF_LINK_TYPE_XDP:
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
        pin_dir, retired ones included."""
        found = {}
        for name in _abi.KNOWN_MAPS:
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
        fd = pinned_fd(path)
        if fd is None:
            return None
        try:
            return _bpf.prog_info(fd).id
        except OSError:
            return None
        finally:
            os.close(fd)

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
        fd = _bpf_link.link_fd_by_id(link_id)
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
        pins = self._program_pins(progs)
        if program[:PROG_NAME_LEN] not in pins:
            raise FastpathError(
                "%s has no program named %s (it has %s): set program to one "
                "of them." % (obj, program, ", ".join(sorted(pins)) or "none"),
                cmd=argv)
        pin, info = pins[program[:PROG_NAME_LEN]]
        return Loaded(pin, info.id, bytes(info.tag).hex(), maps_dir)

    @staticmethod
    def _program_pins(progs: str) -> dict[str, tuple[str, _bpf.ProgInfo]]:
        """{program name: (pin, info)} of the programs pinned in progs.
        The name comes from the kernel: a bpftool built on libbpf 1.0 or
        later pins a program by its name, an older one (Debian 11's, for
        one) by its section's."""
        found = {}
        for entry in sorted(os.listdir(progs)) if os.path.isdir(progs) else []:
            pin = os.path.join(progs, entry)
            fd = _bpf.obj_get(pin)
            try:
                info = _bpf.prog_info(fd)
            finally:
                os.close(fd)
            found[info.name.decode()] = (pin, info)
        return found

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
            link_fd = _bpf_link.link_create_xdp(
                prog_fd, ifindex, _netlink.XDP_MODE_FLAGS[mode])
        finally:
            os.close(prog_fd)
        _bpf_link.pin_link(link_fd, link_pin)

    def update_link(self, link_id: int, prog_pin: str,
                    old_prog_id: int) -> None:
        """Swap the link's program for prog_pin's in one step, only if it
        still runs old_prog_id (EPERM otherwise)."""
        fds = []
        try:
            fds.append(_bpf_link.link_fd_by_id(link_id))
            fds.append(_bpf.obj_get(prog_pin))
            fds.append(_bpf.prog_fd_by_id(old_prog_id))
            _bpf_link.link_update(*fds)
        finally:
            for fd in fds:
                os.close(fd)

    def detach_link(self, ref: str | int) -> None:
        """Detach the program of a link, by its pin or its id; a pin, if
        any, stays, of a link that attaches nothing."""
        fd = _bpf_link.link_fd_by_id(ref) if isinstance(ref, int) else \
            _bpf.obj_get(ref)
        try:
            _bpf_link.link_detach(fd)
        finally:
            os.close(fd)

    # Changes through rtnetlink (_netlink).

    def driver_says(self, ifname: str, mode: str, prog_pin: str
                    ) -> str | None:
        """Why the driver refuses prog_pin's program in mode, in its own
        words, or None (_netlink.driver_says)."""
        return _netlink.driver_says(ifname, mode, prog_pin)

    def move_to_link(self, ifname: str, mode: str, old_pin: str,
                     prog_pin: str, link_pin: str) -> None:
        """Swap old_pin's program, attached to ifname through netlink in
        mode, for a link of prog_pin's program pinned at link_pin
        (_netlink.move_to_link); raise FastpathError."""
        _netlink.move_to_link(ifname, mode, old_pin, prog_pin, link_pin)
