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
import statistics
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


def one_round(work: Path, lists: dict[str, Path], out: dict) -> None:
    """Each case once, ours then ipset's, appended to out[key]."""
    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    load_program()
    shutil.rmtree(work / "state", ignore_errors=True)
    wall, rss, r = run_module(work, lists["base"])
    assert r["added"] == SIZE and r["changed"]
    add("ours_empty", wall)
    add("rss_empty", rss)
    wall, rss, r = run_module(work, lists["base"])
    assert not r["changed"] and r["unchanged"] == SIZE
    add("ours_same", wall)
    add("rss_same", rss)
    wall, rss, r = run_module(work, lists["changed"])
    assert (r["added"], r["removed"]) == (CHANGE, CHANGE)
    add("ours_change", wall)
    add("rss_change", rss)

    quiet("ipset", "destroy", IPSET)
    quiet("ipset", "destroy", IPSET + "_new")
    add("ipset_empty", timed(["ipset", "restore"], lists["ipset_base"]))
    add("ipset_same", timed(["ipset", "restore", "-exist"],
                            lists["ipset_base"]))
    start = time.perf_counter()
    with open(lists["ipset_changed"], "rb") as f:
        subprocess.run(["ipset", "restore"], stdin=f, check=True)
    subprocess.run(["ipset", "swap", IPSET + "_new", IPSET], check=True)
    subprocess.run(["ipset", "destroy", IPSET + "_new"], check=True)
    add("ipset_change", time.perf_counter() - start)
    quiet("ipset", "destroy", IPSET)


def measure(work: Path, runs: int) -> dict:
    """Every figure of table(): lists of `runs` values, one per round."""
    full = addresses(SIZE + CHANGE, seed=11)
    base, extra = full[:SIZE], full[SIZE:]
    changed = base[CHANGE:] + extra
    lists = {name: work / (name + ".txt") for name in ("base", "changed")}
    write_list(lists["base"], base)
    write_list(lists["changed"], changed)
    lists["ipset_base"] = work / "ipset_base.txt"
    lists["ipset_changed"] = work / "ipset_changed.txt"
    ipset_script(lists["ipset_base"], IPSET, base, create=True)
    ipset_script(lists["ipset_changed"], IPSET + "_new", changed,
                 create=True)

    out: dict = {}
    for _round in range(runs):
        one_round(work, lists, out)

    load_program()
    small = addresses(ONE_BY_ONE, seed=12)
    out["bpftool_each"] = [one_by_one(small) / ONE_BY_ONE]
    load_program()
    shutil.rmtree(work / "state")      # the new maps start a new list
    write_list(work / "small.txt", small)
    wall, _rss, r = run_module(work, work / "small.txt")
    assert r["added"] == ONE_BY_ONE
    out["ours_small_each"] = [wall / ONE_BY_ONE]
    out["ours_1m_each"] = [statistics.median(out["ours_empty"]) / SIZE]
    return out


def table(runs: dict) -> str:
    m = dict((k, statistics.median(v)) for k, v in runs.items())
    rounds = len(runs["ours_empty"])

    def spread(key: str, unit: str = "s") -> str:
        low, high = min(runs[key]), max(runs[key])
        if unit == "MB":
            return "%d MB (%d–%d)" % (m[key], low, high)
        return "%.2f s (%.2f–%.2f)" % (m[key], low, high)

    def row(case: str, key: str, peer: str, target: float) -> str:
        ratio = m["ours_" + key] / m["ipset_" + key]
        return "| %s | %s | %s, %s | %.2fx | <= %sx | %s |" % (
            case, spread("ours_" + key), spread("ipset_" + key), peer,
            ratio, target, "met" if ratio <= target else "**missed**")

    def rss_row(case: str, key: str) -> str:
        return "| peak RSS of the module, %s | %s | <= 300 MB | %s |" % (
            case, spread(key, "MB"),
            "met" if max(runs[key]) <= 300 else "**missed**")

    lines = [
        "### Lists: exact sync of 1,000,000 IPv4 entries",
        "",
        "- Command: `.venv/bin/python bench/lists.py --write-docs`",
        "- Date: %s; kernel %s; %d CPUs; load average (1 min) %.2f" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            platform.release(), os.cpu_count() or 0, os.getloadavg()[0]),
        "- Each cell: median of %d rounds, min–max in parentheses; each "
        "round runs our three cases, then ipset's." % rounds,
        "- Ours: the module process as a target runs it (`state: exact`, "
        "`src` a file of 1,000,000 lines): single addresses, so all go to "
        "`block_v4_hosts`. ipset: `ipset restore` into a `hash:net` set.",
        "",
        "| case | bpf_map_entry | ipset | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
        row("into an empty list", "empty", "restore", 0.5),
        row("again, nothing to change", "same", "restore -exist", 1),
        row("1%% change (+%d, -%d)" % (CHANGE, CHANGE), "change",
            "restore new set, swap", 0.5),
        "",
        "| measure | value | target | result |",
        "|---|---:|---|---|",
        rss_row("1,000,000 into empty", "rss_empty"),
        rss_row("the same sync again", "rss_same"),
        rss_row("the 1% change", "rss_change"),
        "| original tool, one `bpftool map update` per address (%d) | "
        "%.2f ms per entry | | |" % (ONE_BY_ONE, m["bpftool_each"] * 1e3),
        "| bpf_map_entry, the same %d addresses | %.3f ms per entry "
        "(%.0fx faster) | | |" % (ONE_BY_ONE, m["ours_small_each"] * 1e3,
                                  m["bpftool_each"] / m["ours_small_each"]),
        "| bpf_map_entry, 1,000,000 into empty | %.2f us per entry "
        "(%.0fx faster than one process each) | | |" % (
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
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds of every case (default 3)")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/lists.py: run as root")
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    work = Path(tempfile.mkdtemp(prefix="fp-bench-lists-"))
    try:
        text = table(measure(work, opts.runs))
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
