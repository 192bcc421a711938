"""List sync benchmark: vos.fastpath.bpf_map_entry against ipset restore.

Runs the module the way a target runs it (one Python process reading its
arguments file) on 1,000,000 IPv4 addresses:
  1. exact sync into an empty blocklist,
  2. the same sync again (nothing to change),
  3. a 1% change (10,000 added, 10,000 removed),
next to `ipset restore` of the same addresses into a hash:net set (a new
set for 1, the same set again with -exist for 2, a new set swapped in for
3: how an ipset is resynced atomically), and the original tool's way (one
`bpftool map update` process per address) on 2,000 entries.

The addresses are a seeded sample of the whole IPv4 space: they are only
keys written into maps and sets, no packet is sent to or from them.

As root, from the repository root:
    .venv/bin/python bench/lists.py [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.docs_section import write_section  # noqa: E402
from plugins.module_utils import _abi  # noqa: E402

MODULE = REPO / "plugins" / "modules" / "bpf_map_entry.py"
OBJECT = REPO / "build" / "sip_logic.bpf.o"
PIN_DIR = Path("/sys/fs/bpf/vos_fastpath_bench_lists")
IPSET = "fpbench_lists"
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
BEGIN, END = "<!-- lists:begin -->", "<!-- lists:end -->"

SIZE = 1_000_000
CHANGE = 10_000
ONE_BY_ONE = 2_000


def addresses(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [socket.inet_ntoa(a.to_bytes(4, "big"))
            for a in rng.sample(range(1 << 32), count)]


def write_list(path: Path, addrs: list[str]) -> None:
    path.write_text("".join(a + "\n" for a in addrs))


def run_module(workdir: Path, listing: Path) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS in MB and the result of one module run."""
    args = workdir / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "map": "blocklist", "src": str(listing), "state": "exact",
        "source": "bench", "pin_dir": str(PIN_DIR),
        "state_dir": str(workdir / "state")}}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(MODULE), str(args)],
                            env=env, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would give
    # the largest of every child so far).
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    wall = time.perf_counter() - start
    result = json.loads(out)
    if status or result.get("failed"):
        raise SystemExit("module failed: %s" % result.get("msg"))
    return wall, usage.ru_maxrss // 1024, result


def timed(argv: list[str], stdin: Path | None = None) -> float:
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as f:
        subprocess.run(argv, stdin=f, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def ipset_script(path: Path, name: str, addrs: list[str],
                 create: bool) -> None:
    head = ("create %s hash:net family inet hashsize 1048576 "
            "maxelem 2097152\n" % name) if create else ""
    path.write_text(head + "".join("add %s %s\n" % (name, a)
                                   for a in addrs))


def quiet(*argv: str) -> None:
    subprocess.run(argv, capture_output=True, check=False)


def load_program() -> None:
    shutil.rmtree(PIN_DIR, ignore_errors=True)
    PIN_DIR.mkdir()
    subprocess.run([BPFTOOL, "prog", "load", str(OBJECT),
                    str(PIN_DIR / "prog"), "type", "xdp", "pinmaps",
                    str(PIN_DIR)], check=True, capture_output=True)


def one_by_one(addrs: list[str]) -> float:
    """The original tool: one bpftool process per address."""
    value = ["0"] * _abi.ENTRY.size
    start = time.perf_counter()
    for addr in addrs:
        key = ["%d" % b for b in _abi.LPM_V4_KEY.pack(
            32, socket.inet_aton(addr))]
        subprocess.run([BPFTOOL, "map", "update", "pinned",
                        str(PIN_DIR / "block_v4"), "key", *key, "value",
                        *value], check=True)
    return time.perf_counter() - start


def measure(work: Path) -> dict:
    full = addresses(SIZE + CHANGE, seed=11)
    base, extra = full[:SIZE], full[SIZE:]
    changed = base[CHANGE:] + extra
    lists = {name: work / (name + ".txt") for name in ("base", "changed")}
    write_list(lists["base"], base)
    write_list(lists["changed"], changed)

    load_program()
    out: dict = {}
    out["ours_empty"], out["rss_empty"], r = run_module(work, lists["base"])
    assert r["added"] == SIZE and r["changed"]
    out["ours_same"], out["rss_same"], r = run_module(work, lists["base"])
    assert not r["changed"] and r["unchanged"] == SIZE
    out["ours_change"], out["rss_change"], r = run_module(work,
                                                          lists["changed"])
    assert (r["added"], r["removed"]) == (CHANGE, CHANGE)

    script = work / "ipset.txt"
    quiet("ipset", "destroy", IPSET)
    quiet("ipset", "destroy", IPSET + "_new")
    ipset_script(script, IPSET, base, create=True)
    out["ipset_empty"] = timed(["ipset", "restore"], script)
    out["ipset_same"] = timed(["ipset", "restore", "-exist"], script)
    ipset_script(script, IPSET + "_new", changed, create=True)
    start = time.perf_counter()
    subprocess.run(["ipset", "restore"], stdin=open(script, "rb"),
                   check=True)
    subprocess.run(["ipset", "swap", IPSET + "_new", IPSET], check=True)
    subprocess.run(["ipset", "destroy", IPSET + "_new"], check=True)
    out["ipset_change"] = time.perf_counter() - start
    quiet("ipset", "destroy", IPSET)

    load_program()
    small = addresses(ONE_BY_ONE, seed=12)
    out["bpftool_each"] = one_by_one(small) / ONE_BY_ONE
    load_program()
    shutil.rmtree(work / "state")      # the new maps start a new list
    write_list(work / "small.txt", small)
    wall, _rss, r = run_module(work, work / "small.txt")
    assert r["added"] == ONE_BY_ONE
    out["ours_small_each"] = wall / ONE_BY_ONE
    out["ours_1m_each"] = out["ours_empty"] / SIZE
    return out


def table(m: dict) -> str:
    def row(case: str, ours: str, peer: str, ratio: float, target: str,
            ok: bool) -> str:
        return "| %s | %s | %s | %.2fx | %s | %s |" % (
            case, ours, peer, ratio, target, "met" if ok else "**missed**")

    ratios = {k: m["ours_" + k] / m["ipset_" + k]
              for k in ("empty", "same", "change")}
    lines = [
        "### Lists: exact sync of 1,000,000 IPv4 entries",
        "",
        "- Command: `.venv/bin/python bench/lists.py --write-docs`",
        "- Date: %s; kernel %s; %d CPUs" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            platform.release(), os.cpu_count() or 0),
        "- Ours: the module process as a target runs it (`state: exact`, "
        "`src` a file of 1,000,000 lines). ipset: `ipset restore` into a "
        "`hash:net` set.",
        "",
        "| case | bpf_map_entry | ipset | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
        row("into an empty list", "%.2f s" % m["ours_empty"],
            "%.2f s (restore)" % m["ipset_empty"], ratios["empty"],
            "<= 2x", ratios["empty"] <= 2),
        row("again, nothing to change", "%.2f s" % m["ours_same"],
            "%.2f s (restore -exist)" % m["ipset_same"], ratios["same"],
            "<= 1x", ratios["same"] <= 1),
        row("1%% change (+%d, -%d)" % (CHANGE, CHANGE),
            "%.2f s" % m["ours_change"],
            "%.2f s (restore new set, swap)" % m["ipset_change"],
            ratios["change"], "<= 0.5x", ratios["change"] <= 0.5),
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        "| peak RSS of the module, 1,000,000 into empty | %d MB | "
        "<= 300 MB |" % m["rss_empty"],
        "| peak RSS, the same sync again | %d MB | |" % m["rss_same"],
        "| peak RSS, the 1%% change | %d MB | |" % m["rss_change"],
        "| original tool, one `bpftool map update` per address (%d) | "
        "%.2f ms per entry | |" % (ONE_BY_ONE, m["bpftool_each"] * 1e3),
        "| bpf_map_entry, the same %d addresses | %.3f ms per entry "
        "(%.0fx faster) | |" % (ONE_BY_ONE, m["ours_small_each"] * 1e3,
                                m["bpftool_each"] / m["ours_small_each"]),
        "| bpf_map_entry, 1,000,000 into empty | %.2f us per entry "
        "(%.0fx faster than one process each) | |" % (
            m["ours_1m_each"] * 1e6,
            m["bpftool_each"] / m["ours_1m_each"]),
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    write_section(BEGIN, END, text, (
        "## Lists\n\n`bench/lists.py` times `vos.fastpath.bpf_map_entry` "
        "against `ipset restore`; see its docstring for what each case "
        "does.\n\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--write-docs", action="store_true")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/lists.py: run as root")
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    work = Path(tempfile.mkdtemp(prefix="fp-bench-lists-"))
    try:
        text = table(measure(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(PIN_DIR, ignore_errors=True)
        quiet("ipset", "destroy", IPSET)
        quiet("ipset", "destroy", IPSET + "_new")
    print(text)
    if opts.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
