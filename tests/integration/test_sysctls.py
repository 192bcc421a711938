"""sysctls through Ansible against this host's kernel.

Every run happens in a network namespace of the test's own, whose
per-namespace sysctls (net.core.somaxconn, net.ipv4.ip_local_port_range)
start at the kernel's defaults and go away with it: the host's values are
never written.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import ansible_run
from tests.integration.ansible_run import run_module

SOMAXCONN = "net.core.somaxconn"
PORTS = "net.ipv4.ip_local_port_range"


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, sysctl: str) -> str:
        path = "/proc/sys/" + sysctl.replace(".", "/")
        return subprocess.run(
            ["ip", "netns", "exec", self.name, "cat", path], check=True,
            capture_output=True, text=True).stdout.strip()


@pytest.fixture
def netns(root_required: None, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Netns]:
    """A network namespace that every ansible-playbook of the test runs
    in, removed afterwards."""
    name = "fpsysctl%d" % os.getpid()
    subprocess.run(["ip", "netns", "del", name], capture_output=True,
                   check=False)
    subprocess.run(["ip", "netns", "add", name], check=True)
    wrapper = tmp_path / "ansible-playbook-in-netns"
    wrapper.write_text('#!/bin/sh\nexec ip netns exec %s "%s" "$@"\n'
                       % (name, ansible_run.PLAYBOOK_BIN))
    wrapper.chmod(0o755)
    monkeypatch.setattr(ansible_run, "PLAYBOOK_BIN", wrapper)
    try:
        yield Netns(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_set_persist_then_nothing_changes(netns: Netns,
                                          tmp_path: Path) -> None:
    host_somaxconn = Path("/proc/sys/net/core/somaxconn").read_text()
    default_ports = netns.read(PORTS)
    assert "\t" in default_ports
    conf = tmp_path / "60-test.conf"
    args = {"values": {SOMAXCONN: 1000,
                       PORTS: " ".join(default_ports.split())},
            "file": str(conf)}

    checked = run_module("vos.fastpath.sysctls", args, tmp_path, check=True)
    assert checked["changed"] is True, checked
    assert checked["live_changed"] == [SOMAXCONN]
    assert netns.read(SOMAXCONN) != "1000"
    assert not conf.exists()

    result = run_module("vos.fastpath.sysctls", args, tmp_path, diff=True)
    assert result["changed"] is True, result
    # The port range is at its value already: tabs and spaces match.
    assert result["live_changed"] == [SOMAXCONN]
    assert result["file_changed"] is True
    assert netns.read(SOMAXCONN) == "1000"
    assert conf.read_text().endswith(
        "net.core.somaxconn = 1000\n%s = %s\n"
        % (PORTS, " ".join(default_ports.split())))
    assert "net.core.somaxconn = 1000" in result["diff"][0]["after"]

    again = run_module("vos.fastpath.sysctls", args, tmp_path)
    assert again["changed"] is False, again
    checked = run_module("vos.fastpath.sysctls", args, tmp_path, check=True)
    assert checked["changed"] is False, checked
    assert Path("/proc/sys/net/core/somaxconn").read_text() == \
        host_somaxconn


def test_a_refused_value_puts_back_the_others(netns: Netns,
                                              tmp_path: Path) -> None:
    before = netns.read(SOMAXCONN), netns.read(PORTS)
    conf = tmp_path / "60-test.conf"
    # The kernel refuses a port range that goes downwards.
    result = run_module("vos.fastpath.sysctls", {
        "values": {SOMAXCONN: 1000, PORTS: "50000 40000"},
        "file": str(conf)}, tmp_path)
    assert result["failed"] is True, result
    assert result["msg"].startswith(
        "The kernel refused net.ipv4.ip_local_port_range = 50000 40000 (")
    assert result["msg"].endswith(
        "give a value it accepts; net.core.somaxconn was put back.")
    assert (netns.read(SOMAXCONN), netns.read(PORTS)) == before
    assert not conf.exists()


def test_an_unknown_sysctl_changes_nothing(netns: Netns,
                                           tmp_path: Path) -> None:
    before = netns.read(SOMAXCONN)
    result = run_module("vos.fastpath.sysctls", {
        "values": {SOMAXCONN: 1000, "net.core.no_such_sysctl": 1}},
        tmp_path)
    assert result["failed"] is True, result
    assert result["msg"].startswith(
        "This kernel has no sysctl net.core.no_such_sysctl (nothing under "
        "/proc/sys)")
    assert netns.read(SOMAXCONN) == before
