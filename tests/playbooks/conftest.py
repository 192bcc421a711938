"""Lab fleets for playbook tests: several "hosts" on this one kernel.

Each lab host runs with ansible_connection=local and has its own veth pair
(the program goes on the first end), pin directory, state directory and
boot-service directory, so hosts never see each other's state. The
objects built by a deploy go to an artifact directory of the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _facts, _lists, _pins
from tests.playbooks.playbook_run import write_inventory
from tests.trie_entries import read_entries

REPO = Path(__file__).resolve().parents[2]
TARGET_PYTHON = "/usr/bin/python3"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True,
                          text=True).stdout


@dataclass
class LabHost:
    name: str
    ifname: str
    pin_dir: Path
    state_dir: Path
    lib_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def vars(self) -> dict[str, Any]:
        return dict({
            "fastpath_interfaces": [self.ifname],
            "fastpath_pin_dir": str(self.pin_dir),
            "fastpath_state_dir": str(self.state_dir),
            "fastpath_lib_dir": str(self.lib_dir),
            "prereqs_bpffs_fstab": False,
        }, **self.extra)

    def xdp(self) -> dict[str, Any] | None:
        """{id, name, tag, mode} of the program on the interface."""
        link = json.loads(ip("-json", "link", "show", "dev", self.ifname))
        return _facts.attached_program(link[0])

    def entries(self, list_name: str) -> dict[str, tuple[int, int]]:
        """{cidr: (expires_ns, source)} of both tries of a list."""
        out: dict[str, tuple[int, int]] = {}
        for trie in _pins.open_list_maps(str(self.pin_dir), list_name):
            with trie:
                for key, fields in read_entries(trie).fields().items():
                    out[_lists.key_text(key)] = fields
        return out

    def boot(self) -> subprocess.CompletedProcess[str]:
        """Run the boot service's command as a boot would."""
        return subprocess.run(
            [TARGET_PYTHON, str(self.lib_dir / "vos-fastpath-boot"),
             "--config", str(self.state_dir / "boot.json"), "--wait", "2"],
            capture_output=True, text=True, timeout=120, check=False)

    def reboot_kernel_state(self) -> None:
        """What a reboot takes away: the XDP program and every pin. A
        program held by a BPF link goes with the link's pin, a moment
        after it is removed; one attached through netlink goes with ip."""
        for mode in ("xdpdrv", "xdpgeneric"):
            subprocess.run(["ip", "link", "set", "dev", self.ifname, mode,
                            "off"], capture_output=True, check=False)
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        deadline = time.monotonic() + 5
        while b"prog/xdp" in subprocess.run(
                ["ip", "link", "show", "dev", self.ifname],
                capture_output=True, check=True).stdout:
            assert time.monotonic() < deadline, "the program stayed attached"
            time.sleep(0.05)


class Fleet:
    def __init__(self, tmp: Path, hosts: list[LabHost]) -> None:
        self.tmp = tmp
        self.hosts = hosts
        self.by_name = {h.name: h for h in hosts}
        self.artifacts = tmp / "artifacts"

    def __getitem__(self, name: str) -> LabHost:
        return self.by_name[name]

    def inventory(self, group_vars: dict[str, Any] | None = None,
                  **host_overrides: dict[str, Any]) -> Path:
        hosts = {h.name: dict(h.vars(), **host_overrides.get(h.name, {}))
                 for h in self.hosts}
        base = {"fastpath_artifact_dir": str(self.artifacts)}
        return write_inventory(self.tmp / "inventory.json", hosts,
                               group_vars=dict(base, **(group_vars or {})))


@pytest.fixture
def fleet_factory(root_required: None, tmp_path: Path
                  ) -> Iterator[Any]:
    """make(n) -> a Fleet of n lab hosts edge1..edgeN, removed afterwards."""
    made: list[LabHost] = []
    tag = os.getpid() % 10000

    def make(count: int) -> Fleet:
        hosts = []
        for i in range(1, count + 1):
            name = "edge%d" % i
            ifname = "fpp%d_%d" % (tag, i)
            subprocess.run(["ip", "link", "del", ifname],
                           capture_output=True, check=False)
            ip("link", "add", ifname, "type", "veth", "peer", "name",
               ifname + "p")
            ip("link", "set", ifname, "up")
            ip("link", "set", ifname + "p", "up")
            host = LabHost(name, ifname,
                           Path("/sys/fs/bpf/vos_fastpath_pb_%d_%d"
                                % (tag, i)),
                           tmp_path / name / "state", tmp_path / name / "lib")
            shutil.rmtree(host.pin_dir, ignore_errors=True)
            made.append(host)
            hosts.append(host)
        return Fleet(tmp_path, hosts)

    yield make
    for host in made:
        subprocess.run(["ip", "link", "del", host.ifname],
                       capture_output=True, check=False)
        shutil.rmtree(host.pin_dir, ignore_errors=True)


def list_file(path: Path, count: int, first: str = "203.0.113.0") -> Path:
    """A list file of count /32 entries from the 198.18.0.0/15 range."""
    base = int.from_bytes(bytes(int(x) for x in "198.18.0.0".split(".")),
                          "big")
    lines = ["# generated for a test", first]
    lines += [".".join(str(b) for b in (base + i).to_bytes(4, "big"))
              for i in range(count - 1)]
    path.write_text("\n".join(lines) + "\n")
    return path
