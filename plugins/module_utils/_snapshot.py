# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""A block or allow list kept on disk, so that a reboot loses no policy.

Private to this collection. bpf_map_entry writes the whole list (both
tries) after every change; the boot service puts it back into the new,
empty maps. The file is one JSON header line, then per trie its keys and
its values exactly as the kernel holds them, so a million entries are
written and read without one Python object per entry.

Expiry times are on CLOCK_BOOTTIME, which a reboot restarts: the header
records the wall clock minus the boot clock at writing time, and a restore
shifts every expiry by the difference, so a ttl keeps counting down across
a reboot (entries that expired meanwhile are not restored).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import time
from typing import TYPE_CHECKING

from . import _abi, _files, _lists
from ._errors import FastpathError

if TYPE_CHECKING:
    from . import _bpf

FORMAT = "vos-fastpath-list/1"


def wall_minus_boot_ns() -> int:
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def body(tries_raw: list[tuple[bytes, bytes]]) -> bytes:
    """The part of the file that changes only when the entries do."""
    return b"".join(keys + values for keys, values in tries_raw)


def render(list_name: str, tries: list[_bpf.Map],
           tries_raw: list[tuple[bytes, bytes]]) -> bytes:
    """The whole file for the raw (keys, values) read from each trie."""
    header = dict(format=FORMAT, list=list_name,
                  wall_minus_boot_ns=wall_minus_boot_ns(),
                  maps=[dict(name=t.name, key_size=t.key_size,
                             value_size=t.value_size,
                             count=len(keys) // t.key_size)
                        for t, (keys, _values) in zip(tries, tries_raw)])
    return json.dumps(header, sort_keys=True).encode() + b"\n" + \
        body(tries_raw)


def read(path: str) -> tuple[dict, bytes] | None:
    """(header, body) of a snapshot file, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError) as e:
        if not os.path.exists(path):
            return None
        raise FastpathError("Could not read %s (%s)." % (path, e.strerror))
    head, sep, rest = data.partition(b"\n")
    try:
        header = json.loads(head.decode("utf-8"))
    except ValueError:
        header = None
    if not sep or not isinstance(header, dict) or \
            header.get("format") != FORMAT:
        raise FastpathError("%s is not a vos-fastpath list file." % path)
    return header, rest


def differs(path: str, tries_raw: list[tuple[bytes, bytes]]) -> bool:
    """Does the file hold other entries than these (or not exist)?

    Expiry times are compared on the wall clock: a restore
    at boot shifts them by the clocks' difference, which is not a change
    of the list."""
    try:
        found = read(path)
        if found is None:
            return True
        header, data = found
        if data == body(tries_raw):
            return False
        saved = split(header, data)
    except (FastpathError, KeyError, TypeError):
        return True
    if len(saved) != len(tries_raw):
        return True
    shift = header["wall_minus_boot_ns"] - wall_minus_boot_ns()
    for (_ksize, vsize, keys, values), (now_keys, now_values) in zip(
            saved.values(), tries_raw):
        if keys != now_keys or len(values) != len(now_values):
            return True
        if values != now_values and not _same_values(values, now_values,
                                                     vsize, shift):
            return True
    return False


def _same_values(saved: bytes, now: bytes, vsize: int, shift_ns: int
                 ) -> bool:
    """Entry by entry: the same owner, and expiry within half a second once
    the saved one is moved to this boot's clock (the clocks drift apart by
    far less between a restore and the next run)."""
    for i in range(0, len(saved), vsize):
        if saved[i:i + vsize] == now[i:i + vsize]:
            continue
        old_expires, old_source, _r = _abi.ENTRY.unpack_from(saved, i)
        new_expires, new_source, _r = _abi.ENTRY.unpack_from(now, i)
        if old_source != new_source or not old_expires or not new_expires:
            return False
        if abs(old_expires + shift_ns - new_expires) > 5 * 10**8:
            return False
    return True


def save(path: str, list_name: str, tries: list[_bpf.Map],
         tries_raw: list[tuple[bytes, bytes]]) -> None:
    """Write the file atomically (mode 0600, directory 0700)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    _files.write_atomically(path, render(list_name, tries, tries_raw))
    os.chmod(path, 0o600)


def split(header: dict, data: bytes
          ) -> dict[str, tuple[int, int, bytes, bytes]]:
    """{trie name: (key_size, value_size, keys, values)} of a file."""
    out = {}
    offset = 0
    for m in header["maps"]:
        ksize, vsize, count = m["key_size"], m["value_size"], m["count"]
        keys = data[offset:offset + count * ksize]
        offset += count * ksize
        values = data[offset:offset + count * vsize]
        offset += count * vsize
        if len(keys) != count * ksize or len(values) != count * vsize:
            raise FastpathError("The file is cut short in %s." % m["name"])
        out[m["name"]] = (ksize, vsize, keys, values)
    return out


def shift_expiry(keys: bytes, values: bytes, ksize: int, vsize: int,
                 delta_ns: int, now_ns: int) -> tuple[bytes, bytes, int]:
    """Keys and values with every expiry moved by delta_ns; entries that
    have expired by now_ns are left out. Returns (keys, values, dropped)."""
    if not any(_abi.ENTRY.unpack_from(values, i)[0]
               for i in range(0, len(values), vsize)):
        return keys, values, 0
    out_keys, out_values = [], []
    dropped = 0
    for n, i in enumerate(range(0, len(values), vsize)):
        expires, source, reserved = _abi.ENTRY.unpack_from(values, i)
        if expires:
            expires += delta_ns
            if expires <= now_ns:
                dropped += 1
                continue
        out_keys.append(keys[n * ksize:(n + 1) * ksize])
        out_values.append(_abi.ENTRY.pack(expires, source, reserved))
    return b"".join(out_keys), b"".join(out_values), dropped


def restore(path: str, tries: list[_bpf.Map], now_ns: int,
            write: bool = True) -> dict[str, tuple[int, int, int]]:
    """Put the file's entries into tries that are empty.

    Returns {trie name: (restored, expired_dropped, kept_live)}: a trie that
    already holds entries (the maps outlived whatever stopped the service)
    is left as it is and counted as kept. write=False counts only (check
    mode)."""
    found = read(path)
    if found is None:
        return {}
    header, data = found
    parts = split(header, data)
    delta = header["wall_minus_boot_ns"] - wall_minus_boot_ns()
    report = {}
    for trie in tries:
        if trie.name not in parts:
            continue
        ksize, vsize, keys, values = parts[trie.name]
        if (ksize, vsize) != (trie.key_size, trie.value_size):
            raise FastpathError(
                "%s holds %s entries of another layout (key %d, value %d "
                "bytes)." % (path, trie.name, ksize, vsize))
        live = trie.lookup_batch(chunk=65536)[0]
        if live:
            report[trie.name] = (0, 0, len(live) // trie.key_size)
            continue
        keys, values, dropped = shift_expiry(keys, values, ksize, vsize,
                                             delta, now_ns)
        if keys and write:
            trie.update_batch(keys, values)
        report[trie.name] = (len(keys) // ksize, dropped, 0)
    return report


def restore_list(tries: list[_bpf.Map], path: str,
                 write: bool = True) -> dict[str, int] | None:
    """Restore a saved list into its two tries (_lists.open_pair) when
    they are empty: {restored, expired, kept} over both, or None when
    nothing is saved."""
    try:
        report = restore(path, tries, _lists.boot_ns(), write)
    except FastpathError as e:
        raise FastpathError("%s Deploy again, or remove the file, to save "
                            "the list anew." % e)
    if not report:
        return None
    return dict(restored=sum(r[0] for r in report.values()),
                expired=sum(r[1] for r in report.values()),
                kept=sum(r[2] for r in report.values()))
