"""One command of bench/line_rate.py with its wall time and peak RSS.

The peak RSS is the command's own VmHWM (/proc/<pid>/status), read while
it runs: a child's rusage would report the Python process it was forked
from as long as that was larger, since the high-water mark survives
exec. It counts only once the process runs the command itself (its
cmdline is `command`), so a command that ends within the first poll has
none.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.01


@dataclass
class Done:
    returncode: int
    out: bytes
    err: bytes
    seconds: float
    peak_mb: int | None


def _hwm_mb(pid: int, command: Sequence[str]) -> int | None:
    """VmHWM of pid in MB while pid runs command, else None."""
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
        if cmdline.split(b"\0")[:-1] != [os.fsencode(a) for a in command]:
            return None
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def run_measured(argv: Sequence[str], command: Sequence[str],
                 stdin: Path | None = None,
                 env: Mapping[str, str] | None = None) -> Done:
    """Run argv (which ends by exec'ing command, e.g. through nsenter),
    reading both its pipes (a full one would stall it) and its peak RSS
    meanwhile."""
    start = time.perf_counter()
    peak = None
    with open(stdin or os.devnull, "rb") as f:
        proc = subprocess.Popen(list(argv), stdin=f, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        sel = selectors.DefaultSelector()
        chunks: dict[int, list[bytes]] = {}
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                sel.register(pipe, selectors.EVENT_READ)
                chunks[pipe.fileno()] = []
        while sel.get_map():
            for key, _events in sel.select(POLL_S):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fileobj)
            peak = _hwm_mb(proc.pid, command) or peak
        proc.wait()
    out = b"".join(chunks[proc.stdout.fileno()]) if proc.stdout else b""
    err = b"".join(chunks[proc.stderr.fileno()]) if proc.stderr else b""
    return Done(proc.returncode, out, err, time.perf_counter() - start,
                peak)
