# -*- coding: utf-8 -*-
# Copyright: vos-fastpath contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU lists and process affinity behind vos.fastpath.cpu_affinity.

Private to this collection; standard library only. Processes are found by
their name as the kernel keeps it (/proc/<pid>/comm), never by their
command line, and every thread (/proc/<pid>/task/<tid>) is handled.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import Collection, Iterable

PROC = "/proc"
ONLINE = "/sys/devices/system/cpu/online"

# The kernel keeps at most 15 bytes of a task's name (TASK_COMM_LEN - 1).
COMM_LEN = 15


def parse_cpu_list(text: object) -> frozenset[int]:
    """The set of CPU numbers in a kernel-style list such as "1-3,5".

    Raises ValueError with a sentence that says what is wrong.
    """
    if not isinstance(text, str):
        raise ValueError("The CPU list must be a string such as '1-3,5', "
                         "not %r." % (text,))
    cpus = set()
    spec = text.strip()
    if not spec:
        raise ValueError("The CPU list is empty: give CPUs such as '1-3,5'.")
    for part in spec.split(","):
        part = part.strip()
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b.strip().isdigit() for b in bounds):
            raise ValueError(
                "%r is not a valid CPU list: write CPU numbers and ranges "
                "separated by commas, such as '1-3,5'." % text)
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            raise ValueError(
                "%r is not a valid CPU list: the range %s goes downwards; "
                "write it as %d-%d." % (text, part, high, low))
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """The shortest kernel-style list for a set of CPUs: {0,1,2,5} -> "0-2,5".
    """
    parts = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j == i:
            parts.append("%d" % ordered[i])
        else:
            parts.append("%d-%d" % (ordered[i], ordered[j]))
        i = j + 1
    return ",".join(parts)


def online_cpus(path: str = ONLINE) -> frozenset[int]:
    """The CPUs the kernel has online (those this process may use when the
    list cannot be read)."""
    try:
        with open(path) as f:
            return parse_cpu_list(f.read())
    except (IOError, OSError, ValueError):
        return frozenset(os.sched_getaffinity(0))


def check_cpus(wanted: Iterable[int], available: Collection[int]
               ) -> str | None:
    """None when every wanted CPU is available, else a sentence saying
    which ones are not and what the host has."""
    missing = set(wanted) - set(available)
    if not missing:
        return None
    return ("%s %s not online on this host, which has CPUs %s: choose "
            "CPUs among those." % (
                ("CPU " if len(missing) == 1 else "CPUs ")
                + format_cpu_list(missing),
                "is" if len(missing) == 1 else "are",
                format_cpu_list(available)))


def comm_name(name: str) -> str:
    """A name as /proc/<pid>/comm would show it (the kernel truncates)."""
    return name.encode("utf-8")[:COMM_LEN].decode("utf-8", "ignore")


def read_comm(pid: int | str, proc: str | None = None) -> str | None:
    """The name of a process, or None when it is gone."""
    try:
        with open(os.path.join(proc or PROC, str(pid), "comm"), "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def find_processes(names: Iterable[str], proc: str | None = None
                   ) -> list[tuple[int, str]]:
    """[(pid, name)] of every process whose comm is exactly one of names,
    by pid."""
    wanted = set(comm_name(n) for n in names)
    found = []
    for entry in os.listdir(proc or PROC):
        if not entry.isdigit():
            continue
        comm = read_comm(entry, proc)
        if comm is not None and comm in wanted:
            found.append((int(entry), comm))
    return sorted(found)


def thread_ids(pid: int, proc: str | None = None) -> list[int]:
    """The ids of every thread of a process (empty when it is gone)."""
    try:
        tasks = os.listdir(os.path.join(proc or PROC, str(pid), "task"))
    except (IOError, OSError):
        return []
    return sorted(int(t) for t in tasks if t.isdigit())


def get_affinity(tid: int) -> frozenset[int] | None:
    """The CPUs a thread may run on, or None when it is gone."""
    try:
        return frozenset(os.sched_getaffinity(tid))
    except ProcessLookupError:
        return None


def set_affinity(tid: int, cpus: Iterable[int]) -> bool:
    """Set a thread's CPUs; False when the thread is gone."""
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        return False
    return True


def plan(pid: int, cpus: frozenset[int], proc: str | None = None
         ) -> tuple[frozenset[int] | None, list[int]]:
    """(before, threads to change) for one process: before is its main
    thread's CPUs (None when the process is gone)."""
    before = get_affinity(pid)
    if before is None:
        return None, []
    pending = []
    for tid in thread_ids(pid, proc):
        current = before if tid == pid else get_affinity(tid)
        if current is not None and current != cpus:
            pending.append(tid)
    return before, pending


def pin(pid: int, cpus: frozenset[int], proc: str | None = None,
        passes: int = 3) -> int:
    """Set the CPUs of every thread of a process. Threads started while
    this runs are caught by a new pass. Returns the number of threads set.
    """
    count = 0
    for _attempt in range(passes):
        pending = plan(pid, cpus, proc)[1]
        if not pending:
            break
        for tid in pending:
            if set_affinity(tid, cpus):
                count += 1
    return count
