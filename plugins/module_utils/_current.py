# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is there now: the interface, its XDP program and our pins.

Private to this collection. read_current() reads through a Host (_host)
and judges nothing but what it finds (a pin of another layout, a program
that is not ours); _plan decides what to change.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING

from . import _abi, _facts

if TYPE_CHECKING:
    from . import _host


def same_name(kernel_name: str | None, program: str) -> bool:
    """The kernel keeps the first 15 characters of a program's name."""
    return bool(kernel_name) and kernel_name == program[:15]


def layout_problem(name: str, path: str, found: dict) -> str | None:
    """A sentence naming the map when found differs from _abi.KNOWN_MAPS
    (its name, when found has one: the kernel keeps 15 characters)."""
    expected = _abi.map_layout(_abi.KNOWN_MAPS[name])
    if "name" in found:
        expected["name"] = name[:15]
    diffs = ["%s %s (the program needs %s)" % (key, found[key], value)
             for key, value in sorted(expected.items())
             if found[key] != value]
    if not diffs:
        return None
    return ("The pinned map %s (%s) does not have the layout of the "
            "program's map %s: %s. Nothing was changed: save its entries "
            "and remove the pin, or choose another pin_dir."
            % (path, name, name, ", ".join(diffs)))


class Current:
    """The interface, its XDP program and our pins, as the kernel has
    them."""

    def __init__(self) -> None:
        self.prog: dict | None = None  # {id, name, tag, mode} or None
        self.ours = False         # its name is the module's program
        self.ifindex: int | None = None
        self.links_supported = False  # the kernel has XDP links
        # The link that attaches prog ({id, prog_id, ifindex}); None: prog
        # is attached through netlink, or there is no prog.
        self.link: dict | None = None
        # What our link pin holds ({id, prog_id, ifindex}, ifindex 0 once
        # detached), or None when there is no link pin.
        self.link_pin: dict | None = None
        self.prog_maps: dict[str, dict] = {}  # maps of the attached program
        self.pins: dict[str, dict] = {}  # {name: layout} under pin_dir
        self.bad_pins: dict[str, str] = {}  # {name: why} other layouts
        self.adopt: dict[str, int] = {}  # {name: map id} to pin
        self.uses_pins = False    # the program uses every map pinned
        self.prog_pin_id: int | None = None  # program behind its pin
        self.ports: list[int] | None = None  # sip_ports, None: no map yet
        self.flags: int | None = None  # settings flags, None: no map yet
        self.limits: bytes | None = None  # the `limits` value, or no map
        # Every slot of `scanner_sigs`, or None: no map yet.
        self.signatures: list[bytes] | None = None
        self.pin_dir_exists = False

    def ref(self, pin_dir: str, name: str) -> str | int | None:
        """How to open one of our maps: its pin, or the attached program's
        map that will be pinned, or None when it does not exist yet."""
        if name in self.pins:
            return os.path.join(pin_dir, name)
        return self.adopt.get(name)

    @property
    def method(self) -> str | None:
        """How prog is attached: link, netlink, or None."""
        return _facts.attach_method(self.link, self.prog)

    @property
    def link_pinned(self) -> bool:
        """Our link pin holds the link that attaches prog (not a detached
        link, nor one left from before)."""
        return self.link is not None and self.link_pin is not None and \
            self.link_pin["id"] == self.link["id"]

    def summary(self) -> dict | None:
        if not self.prog:
            return None
        return dict(self.prog, attach_method=self.method)


def read_attachment(host: _host.Host, ifname: str
                    ) -> tuple[dict | None, dict | None, int | None]:
    """(program, link, ifindex) of ifname: the program as `ip` shows it,
    and the link that attaches it, if any."""
    link = host.link(ifname)
    prog = _facts.attached_program(link)
    ifindex = link.get("ifindex")
    return prog, host.xdp_link(ifindex, prog), ifindex


def read_current(host: _host.Host, ifname: str, pin_dir: str,
                 program: str) -> Current:
    cur = Current()
    cur.prog, cur.link, cur.ifindex = read_attachment(host, ifname)
    cur.ours = bool(cur.prog) and same_name(cur.prog["name"], program)
    cur.links_supported = host.links_supported() or cur.link is not None
    # Nothing under pin_dir is read before pin_dir is found to be root's
    # alone (_pins).
    cur.pin_dir_exists = host.exists(pin_dir)
    if cur.pin_dir_exists:
        host.check_private_dir(pin_dir)
    cur.link_pin = host.pinned_link(
        os.path.join(pin_dir, _abi.link_pin_name(ifname)))
    if cur.pin_dir_exists:
        cur.pins = host.map_layouts(pin_dir)
    for name, found in sorted(cur.pins.items()):
        problem = layout_problem(name, os.path.join(pin_dir, name), found)
        if problem:
            cur.bad_pins[name] = problem
            del cur.pins[name]
    if cur.ours and cur.prog["id"]:
        cur.prog_maps = host.program_maps(cur.prog["id"])
        cur.adopt = {
            name: found["id"] for name, found in cur.prog_maps.items()
            if name in _abi.MAPS and name not in cur.pins
            and name not in cur.bad_pins
            and layout_problem(name, "", found) is None}
        cur.uses_pins = all(
            name in cur.prog_maps and cur.prog_maps[name]["id"] == found["id"]
            for name, found in cur.pins.items() if name in _abi.MAPS)
    cur.prog_pin_id = host.pinned_prog_id(
        os.path.join(pin_dir, _abi.prog_pin_name(ifname)))
    ports_ref = cur.ref(pin_dir, "sip_ports")
    if ports_ref is not None:
        cur.ports = sorted(host.read_ports(ports_ref))
    settings_ref = cur.ref(pin_dir, "settings")
    if settings_ref is not None:
        cur.flags = host.read_flags(settings_ref)
    limits_ref = cur.ref(pin_dir, "limits")
    if limits_ref is not None:
        cur.limits = host.read_limits(limits_ref)
    signatures_ref = cur.ref(pin_dir, "scanner_sigs")
    if signatures_ref is not None:
        cur.signatures = host.read_slots(signatures_ref)
    return cur
