"""cpu_affinity through Ansible against real processes of this host."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.vos.fastpath.plugins.module_utils._cpus import (
    format_cpu_list,
)

from tests.integration.ansible_run import run_module
from tests.sip_process import SipProcess, online, sip_processes


@pytest.fixture
def sip_name() -> str:
    return "fp-sip-%d" % os.getpid()


@pytest.fixture
def children(root_required: None, sip_name: str
             ) -> Iterator[list[SipProcess]]:
    """Two processes named sip_name, and a decoy whose command line holds
    sip_name but whose name is python3."""
    assert len(online()) >= 2, "these tests need a host with 2 CPUs or more"
    with sip_processes((sip_name, sip_name), (sip_name, sip_name),
                       ("", sip_name)) as made:
        yield made


def test_named_processes_are_pinned_and_the_decoy_is_not(
        children: list[SipProcess], sip_name: str, tmp_path: Path) -> None:
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
        children: list[SipProcess], sip_name: str, tmp_path: Path) -> None:
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
    ("0-4095", r"CPUs \S+ are not online on this host, which has CPUs \S+: "
               r"choose CPUs among those\."),
    ("one", r"'one' is not a valid CPU list: .*\."),
])
def test_invalid_cpus_fail_clearly(children: list[SipProcess], sip_name: str,
                                   tmp_path: Path, cpus: str,
                                   says: str) -> None:
    result = run_module("vos.fastpath.cpu_affinity",
                        {"names": [sip_name], "cpus": cpus}, tmp_path)
    assert result["failed"] is True
    # The sentence alone: a module that crashed would say more around it.
    assert re.fullmatch(says, result["msg"]), result["msg"]
    for child in children:
        assert set(child.affinities().values()) == {frozenset(online())}
