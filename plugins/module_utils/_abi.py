# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data plane ABI (bpf/fp_abi.h), mirrored once for Python.

Private to this collection. tests/dataplane/test_abi_mirror.py checks every
name and number here against the built object's BTF and the C header.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import _bpf

PROGRAM_NAME = "sip_xdp_prog"
DEFAULT_PIN_DIR = "/sys/fs/bpf/vos_fastpath"

# Map types of include/uapi/linux/bpf.h used by the program.
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_XSKMAP = 17
BPF_F_NO_PREALLOC = 1

# XDP return codes.
XDP_ABORTED = 0
XDP_DROP = 1
XDP_PASS = 2
XDP_TX = 3
XDP_REDIRECT = 4

# fp_settings.flags bits.
FP_BLOCK_ALL_PORTS = 1 << 0
FP_STEALTH_OFF = 1 << 1
FP_MALFORMED_PASS = 1 << 2
FP_SHADOW = 1 << 3

# fp_limits.flags bits.
FP_LIMIT_BANS = 1 << 0

# Request classes (enum fp_class): the index of the budgets in fp_limits
# and of fp_rate.tat_ns. Slots from len(CLASSES) to CLASS_SLOTS are
# reserved.
CLASSES = ("REGISTER", "INVITE", "OPTIONS", "OTHER", "SYN")
FP_CLASS_REGISTER, FP_CLASS_INVITE, FP_CLASS_OPTIONS, FP_CLASS_OTHER, \
    FP_CLASS_SYN = range(len(CLASSES))
CLASS_SLOTS = 8
MAX_SIGNATURE_LEN = 32
MIN_SIGNATURE_LEN = 4

SETTINGS_FLAGS = {
    "block_all_ports": FP_BLOCK_ALL_PORTS,
    "stealth_off": FP_STEALTH_OFF,
    "malformed_pass": FP_MALFORMED_PASS,
    "shadow": FP_SHADOW,
}

# `stats` indexes, in order.
REASONS = (
    "PASSED",
    "OPTIONS_DROPPED",
    "BLOCKED",
    "MALFORMED",
    "REDIRECTED",
    "RATE_LIMITED",
    "NOT_SIP",
    "NON_IP",
)
FP_PASSED, FP_OPTIONS_DROPPED, FP_BLOCKED, FP_MALFORMED, FP_REDIRECTED, \
    FP_RATE_LIMITED, FP_NOT_SIP, FP_NON_IP = range(len(REASONS))

REASON_HELP = {
    "PASSED": "packet for a SIP port passed to the stack",
    "OPTIONS_DROPPED": "stealth: OPTIONS request from an untrusted source",
    "BLOCKED": "source in the blocklist",
    "MALFORMED": "packet for a SIP UDP port that is not SIP",
    "REDIRECTED": "redirected to an AF_XDP socket",
    "RATE_LIMITED": "request over its source's budget",
    "NOT_SIP": "IP packet not for a SIP port, passed",
    "NON_IP": "not IPv4/IPv6, or a truncated or invalid IP header, passed",
}

FP_REASON_MAX = len(REASONS)

# `stats_ext` indexes, in order: reason FP_REASON_MAX + index. Its other
# slots are reserved.
REASONS_EXT = (
    "BANNED",
    "SCANNER",
)
FP_BANNED, FP_SCANNER = range(len(REASONS), len(REASONS) + len(REASONS_EXT))
STATS_EXT_SLOTS = 8

REASON_EXT_HELP = {
    "BANNED": "source banned for a while (rate limit or scanner)",
    "SCANNER": "request whose User-Agent matches a scanner signature",
}

# `proto_stats` indexes, in order.
PROTOS = ("TCP", "UDP", "ICMP", "OTHER")
FP_PROTO_TCP, FP_PROTO_UDP, FP_PROTO_ICMP, FP_PROTO_OTHER = range(len(PROTOS))

PROTO_HELP = {
    "TCP": "TCP, any port",
    "UDP": "UDP, any port",
    "ICMP": "ICMP or ICMPv6",
    "OTHER": "any other protocol, or an IPv6 extension chain not followed",
}

# The counter maps in the order people read them: map name -> (counter
# names in index order, one-line explanation per name).
COUNTER_MAPS = {
    "stats": (REASONS, REASON_HELP),
    "stats_ext": (REASONS_EXT, REASON_EXT_HELP),
    "proto_stats": (PROTOS, PROTO_HELP),
}


class MapSpec:
    """One map of the contract: name, type, key and value sizes, limits."""

    def __init__(self, name: str, map_type: int, key_size: int,
                 value_size: int, max_entries: int, flags: int = 0) -> None:
        self.name = name
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags

    def __repr__(self) -> str:
        return "MapSpec(%s)" % self.name


# struct layouts (little or big endian does not matter for the trie keys:
# prefixlen is host order, the address bytes are network order).
LPM_V4_KEY = struct.Struct("=I4s")     # struct fp_lpm_v4_key
LPM_V6_KEY = struct.Struct("=I16s")    # struct fp_lpm_v6_key
ADDR_V4 = struct.Struct("=4s")         # struct fp_addr_v4
ADDR_V6 = struct.Struct("=16s")        # struct fp_addr_v6
ENTRY = struct.Struct("=QII")          # struct fp_entry
SETTINGS = struct.Struct("=II")        # struct fp_settings
COUNTER = struct.Struct("=QQ")         # struct fp_counter
BUDGET = struct.Struct("=QII")         # struct fp_budget
# struct fp_limits: untrusted and trusted budgets (interval_ns, burst,
# reserved per slot), ban_after_ns, ban_ns, scanner_ban_ns, flags,
# prefix_v4, prefix_v6, reserved.
LIMITS = struct.Struct("=" + "QII" * (2 * CLASS_SLOTS) + "QQQIBBH")
SOURCE = struct.Struct("=BBH16s")      # struct fp_source
RATE = struct.Struct("=" + "Q" * CLASS_SLOTS + "QQ")   # struct fp_rate
BAN = struct.Struct("=QII")            # struct fp_ban (retired `bans`)
BAN_V2 = struct.Struct("=QQQII")       # struct fp_ban_v2
PARDON = struct.Struct("=QQ")          # struct fp_pardon
SIGNATURE = struct.Struct("=II%ds" % MAX_SIGNATURE_LEN)  # fp_signature
U32 = struct.Struct("=I")
U8 = struct.Struct("=B")

STRUCTS = {
    # name: [(member, offset, size), ...], total size
    "fp_lpm_v4_key": ([("prefixlen", 0, 4), ("addr", 4, 4)], 8),
    "fp_lpm_v6_key": ([("prefixlen", 0, 4), ("addr", 4, 16)], 20),
    "fp_addr_v4": ([("addr", 0, 4)], 4),
    "fp_addr_v6": ([("addr", 0, 16)], 16),
    "fp_entry": ([("expires_ns", 0, 8), ("source", 8, 4),
                  ("reserved", 12, 4)], 16),
    "fp_settings": ([("flags", 0, 4), ("reserved", 4, 4)], 8),
    "fp_counter": ([("packets", 0, 8), ("bytes", 8, 8)], 16),
    "fp_budget": ([("interval_ns", 0, 8), ("burst", 8, 4),
                   ("reserved", 12, 4)], 16),
    "fp_limits": ([("untrusted", 0, 128), ("trusted", 128, 128),
                   ("ban_after_ns", 256, 8), ("ban_ns", 264, 8),
                   ("scanner_ban_ns", 272, 8), ("flags", 280, 4),
                   ("prefix_v4", 284, 1), ("prefix_v6", 285, 1),
                   ("reserved", 286, 2)], 288),
    "fp_source": ([("family", 0, 1), ("prefixlen", 1, 1),
                   ("reserved", 2, 2), ("addr", 4, 16)], 20),
    "fp_rate": ([("tat_ns", 0, 64), ("over_since_ns", 64, 8),
                 ("last_drop_ns", 72, 8)], 80),
    "fp_ban": ([("expires_ns", 0, 8), ("reason", 8, 4),
                ("reserved", 12, 4)], 16),
    "fp_ban_v2": ([("expires_ns", 0, 8), ("since_ns", 8, 8),
                   ("packets", 16, 8), ("reason", 24, 4),
                   ("detail", 28, 4)], 32),
    "fp_pardon": ([("until_ns", 0, 8), ("reserved", 8, 8)], 16),
    "fp_signature": ([("len", 0, 4), ("reserved", 4, 4),
                      ("text", 8, MAX_SIGNATURE_LEN)], 40),
}

MAPS = {
    m.name: m
    for m in (
        MapSpec("sip_ports", BPF_MAP_TYPE_ARRAY, 4, 1, 65536),
        MapSpec("allow_v4", BPF_MAP_TYPE_LPM_TRIE, 8, 16, 65536,
                BPF_F_NO_PREALLOC),
        MapSpec("allow_v6", BPF_MAP_TYPE_LPM_TRIE, 20, 16, 65536,
                BPF_F_NO_PREALLOC),
        MapSpec("block_v4", BPF_MAP_TYPE_LPM_TRIE, 8, 16, 2097152,
                BPF_F_NO_PREALLOC),
        MapSpec("block_v6", BPF_MAP_TYPE_LPM_TRIE, 20, 16, 1048576,
                BPF_F_NO_PREALLOC),
        MapSpec("settings", BPF_MAP_TYPE_ARRAY, 4, 8, 1),
        MapSpec("stats", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, len(REASONS)),
        MapSpec("proto_stats", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16,
                len(PROTOS)),
        MapSpec("xsks_map", BPF_MAP_TYPE_XSKMAP, 4, 4, 64),
        MapSpec("stats_ext", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16,
                STATS_EXT_SLOTS),
        MapSpec("limits", BPF_MAP_TYPE_ARRAY, 4, LIMITS.size, 1),
        MapSpec("rate_state", BPF_MAP_TYPE_LRU_HASH, SOURCE.size,
                RATE.size, 131072),
        MapSpec("scanner_sigs", BPF_MAP_TYPE_ARRAY, 4, SIGNATURE.size, 32),
        MapSpec("scanner_hits", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 32),
        MapSpec("bans_v2", BPF_MAP_TYPE_LRU_HASH, SOURCE.size,
                BAN_V2.size, 65536),
        MapSpec("pardons", BPF_MAP_TYPE_LRU_HASH, SOURCE.size, PARDON.size,
                16384),
        MapSpec("rate_limited", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16,
                CLASS_SLOTS),
        MapSpec("block_v4_hosts", BPF_MAP_TYPE_HASH, 4, 16, 2097152,
                BPF_F_NO_PREALLOC),
        MapSpec("block_v6_hosts", BPF_MAP_TYPE_HASH, 16, 16, 1048576,
                BPF_F_NO_PREALLOC),
    )
}

# Maps that no program of this version uses: `bans` (value struct
# fp_ban) was replaced by `bans_v2`. A pin left by an earlier build is
# left alone by the attach and removed by the teardown.
RETIRED_MAPS = {"bans": MapSpec("bans", BPF_MAP_TYPE_LRU_HASH, SOURCE.size,
                                BAN.size, 65536)}
KNOWN_MAPS = {**MAPS, **RETIRED_MAPS}

# The maps of the first release (0.1.0): a host running it has these
# pinned and none of the others.
MAPS_0_1 = ("sip_ports", "allow_v4", "allow_v6", "block_v4", "block_v6",
            "settings", "stats", "proto_stats", "xsks_map")

# Constants of bpf/fp_abi.h checked against the header by the mirror test.
HEADER_CONSTANTS = {
    "FP_BLOCK_ALL_PORTS": FP_BLOCK_ALL_PORTS,
    "FP_STEALTH_OFF": FP_STEALTH_OFF,
    "FP_MALFORMED_PASS": FP_MALFORMED_PASS,
    "FP_SHADOW": FP_SHADOW,
    "FP_REASON_MAX": len(REASONS),
    "FP_PROTO_MAX": len(PROTOS),
    "FP_LIMIT_BANS": FP_LIMIT_BANS,
    "FP_CLASS_USED": len(CLASSES),
    "FP_CLASS_SLOTS": CLASS_SLOTS,
    "FP_MAX_SIGNATURE_LEN": MAX_SIGNATURE_LEN,
    "FP_REASON_EXT_MAX": len(REASONS) + STATS_EXT_SLOTS,
}
HEADER_CONSTANTS.update(("FP_" + name, i) for i, name in enumerate(REASONS))
HEADER_CONSTANTS.update(
    ("FP_" + name, len(REASONS) + i) for i, name in enumerate(REASONS_EXT))
HEADER_CONSTANTS.update(
    ("FP_PROTO_" + name, i) for i, name in enumerate(PROTOS))
HEADER_CONSTANTS.update(
    ("FP_CLASS_" + name, i) for i, name in enumerate(CLASSES))
HEADER_CONSTANTS.update(
    ("FP_MAX_" + name.upper(), spec.max_entries)
    for name, spec in MAPS.items())


def map_layout(m: MapSpec | _bpf.Map) -> dict:
    """The comparable part of a map: a MapSpec, or a map the kernel holds
    (_bpf.Map), which name the same attributes."""
    return {"type": m.map_type, "key_size": m.key_size,
            "value_size": m.value_size, "max_entries": m.max_entries,
            "flags": m.flags}


def prog_pin_name(ifname: str) -> str:
    """The pin of an interface's program under the pin directory. bpffs
    refuses '.' in names (eth0.100); ':' is never in an interface name."""
    return "prog_" + ifname.replace(".", ":")


def link_pin_name(ifname: str) -> str:
    """The pin of the BPF link that attaches an interface's program, next
    to its program pin; the same ':' for '.' rule."""
    return "link_" + ifname.replace(".", ":")
