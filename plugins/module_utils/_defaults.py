# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The defaults of this collection, each written once.

Private to this collection. The modules' argument specs, the boot command
and the saved lists take their defaults from here; the roles' defaults
are checked against these by tests/unit/test_defaults.py. The pin
directory's default is _abi.DEFAULT_PIN_DIR.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os

# root:root 0700: the roles and bpf_map_entry make it so, and whatever
# reads it (the boot command, a restore) refuses one that is not root's
# alone (_pins.check_private_dir).
STATE_DIR = "/var/lib/vos-fastpath"
MODE = "auto"
SIP_PORTS = (5060,)
SETTINGS = {"block_all_ports": False, "stealth": True, "malformed": "drop",
            "shadow": False}
# xdp_attach's limits, each key a task leaves out: every limit and ban
# off, a source per IPv4 address and per IPv6 /64 (docs/dataplane.md,
# "Rate limits and bans"). A task without limits writes the same: the
# all-zero value.
LIMITS = {"untrusted": {}, "trusted": {}, "bans": False, "ban_after": 0,
          "ban_time": 0, "scanner_ban_time": 0, "prefix_v4": 32,
          "prefix_v6": 64}
SCANNER_SIGNATURES = ()


def saved_list(state_dir: str, list_name: str) -> str:
    """Where a list is kept on disk for the boot command to restore."""
    return os.path.join(state_dir, "lists", list_name + ".list")
