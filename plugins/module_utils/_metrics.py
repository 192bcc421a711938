# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""vos-fastpath-metrics: the data plane's metrics for node_exporter.

Private to this collection. The fastpath role installs this package's
module_utils on each host in one `vos-fastpath-metrics` script, as it
installs the boot command, and a systemd timer that runs it every
fastpath_metrics_interval. A run reads its configuration (metrics.json in
the state directory, written by the role), the counters, bans and
pardons from the pinned maps (_counters), the sizes of the saved lists
(_list_sizes, cached while the files do not change) and whether the
program is attached on each interface, and writes them in
node_exporter's textfile format (docs/metrics.md) to a temporary file
that it renames over the textfile: node_exporter never reads half a file.

A part that cannot be read is left out and said on stderr, and the run
exits 1; the rest is still written, with the time of the run, so that a
program that is gone shows as `vos_fastpath_attached 0` and not as a
stale file. It runs as root, so its configuration must be root's alone.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import argparse
import json
import os
import re
import stat
import sys
import time
from typing import IO, Callable

from . import _counters, _defaults, _facts, _files, _list_sizes, _pins
from ._errors import FastpathError
from ._runner import LocalTools, Runner

DEFAULT_CONFIG = os.path.join(_defaults.STATE_DIR, "metrics.json")
# The directory Debian's prometheus-node-exporter package reads.
TEXTFILE = "/var/lib/prometheus/node-exporter/vos_fastpath.prom"
INTERVAL = "15s"
# A whole number of seconds, minutes or hours: what the role accepts and
# systemd reads alike.
_INTERVAL = re.compile(r"([1-9][0-9]{0,5})([smh]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
TEXTFILE_MODE = 0o644       # node_exporter runs as its own user


def interval_seconds(text: object) -> int:
    """Seconds of an interval such as 15s, 1m, 2h or 30."""
    match = _INTERVAL.fullmatch(str(text))
    if not match:
        raise FastpathError(
            "The interval %r is not a whole number of seconds, minutes or "
            "hours: give one such as 15s, 1m or 1h." % (text,))
    return int(match.group(1)) * _UNITS[match.group(2)]


def _open_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def read_config(path: str) -> dict:
    """metrics.json, once it and its directory are found to be root's
    alone (whoever may write it chooses where root writes), with every
    key checked."""
    try:
        with open(path, "rb", opener=_open_nofollow) as f:
            _pins.check_private_dir(os.path.dirname(os.path.abspath(path)),
                                    _pins.STATE_DIR)
            st = os.fstat(f.fileno())
            if st.st_uid not in (0, os.geteuid()) or \
                    st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise FastpathError(
                    "The metrics configuration %s is owned by uid %d and "
                    "mode %04o: check what it holds, then deploy again to "
                    "rewrite it; it must belong to root and be writable "
                    "only by it." % (path, st.st_uid,
                                     stat.S_IMODE(st.st_mode)))
            config = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError) as e:
        raise FastpathError("Could not read %s (%s): deploy with the "
                            "vos.fastpath.fastpath role first."
                            % (path, e.strerror))
    except ValueError as e:
        raise FastpathError("%s is not valid JSON (%s): deploy again to "
                            "rewrite it." % (path, e))
    if not isinstance(config, dict):
        raise FastpathError("%s is not a JSON object: deploy again to "
                            "rewrite it." % path)
    for key in ("pin_dir", "interfaces", "textfile"):
        if key not in config:
            raise FastpathError("%s has no %r: deploy again to rewrite it."
                                % (path, key))
    if not isinstance(config["interfaces"], list) or not all(
            isinstance(name, str) for name in config["interfaces"]):
        raise FastpathError("%s: interfaces is not a list of names: deploy "
                            "again to rewrite it." % path)
    config.setdefault("state_dir", _defaults.STATE_DIR)
    config.setdefault("lists", list(_list_sizes.TRIES))
    for name in config["lists"]:
        if name not in _list_sizes.TRIES:
            raise FastpathError("%s: %r is not a list (blocklist, "
                                "allowlist): deploy again to rewrite it."
                                % (path, name))
    interval_seconds(config.setdefault("interval", INTERVAL))
    return config


def attached(pin_dir: str, interfaces: list[str]) -> dict[str, bool]:
    """Whether the program that uses the pinned `stats` map is attached to
    each interface (all False when nothing is pinned)."""
    if not _counters.pinned(pin_dir, "stats"):
        return dict((name, False) for name in interfaces)
    with _pins.open_map(pin_dir, "stats") as stats:
        stats_id = stats.id
    runner = Runner(LocalTools())
    found = set(where["interface"] for where in _facts.interfaces_using_map(
        runner, runner.path("ip"), stats_id))
    return dict((name, name in found) for name in interfaces)


def read_maps(reading: _counters.Reading, pin_dir: str) -> None:
    """The counters, signatures, bans and pardons; a note on what an older
    program lacks."""
    _pins.check_pin_dir(pin_dir)
    if not _counters.pinned(pin_dir, "stats"):
        raise FastpathError(_pins.NOTHING_PINNED % pin_dir)
    reading.counters = _counters.read_counters(pin_dir)
    reading.scanner_hits = _counters.read_scanner_hits(pin_dir)
    reading.signatures = _counters.read_signature_slots(pin_dir)
    reading.rate_limited = _counters.read_rate_limited(pin_dir)
    reading.bans = _counters.read_ban_causes(pin_dir)
    reading.pardons = _counters.count_active_pardons(pin_dir)
    missing = _counters.metrics_missing(pin_dir)
    if missing:
        reading.notes.append(_counters.metrics_note(pin_dir, missing))


def read_lists(reading: _counters.Reading, config: dict,
               cache: _list_sizes.Cache) -> list[str]:
    """The list sizes; the errors of the lists that could not be read."""
    state_dir = config["state_dir"]
    if os.path.lexists(state_dir):
        _pins.check_private_dir(state_dir, _pins.STATE_DIR)
    reading.lists, errors = _list_sizes.sizes(
        state_dir, config["pin_dir"], config["lists"], cache)
    if cache.problem:
        errors.append(cache.problem)
    return errors


def collect(config: dict, cache: _list_sizes.Cache
            ) -> tuple[_counters.Reading, list[str]]:
    """Everything one run exports, and what could not be read."""
    reading = _counters.Reading()
    reading.interval_s = interval_seconds(config["interval"])
    errors: list[str] = []
    pin_dir = config["pin_dir"]

    def part(what: str, step: Callable[[], object]) -> None:
        try:
            errors.extend(step() or [])
        except FastpathError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append("Could not read %s under %s (%s): run as root, "
                          "with bpffs mounted." % (what, pin_dir, e))

    part("the maps", lambda: read_maps(reading, pin_dir))
    part("the lists", lambda: read_lists(reading, config, cache))

    def read_attached() -> None:
        reading.attached = attached(pin_dir, config["interfaces"])
    part("the attachments", read_attached)
    reading.last_run = round(time.time(), 3)
    return reading, errors


def write_textfile(path: str, text: str) -> None:
    """Write the textfile through a temporary file in its directory,
    readable by node_exporter, renamed over it. A crash leaves the old
    file whole; no fsync: the next run writes it again."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise FastpathError(
            "The textfile directory %s does not exist: create it (the "
            "fastpath role does) or set fastpath_metrics_textfile to a file "
            "in node_exporter's --collector.textfile.directory." % directory)
    # .vos_fastpath.prom.<random>.tmp: node_exporter reads *.prom only.
    tmp = _files.temp_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            os.fchmod(f.fileno(), TEXTFILE_MODE)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def say(out: IO[str], line: str) -> None:
    out.write(line + "\n")
    out.flush()


def run(config_path: str, cache_path: str = _list_sizes.CACHE,
        out: IO[str] | None = None, err: IO[str] | None = None,
        print_only: bool = False) -> int:
    """Returns the exit status: 0 when every part was read and written."""
    out, err = out or sys.stdout, err or sys.stderr
    config = read_config(config_path)
    reading, errors = collect(config, _list_sizes.Cache(cache_path))
    text = _counters.metrics_text(reading)
    if print_only:
        out.write(text)
    else:
        try:
            write_textfile(config["textfile"], text)
        except FastpathError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append("Could not write %s (%s): run as root."
                          % (config["textfile"], e.strerror))
    for line in errors:
        say(err, "error: %s" % line)
    return 1 if errors else 0


def main(argv: list[str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vos-fastpath-metrics",
        description="Write the vos.fastpath data plane's counters, bans, "
        "list sizes and attachments for node_exporter's textfile "
        "collector.")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="metrics configuration (default: %(default)s)")
    parser.add_argument("--cache", default=_list_sizes.CACHE,
                        help="cache of the list sizes (default: "
                        "%(default)s)")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the metrics instead of writing the "
                        "textfile")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    try:
        return run(args.config, args.cache, out=out, err=err,
                   print_only=args.print_only)
    except FastpathError as e:
        say(err, "error: %s" % e)
    except OSError as e:
        say(err, "error: %s: run as root." % e)
    return 1
