# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sizes of the saved block and allow lists, cheaply, for the metrics
command.

Private to this collection. A list's saved file (_snapshot) is its state
of record: a row per (key, owner), with its expiry. Reading and checking
a million rows takes about a second, too much for a run every 15
seconds, so what a file holds is summed up once and kept in a cache in
/run, keyed by the file's device, inode, size and mtime: while the files
do not change, a run reads the small cache and stats each file. A TTL
entry is kept in the summary by its expiry second (by wider buckets when
one owner has more than MAX_BUCKETS different ones), so that a later run
counts the entries still in force without reading the file again.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import stat
import time
from typing import Iterable

from . import _abi, _defaults, _files
from ._errors import FastpathError

CACHE = "/run/vos-fastpath/metrics-lists.json"
CACHE_FORMAT = "vos-fastpath-list-sizes/1"
# Saved files remembered at once (one per list and state directory).
CACHE_FILES = 16
MAX_BUCKETS = 4096
NS = 10**9
BOOT_ID = "/proc/sys/kernel/random/boot_id"
FAMILIES = ("ipv4", "ipv6")
# The tries of each list, v4 first (_lists.LISTS, which this module does
# not import: the list code is loaded only when a file has changed).
TRIES = {"blocklist": ("block_v4", "block_v6"),
         "allowlist": ("allow_v4", "allow_v6")}

Summary = dict      # {"families": [{"keys": n, "owners": {...}}, ...]}
EMPTY: Summary = {"families": [{"keys": 0, "owners": {}},
                               {"keys": 0, "owners": {}}]}


def boot_id() -> str:
    with open(BOOT_ID) as f:
        return f.read().strip()


def boot_ns() -> int:
    """Now on CLOCK_BOOTTIME, the clock of list entries' expiry."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def file_key(st: os.stat_result) -> list[int]:
    """What changes whenever the file is rewritten (bpf_map_entry renames
    a new file over it)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def buckets(expiries: Iterable[int]) -> list[list[int]]:
    """[[end, n], ...] by end: n entries expire at or before `end`
    (CLOCK_BOOTTIME seconds). An end is the expiry second rounded up; the
    buckets double in width until there are at most MAX_BUCKETS."""
    ends: dict[int, int] = {}
    for expires in expiries:
        end = -(-expires // NS)
        ends[end] = ends.get(end, 0) + 1
    width = 1
    while len(ends) > MAX_BUCKETS:
        width *= 2
        wider: dict[int, int] = {}
        for end, n in ends.items():
            end = -(-end // width) * width
            wider[end] = wider.get(end, 0) + n
        ends = wider
    return sorted([end, n] for end, n in ends.items())


def summarize(path: str, list_name: str, pin_dir: str) -> Summary:
    """Read and check a whole saved file (_snapshot.parse, which moves
    the expiry of a file from another boot to this boot's clock) and sum
    it up per family: the keys of the list's trie, and per owner the
    permanent entries and the buckets of the expiring ones."""
    # Here, not at the top: only a changed file needs the list code.
    from . import _snapshot
    ledger = _snapshot.load(path, list_name, pin_dir)
    if ledger is None:
        return EMPTY
    families = []
    for family in range(len(FAMILIES)):
        owners = {}
        for tag, claims in sorted(ledger.families[family].items()):
            owners[ledger.names.get(tag, "%08x" % tag)] = {
                "permanent": len(claims.permanent),
                "expiring": buckets(claims.expiring.values())}
        families.append({"keys": len(ledger.target(family)),
                         "owners": owners})
    return {"families": families}


def in_force(owner: dict, now_s: float) -> int:
    """An owner's entries of one family that have not expired at now_s
    (an entry counts until the end of its bucket)."""
    return owner["permanent"] + sum(n for end, n in owner["expiring"]
                                    if end > now_s)


def rows(list_name: str, summary: Summary, now_ns: int) -> list[dict]:
    """One dict per family, as _counters.Reading.lists holds them."""
    now_s = now_ns / NS
    return [{"list": list_name, "family": FAMILIES[family],
             "keys": part["keys"],
             "capacity": _abi.MAPS[TRIES[list_name][family]].max_entries,
             "owners": dict((name, in_force(owner, now_s))
                            for name, owner in part["owners"].items())}
            for family, part in enumerate(summary["families"])]


class Cache:
    """Summaries of saved files by path, kept in a file of a directory
    that must be root's alone (another user could make the metrics lie);
    one that is not is not used, and problem says why."""

    def __init__(self, path: str = CACHE) -> None:
        self.path = path
        self.problem: str | None = None
        self.entries: dict[str, dict] = {}
        self.changed = False
        self.boot = boot_id()
        directory = os.path.dirname(path)
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (
                0, os.geteuid()) or st.st_mode & (stat.S_IWGRP
                                                  | stat.S_IWOTH):
            self.problem = (
                "The cache directory %s is not a directory that only root "
                "may write: remove it (rm -r %s), the metrics command makes "
                "it again; the list sizes are read whole until then."
                % (directory, directory))
            return
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("format") == CACHE_FORMAT \
                and data.get("boot_id") == self.boot \
                and isinstance(data.get("files"), dict):
            self.entries = data["files"]

    def lookup(self, path: str, key: list[int]) -> Summary | None:
        entry = self.entries.get(path)
        if isinstance(entry, dict) and entry.get("key") == key:
            return entry.get("summary")
        return None

    def record(self, path: str, key: list[int], summary: Summary) -> None:
        self.entries.pop(path, None)
        self.entries[path] = {"key": key, "summary": summary}
        while len(self.entries) > CACHE_FILES:
            del self.entries[next(iter(self.entries))]
        self.changed = True

    def save(self) -> None:
        if self.problem or not self.changed:
            return
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _files.write_atomically(self.path, json.dumps(dict(
            format=CACHE_FORMAT, boot_id=self.boot,
            files=self.entries)).encode())


def summary_of(path: str, list_name: str, pin_dir: str,
               cache: Cache) -> Summary:
    """The summary of one saved file, from the cache while the file is
    the same; a damaged file's error is remembered too, so that it is not
    read again every run."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return EMPTY
    key = file_key(st)
    found = cache.lookup(path, key)
    if found is None:
        try:
            found = summarize(path, list_name, pin_dir)
        except FastpathError as e:
            found = {"error": str(e)}
        cache.record(path, key, found)
    if "error" in found:
        raise FastpathError(found["error"])
    return found


def sizes(state_dir: str, pin_dir: str, list_names: Iterable[str],
          cache: Cache, now_ns: int | None = None
          ) -> tuple[list[dict], list[str]]:
    """(rows() of each list, the errors of the lists that could not be
    read), the cache saved when it changed. A list that was never saved
    is empty."""
    now = boot_ns() if now_ns is None else now_ns
    out: list[dict] = []
    errors: list[str] = []
    for name in list_names:
        path = _defaults.saved_list(state_dir, name)
        try:
            out += rows(name, summary_of(path, name, pin_dir, cache), now)
        except FastpathError as e:
            errors.append("%s: %s" % (name, e))
        except OSError as e:
            errors.append("%s: could not read %s (%s): run as root."
                          % (name, path, e.strerror))
    cache.save()
    return out, errors
