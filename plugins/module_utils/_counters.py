# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data plane counters: read them from the pins, render them as text.

Private to this collection. The per-CPU `stats` and `proto_stats` maps are
summed over every possible CPU and returned by counter name, so that a
module can return them as JSON and a person can read them as a table.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Sequence

from . import _abi, _bpf, _pins

COUNTER_MAPS = _abi.COUNTER_MAPS

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


def read_counters(pin_dir: str = _abi.DEFAULT_PIN_DIR) -> Counters:
    """`stats` and `proto_stats` under pin_dir, summed over CPUs:
    {"stats": {"PASSED": {"packets": n, "bytes": n}, ...},
     "proto_stats": {"TCP": {...}, ...}}. Each map is checked against
    the contract (_pins.open_map); the caller checks pin_dir."""
    out = {}
    for map_name, (names, _help) in COUNTER_MAPS.items():
        with _pins.open_map(pin_dir, map_name) as m:
            out[map_name] = read_map_counters(m, names)
    return out


def prometheus_text(counters: Counters) -> str:
    """The counters in node_exporter's textfile format."""
    metrics = (
        ("stats", "reason", "vos_fastpath_packets_total", "packets",
         "Packets seen by the vos.fastpath XDP program, by verdict."),
        ("stats", "reason", "vos_fastpath_bytes_total", "bytes",
         "Bytes of whole frames seen by the vos.fastpath XDP program, by "
         "verdict."),
        ("proto_stats", "protocol", "vos_fastpath_protocol_packets_total",
         "packets", "Packets with a valid IP header, by protocol class."),
        ("proto_stats", "protocol", "vos_fastpath_protocol_bytes_total",
         "bytes", "Bytes of frames with a valid IP header, by protocol "
         "class."),
    )
    lines = []
    for map_name, label, metric, field, help_text in metrics:
        lines.append("# HELP %s %s" % (metric, help_text))
        lines.append("# TYPE %s counter" % metric)
        names, _help = COUNTER_MAPS[map_name]
        for name in names:
            lines.append('%s{%s="%s"} %d' % (
                metric, label, name.lower(), counters[map_name][name][field]))
    return "\n".join(lines) + "\n"
