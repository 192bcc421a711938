# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy's health gate: is the program where and how it should be.

Private to this collection. Pure: xdp_stats reads the kernel and passes
what it found.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type


def required_mode(mode: str, require_native: bool) -> str | None:
    """The attach mode the gate insists on, or None for any."""
    if require_native:
        return "native"
    return None if mode == "auto" else mode


def problems(attached: list[dict], interfaces: list[str], mode: str,
             require_native: bool) -> list[str]:
    """One sentence per interface where the program is missing or runs in
    another mode than required; attached is xdp_stats' `attached`."""
    modes = dict((a["interface"], a["mode"]) for a in attached)
    required = required_mode(mode, require_native)
    found = []
    for ifname in interfaces:
        in_use = modes.get(ifname)
        if not in_use:
            found.append("%s: the program is not attached" % ifname)
        elif required and in_use != required:
            found.append("%s: attached in %s mode, %s required"
                         % (ifname, in_use, required))
    return found
