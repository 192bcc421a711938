"""The hosts of a molecule scenario, for its testinfra tests.

Each host is the podman container of a platform in the scenario's
molecule.yml (name, ip, groups); commands run in it through testinfra's
podman backend. The collection's modules and playbooks run against the
scenario's inventory, as its converge step ran them. Every helper fails
with the command's own output when the command fails.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import testinfra
import yaml
from addresses import from_trie_key

SIP_TOOL = "python3 /usr/local/lib/sip_tool.py"
# Kamailio's count of INVITE requests received (kamcmd stats).
KAMAILIO_INVITES = "rcv_requests_invite"
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
STATE_DIR = "/var/lib/vos-fastpath"
OBJECT = STATE_DIR + "/sip_logic.bpf.o"
TRIES = ["block_v4", "block_v6", "allow_v4", "allow_v6"]
# The blocklist's hashes of single addresses, looked up before its tries.
HOSTS = {"block_v4": "block_v4_hosts", "block_v6": "block_v6_hosts"}
MAPS = ["sip_ports", *TRIES, "settings", "stats", "proto_stats", "xsks_map"]
# ip's numbers for the attach modes (XDP_ATTACHED_*).
XDP_MODES = {1: "native", 2: "generic", 3: "offload"}
# Written by the scenario's prepare step, before the deploy.
RX_BEFORE_DEPLOY = "/var/lib/vos-fastpath-molecule/rx_packets_before_deploy"
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
# bpftool's names for the map types of the ABI (_abi.BPF_MAP_TYPE_*).
BPFTOOL_MAP_TYPES = {1: "hash", 2: "array", 6: "percpu_array",
                     9: "lru_hash", 11: "lpm_trie", 17: "xskmap"}


@functools.cache
def abi() -> ModuleType:
    """This checkout's mirror of the data plane ABI
    (plugins/module_utils/_abi.py): map names and layouts, counter
    names, structures."""
    spec = importlib.util.spec_from_file_location(
        "vos_fastpath_abi", REPO / "plugins" / "module_utils" / "_abi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    def xdp(self) -> dict[str, Any] | None:
        """The XDP program on eth0 as ip shows it (id, name, tag, mode), or
        None. iproute2 before 5.10 (Debian 11's) shows no name: bpftool
        tells it."""
        (link,) = json.loads(self.run("ip -json link show dev eth0"))
        xdp = link.get("xdp")
        if not xdp:
            return None
        prog = dict(xdp["prog"], mode=XDP_MODES[xdp["mode"]])
        if "name" not in prog:
            prog["name"] = json.loads(self.run(
                "bpftool --json prog show id %d" % prog["id"]))["name"]
        return prog

    def map_ids(self) -> dict[str, int]:
        """The id of each pinned map of the SIP shield."""
        return {name: json.loads(self.run(
            "bpftool --json map show pinned %s",
            "%s/%s" % (PIN_DIR, name)))["id"] for name in MAPS}

    def pinned_maps(self) -> dict[str, dict[str, Any]]:
        """Every map pinned in the pin directory, by pin name, as bpftool
        shows it: one bpftool run for all of them."""
        maps = json.loads(self.run("bpftool --bpffs --json map show"))
        return {path[len(PIN_DIR) + 1:]: info for info in maps
                for path in info.get("pinned", [])
                if os.path.dirname(path) == PIN_DIR}

    def pinned(self) -> set[str]:
        """The names in the pin directory: maps, prog_<if>, link_<if>."""
        return set(self.run("ls -1 %s", PIN_DIR).split())

    def array(self, name: str) -> list[Any]:
        """The values of a pinned array map in key order, read with
        bpftool: bytes each, or for a per-CPU array a list of bytes, one
        per CPU."""
        def raw(hexes: list[str]) -> bytes:
            return bytes(int(b, 16) for b in hexes)
        dump = json.loads(self.run("bpftool --json map dump pinned %s",
                                   "%s/%s" % (PIN_DIR, name)))
        dump.sort(key=lambda e: int.from_bytes(raw(e["key"]), "little"))
        return [[raw(v["value"]) for v in e["values"]] if "values" in e
                else raw(e["value"]) for e in dump]

    def counter_maps(self, pinned: Iterable[str]) -> dict[str, int]:
        """Every counter of the counter maps among pinned
        (_abi.COUNTER_MAPS: stats, stats_ext, proto_stats), read with
        bpftool and added up over the CPUs: {"stats.BLOCKED": packets}."""
        pinned = set(pinned)
        out = {}
        for name, (names, _help) in abi().COUNTER_MAPS.items():
            if name not in pinned:
                continue
            values = self.array(name)
            for index, counter in enumerate(names):
                out["%s.%s" % (name, counter)] = sum(
                    abi().COUNTER.unpack(cpu)[0] for cpu in values[index])
        return out

    def prog_map_ids(self, prog_id: int) -> set[int]:
        """The ids of the maps a loaded program uses."""
        return set(json.loads(self.run("bpftool --json prog show id %d"
                                       % prog_id)).get("map_ids", []))

    def lists(self) -> dict[str, set[str]]:
        """Every block and allow trie's entries."""
        return {name: self.trie(name) for name in TRIES}

    def trie(self, name: str) -> set[str]:
        """The entries of a list family named by its trie (block_v4,
        allow_v6...) as prefixes, read with bpftool."""
        return {from_trie_key(key) for key in self.list_rows(name)}

    def list_rows(self, name: str) -> dict[bytes, bytes]:
        """{trie key: raw fp_entry} of a list family: its trie's rows, and
        for the blocklist those of its hash of single addresses where it
        is pinned (a program since 0.1.0), as full-length trie keys."""
        rows = self._dump(name)
        hosts = HOSTS.get(name)
        if hosts and self.run("test -e %s && echo yes || echo no",
                              "%s/%s" % (PIN_DIR, hosts)).strip() == "yes":
            for addr, value in self._dump(hosts).items():
                prefix = (len(addr) * 8).to_bytes(4, sys.byteorder)
                rows[prefix + addr] = value
        return rows

    def trie_only(self, name: str) -> set[str]:
        """The entries of one pinned trie alone, as prefixes."""
        return {from_trie_key(key) for key in self._dump(name)}

    def _dump(self, name: str) -> dict[bytes, bytes]:
        dump = json.loads(self.run("bpftool --json map dump pinned %s",
                                   "%s/%s" % (PIN_DIR, name)))
        return {bytes(int(b, 16) for b in entry["key"]):
                bytes(int(b, 16) for b in entry["value"]) for entry in dump}

    def blocklist(self) -> set[str]:
        return self.trie("block_v4") | self.trie("block_v6")

    def stop(self) -> None:
        """Shut the host down (systemd stops its services)."""
        subprocess.run(["podman", "stop", self.name], check=True,
                       capture_output=True, timeout=60)

    def start(self) -> None:
        """Boot the host and wait until systemd has started everything."""
        subprocess.run(["podman", "start", self.name], check=True,
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 90
        while True:
            state = subprocess.run(
                ["podman", "exec", self.name, "systemctl",
                 "is-system-running", "--wait"],
                capture_output=True, text=True, timeout=90, check=False)
            if state.stdout.strip() in ("running", "degraded"):
                return
            assert time.monotonic() < deadline, (
                "%s did not finish booting: %s%s"
                % (self.name, state.stdout, state.stderr))
            time.sleep(1)


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


def try_module(pattern: str, module: str, args: dict[str, Any]
               ) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    """Run a module on the hosts of pattern as root, whatever its outcome:
    the ansible run and {host: result}."""
    with tempfile.TemporaryDirectory() as tree:
        # ansible reads "-a '{}'" as free-form text: no -a without args.
        proc = subprocess.run(
            [str(BIN / "ansible"), pattern, "-i", inventory(), "--become",
             "-m", module, *(["-a", json.dumps(args)] if args else []),
             "--tree", tree],
            capture_output=True, text=True, timeout=300, check=False)
        results = {path.name: json.loads(path.read_text())
                   for path in Path(tree).iterdir()}
    return proc, results


def run_module(pattern: str, module: str,
               args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run a module on the hosts of pattern as root: {host: result}."""
    proc, results = try_module(pattern, module, args)
    failed = {host: result.get("msg") for host, result in results.items()
              if result.get("failed") or result.get("unreachable")}
    assert proc.returncode == 0 and results and not failed, (
        "%s failed on %s:\n%s%s" % (module, pattern, proc.stdout[-3000:],
                                    proc.stderr[-2000:]))
    return results


def play(name: str, **extra_vars: Any) -> subprocess.CompletedProcess:
    """Run one of the collection's playbooks (vos.fastpath.<name>),
    whatever its outcome."""
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", inventory(),
         "vos.fastpath." + name, "-e", json.dumps(extra_vars)],
        capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))


def run_playbook(name: str, **extra_vars: Any) -> str:
    """Run one of the collection's playbooks; its output. It must pass."""
    proc = play(name, **extra_vars)
    assert proc.returncode == 0, (
        "%s.yml failed:\n%s%s" % (name, proc.stdout[-4000:],
                                  proc.stderr[-2000:]))
    return proc.stdout


def changed_tasks(output: str) -> dict[str, int]:
    """{host: tasks changed} from the play recap of a playbook's output."""
    return {host: int(changed) for host, changed in re.findall(
        r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.MULTILINE)}


def invite_burst(scanner: Host, edges: list[Host],
                 count: int) -> dict[str, dict[str, int]]:
    """A burst of count INVITEs from scanner to each edge: per edge, what
    BLOCKED and Kamailio's received INVITEs gained."""
    before = counters()
    invites = {e.name: e.kamailio_stat(KAMAILIO_INVITES) for e in edges}
    for edge in edges:
        sent = scanner.run("%s burst INVITE %s --count %d"
                           % (SIP_TOOL, edge.address, count))
        assert int(sent) == count
    time.sleep(1)
    after = counters()
    return {e.name: {
        "blocked": after[e.name]["BLOCKED"] - before[e.name]["BLOCKED"],
        "invites": e.kamailio_stat(KAMAILIO_INVITES) - invites[e.name]}
        for e in edges}


def counters(pattern: str = "sip_edges") -> dict[str, dict[str, int]]:
    """{host: {reason: packets}} of the SIP shield (xdp_stats): the
    reasons of `stats` and, where the host has it, of `stats_ext`."""
    results = run_module(pattern, "vos.fastpath.xdp_stats",
                         {"pin_dir": PIN_DIR})
    return {host: {name: value["packets"]
                   for part in ("stats", "stats_ext")
                   for name, value in result.get(part, {}).items()}
            for host, result in results.items()}
