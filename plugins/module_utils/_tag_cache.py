# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tag of each object's last load, so that an unchanged run loads
nothing.

Private to this collection. The program tag is the kernel's hash of the
loaded instructions, known only after a load. The cache remembers it per
object file (sha256), kernel and bpftool; it lives in /run, which a reboot
empties with bpffs.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import platform

from . import _files

TAG_CACHE = "/run/vos-fastpath/object-tags.json"
TAG_CACHE_SIZE = 64


def cache_key(obj: str, bpftool: str) -> str:
    """The object's sha256, the kernel, and bpftool by path, size and time
    (another libbpf may relocate the same object differently)."""
    st = os.stat(bpftool)
    return " ".join((_files.sha256_file(obj), platform.release(),
                     platform.version(),
                     "%s:%d:%d" % (bpftool, st.st_size, int(st.st_mtime))))


class TagCache:
    """object sha256 + kernel + bpftool -> program tag of the last load."""

    def __init__(self, path: str = TAG_CACHE) -> None:
        self.path = path

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, key: str) -> str | None:
        return self._read().get(key)

    def record(self, key: str, tag: str) -> None:
        data = self._read()
        data.pop(key, None)
        data[key] = tag
        while len(data) > TAG_CACHE_SIZE:
            data.pop(next(iter(data)))
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        _files.write_atomically(
            self.path, json.dumps(data, indent=1).encode())
