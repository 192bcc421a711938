# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""A list's ledger (_ledger) kept on disk: the state of record of a list.

Private to this collection. bpf_map_entry writes the file before it
changes the maps, so the file always holds what the last run intended; the
boot service and a deploy after a teardown put it back into new, empty
maps. The file is one JSON header line, then per trie the keys and the
fp_entry values of every (key, owner) row, exactly as the kernel holds
them, so a million entries are written and read without one Python object
per entry. The header carries a CRC-32 of the rest: a file is checked
whole before anything is taken from it.

Expiry times are on CLOCK_BOOTTIME, which a reboot restarts: the header
records the boot's id and the wall clock minus the boot clock at writing
time; a file read in another boot has every expiry shifted by the
difference, so a ttl keeps counting down across a reboot.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import struct
import time
import zlib
from typing import TYPE_CHECKING

from . import _abi, _files, _ledger, _lists
from ._errors import FastpathError

if TYPE_CHECKING:
    from . import _bpf

FORMAT = "vos-fastpath-list/2"
# Version 1 held one row per key and no checksum; it is read, never written.
OLD_FORMAT = "vos-fastpath-list/1"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def wall_minus_boot_ns() -> int:
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def boot_id() -> str:
    with open(BOOT_ID) as f:
        return f.read().strip()


def layouts(list_name: str) -> list[tuple[str, int]]:
    """(trie name, key size) of the list's two tries, v4 first."""
    return [(name, _abi.MAPS[name].key_size)
            for name in _lists.LISTS[list_name]]


def render(list_name: str, pin_dir: str, ledger: _ledger.Ledger) -> bytes:
    """The whole file for a ledger."""
    return b"".join(render_parts(list_name, pin_dir, ledger))


def render_parts(list_name: str, pin_dir: str, ledger: _ledger.Ledger
                 ) -> list[bytes]:
    """The file for a ledger as parts written one after the other, so
    that a million entries are not copied into one more bytes object."""
    maps, parts = [], []
    crc = 0
    for family, (name, ksize) in enumerate(layouts(list_name)):
        keys, values = ledger.rows(family)
        maps.append(dict(name=name, key_size=ksize,
                         value_size=_abi.ENTRY.size,
                         count=len(keys) // ksize))
        parts += [keys, values]
        crc = zlib.crc32(values, zlib.crc32(keys, crc))
    header = dict(format=FORMAT, list=list_name, pin_dir=pin_dir,
                  boot_id=boot_id(), wall_minus_boot_ns=wall_minus_boot_ns(),
                  owners=dict(("%08x" % t, n) for t, n in
                              sorted(ledger.names.items())),
                  maps=maps, crc32=crc)
    return [json.dumps(header, sort_keys=True).encode() + b"\n", *parts]


def save(path: str, data: bytes | list[bytes]) -> None:
    """Write the file atomically and durably (mode 0600, directory 0700)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    _files.write_atomically(path, data)
    os.chmod(path, 0o600)


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (IOError, OSError) as e:
        raise FastpathError("Could not read the saved list %s (%s)."
                            % (path, e.strerror))


class Damaged(FastpathError):
    """A saved file that cannot be trusted as a whole."""


def parse(path: str, data: bytes, list_name: str, pin_dir: str
          ) -> _ledger.Ledger:
    """The ledger a file holds, with expiry moved to this boot's clock;
    raises Damaged naming what is wrong before anything is used."""
    def damaged(why: str) -> Damaged:
        return Damaged("The saved list %s is damaged (%s)." % (path, why))

    head, sep, body = data.partition(b"\n")
    try:
        header = json.loads(head.decode("utf-8"))
    except ValueError:
        header = None
    if not sep or not isinstance(header, dict) or \
            header.get("format") not in (FORMAT, OLD_FORMAT):
        raise damaged("it is not a vos-fastpath list file")
    if header.get("list") != list_name:
        raise damaged("it holds the %r list, not the %s"
                      % (header.get("list"), list_name))
    if header.get("pin_dir", pin_dir) != pin_dir:
        raise FastpathError(
            "The saved list %s belongs to the maps pinned under %s, not %s: "
            "give each pin directory its own state_dir."
            % (path, header["pin_dir"], pin_dir))
    if header["format"] == FORMAT and header.get("crc32") != zlib.crc32(body):
        raise damaged("its checksum does not match its contents")
    ledger = _ledger.Ledger()
    try:
        maps = dict((m["name"], m) for m in header["maps"])
        offset = 0
        for family, (name, ksize) in enumerate(layouts(list_name)):
            m = maps.get(name, dict(key_size=ksize, value_size=16, count=0))
            if (m["key_size"], m["value_size"]) != (ksize, _abi.ENTRY.size):
                raise damaged("%s rows of another layout" % name)
            count = int(m["count"])
            keys = body[offset:offset + count * ksize]
            offset += count * ksize
            values = body[offset:offset + count * _abi.ENTRY.size]
            offset += count * _abi.ENTRY.size
            if len(values) != count * _abi.ENTRY.size:
                raise damaged("it is cut short in %s" % name)
            bits = (ksize - 4) * 8
            for (plen,) in struct.iter_unpack("=I4x" if ksize == 8
                                              else "=I16x", keys):
                if plen > bits:
                    raise damaged("a %s key has prefix length %d" % (
                        name, plen))
            ledger.add_rows(family, keys, values, ksize)
        if offset != len(body):
            raise damaged("%d bytes follow the last row"
                          % (len(body) - offset))
        ledger.names = dict((int(t, 16), str(n)) for t, n in
                            header.get("owners", {}).items())
        if header.get("boot_id") != boot_id():
            ledger.shift(int(header["wall_minus_boot_ns"])
                         - wall_minus_boot_ns())
    except (AttributeError, KeyError, TypeError, ValueError,
            struct.error) as e:
        raise damaged("its header is incomplete: %s" % e)
    return ledger


def load(path: str, list_name: str, pin_dir: str) -> _ledger.Ledger | None:
    """The ledger saved in path, or None when nothing is saved."""
    data = read_bytes(path)
    return None if data is None else parse(path, data, list_name, pin_dir)


def set_aside(path: str) -> str:
    """Move a damaged file out of the way, keeping it for a post-mortem."""
    aside = "%s.damaged-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
    os.rename(path, aside)
    return aside


def restore(ledger: _ledger.Ledger, tries: list[_bpf.Map], now_ns: int,
            write: bool = True) -> dict[str, int]:
    """Put the ledger's live entries into the tries that are empty (the
    maps outlived whatever stopped the service otherwise, and are left as
    they are). Returns {restored, expired, kept} over both tries;
    write=False counts only (check mode)."""
    expired = sum(ledger.drop_expired(now_ns).values())
    report = dict(restored=0, expired=expired, kept=0)
    for family, trie in enumerate(tries):
        live = trie.lookup_batch(chunk=65536)[0]
        if live:
            report["kept"] += len(live) // trie.key_size
            continue
        keys, values = ledger.target(family).rows()
        if keys and write:
            trie.update_batch(b"".join(keys), b"".join(values))
        report["restored"] += len(keys)
    return report
