"""sysctls: plan, apply, put back and persist, with /proc/sys faked by a
directory of files and the kernel's refusals by the one write it makes."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _files,
    _sysctl,
)
from ansible_collections.vos.fastpath.plugins.modules import sysctls

HEADER = _sysctl.FILE_HEADER


class FakeProcSys:
    """A /proc/sys tree whose writes the kernel may refuse or change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.refuse: dict[str, int] = {}      # name -> errno
        self.keeps: dict[str, str] = {}       # name -> value it keeps once
        self.writes: list[tuple[str, str]] = []

    def add(self, name: str, value: str) -> None:
        path = self.root.joinpath(*name.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")

    def value(self, name: str) -> str:
        return self.root.joinpath(*name.split(".")).read_text()

    def write(self, path: str, text: str) -> None:
        name = ".".join(Path(path).relative_to(self.root).parts)
        if name in self.refuse:
            raise OSError(self.refuse[name], "Invalid argument")
        self.writes.append((name, text.strip()))
        Path(path).write_text(self.keeps.pop(name, text))

    def patch(self):
        return mock.patch.multiple(_sysctl, PROC_SYS=str(self.root),
                                   write_proc=self.write)


@pytest.fixture
def kernel(tmp_path: Path) -> FakeProcSys:
    fake = FakeProcSys(tmp_path / "proc_sys")
    fake.add("net.core.busy_poll", "0")
    fake.add("net.core.busy_read", "0")
    fake.add("net.ipv4.tcp_rmem", "4096\t131072\t6291456")
    return fake


def run(args: dict, kernel: FakeProcSys, check: bool = False,
        diff: bool = False) -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit), kernel.patch():
        sysctls.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


BUSY = {"net.core.busy_poll": 50, "net.core.busy_read": "50"}


def test_values_that_differ_are_set_and_persisted_once(
        kernel: FakeProcSys, tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    kernel.add("net.core.busy_read", "50")
    result = run({"values": BUSY, "file": str(conf)}, kernel)
    assert result["changed"] is True
    assert result["live_changed"] == ["net.core.busy_poll"]
    assert result["previous"] == {"net.core.busy_poll": "0"}
    assert result["file_changed"] is True
    assert kernel.writes == [("net.core.busy_poll", "50")]
    assert conf.read_text() == (HEADER + "net.core.busy_poll = 50\n"
                                "net.core.busy_read = 50\n")
    assert conf.stat().st_mode & 0o777 == 0o644

    again = run({"values": BUSY, "file": str(conf)}, kernel)
    assert again["changed"] is False
    assert (again["live_changed"], again["file_changed"]) == ([], False)
    assert len(kernel.writes) == 1


def test_whitespace_does_not_count_as_a_difference(
        kernel: FakeProcSys) -> None:
    result = run({"values": {"net.ipv4.tcp_rmem": "4096 131072  6291456"}},
                 kernel)
    assert result["changed"] is False
    assert kernel.writes == []


def test_a_list_value_is_written_with_spaces(kernel: FakeProcSys) -> None:
    result = run({"values": {"net.ipv4.tcp_rmem": [4096, 87380, 6291456]}},
                 kernel)
    assert result["live_changed"] == ["net.ipv4.tcp_rmem"]
    assert kernel.writes == [("net.ipv4.tcp_rmem", "4096 87380 6291456")]


def test_check_mode_writes_nothing(kernel: FakeProcSys,
                                   tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    result = run({"values": BUSY, "file": str(conf)}, kernel, check=True,
                 diff=True)
    assert result["changed"] is True
    assert result["live_changed"] == ["net.core.busy_poll",
                                      "net.core.busy_read"]
    assert result["file_changed"] is True
    assert kernel.writes == []
    assert not conf.exists()
    live, persisted = result["diff"]
    assert live["before"] == ("net.core.busy_poll = 0\n"
                              "net.core.busy_read = 0\n")
    assert live["after"] == ("net.core.busy_poll = 50\n"
                             "net.core.busy_read = 50\n")
    assert (persisted["before_header"], persisted["before"]) == (
        str(conf), "")
    assert persisted["after"].startswith(HEADER)


def test_reload_false_only_writes_the_file(kernel: FakeProcSys,
                                           tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    result = run({"values": BUSY, "file": str(conf), "reload": False},
                 kernel)
    assert (result["changed"], result["live_changed"]) == (True, [])
    assert kernel.writes == []
    assert kernel.value("net.core.busy_poll") == "0\n"
    assert conf.exists()


def test_a_file_edited_by_hand_is_rewritten(kernel: FakeProcSys,
                                            tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    run({"values": BUSY, "file": str(conf)}, kernel)
    conf.write_text(conf.read_text() + "vm.swappiness = 1\n")
    result = run({"values": BUSY, "file": str(conf)}, kernel)
    assert (result["live_changed"], result["file_changed"]) == ([], True)
    assert "swappiness" not in conf.read_text()


def test_unknown_names_fail_before_anything_is_written(
        kernel: FakeProcSys, tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    result = run({"values": dict(BUSY, **{"net.core.nope": 1,
                                          "net.core": 2}),
                  "file": str(conf)}, kernel)
    assert result["failed"] is True
    assert result["msg"] == (
        "This kernel has no sysctl net.core.nope, net.core (nothing under "
        "%s): check the spelling, load the kernel module that provides "
        "them, or set them from the host (a container sees only some net.* "
        "sysctls)." % kernel.root)
    assert kernel.writes == []
    assert not conf.exists()


@pytest.mark.parametrize("name", ["net/core/busy_poll", "net..core",
                                  "busy_poll", "net.core.busy_poll/..",
                                  ".net.core"])
def test_names_that_are_not_dotted_sysctls_are_refused(
        kernel: FakeProcSys, name: str) -> None:
    result = run({"values": {name: 1}}, kernel)
    assert result["failed"] is True
    assert result["msg"].endswith("is not a sysctl name: write names with "
                                  "dots, such as net.core.busy_poll.")
    assert kernel.writes == []


@pytest.mark.parametrize("value", ["", "1\n2", None])
def test_a_value_must_be_one_line(kernel: FakeProcSys, value) -> None:
    result = run({"values": {"net.core.busy_poll": value}}, kernel)
    assert result["failed"] is True
    assert result["msg"].startswith("The value of net.core.busy_poll is ")
    assert kernel.writes == []


def test_empty_values_are_refused(kernel: FakeProcSys) -> None:
    result = run({"values": {}}, kernel)
    assert result["failed"] is True
    assert result["msg"].startswith("values is empty")


def test_a_refused_value_puts_back_the_ones_written(
        kernel: FakeProcSys, tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    kernel.refuse["net.core.busy_read"] = errno.EINVAL
    result = run({"values": dict(BUSY, **{"net.ipv4.tcp_rmem": "1 2 3"}),
                  "file": str(conf)}, kernel)
    assert result["failed"] is True
    assert result["msg"] == (
        "The kernel refused net.core.busy_read = 50 (Invalid argument): "
        "give a value it accepts; net.core.busy_poll was put back.")
    assert result["undo_failed"] == []
    assert "changed" not in result or result["changed"] is False
    assert kernel.writes == [("net.core.busy_poll", "50"),
                             ("net.core.busy_poll", "0")]
    assert kernel.value("net.core.busy_poll") == "0\n"
    assert kernel.value("net.ipv4.tcp_rmem") == "4096\t131072\t6291456\n"
    assert not conf.exists()


def test_a_value_the_kernel_changes_counts_as_refused(
        kernel: FakeProcSys) -> None:
    kernel.keeps["net.core.busy_read"] = "30\n"
    result = run({"values": BUSY}, kernel)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "The kernel refused net.core.busy_read = 50 (the kernel keeps "
        "'30' instead)")
    assert kernel.writes[-2:] == [("net.core.busy_read", "0"),
                                  ("net.core.busy_poll", "0")]
    assert kernel.value("net.core.busy_read") == "0\n"


def test_a_value_that_cannot_be_put_back_is_named(
        kernel: FakeProcSys) -> None:
    calls: list[str] = []
    write = kernel.write

    def refuse_after_first(path: str, text: str) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.EPERM, "Operation not permitted")
        write(path, text)
    with mock.patch.object(kernel, "write", refuse_after_first):
        result = run({"values": BUSY}, kernel)
    assert result["failed"] is True
    assert result["undo_failed"] == ["net.core.busy_poll"]
    assert result["msg"] == (
        "The kernel refused net.core.busy_read = 50 (Operation not "
        "permitted): give a value it accepts; net.core.busy_poll could not "
        "be put back and must be set by hand.")


def test_a_missing_directory_fails_before_anything_is_written(
        kernel: FakeProcSys, tmp_path: Path) -> None:
    conf = tmp_path / "no-such-dir" / "60-test.conf"
    result = run({"values": BUSY, "file": str(conf)}, kernel)
    assert result["failed"] is True
    assert result["msg"] == (
        "Cannot write %s: its directory %s does not exist or is not "
        "writable; create it, or run as root." % (conf, conf.parent))
    assert kernel.writes == []


def test_a_failed_file_write_puts_the_live_values_back(
        kernel: FakeProcSys, tmp_path: Path) -> None:
    conf = tmp_path / "60-test.conf"
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(_files, "write_atomically", side_effect=full):
        result = run({"values": BUSY, "file": str(conf)}, kernel)
    assert result["failed"] is True
    assert result["msg"] == (
        "Could not write %s (No space left on device): check the file "
        "system; net.core.busy_poll, net.core.busy_read were put back."
        % conf)
    assert kernel.value("net.core.busy_poll") == "0\n"
    assert kernel.value("net.core.busy_read") == "0\n"


@pytest.mark.parametrize(("value", "text"), [
    (True, "1"), (False, "0"), (50, "50"), ("  a\tb ", "a b"),
    ([1, "2"], "1 2"), ("5\n", "5"),
])
def test_value_text(value, text: str) -> None:
    assert _sysctl.value_text("x.y", value) == text
