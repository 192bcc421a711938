"""cpu_affinity: CPU lists, process matching and the plan, with the kernel
boundary (/proc and sched_{get,set}affinity) faked."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import _cpus
from ansible_collections.vos.fastpath.plugins.modules import cpu_affinity


@pytest.mark.parametrize(("text", "cpus"), [
    ("0", {0}),
    ("1-3,5", {1, 2, 3, 5}),
    (" 2 , 0-1 ", {0, 1, 2}),
    ("4-4", {4}),
    ("0-1,1-2", {0, 1, 2}),
    ("0-3\n", {0, 1, 2, 3}),
])
def test_parse_cpu_list(text: str, cpus: set[int]) -> None:
    assert _cpus.parse_cpu_list(text) == cpus


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("   ", "empty"),
    ("a", "not a valid CPU list"),
    ("1,", "not a valid CPU list"),
    ("-1", "not a valid CPU list"),
    ("1--2", "not a valid CPU list"),
    ("1-2-3", "not a valid CPU list"),
    ("0x1", "not a valid CPU list"),
    ("3-1", "write it as 1-3"),
])
def test_bad_cpu_lists_are_refused_with_a_reason(text: str,
                                                 says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        _cpus.parse_cpu_list(text)
    assert "such as" in str(err.value) or "write it as" in str(err.value)


def test_a_cpu_list_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        _cpus.parse_cpu_list(3)


@pytest.mark.parametrize(("cpus", "text"), [
    ({0, 1, 2, 5}, "0-2,5"),
    ({3}, "3"),
    ({1, 2}, "1-2"),
    ({7, 1, 3, 2}, "1-3,7"),
    (set(), ""),
])
def test_format_cpu_list(cpus: set[int], text: str) -> None:
    assert _cpus.format_cpu_list(cpus) == text


def test_format_and_parse_round_trip() -> None:
    rng = random.Random(7)
    for _round in range(300):
        cpus = {rng.randrange(64) for _cpu in range(rng.randrange(1, 20))}
        text = _cpus.format_cpu_list(cpus)
        assert _cpus.parse_cpu_list(text) == cpus
        # Shortest form: no two ranges could be merged.
        assert len(text.split(",")) == sum(
            1 for c in cpus if c - 1 not in cpus)


def test_check_cpus() -> None:
    assert _cpus.check_cpus({1, 2}, {0, 1, 2, 3}) is None
    msg = _cpus.check_cpus({2, 3, 9}, {0, 1, 2})
    assert msg == ("CPUs 3,9 are not online on this host, which has CPUs "
                   "0-2: choose CPUs among those.")
    assert _cpus.check_cpus({5}, {0, 1}).startswith("CPU 5 is not online")


def test_online_cpus_reads_the_kernel_list(tmp_path: Path) -> None:
    online = tmp_path / "online"
    online.write_text("0-2,4\n")
    assert _cpus.online_cpus(str(online)) == {0, 1, 2, 4}


def test_online_cpus_falls_back_to_own_affinity(tmp_path: Path) -> None:
    with mock.patch.object(_cpus.os, "sched_getaffinity",
                           return_value={0, 3}) as get:
        assert _cpus.online_cpus(str(tmp_path / "missing")) == {0, 3}
    get.assert_called_once_with(0)


def test_long_names_compare_as_the_kernel_keeps_them() -> None:
    assert _cpus.comm_name("kamailio") == "kamailio"
    assert _cpus.comm_name("a-very-long-process-name") == "a-very-long-pro"


class FakeKernel:
    """A /proc tree and per-thread affinities."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.affinity: dict[int, frozenset[int]] = {}
        self.set_calls: list[tuple[int, frozenset[int]]] = []
        self.on_set = None

    def process(self, pid: int, comm: str, cmdline: str = "",
                threads: dict[int, set[int]] | None = None) -> None:
        base = self.root / str(pid)
        (base / "task").mkdir(parents=True)
        (base / "comm").write_text(comm + "\n")
        (base / "cmdline").write_text(cmdline.replace(" ", "\0"))
        for tid, cpus in (threads or {pid: {0, 1}}).items():
            self.thread(pid, tid, cpus)

    def thread(self, pid: int, tid: int, cpus: set[int]) -> None:
        (self.root / str(pid) / "task" / str(tid)).mkdir()
        self.affinity[tid] = frozenset(cpus)

    def getaffinity(self, tid: int) -> set[int]:
        if tid not in self.affinity:
            raise ProcessLookupError(errno.ESRCH, "No such process")
        return set(self.affinity[tid])

    def setaffinity(self, tid: int, cpus) -> None:
        if tid not in self.affinity:
            raise ProcessLookupError(errno.ESRCH, "No such process")
        self.set_calls.append((tid, frozenset(cpus)))
        self.affinity[tid] = frozenset(cpus)
        if self.on_set:
            self.on_set(tid)

    def patch(self):
        return mock.patch.multiple(
            _cpus, PROC=str(self.root),
            os=mock.Mock(listdir=_cpus.os.listdir, path=_cpus.os.path,
                         sched_getaffinity=self.getaffinity,
                         sched_setaffinity=self.setaffinity))


@pytest.fixture
def kernel(tmp_path: Path) -> FakeKernel:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()     # not a pid: ignored
    (root / "meminfo").write_text("")
    return FakeKernel(root)


def test_processes_match_on_comm_only(kernel: FakeKernel) -> None:
    kernel.process(10, "kamailio", "/usr/sbin/kamailio -DD")
    kernel.process(11, "kamailio-ctl")
    kernel.process(12, "bash", "bash -c pgrep kamailio; kamailio")
    kernel.process(13, "opensips")
    kernel.process(9, "kamailio")
    with kernel.patch():
        assert _cpus.find_processes(["kamailio", "opensips"]) == [
            (9, "kamailio"), (10, "kamailio"), (13, "opensips")]
        assert _cpus.find_processes(["kam"]) == []


def test_plan_lists_every_thread_that_differs(kernel: FakeKernel) -> None:
    kernel.process(20, "kamailio", threads={20: {1}, 21: {0, 1}, 22: {1}})
    with kernel.patch():
        before, pending = _cpus.plan(20, frozenset({1}))
        assert (before, pending) == ({1}, [21])
        assert _cpus.plan(20, frozenset({0, 1})) == ({1}, [20, 22])
        assert _cpus.plan(99, frozenset({1})) == (None, [])
    assert kernel.set_calls == []


def test_pin_sets_each_differing_thread_once(kernel: FakeKernel) -> None:
    kernel.process(20, "kamailio", threads={20: {0, 1}, 21: {1}, 22: {0}})
    with kernel.patch():
        assert _cpus.pin(20, frozenset({1})) == 2
    assert kernel.set_calls == [(20, {1}), (22, {1})]
    assert set(kernel.affinity.values()) == {frozenset({1})}


def test_pin_catches_threads_started_meanwhile(kernel: FakeKernel) -> None:
    kernel.process(30, "opensips", threads={30: {0, 1}})

    def spawn(tid: int) -> None:
        if tid == 30:       # a thread started from a not yet pinned one
            kernel.thread(30, 31, {0, 1})
    kernel.on_set = spawn
    with kernel.patch():
        assert _cpus.pin(30, frozenset({0})) == 2
    assert kernel.affinity == {30: {0}, 31: {0}}


def test_threads_that_exit_are_skipped(kernel: FakeKernel) -> None:
    kernel.process(40, "kamailio", threads={40: {0, 1}, 41: {0, 1}})
    del kernel.affinity[41]     # exited after the listing
    with kernel.patch():
        assert _cpus.plan(40, frozenset({1})) == ({0, 1}, [40])
        assert _cpus.pin(40, frozenset({1})) == 1


def run(args: dict, kernel: FakeKernel, check: bool = False,
        diff: bool = False, online: str = "0-3") -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit), kernel.patch(), \
            mock.patch.object(_cpus, "online_cpus",
                              return_value=_cpus.parse_cpu_list(online)):
        cpu_affinity.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


def test_module_pins_and_reports(kernel: FakeKernel) -> None:
    kernel.process(50, "kamailio", threads={50: {0, 1, 2, 3}, 51: {0}})
    kernel.process(60, "kamailio", threads={60: {1, 2}})
    result = run({"names": ["kamailio"], "cpus": "2,1"}, kernel, diff=True)
    assert result["changed"] is True
    assert result["cpus"] == "1-2"
    assert result["processes"] == [
        {"pid": 50, "name": "kamailio", "before": "0-3", "after": "1-2",
         "threads": 2, "threads_changed": 2},
        {"pid": 60, "name": "kamailio", "before": "1-2", "after": "1-2",
         "threads": 1, "threads_changed": 0}]
    assert result["diff"]["before"] == "50 kamailio: 0-3\n60 kamailio: 1-2\n"
    assert result["diff"]["after"] == "50 kamailio: 1-2\n60 kamailio: 1-2\n"
    assert set(kernel.affinity.values()) == {frozenset({1, 2})}
    again = run({"names": ["kamailio"], "cpus": "1-2"}, kernel)
    assert again["changed"] is False


def test_module_check_mode_changes_nothing(kernel: FakeKernel) -> None:
    kernel.process(50, "opensips", threads={50: {0, 1}})
    result = run({"names": ["opensips"], "cpus": "1"}, kernel, check=True)
    assert result["changed"] is True
    assert result["processes"][0]["threads_changed"] == 1
    assert kernel.set_calls == []
    assert kernel.affinity[50] == {0, 1}


def test_module_without_a_process_is_ok(kernel: FakeKernel) -> None:
    kernel.process(70, "bash", "bash kamailio")
    result = run({"names": ["kamailio", "opensips"], "cpus": "1"}, kernel)
    assert result["changed"] is False
    assert result["processes"] == []
    assert not result.get("warnings")
    assert "failed" not in result


@pytest.mark.parametrize(("cpus", "says"), [
    ("1-x", "'1-x' is not a valid CPU list"),
    ("2-5", "CPUs 4-5 are not online on this host, which has CPUs 0-3"),
])
def test_module_refuses_bad_cpus(kernel: FakeKernel, cpus: str,
                                 says: str) -> None:
    kernel.process(50, "kamailio", threads={50: {0, 1}})
    result = run({"names": ["kamailio"], "cpus": cpus}, kernel)
    assert result["failed"] is True
    assert says in result["msg"]
    assert kernel.set_calls == []


def test_module_refuses_empty_names(kernel: FakeKernel) -> None:
    result = run({"names": [""], "cpus": "1"}, kernel)
    assert result["failed"] is True
    assert "names is empty" in result["msg"]


def test_module_reports_a_refused_change(kernel: FakeKernel) -> None:
    kernel.process(50, "kamailio", threads={50: {0, 1}})

    def refuse(tid: int, cpus) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")
    kernel.setaffinity = refuse
    result = run({"names": ["kamailio"], "cpus": "1"}, kernel)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "Could not set the CPUs of process 50 (kamailio) to 1")
    assert "cpuset" in result["msg"]
