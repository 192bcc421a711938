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

The metrics command (_metrics) also reads the RATE_LIMITED drops per
request class, the bans in force by what made them and the pardons in
force, and metrics_text() renders all of it, with the list sizes and
attachments _metrics finds, as node_exporter's textfile. Each metric of
prometheus_text() keeps its name there.
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
                                     "scanner_hits", "bans_v2")
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
    with _pins.open_map(pin_dir, "scanner_sigs") as sigs:
        slots = signature_slots(sigs)
    with _pins.open_map(pin_dir, "scanner_hits") as hits:
        for slot, text in enumerate(slots):
            if text is None or text in out:
                continue
            packets, total = sum_percpu(
                hits.lookup(_abi.U32.pack(slot)) or b"", hits.slot_size)
            out[text] = {"packets": packets, "bytes": total}
    return out


def signature_slots(sigs: _bpf.Map) -> list[str | None]:
    """The text of each slot of scanner_sigs before the end of the list,
    None for a slot the program skips."""
    slots: list[str | None] = []
    for slot in range(sigs.max_entries):
        text = signature_text(sigs.lookup(_abi.U32.pack(slot)) or b"")
        if text == "":
            break
        slots.append(text)
    return slots


def read_signature_slots(pin_dir: str) -> list[str | None] | None:
    """signature_slots() of the pinned scanner_sigs; None when it is not
    pinned."""
    if not pinned(pin_dir, "scanner_sigs"):
        return None
    with _pins.open_map(pin_dir, "scanner_sigs") as sigs:
        return signature_slots(sigs)


def monotonic_ns() -> int:
    """Now on CLOCK_MONOTONIC, the clock of a ban's expires_ns
    (docs/dataplane.md, Rate limits and bans)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def count_active_bans(pin_dir: str, now_ns: int | None = None
                      ) -> int | None:
    """How many entries of `bans_v2` end after now ([step 6]); None when
    the map is not pinned. Expired bans stay in the map until the LRU
    takes their place, so they are not counted."""
    causes = read_ban_causes(pin_dir, now_ns)
    return None if causes is None else sum(causes.values())


def read_ban_causes(pin_dir: str, now_ns: int | None = None
                    ) -> dict[tuple[int, int], int] | None:
    """The bans of `bans_v2` in force now, counted by what made them:
    {(reason, detail): n}, detail being the request class of a
    RATE_LIMITED ban and the scanner_sigs slot of a SCANNER ban
    (docs/dataplane.md, Rate limits and bans); None when the map is not
    pinned."""
    if not pinned(pin_dir, "bans_v2"):
        return None
    with _pins.open_map(pin_dir, "bans_v2") as bans:
        _keys, values = bans.lookup_batch()
    now = monotonic_ns() if now_ns is None else now_ns
    causes: dict[tuple[int, int], int] = {}
    for expires, _since, _packets, reason, detail in \
            _abi.BAN_V2.iter_unpack(values):
        if expires > now:
            causes[reason, detail] = causes.get((reason, detail), 0) + 1
    return causes


def count_active_pardons(pin_dir: str, now_ns: int | None = None
                         ) -> int | None:
    """How many entries of `pardons` last beyond now; None when the map
    is not pinned."""
    if not pinned(pin_dir, "pardons"):
        return None
    with _pins.open_map(pin_dir, "pardons") as pardons:
        _keys, values = pardons.lookup_batch()
    now = monotonic_ns() if now_ns is None else now_ns
    return sum(1 for until, _reserved in _abi.PARDON.iter_unpack(values)
               if until > now)


def read_rate_limited(pin_dir: str) -> dict[str, Counter] | None:
    """The RATE_LIMITED drops of each request class of _abi.CLASSES,
    summed over CPUs; None when `rate_limited` is not pinned."""
    if not pinned(pin_dir, "rate_limited"):
        return None
    with _pins.open_map(pin_dir, "rate_limited") as m:
        return read_map_counters(m, _abi.CLASSES)


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


# The maps the metrics command reads that an older program lacks, and
# what the textfile then leaves out.
METRICS_MAPS = {
    "stats_ext": "the BANNED and SCANNER verdicts",
    "scanner_sigs": "the bans by scanner signature",
    "scanner_hits": "the hits of each scanner signature",
    "bans_v2": "the bans in force",
    "pardons": "the pardons in force",
    "rate_limited": "the RATE_LIMITED drops by request class",
}


def metrics_missing(pin_dir: str) -> list[str]:
    """The maps of METRICS_MAPS that are not pinned."""
    return [name for name in METRICS_MAPS if not pinned(pin_dir, name)]


def _joined(words: Sequence[str], last: str) -> str:
    return (", ".join(words[:-1]) + " " + last + " " + words[-1]
            if len(words) > 1 else words[0])


def metrics_note(pin_dir: str, missing: Sequence[str]) -> str:
    """What the textfile leaves out on a host that lacks some maps."""
    return ("%s has no %s map, so %s are not exported: the program there "
            "is older than this collection; deploy this version to get "
            "them." % (pin_dir, _joined(missing, "or"),
                       _joined([METRICS_MAPS[m] for m in missing], "and")))


class Reading:
    """What one run of the metrics command found, for metrics_text().
    None where a map is missing (an older program) or was not read."""

    def __init__(self) -> None:
        self.counters: Counters = {}
        self.scanner_hits: dict[str, Counter] | None = None
        self.signatures: list[str | None] | None = None
        self.rate_limited: dict[str, Counter] | None = None
        self.bans: dict[tuple[int, int], int] | None = None
        self.pardons: int | None = None
        # One dict per list and family: list, family, keys, capacity,
        # owners ({owner: entries in force}); see _list_sizes.
        self.lists: list[dict] = []
        self.attached: dict[str, bool] = {}
        self.interval_s: int | None = None
        self.last_run: float | None = None
        self.notes: list[str] = []

    def active_bans(self) -> int | None:
        return None if self.bans is None else sum(self.bans.values())


Labels = tuple[tuple[str, str], ...]


def _sample(metric: str, labels: Labels, value: float) -> str:
    text = ",".join('%s="%s"' % (k, _label(v)) for k, v in labels)
    number = "%d" % value if isinstance(value, int) else repr(float(value))
    return "%s%s %s" % (metric, "{%s}" % text if text else "", number)


def _metric(metric: str, kind: str, help_text: str,
            samples: Sequence[tuple[Labels, float]]) -> list[str]:
    return (["# HELP %s %s" % (metric, help_text),
             "# TYPE %s %s" % (metric, kind)]
            + [_sample(metric, labels, value) for labels, value in samples])


def ban_labels(reason: int, detail: int,
               signatures: Sequence[str | None] | None) -> Labels:
    """The labels of a ban: its reason, and the request class (RATE_LIMITED)
    or the signature (SCANNER) that made it; a slot that names nothing
    now is shown as "slot N"."""
    if reason == _abi.FP_RATE_LIMITED:
        name = (_abi.CLASSES[detail].lower() if detail < len(_abi.CLASSES)
                else "slot %d" % detail)
        return (("reason", "rate_limited"), ("class", name))
    if reason == _abi.FP_SCANNER:
        text = (signatures[detail] if signatures is not None
                and detail < len(signatures) else None)
        return (("reason", "scanner"),
                ("signature", "slot %d" % detail if text is None else text))
    names = _abi.REASONS + _abi.REASONS_EXT
    return (("reason", names[reason].lower() if reason < len(names)
             else "reason %d" % reason),)


def ban_samples(causes: dict[tuple[int, int], int],
                signatures: Sequence[str | None] | None
                ) -> list[tuple[Labels, int]]:
    """Bans in force by labels: every request class and every signature,
    0 when none of their bans is in force."""
    counts: dict[Labels, int] = {}
    for index in range(len(_abi.CLASSES)):
        counts[ban_labels(_abi.FP_RATE_LIMITED, index, signatures)] = 0
    for slot, text in enumerate(signatures or ()):
        if text is not None:
            counts[ban_labels(_abi.FP_SCANNER, slot, signatures)] = 0
    for (reason, detail), n in sorted(causes.items()):
        labels = ban_labels(reason, detail, signatures)
        counts[labels] = counts.get(labels, 0) + n
    return list(counts.items())


def metrics_text(reading: Reading) -> str:
    """The textfile the metrics command writes: prometheus_text()'s
    metrics, then the drops per request class, the bans and pardons in
    force, the list sizes, the attachments and the run's own time. The
    notes come first, as comments."""
    lines = ["# note: " + note for note in reading.notes]
    lines.append(prometheus_text(reading.counters, reading.scanner_hits,
                                 reading.active_bans()).rstrip("\n"))
    drops = reading.rate_limited
    if drops is not None:
        for field in ("packets", "bytes"):
            lines += _metric(
                "vos_fastpath_rate_limited_%s_total" % field, "counter",
                "%s of requests dropped as RATE_LIMITED, by request class."
                % field.capitalize(),
                [((("class", name.lower()),), drops[name][field])
                 for name in _abi.CLASSES])
    if reading.bans is not None:
        lines += _metric(
            "vos_fastpath_bans_in_force", "gauge",
            "Sources banned now, by the reason and the request class or "
            "scanner signature that made the ban.",
            ban_samples(reading.bans, reading.signatures))
        lines += _metric(
            "vos_fastpath_bans_capacity", "gauge",
            "Bans the bans_v2 map holds at most; beyond, a new ban evicts "
            "the oldest.", [((), _abi.MAPS["bans_v2"].max_entries)])
    if reading.pardons is not None:
        lines += _metric("vos_fastpath_pardons_active", "gauge",
                         "Sources pardoned now: the program makes no ban "
                         "of them.", [((), reading.pardons)])
    if reading.lists:
        lines += _metric(
            "vos_fastpath_list_entries", "gauge",
            "Entries in force of each owner in the saved block and allow "
            "lists, by list and address family.",
            [((("list", size["list"]), ("family", size["family"]),
               ("owner", owner)), count)
             for size in reading.lists
             for owner, count in sorted(size["owners"].items())])
        lines += _metric(
            "vos_fastpath_list_keys", "gauge",
            "Addresses and networks in each list's map (every owner's, "
            "expired ones included until a list change removes them).",
            [((("list", size["list"]), ("family", size["family"])),
              size["keys"]) for size in reading.lists])
        lines += _metric(
            "vos_fastpath_list_capacity", "gauge",
            "Entries each list's map holds at most.",
            [((("list", size["list"]), ("family", size["family"])),
              size["capacity"]) for size in reading.lists])
    lines += _metric(
        "vos_fastpath_attached", "gauge",
        "1 when the program that owns these maps is attached to the "
        "interface, else 0.",
        [((("interface", name),), int(up))
         for name, up in reading.attached.items()])
    if reading.interval_s is not None:
        lines += _metric("vos_fastpath_metrics_interval_seconds", "gauge",
                         "Seconds between two runs of the metrics command.",
                         [((), reading.interval_s)])
    if reading.last_run is not None:
        lines += _metric(
            "vos_fastpath_metrics_last_run_timestamp_seconds", "gauge",
            "When the metrics command wrote this file (Unix time).",
            [((), reading.last_run)])
    return "\n".join(lines) + "\n"
