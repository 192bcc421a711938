# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""One writer at a time, per list and per interface.

Private to this collection. A lock is an flock() on a file under LOCK_DIR,
a root-only directory on tmpfs: the kernel releases it when its holder
exits, however it exits (kill -9 included), so a crashed run never leaves
a stale lock behind. The holder writes who it is into the file, so that a
writer that gave up waiting can name it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from typing import Iterator

from ._errors import FastpathError

LOCK_DIR = "/run/vos-fastpath/locks"
DEFAULT_TIMEOUT = 60
POLL_SECONDS = 0.05


def list_key(pin_dir: str, list_name: str) -> str:
    """The lock of one list of the maps pinned under pin_dir."""
    digest = hashlib.sha256(os.path.normpath(pin_dir).encode()).hexdigest()
    return "list-%s-%s" % (list_name, digest[:16])


def interface_key(ifname: str) -> str:
    """The lock of one interface's attachment."""
    return "iface-" + re.sub(r"[^A-Za-z0-9_.-]", "_", ifname)


def _private_dir(path: str) -> None:
    """Create path (mode 0700), or check that it is root's alone."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or \
            st.st_mode & 0o022:
        raise FastpathError(
            "The lock directory %s is not a directory owned by this user and "
            "writable only by it: remove it, and run again as root." % path)


def holder(path: str) -> str:
    """What the holder wrote into its lock file, or a placeholder."""
    try:
        with open(path, "rb") as f:
            text = f.read(512).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "a writer that has not named itself yet"


@contextlib.contextmanager
def hold(key: str, timeout: float, purpose: str,
         lock_dir: str = LOCK_DIR) -> Iterator[None]:
    """Hold the lock `key` for the body of the with statement; wait up to
    `timeout` seconds for another holder to finish, then fail naming it."""
    _private_dir(lock_dir)
    path = os.path.join(lock_dir, key + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + max(timeout, 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise FastpathError("Could not lock %s (%s)."
                                        % (path, e.strerror))
            if time.monotonic() >= deadline:
                raise FastpathError(
                    "Another run is changing the same thing (%s, held by %s) "
                    "and did not finish within %g s: wait for it, or raise "
                    "lock_timeout." % (key, holder(path), timeout))
            time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d, %s, since %s\n" % (
            os.getpid(), purpose,
            time.strftime("%Y-%m-%d %H:%M:%S"))).encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)    # releases the flock
