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
(_abi.prog_pin_name); a transient tmp_<pid> directory while a load is in
flight.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
from typing import Sequence

from . import _abi, _bpf, _facts
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

    def make_dir(self, path: str) -> None:
        os.mkdir(path, 0o700)

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
