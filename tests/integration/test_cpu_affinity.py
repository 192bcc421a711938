"""cpu_affinity through Ansible against real processes of this host."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.vos.fastpath.plugins.module_utils._cpus import (
    format_cpu_list,
)

from tests.integration.ansible_run import TARGET_PYTHON, run_module

# A child that names itself (comm) with prctl(PR_SET_NAME), starts two
# threads, says "ready" and lives until its stdin closes.
NAMED_CHILD = r"""
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
    return sorted(os.sched_getaffinity(0))


class Child:
    def __init__(self, comm: str, argument: str) -> None:
        """A child named comm (or python3 when empty) whose command line
        also carries argument."""
        self.proc = subprocess.Popen(
            [TARGET_PYTHON, "-c", NAMED_CHILD, comm,
             ",".join(map(str, online())), argument],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid

    def comm(self) -> str:
        return Path("/proc/%d/comm" % self.pid).read_text().strip()

    def cmdline(self) -> str:
        raw = Path("/proc/%d/cmdline" % self.pid).read_bytes()
        return raw.replace(b"\0", b" ").decode()

    def affinities(self) -> dict[int, set[int]]:
        tids = [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
        return {tid: frozenset(os.sched_getaffinity(tid)) for tid in tids}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sip_name() -> str:
    return "fp-sip-%d" % os.getpid()


@pytest.fixture
def children(root_required: None, sip_name: str) -> Iterator[list[Child]]:
    """Two processes named sip_name, and a decoy whose command line holds
    sip_name but whose name is python3."""
    assert len(online()) >= 2, "these tests need a host with 2 CPUs or more"
    made: list[Child] = []
    try:
        for comm in (sip_name, sip_name, ""):
            made.append(Child(comm, sip_name))
        yield made
    finally:
        for child in made:
            child.stop()


def test_named_processes_are_pinned_and_the_decoy_is_not(
        children: list[Child], sip_name: str, tmp_path: Path) -> None:
    first, second, decoy = children
    assert first.comm() == second.comm() == sip_name
    assert decoy.comm() == "python3" and sip_name in decoy.cmdline()
    assert all(len(c.affinities()) == 3 for c in children)
    everything = set(online())
    target = max(everything)
    args = {"names": [sip_name], "cpus": str(target)}

    checked = run_module("vos.fastpath.cpu_affinity", args, tmp_path,
                         check=True)
    assert checked["changed"] is True, checked
    for child in children:
        assert set(child.affinities().values()) == {frozenset(everything)}

    result = run_module("vos.fastpath.cpu_affinity", args, tmp_path,
                        diff=True)
    assert result["changed"] is True, result
    assert [(p["pid"], p["name"], p["threads"], p["threads_changed"])
            for p in result["processes"]] == [
        (first.pid, sip_name, 3, 3), (second.pid, sip_name, 3, 3)]
    assert {p["before"] for p in result["processes"]} == {
        format_cpu_list(everything)}
    assert result["diff"]["after"] == "".join(
        "%d %s: %d\n" % (c.pid, sip_name, target) for c in (first, second))
    for child in (first, second):
        assert set(child.affinities().values()) == {frozenset({target})}
    assert set(decoy.affinities().values()) == {frozenset(everything)}

    again = run_module("vos.fastpath.cpu_affinity", args, tmp_path)
    assert again["changed"] is False, again
    assert [p["threads_changed"] for p in again["processes"]] == [0, 0]

    checked = run_module("vos.fastpath.cpu_affinity", args, tmp_path,
                         check=True)
    assert checked["changed"] is False, checked


def test_one_thread_moved_back_is_found_again(
        children: list[Child], sip_name: str, tmp_path: Path) -> None:
    first = children[0]
    target = max(online())
    args = {"names": [sip_name], "cpus": str(target)}
    assert run_module("vos.fastpath.cpu_affinity", args, tmp_path)["changed"]
    worker = max(first.affinities())      # not the main thread
    assert worker != first.pid
    os.sched_setaffinity(worker, online())
    result = run_module("vos.fastpath.cpu_affinity", args, tmp_path)
    assert result["changed"] is True
    changed = {p["pid"]: p["threads_changed"] for p in result["processes"]}
    assert changed == {first.pid: 1, children[1].pid: 0}
    assert os.sched_getaffinity(worker) == {target}


def test_no_matching_process_is_ok(root_required: None,
                                   tmp_path: Path) -> None:
    result = run_module("vos.fastpath.cpu_affinity",
                        {"names": ["fp-none-%d" % os.getpid()], "cpus": "0"},
                        tmp_path)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["processes"] == []
    assert not result.get("warnings")


@pytest.mark.parametrize(("cpus", "says"), [
    ("0-4095", "not online on this host, which has CPUs"),
    ("one", "'one' is not a valid CPU list"),
])
def test_invalid_cpus_fail_clearly(children: list[Child], sip_name: str,
                                   tmp_path: Path, cpus: str,
                                   says: str) -> None:
    result = run_module("vos.fastpath.cpu_affinity",
                        {"names": [sip_name], "cpus": cpus}, tmp_path)
    assert result["failed"] is True
    assert says in result["msg"]
    for child in children:
        assert set(child.affinities().values()) == {frozenset(online())}
