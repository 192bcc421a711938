# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an automatic blocklist writer (the fleet exchange, a feed) must
leave out: entries that overlap a protected network, an allowlisted one,
or a source an operator pardoned.

Private to this collection. A person's block of a protected address fails
(bpf_map_entry's protect); a machine's is skipped and reported, so that
one bad feed line or one spoofed address does not stop the rest.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os

from . import _bans, _lists, _pins

# Why an entry was left out, in the order they are checked.
PROTECTED, ALLOWLISTED, PARDONED = "protected", "allowlisted", "pardoned"


def allowlist_keys(pin_dir: str) -> list[set[bytes]]:
    """The allowlist's keys, (v4, v6), as the tries hold them."""
    tries = _pins.open_list_maps(pin_dir, "allowlist")
    try:
        return [set(m.keys()) for m in tries]
    finally:
        for m in tries:
            m.close()


def pardon_keys(pin_dir: str) -> list[set[bytes]]:
    """The sources pardoned now, as list keys (v4, v6)."""
    out: list[set[bytes]] = [set(), set()]
    if not os.path.lexists(os.path.join(pin_dir, "pardons")):
        return out
    for source in _bans.Reader(pin_dir).pardon_keys():
        family, key = _bans.source_lpm_key(source)
        out[family].add(key)
    return out


Guards = list[tuple[str, list[set[bytes]]]]


def split(desired: list[set[bytes]], guards: Guards
          ) -> list[tuple[bytes, str, bytes]]:
    """Remove from desired (in place) every entry that covers or lies
    inside a guard; returns (entry, why, guard) for each, sorted."""
    skipped = []
    for why, keys in guards:
        for family in (0, 1):
            hits = _lists.protected_hits(desired[family], keys[family])
            for entry, guard in hits:
                if entry in desired[family]:
                    desired[family].discard(entry)
                    skipped.append((entry, why, guard))
    skipped.sort()
    return skipped


def report(skipped: list[tuple[bytes, str, bytes]], limit: int
           ) -> list[dict]:
    return [dict(entry=_lists.key_text(entry), reason=why,
                 overlaps=_lists.key_text(guard))
            for entry, why, guard in skipped[:limit]]
