# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""The map contents xdp_attach reads and writes: SIP ports, settings,
limits, scanner signatures and their hit counters.

Private to this collection. MapIO is the part of _host.Host that reads
and writes map values through bpf() (_bpf); a map is named by its pin
(a path) or, before it is pinned, by its id. The values are the bytes of
_abi's structs: _plan and _limits decide what they hold.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Sequence

from . import _abi, _bpf


class MapIO:
    """Reads and writes of map values, by pin path or map id."""

    @staticmethod
    def _open(ref: str | int) -> _bpf.Map:
        """A map by its pin path or its id."""
        if isinstance(ref, int):
            return _bpf.Map(_bpf.map_fd_by_id(ref))
        return _bpf.Map.open_pinned(ref)

    def read_ports(self, ref: str | int) -> list[int]:
        with self._open(ref) as m:
            keys, values = m.lookup_batch()
        return [_abi.U32.unpack_from(keys, i * 4)[0]
                for i in range(len(values)) if values[i:i + 1] != b"\0"]

    def read_flags(self, ref: str | int) -> int:
        with self._open(ref) as m:
            raw = m.lookup(_abi.U32.pack(0))
        return _abi.SETTINGS.unpack(raw)[0] if raw else 0

    def write_ports(self, ref: str | int, ports: list[int],
                    clear: Sequence[int] = ()) -> None:
        """sip_ports[p] = 1 for ports, 0 for clear; additions first so that
        the map never lacks a port of both sets."""
        keys = [_abi.U32.pack(p) for p in ports] + \
            [_abi.U32.pack(p) for p in clear]
        values = b"\1" * len(ports) + b"\0" * len(clear)
        with self._open(ref) as m:
            m.update_batch(b"".join(keys), values)

    def write_flags(self, ref: str | int, flags: int) -> None:
        with self._open(ref) as m:
            m.update(_abi.U32.pack(0), _abi.SETTINGS.pack(flags, 0))

    def read_limits(self, ref: str | int) -> bytes:
        """The struct fp_limits at key 0 of the `limits` map."""
        with self._open(ref) as m:
            raw = m.lookup(_abi.U32.pack(0))
        return raw if raw else bytes(_abi.LIMITS.size)

    def write_limits(self, ref: str | int, value: bytes) -> None:
        with self._open(ref) as m:
            m.update(_abi.U32.pack(0), value)

    def read_slots(self, ref: str | int) -> list[bytes]:
        """Every value of an array map, in key order (per-CPU maps: each
        value is every CPU's slot, one after the other)."""
        with self._open(ref) as m:
            return [m.lookup(_abi.U32.pack(key))
                    or bytes(m.full_value_size)
                    for key in range(m.max_entries)]

    def write_slots(self, ref: str | int, values: dict[int, bytes]) -> None:
        """Array map keys {key: value}, in one batch, lowest key first."""
        keys = sorted(values)
        with self._open(ref) as m:
            m.update_batch(b"".join(_abi.U32.pack(k) for k in keys),
                           b"".join(values[k] for k in keys))

    def clear_slots(self, ref: str | int, keys: Sequence[int]) -> None:
        """Zero the values of keys of an array map (every CPU's)."""
        with self._open(ref) as m:
            m.update_batch(b"".join(_abi.U32.pack(k) for k in keys),
                           bytes(m.full_value_size * len(keys)))
