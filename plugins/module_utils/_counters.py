# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data plane counters: read them from the pins, render them as text.

Private to this collection. The per-CPU counter maps (`stats`, `stats_ext`,
`proto_stats`, `scanner_hits`) are summed over every possible CPU and
returned by name, with the number of bans in force, so that a module can
return them as JSON and a person can read them as a table.

A host still running the first release (0.1.0) has only the maps of
_abi.MAPS_0_1 pinned: what the later maps hold is left out, and
missing_maps() names them so that the caller can say why.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import time
from typing import Sequence

from . import _abi, _bpf, _pins

COUNTER_MAPS = _abi.COUNTER_MAPS
# The maps read here that a 0.1.0 program does not have.
LATER_MAPS = tuple(name for name in (*COUNTER_MAPS, "scanner_sigs",
                                     "scanner_hits", "bans")
                   if name not in _abi.MAPS_0_1)
# The maps whose counters are reasons: each frame is counted in one of
# them, once.
REASON_MAPS = ("stats", "stats_ext")

Counter = dict[str, int]            # {"packets": n, "bytes": n}
Counters = dict[str, dict[str, Counter]]


def sum_percpu(raw: bytes, slot_size: int) -> tuple[int, int]:
    """(packets, bytes) of one per-CPU fp_counter value, summed over CPUs."""
    packets = total = 0
    for offset in range(0, len(raw) - slot_size + 1, slot_size):
        p, b = _abi.COUNTER.unpack_from(raw, offset)
        packets += p
        total += b
    return packets, total


def read_map_counters(m: _bpf.Map, names: Sequence[str]
                      ) -> dict[str, Counter]:
    """Every counter of one per-CPU counter map, by name."""
    out = {}
    for index, name in enumerate(names):
        raw = m.lookup(_abi.U32.pack(index))
        packets, total = sum_percpu(raw or b"", m.slot_size)
        out[name] = {"packets": packets, "bytes": total}
    return out


def pinned(pin_dir: str, name: str) -> bool:
    return os.path.lexists(os.path.join(pin_dir, name))


def missing_maps(pin_dir: str) -> list[str]:
    """The maps read here that came after 0.1.0 and are not pinned."""
    return [name for name in LATER_MAPS if not pinned(pin_dir, name)]


def read_counters(pin_dir: str = _abi.DEFAULT_PIN_DIR) -> Counters:
    """The counter maps under pin_dir, summed over CPUs:
    {"stats": {"PASSED": {"packets": n, "bytes": n}, ...},
     "stats_ext": {"BANNED": {...}, ...}, "proto_stats": {"TCP": {...}}}.
    A map that came after 0.1.0 and is not pinned is left out. Each map
    is checked against the contract (_pins.open_map); the caller checks
    pin_dir."""
    out = {}
    for map_name, (names, _help) in COUNTER_MAPS.items():
        if map_name in LATER_MAPS and not pinned(pin_dir, map_name):
            continue
        with _pins.open_map(pin_dir, map_name) as m:
            out[map_name] = read_map_counters(m, names)
    return out


def total_packets(counters: Counters) -> int:
    """Every frame the program counted: each is in one reason map."""
    return sum(c["packets"] for map_name in REASON_MAPS
               for c in counters.get(map_name, {}).values())


def signature_text(raw: bytes) -> str | None:
    """The text of one fp_signature value; None for a slot the program
    skips ([step 12]: below 4 or above 32 is skipped), "" for the end of
    the list (len 0)."""
    length, _reserved, text = _abi.SIGNATURE.unpack_from(
        raw.ljust(_abi.SIGNATURE.size, b"\0"))
    if length == 0:
        return ""
    if not _abi.MIN_SIGNATURE_LEN <= length <= _abi.MAX_SIGNATURE_LEN:
        return None
    return text[:length].decode("ascii", "replace")


def read_scanner_hits(pin_dir: str) -> dict[str, Counter] | None:
    """{signature: {"packets": n, "bytes": n}} in slot order, the hits
    of each signature in scanner_sigs; None when the maps are not pinned.
    A signature listed twice is shown once, with its first slot's hits:
    of two matches at the same place, the lowest slot wins."""
    if not (pinned(pin_dir, "scanner_sigs") and pinned(pin_dir,
                                                       "scanner_hits")):
        return None
    out: dict[str, Counter] = {}
    with _pins.open_map(pin_dir, "scanner_sigs") as sigs, \
            _pins.open_map(pin_dir, "scanner_hits") as hits:
        for slot in range(sigs.max_entries):
            key = _abi.U32.pack(slot)
            text = signature_text(sigs.lookup(key) or b"")
            if text == "":
                break
            if text is None or text in out:
                continue
            packets, total = sum_percpu(hits.lookup(key) or b"",
                                        hits.slot_size)
            out[text] = {"packets": packets, "bytes": total}
    return out


def monotonic_ns() -> int:
    """Now on CLOCK_MONOTONIC, the clock of a ban's expires_ns
    (docs/dataplane.md, Rate limits and bans)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def count_active_bans(pin_dir: str, now_ns: int | None = None
                      ) -> int | None:
    """How many entries of `bans` end after now ([step 6]); None when the
    map is not pinned. Expired bans stay in the map until the LRU takes
    their place, so they are not counted."""
    if not pinned(pin_dir, "bans"):
        return None
    with _pins.open_map(pin_dir, "bans") as bans:
        _keys, values = bans.lookup_batch()
    now = monotonic_ns() if now_ns is None else now_ns
    return sum(1 for offset in range(0, len(values), _abi.BAN.size)
               if _abi.BAN.unpack_from(values, offset)[0] > now)


def later_maps_note(pin_dir: str, missing: Sequence[str]) -> str:
    """Why counters are left out on a host that lacks later maps."""
    names = (", ".join(missing[:-1]) + " or " + missing[-1]
             if len(missing) > 1 else missing[0])
    return ("%s has no %s map: the program there predates rate limits, "
            "bans and scanner fingerprints (0.1.0), so BANNED, SCANNER, "
            "the signature hits and the active bans are not shown; deploy "
            "this version to get them." % (pin_dir, names))


def _label(value: str) -> str:
    """A label value of the textfile format, escaped."""
    return (value.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n"))


def prometheus_text(counters: Counters,
                    scanner_hits: dict[str, Counter] | None = None,
                    active_bans: int | None = None) -> str:
    """The counters in node_exporter's textfile format. The reasons of
    `stats` and `stats_ext` share one metric; what a host does not have
    (an older program) is left out."""
    metrics = (
        (REASON_MAPS, "reason", "vos_fastpath_packets_total", "packets",
         "Packets seen by the vos.fastpath XDP program, by verdict."),
        (REASON_MAPS, "reason", "vos_fastpath_bytes_total", "bytes",
         "Bytes of whole frames seen by the vos.fastpath XDP program, by "
         "verdict."),
        (("proto_stats",), "protocol", "vos_fastpath_protocol_packets_total",
         "packets", "Packets with a valid IP header, by protocol class."),
        (("proto_stats",), "protocol", "vos_fastpath_protocol_bytes_total",
         "bytes", "Bytes of frames with a valid IP header, by protocol "
         "class."),
    )
    lines = []
    for map_names, label, metric, field, help_text in metrics:
        lines.append("# HELP %s %s" % (metric, help_text))
        lines.append("# TYPE %s counter" % metric)
        for map_name in map_names:
            if map_name not in counters:
                continue
            names, _help = COUNTER_MAPS[map_name]
            for name in names:
                lines.append('%s{%s="%s"} %d' % (
                    metric, label, name.lower(),
                    counters[map_name][name][field]))
    if scanner_hits is not None:
        for field in ("packets", "bytes"):
            metric = "vos_fastpath_scanner_%s_total" % field
            lines.append("# HELP %s %s of requests dropped as SCANNER, by "
                         "the signature that matched." % (
                             metric, field.capitalize()))
            lines.append("# TYPE %s counter" % metric)
            for signature, counter in scanner_hits.items():
                lines.append('%s{signature="%s"} %d' % (
                    metric, _label(signature), counter[field]))
    if active_bans is not None:
        lines.append("# HELP vos_fastpath_bans_active Sources banned now.")
        lines.append("# TYPE vos_fastpath_bans_active gauge")
        lines.append("vos_fastpath_bans_active %d" % active_bans)
    return "\n".join(lines) + "\n"
