"""Metrics benchmark: CPU time of one run of vos-fastpath-metrics with a
blocklist of 1,000,000 entries, next to a run with empty lists.

The command is installed as the fastpath role installs it (one file
carrying its module_utils, run by Debian's /usr/bin/python3 -I), with the
program loaded and attached to a veth of its own and its maps pinned. The
lists are saved files of the real format (_snapshot), in a state
directory of the benchmark: 1,000,000 IPv4 /32 of one owner ("feed"),
of which 10,000 with a TTL spread over an hour (as ttl_jitter spreads a
feed's), and 100 of a second owner. Cases:
  1. empty lists (no saved file),
  2. 1,000,000 entries, the file unchanged since the last run (the
     summary is read from the cache in /run: what every timer run costs),
  3. 1,000,000 entries, the first run after the file changed (the whole
     file read, checked and summed up once).
CPU time is user + system of the command and its children (`ip`), from
wait4(); each case is run several times and the median shown. The
addresses are keys in a file: no packet is sent to them.

As root, from the repository root:
    .venv/bin/python bench/metrics.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugins.module_utils import (  # noqa: E402
    _defaults,
    _ledger,
    _lists,
    _snapshot,
)

OBJECT = REPO / "build" / "sip_logic.bpf.o"
ROLE = REPO / "roles" / "fastpath"
PIN_DIR = Path("/sys/fs/bpf/vos_fastpath_bench_metrics")
VETH = "fpbm0"
PYTHON = "/usr/bin/python3"
SIZE = 1_000_000
WITH_TTL = 10_000
SECOND_OWNER = 100
SEC = 10**9


def install(lib: Path) -> Path:
    """The metrics command as the role renders it."""
    files = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())[
        "__fastpath_metrics_module_utils_files"]
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string(
        (ROLE / "templates" / "vos-fastpath-metrics.j2").read_text()).render(
        __fastpath_python=PYTHON, ansible_managed="bench",
        __fastpath_module_utils=str(REPO / "plugins" / "module_utils"),
        __fastpath_metrics_module_utils_files=files,
        lookup=lambda kind, path, rstrip=True: Path(path).read_text())
    lib.mkdir(parents=True)
    command = lib / "vos-fastpath-metrics"
    command.write_text(text)
    command.chmod(0o755)
    return command


def attach() -> None:
    shutil.rmtree(PIN_DIR, ignore_errors=True)
    PIN_DIR.mkdir(mode=0o700)
    subprocess.run(["ip", "link", "del", VETH], capture_output=True,
                   check=False)
    subprocess.run(["ip", "link", "add", VETH, "type", "veth", "peer",
                    "name", VETH + "p"], check=True)
    subprocess.run(["bpftool", "prog", "load", str(OBJECT),
                    str(PIN_DIR / "prog"), "type", "xdp", "pinmaps",
                    str(PIN_DIR)], check=True)
    subprocess.run(["ip", "link", "set", "dev", VETH, "xdpdrv", "pinned",
                    str(PIN_DIR / "prog")], check=True)


def detach() -> None:
    subprocess.run(["ip", "link", "del", VETH], capture_output=True,
                   check=False)
    shutil.rmtree(PIN_DIR, ignore_errors=True)


def save_blocklist(state: Path) -> int:
    """The saved blocklist, made by a child process (a child of a parent
    that held a million keys would report the parent's peak RSS as its
    own: Linux carries it over exec); its size in bytes."""
    pid = os.fork()
    if pid == 0:
        try:
            write_blocklist(state)
        finally:
            os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    path = _defaults.saved_list(str(state), "blocklist")
    if status or not os.path.exists(path):
        raise SystemExit("could not write the saved blocklist")
    return os.path.getsize(path)


def write_blocklist(state: Path) -> None:
    feed, other = _lists.source_tag("feed"), _lists.source_tag("manual")
    keys = [_lists._PREFIX.pack(32) + (0x0B000000 + i).to_bytes(4, "big")
            for i in range(SIZE)]
    ledger = _ledger.Ledger()
    _ledger.change(ledger, feed, [set(keys[WITH_TTL:]), set()], "present",
                   0)
    # A spread of expiries, as ttl_jitter gives a feed's entries.
    base = _lists.boot_ns() + 3600 * SEC
    ledger.claims(0, feed).expiring.update(
        (key, base + i * 360 * SEC // 1000) for i, key in
        enumerate(keys[:WITH_TTL]))
    _ledger.change(ledger, other, [set(keys[:SECOND_OWNER]), set()],
                   "present", 0)
    ledger.names = {feed: "feed", other: "manual"}
    _snapshot.save(_defaults.saved_list(str(state), "blocklist"),
                   _snapshot.render("blocklist", str(PIN_DIR), ledger))


def config(work: Path, state: Path) -> Path:
    path = state / "metrics.json"
    path.write_text(json.dumps({
        "pin_dir": str(PIN_DIR), "interfaces": [VETH],
        "state_dir": str(state), "lists": ["blocklist", "allowlist"],
        "textfile": str(work / "vos_fastpath.prom"), "interval": "15s"}))
    path.chmod(0o600)
    return path


def one_run(command: Path, conf: Path, cache: Path
            ) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, peak RSS in MB) of one run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    start = time.perf_counter()
    proc = subprocess.Popen([str(command), "--config", str(conf),
                             "--cache", str(cache)], env=env,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit("the metrics command failed: %s" % err.decode())
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss // 1024


def median_run(command: Path, conf: Path, cache: Path, runs: int,
               before: callable = lambda: None) -> dict:
    cpu, wall, rss = [], [], []
    for _run in range(runs):
        before()
        c, w, r = one_run(command, conf, cache)
        cpu.append(c)
        wall.append(w)
        rss.append(r)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall),
            "rss": max(rss), "runs": runs}


def baseline() -> float:
    """CPU seconds of the interpreter alone (python3 -I -c pass)."""
    times = []
    for _run in range(10):
        proc = subprocess.Popen([PYTHON, "-I", "-c", "pass"])
        _pid, _status, usage = os.wait4(proc.pid, 0)
        times.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(times)


def measure(work: Path, runs: int) -> dict:
    command = install(work / "lib")
    state = work / "state"
    state.mkdir(mode=0o700)
    conf = config(work, state)
    cache = work / "run" / "metrics-lists.json"
    out: dict = {"python": baseline()}
    out["empty"] = median_run(command, conf, cache, runs)
    out["file_bytes"] = save_blocklist(state)
    saved = Path(_defaults.saved_list(str(state), "blocklist"))

    def changed() -> None:
        os.utime(saved, ns=(time.time_ns(), time.time_ns()))

    out["miss"] = median_run(command, conf, cache, max(3, runs // 5),
                             before=changed)
    out["warm"] = median_run(command, conf, cache, runs)
    text = (work / "vos_fastpath.prom").read_text()
    assert 'owner="feed"} %d\n' % SIZE in text, "the list was not counted"
    out["cache_bytes"] = cache.stat().st_size
    return out


def table(m: dict) -> str:
    per_day = 86400 / 15

    def row(case: str, r: dict, every_run: bool = True) -> str:
        share = ("%.2f %%" % (r["cpu"] / 15 * 100) if every_run
                 else "once per change")
        return "| %s | %.1f ms | %.1f ms | %d MB | %s |" % (
            case, r["cpu"] * 1e3, r["wall"] * 1e3, r["rss"], share)

    return "\n".join([
        "### Metrics: CPU time of one vos-fastpath-metrics run",
        "",
        "- Command: `.venv/bin/python bench/metrics.py`",
        "- Date: %s; kernel %s; %d CPUs; median of %d runs (%d for the "
        "first run after a change)" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            platform.release(), os.cpu_count() or 0, m["empty"]["runs"],
            m["miss"]["runs"]),
        "- The command as the role installs it, `/usr/bin/python3 -I`; the "
        "interpreter alone (`python3 -I -c pass`) takes %.1f ms of CPU."
        % (m["python"] * 1e3),
        "",
        "| case | CPU (user+sys) | wall | peak RSS | of one CPU at 15 s |",
        "|---|---:|---:|---:|---:|",
        row("empty lists", m["empty"]),
        row("1,000,000 entries, file unchanged (cache)", m["warm"]),
        row("1,000,000 entries, first run after a change", m["miss"],
            every_run=False),
        "",
        "The saved blocklist is %.1f MB; the cache of its summary %.1f kB. "
        "At one run every 15 s (%d a day), the unchanged case costs %.1f "
        "CPU seconds a day." % (
            m["file_bytes"] / 1e6, m["cache_bytes"] / 1e3, per_day,
            m["warm"]["cpu"] * per_day),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/metrics.py: run as root", file=sys.stderr)
        return 1
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    work = Path(tempfile.mkdtemp(prefix="fp-bench-metrics-"))
    try:
        attach()
        print(table(measure(work, args.runs)))
    finally:
        detach()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
