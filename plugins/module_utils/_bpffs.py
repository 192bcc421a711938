# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""bpffs now (mount) and at boot (fstab) behind vos.fastpath.bpffs.

Private to this collection. Whether bpffs is mounted is read from the
mount table by _facts.bpffs_mounted; fstab is parsed as mount(8) does
(fields split on blanks, octal escapes such as \\040 for a space).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import re

from . import _facts
from ._errors import FastpathError
from ._runner import Runner

DEFAULT_PATH = _facts.BPFFS
FSTAB = "/etc/fstab"
MOUNTS = "/proc/mounts"

_ESCAPED = re.compile(r"\\([0-7]{3})")
# What fstab(5) writes as an octal escape in a field.
_TO_ESCAPE = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


def check_mountpoint(path: str) -> None:
    if not os.path.isdir(path):
        raise FastpathError(
            "The mount point %s is not a directory: create it first, or "
            "use /sys/fs/bpf." % path)


def is_mounted(path: str, mounts: str = MOUNTS) -> bool:
    """Whether bpffs is mounted right on path."""
    try:
        return _facts.bpffs_mounted(path, mounts)
    except OSError as e:
        raise FastpathError("Could not read the mount table %s (%s): run "
                            "on a host with /proc mounted." % (mounts, e))


def mount(runner: Runner, path: str) -> None:
    runner.run([runner.path("mount"), "-t", "bpf", "bpf", path],
               "Could not mount bpffs on %s: run as root (CAP_SYS_ADMIN) "
               "on a kernel built with CONFIG_BPF_SYSCALL=y." % path)


def umount(runner: Runner, path: str) -> bool:
    """Undo a mount of this run; False when that failed too."""
    umount_bin = runner.find("umount")
    return bool(umount_bin) and runner.try_run([umount_bin, path])[0] == 0


def unescape(field: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), field)


def escape(field: str) -> str:
    return "".join(_TO_ESCAPE.get(c, c) for c in field)


def has_entry(fstab: str, path: str) -> bool:
    """Whether an fstab line (of any file system) mounts on path."""
    wanted = os.path.normpath(path)
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and \
                os.path.normpath(unescape(fields[1])) == wanted:
            return True
    return False


def entry(path: str) -> str:
    return "bpffs %s bpf defaults 0 0\n" % escape(os.path.normpath(path))


def with_entry(fstab: str, path: str) -> str:
    """fstab with the bpffs line for path added at the end."""
    if fstab and not fstab.endswith("\n"):
        fstab += "\n"
    return fstab + entry(path)


def read_fstab(path: str) -> str:
    """The text of fstab; empty when there is none yet."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise FastpathError("Could not read %s (%s): check that it is a "
                            "readable text file." % (path, e))
