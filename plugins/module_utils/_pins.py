# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pin and state directories and the pinned maps, trusted once checked.

Private to this collection. /sys/fs/bpf is writable by every user (mode
1777), so any user can make the pin directory before the first deploy and
pin maps of their own in it under our names (a block_v4 that is really an
allowlist); the state directory holds the lists the boot command puts
back. Nothing found there is used as it is:

- A pin or state directory is a real directory (a symbolic link is
  refused) that belongs to root (or to the user running, for tests) and
  that neither its group nor others may write.
- So is every directory above it, because the owner of a parent, or
  anyone who may write it, can rename the checked directory away and put
  another in its place. A parent that everyone may write is accepted when
  it has the sticky bit and belongs to root, as bpffs's own root
  /sys/fs/bpf (1777) and /tmp do: in a sticky directory only the owner of
  an entry or of the directory (both root here) may rename or remove the
  entry, so a checked directory stays the one that was checked. That is
  also why the pin directory itself must be checked: a user may still
  create it there first, and then it is theirs.
- A pin, a regular file on bpffs with an owner and a mode that
  BPF_OBJ_GET enforces, belongs to root and is writable by nobody else.
- The map behind a pin is the map of the contract (docs/dataplane.md,
  _abi.MAPS) that its name says: name, type, key and value size,
  max_entries and flags. The kernel's name of the map tells two swapped
  pins apart; so does the layout, for every map but `stats` and
  `stats_ext`, which are both eight per-CPU counters. A map the contract
  has and the pin directory lacks (one that came after the release that
  made the directory) is no fault: xdp_attach pins it next to the others.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import stat
from typing import TYPE_CHECKING

from . import _abi, _bpf, _facts
from ._errors import FastpathError

if TYPE_CHECKING:
    from . import _split_list

PIN_DIR = "pin directory"
STATE_DIR = "state directory"

# What to do with a directory that is not safe, by what it is.
_REMEDY = {
    PIN_DIR: "remove it (rm -r {path})",
    STATE_DIR: "check what it holds, then make it root's (chown -R "
               "root:root {path}; chmod 0700 {path}) or remove it "
               "(rm -r {path})",
}

# Map types of include/uapi/linux/bpf.h, for messages.
_TYPE_NAMES = {1: "HASH", 2: "ARRAY", 3: "PROG_ARRAY", 4: "PERF_EVENT_ARRAY",
               5: "PERCPU_HASH", 6: "PERCPU_ARRAY", 9: "LRU_HASH",
               10: "LRU_PERCPU_HASH", 11: "LPM_TRIE", 12: "ARRAY_OF_MAPS",
               13: "HASH_OF_MAPS", 17: "XSKMAP", 27: "RINGBUF"}

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH

NOT_PINNED = ("The map %s is not pinned under %s: attach the program with "
              "vos.fastpath.xdp_attach first, or set pin_dir.")
NOTHING_PINNED = ("No vos.fastpath maps are pinned under %s: attach the "
                  "program with vos.fastpath.xdp_attach first, or set "
                  "pin_dir.")


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _lstat(path: str, what: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as e:
        raise FastpathError("Could not look at the %s %s (%s): run as root "
                            "and check the path." % (what, path, e.strerror))


def _ancestors(path: str) -> list[str]:
    """Every directory above path, nearest first, as written and as
    resolved (a root-owned symbolic link in a safe directory may lead
    elsewhere: both ways must be safe)."""
    out: list[str] = []
    for start in (os.path.abspath(path),
                  os.path.realpath(os.path.dirname(os.path.abspath(path)))
                  + "/"):
        parent = os.path.dirname(start)
        while parent not in out:
            out.append(parent)
            if parent == "/":
                break
            parent = os.path.dirname(parent)
    return out


def _check_parent(parent: str, path: str, what: str) -> None:
    st = _lstat(parent, what)
    if stat.S_ISLNK(st.st_mode):
        if _trusted_owner(st.st_uid):
            return
        problem = "is a symbolic link owned by uid %d" % st.st_uid
    elif _trusted_owner(st.st_uid) and (
            not st.st_mode & _WRITABLE_BY_OTHERS
            or st.st_mode & stat.S_ISVTX and st.st_uid == 0):
        return
    else:
        problem = "is owned by uid %d and mode %04o" % (
            st.st_uid, stat.S_IMODE(st.st_mode))
    raise FastpathError(
        "The directory %s above the %s %s %s: make it belong to root and "
        "writable only by it (or give it the sticky bit), or choose another "
        "%s." % (parent, what, path, problem, what))


def check_private_dir(path: str, what: str) -> None:
    """Refuse path unless it is a directory that root owns and only root
    may write, below directories that cannot be swapped (see above)."""
    # abspath drops a trailing "/", which would make lstat follow a link.
    st = _lstat(os.path.abspath(path), what)
    tail = ("and run again; the %s must be a directory that belongs to root "
            "and is writable only by it." % what)
    if stat.S_ISLNK(st.st_mode):
        raise FastpathError("The %s %s is a symbolic link: remove it (rm %s) "
                            "%s" % (what, path, path, tail))
    if not stat.S_ISDIR(st.st_mode):
        raise FastpathError("The %s %s is not a directory: remove it (rm %s) "
                            "%s" % (what, path, path, tail))
    if not _trusted_owner(st.st_uid) or st.st_mode & _WRITABLE_BY_OTHERS:
        remedy = _REMEDY.get(what, _REMEDY[PIN_DIR]).format(path=path)
        raise FastpathError(
            "The %s %s is owned by uid %d and mode %04o: %s and run again; "
            "the %s must belong to root and be writable only by it."
            % (what, path, st.st_uid, stat.S_IMODE(st.st_mode), remedy,
               what))
    for parent in _ancestors(path):
        _check_parent(parent, path, what)


def make_private_dir(path: str, what: str) -> None:
    """Create path (0700) and missing parents (0755), or keep it as it is;
    then refuse it unless check_private_dir accepts it."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700 if directory == missing[0] else 0o755)
        except FileExistsError:
            pass        # made meanwhile: checked below like any other
        except OSError as e:
            raise FastpathError("Could not create the %s %s (%s): run as "
                                "root and check the path."
                                % (what, path, e.strerror))
    check_private_dir(path, what)


def check_pin_dir(pin_dir: str) -> None:
    """pin_dir is on bpffs, exists, and is private."""
    if _facts.bpffs_mount(pin_dir) is None:
        raise FastpathError(_facts.NOT_ON_BPFFS % pin_dir)
    if not os.path.lexists(pin_dir):
        raise FastpathError(NOTHING_PINNED % pin_dir)
    check_private_dir(pin_dir, PIN_DIR)


def _describe(m: _abi.MapSpec | _bpf.Map, full: bool) -> str:
    parts = [_TYPE_NAMES.get(m.map_type, "type %d" % m.map_type),
             "key %d" % m.key_size, "value %d" % m.value_size]
    if full:
        parts += ["max_entries %d" % m.max_entries, "flags %d" % m.flags]
    return ", ".join(parts)


def map_problem(m: _bpf.Map, name: str, path: str) -> str | None:
    """The sentence when the map m, opened from path, is not the map name
    of the contract; None when it is."""
    spec = _abi.MAPS[name]
    tail = ("the pin directory has been tampered with or belongs to another "
            "program; remove it and deploy again.")
    if m.name != name[:15]:
        return "The pin %s holds map %s (%s), not %s: %s" % (
            path, m.name or "without a name", _describe(m, False), name,
            tail)
    if _abi.map_layout(m) != _abi.map_layout(spec):
        return ("The pin %s holds map %s (%s), not the %s of "
                "docs/dataplane.md (%s): %s" % (
                    path, m.name, _describe(m, True), name,
                    _describe(spec, True), tail))
    return None


def check_map(m: _bpf.Map, name: str, path: str) -> None:
    """Close m and raise unless it is the map name of the contract."""
    problem = map_problem(m, name, path)
    if problem:
        m.close()
        raise FastpathError(problem)


def open_map(pin_dir: str, name: str) -> _bpf.Map:
    """The contract's map name, opened from its pin under pin_dir once the
    pin and the map behind it are checked. The caller checks pin_dir."""
    path = os.path.join(pin_dir, name)
    if not os.path.lexists(path):
        raise FastpathError(NOT_PINNED % (name, pin_dir))
    st = _lstat(path, "pin")
    if not stat.S_ISREG(st.st_mode):
        problem = ("is a symbolic link" if stat.S_ISLNK(st.st_mode)
                   else "is not a pinned object")
    elif not _trusted_owner(st.st_uid) or st.st_mode & _WRITABLE_BY_OTHERS:
        problem = "is owned by uid %d and mode %04o" % (
            st.st_uid, stat.S_IMODE(st.st_mode))
    else:
        problem = None
    if problem:
        raise FastpathError(
            "The pin %s %s: the pin directory has been tampered with; remove "
            "it (rm -r %s) and deploy again." % (path, problem, pin_dir))
    try:
        m = _bpf.Map.open_pinned(path)
    except OSError as e:
        raise FastpathError(
            "The pin %s cannot be opened as a map (%s): run as root; if it "
            "still fails, remove the pin directory (rm -r %s) and deploy "
            "again." % (path, os.strerror(e.errno) if e.errno else e,
                        pin_dir))
    check_map(m, name, path)
    return m


def open_list_maps(pin_dir: str, list_name: str
                   ) -> list[_split_list.SplitList]:
    """The v4 and v6 families of a list ("blocklist", "allowlist"), from a
    checked pin directory, each map checked against the contract. A
    blocklist's hash of exact addresses is left out where it is not pinned:
    the program there is older than the hash and reads its tries only."""
    # Here, not at the top: xdp_attach (through _host) needs only the
    # directory checks, and the list code stays out of its imports.
    from . import _lists, _split_list
    check_pin_dir(pin_dir)
    families: list[_split_list.SplitList] = []
    try:
        for name in _lists.LISTS[list_name]:
            families.append(_split_list.open_family(pin_dir, name, open_map))
    except BaseException:
        for family in families:
            family.close()
        raise
    return families
