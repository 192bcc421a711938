# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers shared by the modules: digests and atomic writes.

Private to this collection.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile
from typing import Callable


def sha256_file(path: str) -> str | None:
    """Hex digest of a file, None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (IOError, OSError):
        return None
    return digest.hexdigest()


def temp_path(dest: str) -> str:
    """A new empty file next to dest, for an atomic rename over it."""
    fd, path = tempfile.mkstemp(dir=os.path.dirname(dest) or ".",
                                prefix=".%s." % os.path.basename(dest),
                                suffix=".tmp")
    os.close(fd)
    return path


def remove_stale_temps(dest: str) -> None:
    """Remove the temporary files temp_path() made for dest that a killed
    writer left behind. Call it only while holding dest's lock."""
    directory = os.path.dirname(dest) or "."
    prefix = ".%s." % os.path.basename(dest)
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(".tmp"):
            os.unlink(os.path.join(directory, name))


def remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def write_atomically(path: str, data: bytes | list[bytes],
                     move: Callable[[str, str], None] = os.rename) -> None:
    """Write bytes (or a list of them, one after the other) to a temporary
    file next to path, then move it over path (a module passes its
    atomic_move); no partial file is ever seen.
    The file is on disk before the rename, and the rename is on disk when
    this returns: after a crash path holds the old bytes or the new."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.writelines([data] if isinstance(data, bytes) else data)
            f.flush()
            os.fsync(f.fileno())
        move(tmp, path)
        fsync_dir(os.path.dirname(path) or ".")
    finally:
        remove(tmp)


def fsync_dir(path: str) -> None:
    """Put a directory's entries (a rename into it) on disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
