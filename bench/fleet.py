"""Fleet benchmark: deploy.yml and blocklist_sync.yml against 1, 3 and 6
podman containers, next to the original tool's way of syncing a list.

Each container is a host as in the molecule scenarios (the image
localhost/vos-fastpath-base that scripts/setup.sh builds, privileged,
systemd as init, eth0 a veth on the network 198.18.101.0/24). For each
fleet size the containers are created afresh, then:
  1. deploy.yml from scratch (prerequisites checked, one build, attach,
     policy),
  2. blocklist_sync.yml of 100,000 addresses into the empty blocklists.
The original tool's way, measured on 2,000 addresses and the largest
fleet: the file copied to each host in turn, then one `bpftool map
update` process per address.

The addresses are a seeded sample of the whole IPv4 space outside
198.18.0.0/15 (molecule/shared/addresses.py): keys written into maps, no
packet is sent to them.

As root, from the repository root, after scripts/setup.sh:
    .venv/bin/python bench/fleet.py [--sizes 1 3 6] [--write-docs]
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.docs_section import write_section  # noqa: E402

# Appended, not prepended: molecule/shared also has a fleet.py.
sys.path.append(str(REPO / "molecule" / "shared"))
from addresses import generate  # noqa: E402

IMAGE = "localhost/vos-fastpath-base"
NETWORK, SUBNET = "vos-fp-bench", "198.18.101.0/24"
PREFIX = "fp-bench-"
SYNC_ENTRIES = 100_000
ORIGINAL_ENTRIES = 2_000
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"


def run(*argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          **kw)


def podman(*args: str) -> str:
    return run("podman", *args).stdout


def remove_fleet() -> None:
    names = podman("ps", "-a", "--format", "{{.Names}}").split()
    doomed = [n for n in names if n.startswith(PREFIX)]
    if doomed:
        podman("rm", "-f", "-t", "0", *doomed)


def create_fleet(size: int) -> list[str]:
    remove_fleet()
    if subprocess.run(["podman", "network", "exists", NETWORK],
                      check=False).returncode:
        podman("network", "create", "--subnet", SUBNET, NETWORK)
    names = []
    for i in range(1, size + 1):
        name = "%s%d" % (PREFIX, i)
        podman("run", "--detach", "--name", name, "--hostname", name,
               "--network", NETWORK, "--ip", "198.18.101.%d" % (10 + i),
               "--privileged", "--systemd=always",
               "--sysctl=net.ipv6.conf.all.disable_ipv6=1",
               IMAGE, "/lib/systemd/systemd")
        names.append(name)
    for name in names:       # systemd up: podman exec works from here on
        deadline = time.monotonic() + 60
        while subprocess.run(["podman", "exec", name, "true"],
                             capture_output=True, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not start" % name)
            time.sleep(0.5)
    return names


def inventory(work: Path, names: list[str]) -> Path:
    path = work / "inventory.json"
    path.write_text(json.dumps({"all": {"children": {"sip_edges": {
        "hosts": {n: {} for n in names},
        "vars": {
            "ansible_connection": "podman_pipelined",
            "ansible_python_interpreter": "/usr/bin/python3",
            "fastpath_interfaces": ["eth0"],
            "fastpath_artifact_dir": str(work / "objects"),
        }}}}}))
    return path


def playbook(book: str, inv: Path, *extra: str) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_CONNECTION_PLUGINS=str(
                   REPO / "molecule" / "shared" / "plugins" / "connection"))
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inv),
            str(REPO / "playbooks" / book), *extra]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                          cwd=REPO, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (book, proc.stdout[-4000:]))
    return took


def addresses(count: int, seed: int) -> list[str]:
    # IPv4 /32 only: the original tool's bpftool script takes nothing else.
    return generate(count, seed, ipv4_hosts=True)


def list_count(name: str) -> int:
    out = podman("exec", name, "bpftool", "-j", "map", "dump", "pinned",
                 PIN_DIR + "/block_v4")
    return len(json.loads(out))


def original_sync(names: list[str], listed: list[str],
                  work: Path) -> float:
    """Copy the file to each host in turn, then one bpftool per address."""
    script = work / "original.sh"
    value = " ".join(["00"] * 16)
    script.write_text("\n".join(
        "bpftool map update pinned %s/block_v4 key 32 0 0 0 %s value %s"
        % (PIN_DIR, " ".join(addr.split(".")), value) for addr in listed)
        + "\n")
    start = time.monotonic()
    for name in names:
        podman("cp", str(script), "%s:/tmp/original.sh" % name)
        podman("exec", name, "sh", "/tmp/original.sh")
    return time.monotonic() - start


def measure(sizes: list[int]) -> dict:
    results: dict = {"sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feed = work / "feed.txt"
        feed.write_text("\n".join(addresses(SYNC_ENTRIES, 7)) + "\n")
        small = work / "small.txt"
        small_list = addresses(ORIGINAL_ENTRIES, 8)
        small.write_text("\n".join(small_list) + "\n")
        names: list[str] = []
        try:
            for size in sizes:
                names = create_fleet(size)
                inv = inventory(work, names)
                deploy = playbook("deploy.yml", inv)
                sync = playbook("blocklist_sync.yml", inv,
                                "-e", "fastpath_list_file=%s" % feed)
                counts = {list_count(n) for n in names}
                assert counts == {SYNC_ENTRIES}, counts
                results["sizes"][size] = {"deploy_s": deploy, "sync_s": sync}
                print("%d hosts: deploy %.1f s, sync of %d entries %.1f s"
                      % (size, deploy, SYNC_ENTRIES, sync), flush=True)
            # The largest fleet, lists emptied by a sync of an empty file.
            empty = work / "empty.txt"
            empty.write_text("")
            playbook("blocklist_sync.yml", inv,
                     "-e", "fastpath_list_file=%s" % empty)
            ours = playbook("blocklist_sync.yml", inv,
                            "-e", "fastpath_list_file=%s" % small)
            playbook("blocklist_sync.yml", inv,
                     "-e", "fastpath_list_file=%s" % empty)
            original = original_sync(names, small_list, work)
            assert {list_count(n) for n in names} == {ORIGINAL_ENTRIES}
            results["small"] = {"hosts": len(names),
                                "entries": ORIGINAL_ENTRIES,
                                "ours_s": ours, "original_s": original}
            print("%d entries to %d hosts: blocklist_sync %.1f s, one "
                  "bpftool per address %.1f s"
                  % (ORIGINAL_ENTRIES, len(names), ours, original))
        finally:
            remove_fleet()
    return results


def forks() -> str:
    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    return config.get("defaults", "forks", fallback="5")


def table(results: dict) -> str:
    sizes = results["sizes"]
    one = sizes[min(sizes)]
    lines = [
        "Machine: %s, %d CPUs, kernel %s; containers from %s on one host "
        "(their work shares the host's CPUs); Ansible forks %s (the "
        "checkout's ansible.cfg), connection containers.podman with "
        "pipelining." % (platform.machine(), os.cpu_count(),
                         platform.release(), IMAGE, forks()),
        "",
        "| hosts | deploy.yml from scratch | vs 1 host | blocklist_sync.yml, "
        "%s entries into empty lists | vs 1 host |" % f"{SYNC_ENTRIES:,}",
        "|---:|---:|---:|---:|---:|"]
    for size in sorted(sizes):
        r = sizes[size]
        lines.append("| %d | %.1f s | %.2fx | %.1f s | %.2fx |" % (
            size, r["deploy_s"], r["deploy_s"] / one["deploy_s"],
            r["sync_s"], r["sync_s"] / one["sync_s"]))
    big = sizes[max(sizes)]
    ratio = big["sync_s"] / one["sync_s"]
    verdict = "met" if ratio < 2 else "missed"
    lines += [
        "",
        "Target: blocklist_sync.yml to %d hosts in less than 2x its time to "
        "1 host: %.2fx, %s." % (max(sizes), ratio, verdict)]
    small = results["small"]
    hosts, entries = small["hosts"], small["entries"]
    lines += [
        "",
        "The original tool's way on %s entries and %d hosts (the file "
        "copied to each host in turn, then one `bpftool map update` per "
        "address), next to blocklist_sync.yml of the same file:" % (
            f"{entries:,}", hosts),
        "",
        "| way | total | per host | per entry per host |",
        "|---|---:|---:|---:|"]
    for label, key in (("blocklist_sync.yml", "ours_s"),
                       ("copy + bpftool per address", "original_s")):
        total = small[key]
        lines.append("| %s | %.1f s | %.2f s | %.3f ms |" % (
            label, total, total / hosts, total / hosts / entries * 1000))
    return "\n".join(lines)


def write_docs(text: str) -> None:
    write_section(BEGIN, END, text, (
        "## Fleet: deploy and sync across containers\n\n"
        "`.venv/bin/python bench/fleet.py --write-docs`\n\n"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    results = measure(sorted(args.sizes))
    text = table(results)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
