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

from ansible_collections.vos.fastpath.plugins.module_utils import _abi

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


def _rows(read, field):
    """(label, [cell per host], fleet sum) for every counter and the total."""
    rows = []
    totals = dict((host, 0) for host in read)
    for map_name, names in SECTIONS:
        rows.append((map_name, None, None))
        for name in names:
            cells = []
            for host, result in read.items():
                value = _count(result, map_name, name, field)
                cells.append(value)
                if map_name == "stats" and value is not None:
                    totals[host] += value
            fleet = sum(v for v in cells if v is not None)
            rows.append(("  " + name, cells, fleet))
    cells = [totals[host] for host in read]
    rows.append(("total", cells, sum(cells)))
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
    for host, reason in not_read:
        lines.append("not read: %s (%s)" % (host, reason))
    return "\n".join(lines)


class FilterModule(object):
    """vos.fastpath filters."""

    def filters(self):
        return {"counter_table": counter_table}
