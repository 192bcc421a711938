"""Every entry of a pinned list trie, for tests that read the kernel's
lists directly."""

from __future__ import annotations

import os
from pathlib import Path

from plugins.module_utils import _bpf, _lists
from plugins.module_utils._split_list import SplitList, open_family


def read_entries(trie: _bpf.Map) -> _lists.Entries:
    keys, values = trie.lookup_batch(chunk=65536)
    return _lists.Entries(keys, values, trie.key_size, trie.value_size)


def open_list(pin_dir: Path | str, name: str) -> SplitList:
    """A list family by its trie's name (block_v4, ...), opened as the list
    code opens it, without the checks of the pin directory."""
    return open_family(str(pin_dir), name, lambda directory, map_name:
                       _bpf.Map.open_pinned(os.path.join(directory,
                                                         map_name)))


def read_list(pin_dir: Path | str, name: str) -> _lists.Entries:
    """Every entry of a list family, in the trie's key layout."""
    with open_list(pin_dir, name) as family:
        return read_entries(family)
