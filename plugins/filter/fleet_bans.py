# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_bans and autoban_entries filters: the xdp_bans results of
many hosts as one view, and what the fleet exchange installs on each.

The documentation is in fleet_bans.yml and autoban_entries.yml next to
this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

PROGRAM = "program"


def _read(results):
    """{host: result} of the hosts whose bans were read."""
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("fleet_bans takes the xdp_bans results by "
                                 "host name (a dict), not %s"
                                 % type(results).__name__)
    return dict((host, r) for host, r in results.items()
                if isinstance(r, Mapping) and isinstance(r.get("bans"), list)
                and not r.get("failed") and not r.get("unreachable"))


def fleet_bans(results):
    """One row per banned source across the fleet: the hosts that ban it
    and why, the earliest start, the latest end (None: never), and the
    packets the program's bans dropped, summed."""
    rows = {}
    for host, result in sorted(_read(results).items()):
        for ban in result["bans"]:
            row = rows.setdefault(ban["source"], dict(
                source=ban["source"], hosts=[], reasons=[], since=None,
                expires="", packets=0))
            if host not in row["hosts"]:
                row["hosts"].append(host)
            why = "%s:%s" % (ban["reason"], ban["detail"])
            if why not in row["reasons"]:
                row["reasons"].append(why)
            if ban.get("since") and (row["since"] is None
                                     or ban["since"] < row["since"]):
                row["since"] = ban["since"]
            if row["expires"] is not None:
                row["expires"] = None if ban.get("expires") is None else \
                    max(row["expires"], ban["expires"])
            row["packets"] += ban.get("packets") or 0
    return sorted(rows.values(), key=lambda r: (-len(r["hosts"]),
                                                r["source"]))


def autoban_entries(results, host):
    """The sources the program banned on every host but `host`, less the
    sources any host has pardoned: what the fleet exchange installs on
    `host`."""
    read = _read(results)
    pardoned = set(p["source"] for r in read.values()
                   for p in r.get("pardons", []))
    return sorted(set(
        ban["source"] for other, r in read.items() if other != host
        for ban in r["bans"]
        if ban.get("origin") == PROGRAM and ban["source"] not in pardoned))


def ban_line(ban):
    """One ban (of xdp_bans or fleet_bans) as one line for people."""
    if "hosts" in ban:
        why = "%s on %s" % (",".join(ban["reasons"]), ",".join(ban["hosts"]))
    else:
        why = "%s:%s" % (ban["reason"], ban["detail"])
    packets = ban.get("packets")
    return "%-22s %-44s since %-20s until %-20s %s" % (
        ban["source"], why, ban.get("since") or "-",
        ban.get("expires") or "never",
        "-" if packets is None else "%d packets" % packets)


class FilterModule(object):
    """vos.fastpath filters."""

    def filters(self):
        return {"fleet_bans": fleet_bans, "autoban_entries": autoban_entries,
                "ban_line": ban_line}
