"""Stand-ins for SIP server processes, for the CPU pinning tests.

A stand-in names itself with prctl(PR_SET_NAME), so /proc/<pid>/comm is
the name under test while its command line is something else; it runs
three threads on every CPU this test may use and lives until stopped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.ansible_run import TARGET_PYTHON

# Names itself (comm) when argv[1] is not empty, runs on the CPUs of
# argv[2], starts two threads, says "ready" and lives until stdin closes.
CHILD = r"""
import ctypes, os, sys, threading
name = sys.argv[1].encode()
if name:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")
os.sched_setaffinity(0, [int(c) for c in sys.argv[2].split(",")])
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(2)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.read()
stop.set()
"""


def online() -> list[int]:
    """The CPUs this test may use."""
    return sorted(os.sched_getaffinity(0))


class SipProcess:
    def __init__(self, comm: str, argument: str) -> None:
        """A process named comm (python3 when empty) whose command line
        also carries argument."""
        self.proc = subprocess.Popen(
            [TARGET_PYTHON, "-c", CHILD, comm, ",".join(map(str, online())),
             argument],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the stand-in process %r did not start"
                               % comm)

    def comm(self) -> str:
        return Path("/proc/%d/comm" % self.pid).read_text().strip()

    def cmdline(self) -> str:
        raw = Path("/proc/%d/cmdline" % self.pid).read_bytes()
        return raw.replace(b"\0", b" ").decode()

    def affinities(self) -> dict[int, frozenset[int]]:
        """{thread id: its CPUs}."""
        tids = [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
        return {tid: frozenset(os.sched_getaffinity(tid)) for tid in tids}

    def cpu_sets(self) -> set[frozenset[int]]:
        """The distinct CPU sets of its threads."""
        return set(self.affinities().values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def sip_processes(*specs: tuple[str, str]) -> Iterator[list[SipProcess]]:
    """One SipProcess per (comm, argument), all stopped afterwards."""
    made: list[SipProcess] = []
    try:
        for comm, argument in specs:
            made.append(SipProcess(comm, argument))
        yield made
    finally:
        for process in made:
            process.stop()
