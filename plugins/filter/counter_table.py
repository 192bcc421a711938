# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The counter_table filter: the xdp_stats results of many hosts as one
text table, one column per host and one for the fleet.

The documentation is in counter_table.yml next to this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi, _counters)

# (map name, counter names in index order), in the order of the table.
SECTIONS = tuple((name, names)
                 for name, (names, _help) in _abi.COUNTER_MAPS.items())
FIELDS = ("packets", "bytes")
FLEET = "fleet"
MISSING = "-"


def _not_read_reason(result):
    """Why a host's result holds no counters, or None when it holds them."""
    if not isinstance(result, Mapping):
        return "no result"
    if result.get("unreachable"):
        reason = "unreachable"
    elif result.get("skipped"):
        reason = "skipped"
    elif result.get("failed"):
        reason = "failed"
    elif not isinstance(result.get("stats"), Mapping):
        return "no counters in the result"
    else:
        return None
    msg = " ".join(str(result.get("msg") or "").split())
    return "%s: %s" % (reason, msg) if msg else reason


def _count(result, map_name, name, field):
    """One counter of a host's result, or None when the result lacks it."""
    counters = result.get(map_name)
    if not isinstance(counters, Mapping):
        return None
    counter = counters.get(name)
    if not isinstance(counter, Mapping):
        return None
    try:
        return int(counter[field])
    except (KeyError, TypeError, ValueError):
        return None


def _signatures(read):
    """Every signature with hits in a result, in the order first seen."""
    seen = []
    for result in read.values():
        hits = result.get("scanner_hits")
        if isinstance(hits, Mapping):
            seen.extend(str(name) for name in hits if str(name) not in seen)
    return seen


def _active_bans(result):
    value = result.get("active_bans")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _row(label, cells):
    return (label, cells, sum(v for v in cells if v is not None))


def _rows(read, field):
    """(label, [cell per host], fleet sum) for every counter, the active
    bans (packets only) and the total; (section, None, None) heads each
    map's rows."""
    rows = []
    totals = dict((host, 0) for host in read)
    sections = list(SECTIONS)
    signatures = _signatures(read)
    if signatures:
        sections.append(("scanner_hits", signatures))
    for map_name, names in sections:
        rows.append((map_name, None, None))
        for name in names:
            cells = []
            for host, result in read.items():
                value = _count(result, map_name, name, field)
                cells.append(value)
                if map_name in _counters.REASON_MAPS and value is not None:
                    totals[host] += value
            rows.append(_row("  " + name, cells))
    bans = [_active_bans(result) for result in read.values()]
    if field == "packets" and any(v is not None for v in bans):
        rows.append(("bans", None, None))
        rows.append(_row("  active", bans))
    rows.append(_row("total", [totals[host] for host in read]))
    return rows


def _table(read, field):
    """The lines of one table (packets or bytes) over the hosts read."""
    rows = _rows(read, field)
    headers = list(read) + [FLEET]
    label_width = max(len(field), max(len(label) for label, _c, _f in rows))
    widths = []
    for index, header in enumerate(headers):
        width = len(header)
        for _label, cells, fleet in rows:
            if cells is None:
                continue
            value = fleet if index == len(cells) else cells[index]
            width = max(width, len(MISSING if value is None else str(value)))
        widths.append(width)

    def line(label, values):
        parts = ["%-*s" % (label_width, label)]
        parts.extend("%*s" % (w, v) for w, v in zip(widths, values))
        return "  ".join(parts).rstrip()

    lines = [line(field, headers)]
    for label, cells, fleet in rows:
        if cells is None:
            lines.append(label)
            continue
        values = [MISSING if v is None else str(v) for v in cells]
        lines.append(line(label, values + [str(fleet)]))
    return lines


def counter_table(results, show_bytes=False):
    """The xdp_stats results {host: result} as a text table."""
    if not isinstance(results, Mapping):
        raise AnsibleFilterError(
            "counter_table expects a dict of host: xdp_stats result, got %s: "
            "build it from the registered results of every host."
            % type(results).__name__)
    read = {}
    not_read = []
    for host, result in results.items():
        reason = _not_read_reason(result)
        if reason is None:
            read[str(host)] = result
        else:
            not_read.append((str(host), reason))

    lines = []
    if read:
        lines.extend(_table(read, "packets"))
        if show_bytes:
            lines.append("")
            lines.extend(_table(read, "bytes"))
    else:
        lines.append("No host's counters were read.")
    for host, result in read.items():
        for note in _notes(result):
            lines.append("note: %s: %s" % (host, note))
    for host, reason in not_read:
        lines.append("not read: %s (%s)" % (host, reason))
    return "\n".join(lines)


def _notes(result):
    """A read host's notes (what its result leaves out), one line each."""
    notes = result.get("notes")
    if not isinstance(notes, list):
        return []
    return [" ".join(str(note).split()) for note in notes if note]


class FilterModule(object):
    """vos.fastpath filters."""

    def filters(self):
        return {"counter_table": counter_table}
