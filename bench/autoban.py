"""Fleet bans benchmark: how fast autoban.yml spreads a ban, on podman
containers as in bench/fleet.py (network 198.18.101.0/24).

For 3 and 6 edges, created afresh and deployed with deploy.yml:
  1. time to drop everywhere: the benchmark host (198.18.101.1, on the
     containers' network) sends one scanner request (User-Agent
     friendly-scanner) to edge 1, which bans it; autoban.yml runs once;
     then one INVITE to each other edge must be dropped (BLOCKED there).
     The time is from the first packet to the end of the run.
  2. on the largest fleet, autoban.yml with 100 and with 10,000 bans in
     force spread over the edges, side by side: the bans are written
     into each edge's bans_v2 map as the program writes them (bpftool
     batch), from addresses of 198.18.0.0/15 outside the network, so that
     the exchange installs about (edges - 1) / edges of them on each edge.

As root, from the repository root, after scripts/setup.sh:
    .venv/bin/python bench/autoban.py [--sizes 3 6] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.docs_section import write_section  # noqa: E402
from bench.fleet import (  # noqa: E402
    create_fleet,
    inventory,
    playbook,
    podman,
    remove_fleet,
)
from plugins.module_utils import _abi  # noqa: E402

BEGIN, END = "<!-- autoban:begin -->", "<!-- autoban:end -->"
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
ATTACKER = "198.18.101.1"          # this host, on the containers' network
BAN_COUNTS = (100, 10_000)
SCANNER_REQUEST = (b"OPTIONS sip:100@198.18.101.11 SIP/2.0\r\n"
                   b"Via: SIP/2.0/UDP 198.18.101.1:5060;branch=z9hG4bK1\r\n"
                   b"User-Agent: friendly-scanner\r\n"
                   b"Content-Length: 0\r\n\r\n")
INVITE = (b"INVITE sip:100@198.18.101.12 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 198.18.101.1:5060;branch=z9hG4bK2\r\n"
          b"Content-Length: 0\r\n\r\n")


def edge_ip(index: int) -> str:
    return "198.18.101.%d" % (10 + index)


def send(dst: str, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ATTACKER, 5060))
        s.sendto(payload, (dst, 5060))


def raw(hex_bytes: list[str]) -> bytes:
    """bpftool's JSON bytes ("0x04", ...) as bytes."""
    return bytes(int(b, 16) for b in hex_bytes)


def blocked(name: str) -> int:
    """BLOCKED packets of an edge, over every CPU (bpftool in it)."""
    out = podman("exec", name, "bpftool", "-j", "map", "lookup", "pinned",
                 PIN_DIR + "/stats", "key", *(
                     str(b) for b in _abi.U32.pack(
                         _abi.REASONS.index("BLOCKED"))))
    return sum(_abi.COUNTER.unpack(raw(cpu["value"]))[0]
               for cpu in json.loads(out)["values"])


def banned_sources(name: str) -> set[str]:
    out = podman("exec", name, "bpftool", "-j", "map", "dump", "pinned",
                 PIN_DIR + "/bans_v2")
    return {socket.inet_ntoa(raw(entry["key"])[4:8])
            for entry in json.loads(out)}


def write_bans(name: str, first: int, count: int) -> None:
    """count bans in force in an edge's bans_v2, for 198.18.128.0 + first
    on: one bpftool batch in the container."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    value = _abi.BAN_V2.pack(now + 3600 * 10**9, now, 0, 9, 0)
    base = int.from_bytes(socket.inet_aton("198.18.128.0"), "big")
    lines = []
    for i in range(first, first + count):
        addr = (base + i).to_bytes(4, "big")
        key = _abi.SOURCE.pack(4, 32, 0, addr.ljust(16, b"\0"))
        lines.append("map update pinned %s/bans_v2 key hex %s value hex %s"
                     % (PIN_DIR, key.hex(" "), value.hex(" ")))
    subprocess.run(["podman", "exec", "-i", name, "sh", "-c",
                    "cat > /tmp/bans.batch && bpftool batch file "
                    "/tmp/bans.batch"], input="\n".join(lines) + "\n",
                   check=True, capture_output=True, text=True)


def time_to_drop(names: list[str], inv: Path) -> dict:
    start = time.monotonic()
    send(edge_ip(1), SCANNER_REQUEST)
    deadline = start + 5
    while ATTACKER not in banned_sources(names[0]):
        if time.monotonic() > deadline:
            raise RuntimeError("edge 1 did not ban the scanner")
        time.sleep(0.01)
    run = playbook("autoban.yml", inv)
    spread = time.monotonic() - start
    for index, name in enumerate(names[1:], start=2):
        before = blocked(name)
        send(edge_ip(index), INVITE)
        time.sleep(0.05)
        if blocked(name) != before + 1:
            raise RuntimeError("%s did not drop the banned source" % name)
    return {"edges": len(names), "run_s": run, "first_packet_to_all_s":
            spread}


def exchange(names: list[str], inv: Path, bans: int, first: int) -> float:
    """autoban.yml once, with `bans` new bans in force spread over the
    edges (addresses from `first` on)."""
    share = bans // len(names)
    for i, name in enumerate(names):
        write_bans(name, first + i * share, share)
    return playbook("autoban.yml", inv)


def measure(sizes: list[int]) -> dict:
    results: dict = {"spread": [], "scale": {}}
    with tempfile.TemporaryDirectory(prefix="fpbench-autoban-") as tmp:
        try:
            for size in sizes:
                names = create_fleet(size)
                inv = inventory(Path(tmp), names)
                playbook("deploy.yml", inv)
                results["spread"].append(time_to_drop(names, inv))
            first = 0
            for bans in BAN_COUNTS:
                # A fresh fleet for each count, so that one's entries do
                # not weigh on the other's run.
                names = create_fleet(sizes[-1])
                inv = inventory(Path(tmp), names)
                playbook("deploy.yml", inv)
                results["scale"][bans] = exchange(names, inv, bans, first)
                first += bans
        finally:
            remove_fleet()
    results["edges_for_scale"] = sizes[-1]
    return results


def table(r: dict) -> str:
    lines = ["| edges | autoban.yml run | first packet on edge 1 to dropped "
             "on every edge |", "|---:|---:|---:|"]
    for row in r["spread"]:
        lines.append("| %d | %.1f s | %.1f s |" % (
            row["edges"], row["run_s"], row["first_packet_to_all_s"]))
    small, large = (r["scale"][n] for n in BAN_COUNTS)
    lines += ["", "| bans in force on %d edges | autoban.yml run |"
              % r["edges_for_scale"], "|---:|---:|"]
    lines += ["| %d | %.1f s |" % (n, r["scale"][n]) for n in BAN_COUNTS]
    lines += ["", "10,000 bans against 100: **%.2fx** the time (target: "
              "under 2x)." % (large / small)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    results = measure(sorted(args.sizes))
    text = table(results)
    print(text)
    if args.write_docs:
        write_section(BEGIN, END, text, (
            "## Fleet bans: spreading a ban with autoban.yml\n\n"
            "`.venv/bin/python bench/autoban.py --write-docs`\n\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
