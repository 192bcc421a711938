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
from tests.dataplane.model import Entry, Tables

REPO = Path(__file__).resolve().parents[2]
OBJECT = REPO / "build" / "sip_logic.bpf.o"
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"

_XDP_MD = struct.Struct("=IIIIII")  # data data_end meta ifindex rxq egress


def boot_ns() -> int:
    """Now, on the clock the program reads (bpf_ktime_get_boot_ns)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def build() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    return OBJECT


@dataclass
class Outcome:
    """What one test run did: the XDP action and the counters that moved."""

    action: int
    reasons: list[int]      # stats indexes that moved (exactly one expected)
    protos: list[int]       # proto_stats indexes that moved
    bytes_counted: int      # growth of the moved stats counter's bytes


def _moved(before: list[tuple[int, int]],
           after: list[tuple[int, int]]) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(before, after, strict=True))
            if a != b]


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

    def close(self) -> None:
        for m in self.maps.values():
            m.close()
        shutil.rmtree(self.pin_dir, ignore_errors=True)

    # -- maps -------------------------------------------------------------

    def clear_lists(self) -> None:
        for name in ("allow_v4", "allow_v6", "block_v4", "block_v6"):
            m = self.maps[name]
            for key in m.keys():
                m.delete(key)

    def load_tables(self, tables: Tables) -> None:
        """Make the maps equal to the model's tables."""
        self.clear_lists()
        ports = self.maps["sip_ports"]
        for port in range(65536):
            on = 1 if port in tables.sip_ports else 0
            if on or ports.lookup(_abi.U32.pack(port)) != b"\0":
                ports.update(_abi.U32.pack(port), _abi.U8.pack(on))
        self.set_flags(tables.flags)
        for entry in tables.allow:
            self._put("allow", entry)
        for entry in tables.block:
            self._put("block", entry)

    def _put(self, kind: str, entry: Entry) -> None:
        net = entry.network
        if net.version == 4:
            layout, m = _abi.LPM_V4_KEY, self.maps[kind + "_v4"]
        else:
            layout, m = _abi.LPM_V6_KEY, self.maps[kind + "_v6"]
        key = layout.pack(net.prefixlen, net.network_address.packed)
        m.update(key, _abi.ENTRY.pack(entry.expires_ns, entry.source, 0))

    def set_flags(self, flags: int) -> None:
        self.maps["settings"].update(_abi.U32.pack(0),
                                     _abi.SETTINGS.pack(flags, 0))

    # -- counters ---------------------------------------------------------

    def counters(self, name: str) -> list[tuple[int, int]]:
        """(packets, bytes) per index, summed over CPUs."""
        m = self.maps[name]
        return [_counters.sum_percpu(m.lookup(_abi.U32.pack(i)), m.slot_size)
                for i in range(m.max_entries)]

    # -- runs -------------------------------------------------------------

    def run(self, frame: bytes, rx_queue: int = 0) -> Outcome:
        """One frame through BPF_PROG_TEST_RUN, with the counters it moved."""
        before = self.counters("stats"), self.counters("proto_stats")
        action = self.test_run(frame, rx_queue).retval
        after = self.counters("stats"), self.counters("proto_stats")
        reasons = _moved(before[0], after[0])
        protos = _moved(before[1], after[1])
        grown = sum(after[0][i][1] - before[0][i][1] for i in reasons)
        return Outcome(action, reasons, protos, grown)

    def test_run(self, frame: bytes, rx_queue: int = 0,
                 repeat: int = 1) -> _bpf.TestRun:
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
