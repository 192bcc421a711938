"""Every entry of a pinned list trie, for tests that read the kernel's
lists directly."""

from __future__ import annotations

from plugins.module_utils import _bpf, _lists


def read_entries(trie: _bpf.Map) -> _lists.Entries:
    keys, values = trie.lookup_batch(chunk=65536)
    return _lists.Entries(keys, values, trie.key_size, trie.value_size)
