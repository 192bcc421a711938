"""Every entry of a pinned list trie, for tests that read the kernel's
lists directly."""

from __future__ import annotations

import os
from pathlib import Path

from plugins.module_utils import _bpf, _lists
from plugins.module_utils._split_list import SplitList


def read_entries(trie: _bpf.Map) -> _lists.Entries:
    keys, values = trie.lookup_batch(chunk=65536)
    return _lists.Entries(keys, values, trie.key_size, trie.value_size)


def open_list(pin_dir: Path | str, name: str) -> SplitList:
    """A list family by its trie's name (block_v4, ...): the trie and, for
    the blocklist, its hash of exact addresses where it is pinned."""
    trie = _bpf.Map.open_pinned(os.path.join(pin_dir, name))
    hosts = _lists.HOSTS.get(name)
    if hosts and os.path.lexists(os.path.join(pin_dir, hosts)):
        return SplitList(trie, _bpf.Map.open_pinned(
            os.path.join(pin_dir, hosts)))
    return SplitList(trie, None)


def read_list(pin_dir: Path | str, name: str) -> _lists.Entries:
    """Every entry of a list family, in the trie's key layout."""
    with open_list(pin_dir, name) as family:
        return read_entries(family)
