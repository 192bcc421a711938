"""Load the built program, fill its maps from model tables, run frames.

The one place where tests touch the kernel for the data plane: the program
is loaded with bpftool (maps pinned under a private bpffs directory) and
every frame goes through BPF_PROG_TEST_RUN.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from plugins.module_utils import _abi, _bpf, _counters
from tests.dataplane.model import (
    Ban,
    Entry,
    Limits,
    Pardon,
    Rate,
    Signature,
    Source,
    Tables,
)

REPO = Path(__file__).resolve().parents[2]
OBJECT = REPO / "build" / "sip_logic.bpf.o"
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"

_XDP_MD = struct.Struct("=IIIIII")  # data data_end meta ifindex rxq egress


# include/uapi/linux/time.h; Python's time module does not name it.
CLOCK_MONOTONIC_COARSE = 6


def boot_ns() -> int:
    """Now, on the clock of list entries (bpf_ktime_get_boot_ns)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def mono_ns() -> int:
    """Now, on the clock of budgets and bans (CLOCK_MONOTONIC): at or
    after what the program reads from it from here on."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def mono_floor_ns() -> int:
    """At or before what the program reads from the clock of budgets and
    bans from here on: it reads the coarse CLOCK_MONOTONIC, one step per
    tick, where the kernel has bpf_ktime_get_coarse_ns()."""
    return time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)


def build() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    return OBJECT


@dataclass
class Outcome:
    """What one test run did: the XDP action and the counters that moved."""

    action: int
    reasons: list[int]      # reasons that moved: stats, then FP_REASON_MAX
    #                         + stats_ext index (exactly one expected)
    protos: list[int]       # proto_stats indexes that moved
    bytes_counted: int      # growth of the moved reason counters' bytes
    signatures: list[int]   # scanner_hits indexes that moved
    signature_bytes: int    # growth of their bytes
    classes: list[int]      # rate_limited indexes that moved
    class_bytes: int        # growth of their bytes


def _moved(before: list[tuple[int, int]],
           after: list[tuple[int, int]]) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(before, after, strict=True))
            if a != b]


def _grown(before: list[tuple[int, int]], after: list[tuple[int, int]],
           moved: list[int]) -> int:
    return sum(after[i][1] - before[i][1] for i in moved)


# The maps a run's counters are read from, in Outcome order.
COUNTER_MAPS = ("stats", "stats_ext", "proto_stats", "scanner_hits",
                "rate_limited")
# The maps of per-source state, cleared by load_state(): those that frames
# change, and the pardons the control plane writes.
STATE_MAPS = ("rate_state", "bans_v2", "pardons")


def pack_limits(limits: Limits) -> bytes:
    values: list[int] = []
    for budget in limits.untrusted + limits.trusted:
        values += [budget.interval_ns, budget.burst, 0]
    values += [limits.ban_after_ns, limits.ban_ns, limits.scanner_ban_ns,
               limits.flags, limits.prefix_v4, limits.prefix_v6, 0]
    return _abi.LIMITS.pack(*values)


def pack_signature(sig: Signature | None) -> bytes:
    if sig is None:
        return bytes(_abi.SIGNATURE.size)
    return _abi.SIGNATURE.pack(sig.len, 0, sig.padded())


def pack_source(key: Source) -> bytes:
    return _abi.SOURCE.pack(key.family, key.prefixlen, 0, key.addr)


def unpack_source(raw: bytes) -> Source:
    family, prefixlen, _reserved, addr = _abi.SOURCE.unpack(raw)
    return Source(family, prefixlen, addr)


def pack_rate(rate: Rate) -> bytes:
    return _abi.RATE.pack(*rate.tat_ns, rate.over_since_ns,
                          rate.last_drop_ns)


def unpack_rate(raw: bytes) -> Rate:
    fields = _abi.RATE.unpack(raw)
    slots = _abi.CLASS_SLOTS
    return Rate(list(fields[:slots]), fields[slots], fields[slots + 1])


def pack_ban(ban: Ban) -> bytes:
    return _abi.BAN_V2.pack(ban.expires_ns, ban.since_ns, ban.packets,
                            ban.reason, ban.detail)


def unpack_ban(raw: bytes) -> Ban:
    expires_ns, since_ns, packets, reason, detail = _abi.BAN_V2.unpack(raw)
    return Ban(expires_ns, reason, detail, since_ns, packets)


def pack_pardon(pardon: Pardon) -> bytes:
    return _abi.PARDON.pack(pardon.until_ns, 0)


def unpack_pardon(raw: bytes) -> Pardon:
    until_ns, _reserved = _abi.PARDON.unpack(raw)
    return Pardon(until_ns)


class Dataplane:
    """The program loaded and pinned under pin_dir, with its maps open."""

    def __init__(self, pin_dir: Path, obj: Path = OBJECT) -> None:
        self.pin_dir = pin_dir
        if pin_dir.exists():
            shutil.rmtree(pin_dir)
        pin_dir.mkdir(parents=True)
        try:
            subprocess.run(
                [BPFTOOL, "prog", "load", str(obj), str(pin_dir / "prog"),
                 "type", "xdp", "pinmaps", str(pin_dir)],
                check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError:
            shutil.rmtree(pin_dir, ignore_errors=True)
            raise
        self.prog_fd = _bpf.obj_get(str(pin_dir / "prog"))
        self.maps = {name: _bpf.Map.open_pinned(str(pin_dir / name))
                     for name in _abi.MAPS}
        self.ifindex = 0
        self._ports: set[int] | None = None    # as last written
        # The counters as the last run() left them: only runs move them,
        # so the next run() starts from these (test_run() forgets them).
        self._counted: dict[str, list[tuple[int, int]]] | None = None

    def close(self) -> None:
        for m in self.maps.values():
            m.close()
        shutil.rmtree(self.pin_dir, ignore_errors=True)

    # -- maps -------------------------------------------------------------

    def _clear(self, *names: str) -> None:
        for name in names:
            m = self.maps[name]
            for key in m.keys():
                m.delete(key)

    def clear_lists(self) -> None:
        self._clear("allow_v4", "allow_v6", "block_v4", "block_v6",
                    "block_v4_hosts", "block_v6_hosts")

    def load_tables(self, tables: Tables) -> None:
        """Make the maps equal to the model's tables: configuration and
        state (counters are left alone; runs read how they move)."""
        self.clear_lists()
        self.set_ports(tables.sip_ports)
        self.set_flags(tables.flags)
        for entry in tables.allow:
            self._put("allow", entry)
        for entry in tables.block:
            self._put("block", entry)
        self.set_limits(tables.limits)
        self.set_signatures(tables.signatures)
        self.load_state(tables)

    def load_state(self, tables: Tables) -> None:
        """rate_state, bans_v2 and pardons as the model's."""
        self._clear(*STATE_MAPS)
        for key, rate in tables.rate_state.items():
            self.write_rate(key, rate)
        for key, ban in tables.bans.items():
            self.write_ban(key, ban)
        for key, pardon in tables.pardons.items():
            self.write_pardon(key, pardon)

    def set_ports(self, ports: set[int]) -> None:
        """sip_ports: the ports that changed since the last call."""
        m = self.maps["sip_ports"]
        if self._ports is None:     # first call: the whole array
            keys = b"".join(_abi.U32.pack(p) for p in range(65536))
            values = bytes(1 if p in ports else 0 for p in range(65536))
            m.update_batch(keys, values)
        else:
            for port in self._ports ^ ports:
                m.update(_abi.U32.pack(port),
                         _abi.U8.pack(1 if port in ports else 0))
        self._ports = set(ports)

    def _put(self, kind: str, entry: Entry) -> None:
        """Write an entry where the collection's list code puts it: a
        blocklisted single address in its hash (unless in_trie), anything
        else in its trie."""
        net = entry.network
        value = _abi.ENTRY.pack(entry.expires_ns, entry.source, 0)
        if kind == "block" and net.prefixlen == net.max_prefixlen \
                and not entry.in_trie:
            self.maps["block_v%d_hosts" % net.version].update(
                net.network_address.packed, value)
            return
        if net.version == 4:
            layout, m = _abi.LPM_V4_KEY, self.maps[kind + "_v4"]
        else:
            layout, m = _abi.LPM_V6_KEY, self.maps[kind + "_v6"]
        key = layout.pack(net.prefixlen, net.network_address.packed)
        m.update(key, value)

    def set_flags(self, flags: int) -> None:
        self.maps["settings"].update(_abi.U32.pack(0),
                                     _abi.SETTINGS.pack(flags, 0))

    def set_limits(self, limits: Limits) -> None:
        self.maps["limits"].update(_abi.U32.pack(0), pack_limits(limits))

    def set_signatures(self, signatures: list[Signature]) -> None:
        """Slot j holds signatures[j]; the slots after them are zero."""
        m = self.maps["scanner_sigs"]
        for slot in range(m.max_entries):
            sig = signatures[slot] if slot < len(signatures) else None
            m.update(_abi.U32.pack(slot), pack_signature(sig))

    def write_rate(self, key: Source, rate: Rate) -> None:
        self.maps["rate_state"].update(pack_source(key), pack_rate(rate))

    def write_ban(self, key: Source, ban: Ban) -> None:
        self.maps["bans_v2"].update(pack_source(key), pack_ban(ban))

    def write_pardon(self, key: Source, pardon: Pardon) -> None:
        self.maps["pardons"].update(pack_source(key), pack_pardon(pardon))

    def rate(self, key: Source) -> Rate | None:
        raw = self.maps["rate_state"].lookup(pack_source(key))
        return None if raw is None else unpack_rate(raw)

    def ban(self, key: Source) -> Ban | None:
        raw = self.maps["bans_v2"].lookup(pack_source(key))
        return None if raw is None else unpack_ban(raw)

    def rate_state(self) -> dict[Source, Rate]:
        m = self.maps["rate_state"]
        return {unpack_source(k): unpack_rate(m.lookup(k) or b"")
                for k in m.keys()}

    def bans(self) -> dict[Source, Ban]:
        m = self.maps["bans_v2"]
        return {unpack_source(k): unpack_ban(m.lookup(k) or b"")
                for k in m.keys()}

    def pardons(self) -> dict[Source, Pardon]:
        m = self.maps["pardons"]
        return {unpack_source(k): unpack_pardon(m.lookup(k) or b"")
                for k in m.keys()}

    # -- counters ---------------------------------------------------------

    def counters(self, name: str) -> list[tuple[int, int]]:
        """(packets, bytes) per index, summed over CPUs."""
        m = self.maps[name]
        keys, values = m.lookup_batch()
        out = [(0, 0)] * m.max_entries
        size = m.full_value_size
        for i in range(len(keys) // m.key_size):
            index = _abi.U32.unpack_from(keys, i * m.key_size)[0]
            out[index] = _counters.sum_percpu(
                values[i * size:(i + 1) * size], m.slot_size)
        return out

    def all_counters(self) -> dict[str, list[tuple[int, int]]]:
        return {name: self.counters(name) for name in COUNTER_MAPS}

    # -- runs -------------------------------------------------------------

    def run(self, frame: bytes, rx_queue: int = 0) -> Outcome:
        """One frame through BPF_PROG_TEST_RUN, with the counters it moved."""
        before = self._counted or self.all_counters()
        action = self.test_run(frame, rx_queue).retval
        after = self.all_counters()
        self._counted = after
        moved = {name: _moved(before[name], after[name])
                 for name in COUNTER_MAPS}
        reasons = moved["stats"] + [_abi.FP_REASON_MAX + i
                                    for i in moved["stats_ext"]]
        grown = sum(_grown(before[name], after[name], moved[name])
                    for name in ("stats", "stats_ext"))
        return Outcome(action, reasons, moved["proto_stats"], grown,
                       moved["scanner_hits"],
                       _grown(before["scanner_hits"], after["scanner_hits"],
                              moved["scanner_hits"]),
                       moved["rate_limited"],
                       _grown(before["rate_limited"], after["rate_limited"],
                              moved["rate_limited"]))

    def test_run(self, frame: bytes, rx_queue: int = 0,
                 repeat: int = 1) -> _bpf.TestRun:
        self._counted = None
        ctx = None
        if rx_queue or self.ifindex:
            ctx = _XDP_MD.pack(0, len(frame), 0, self.ifindex, rx_queue, 0)
        return _bpf.prog_test_run(self.prog_fd, frame, repeat, ctx)


class XskSocket:
    """A minimal AF_XDP socket bound to one queue of an interface (copy
    mode), so that xsks_map can hold a real socket for that queue."""

    AF_XDP = 44
    SOL_XDP = 283
    XDP_RX_RING = 2
    XDP_UMEM_REG = 4
    XDP_UMEM_FILL_RING = 5
    XDP_UMEM_COMPLETION_RING = 6
    XDP_COPY = 1 << 1
    FRAMES = 64
    FRAME_SIZE = 4096

    def __init__(self, ifindex: int, queue: int) -> None:
        import mmap
        import socket

        self.sock = socket.socket(self.AF_XDP, socket.SOCK_RAW, 0)
        self.umem = mmap.mmap(-1, self.FRAMES * self.FRAME_SIZE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self.umem))
        reg = struct.pack("=QQIII", addr, len(self.umem), self.FRAME_SIZE,
                          0, 0)
        self.sock.setsockopt(self.SOL_XDP, self.XDP_UMEM_REG,
                             reg + b"\0" * 4)
        ring = struct.pack("=i", self.FRAMES)
        for opt in (self.XDP_UMEM_FILL_RING, self.XDP_UMEM_COMPLETION_RING,
                    self.XDP_RX_RING):
            self.sock.setsockopt(self.SOL_XDP, opt, ring)
        sxdp = struct.pack("=HHIII", self.AF_XDP, self.XDP_COPY, ifindex,
                           queue, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.bind(self.sock.fileno(), sxdp, len(sxdp)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "bind AF_XDP socket to queue %d" % queue)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
        self.umem.close()
