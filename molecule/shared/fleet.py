"""The hosts of a molecule scenario, for its testinfra tests.

Each host is the podman container of a platform in the scenario's
molecule.yml (name, ip, groups); commands run in it through testinfra's
podman backend. The collection's modules and playbooks run against the
scenario's inventory, as its converge step ran them. Every helper fails
with the command's own output when the command fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra
import yaml

SIP_TOOL = "python3 /usr/local/lib/sip_tool.py"
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
STATE_DIR = "/var/lib/vos-fastpath"
OBJECT = STATE_DIR + "/sip_logic.bpf.o"
# Written by the scenario's prepare step, before the deploy.
RX_BEFORE_DEPLOY = "/var/lib/vos-fastpath-molecule/rx_packets_before_deploy"
BIN = Path(sys.executable).parent


def molecule_env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(
            "%s is not set: run these tests through 'molecule verify' or "
            "'molecule test'" % name) from None


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...]

    def __str__(self) -> str:
        return self.name

    def run(self, command: str, *args: str) -> str:
        """Standard output of a command that must succeed in the host."""
        host = testinfra.get_host("podman://" + self.name)
        return host.check_output(command, *args)

    def kamailio_stat(self, name: str) -> int:
        """One of Kamailio's statistics, e.g. rcv_requests_invite."""
        out = self.run("kamcmd stats.get_statistics %s", name)
        return int(out.rsplit("=", 1)[1])

    def rx_packets(self) -> int:
        return int(self.run("cat /sys/class/net/eth0/statistics/rx_packets"))


def platforms() -> list[Host]:
    config = yaml.safe_load(Path(molecule_env("MOLECULE_FILE")).read_text())
    return [Host(p["name"], p["ip"], tuple(p.get("groups", [])))
            for p in config["platforms"]]


def group(name: str) -> list[Host]:
    return [host for host in platforms() if name in host.groups]


def only(name: str) -> Host:
    (host,) = group(name)
    return host


def inventory() -> str:
    return str(Path(molecule_env("MOLECULE_INVENTORY_FILE")).parent)


def run_module(pattern: str, module: str,
               args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run a module on the hosts of pattern as root: {host: result}."""
    with tempfile.TemporaryDirectory() as tree:
        proc = subprocess.run(
            [str(BIN / "ansible"), pattern, "-i", inventory(), "--become",
             "-m", module, "-a", json.dumps(args), "--tree", tree],
            capture_output=True, text=True, timeout=300, check=False)
        results = {path.name: json.loads(path.read_text())
                   for path in Path(tree).iterdir()}
    failed = {host: result.get("msg") for host, result in results.items()
              if result.get("failed") or result.get("unreachable")}
    assert proc.returncode == 0 and results and not failed, (
        "%s failed on %s:\n%s%s" % (module, pattern, proc.stdout[-3000:],
                                    proc.stderr[-2000:]))
    return results


def run_playbook(name: str, **extra_vars: Any) -> None:
    """Run one of the collection's playbooks (vos.fastpath.<name>)."""
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", inventory(),
         "vos.fastpath." + name, "-e", json.dumps(extra_vars)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (
        "%s.yml failed:\n%s%s" % (name, proc.stdout[-4000:],
                                  proc.stderr[-2000:]))


def counters(pattern: str = "sip_edges") -> dict[str, dict[str, int]]:
    """{host: {counter: packets}} of the SIP shield (xdp_stats)."""
    results = run_module(pattern, "vos.fastpath.xdp_stats",
                         {"pin_dir": PIN_DIR})
    return {host: {name: value["packets"]
                   for name, value in result["stats"].items()}
            for host, result in results.items()}
