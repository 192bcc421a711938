"""Line-rate benchmark: real frames through veth, CPU of the receiving
core per packet, for the collection's XDP program, nftables and
iptables + ipset holding the same blocklist.

A generator in its own namespace, pinned to CPU 0, sends SIP INVITEs
through one veth pair per filter; each receiving end sits in a namespace
of its own, with native XDP and threaded NAPI, its NAPI thread pinned
to CPU 1. The cost of a filter is the CPU time of that thread
(/proc/<pid>/schedstat) per packet it dropped, counted by the filter's
own counters.

1. Blocklist: lists of 10, 100,000 and 1,000,000 IPv4 entries; the
   frames come from 1 or from 1,000 of the listed sources, sent as XDP
   frames by bench/line_rate_gen.py (an XDP program run in the live-frames
   mode of BPF_PROG_TEST_RUN, redirecting each frame to the sending
   veth), so that the receiving end meets them as it would a NIC's: no
   skb before its XDP program. Each filter is filled the
   way it is run: ours with vos.fastpath.bpf_map_entry (the program
   attached with vos.fastpath.xdp_attach and the fastpath role's limits
   and signatures), nftables with `nft -f`, the ipset with `ipset
   restore`. A fourth pair runs an XDP program that drops every frame:
   the floor, what veth itself costs per frame.
2. Detection on (the same program and limits): floods of distinct
   spoofed sources, each sending one INVITE, sent by trafgen
   (netsniff-ng), which counts the address bytes at run time, at the
   rate it reaches: every IPv4 address of 198.18.0.0/15 but two /24 rows
   (130,560 sources, about the size of the per-source state map
   `rate_state`), then 1,000,000 distinct IPv6 /64s of 2001:db8::/32;
   with the trivial XDP_PASS program on the same flood as the floor.
   Checked around each flood: the scanner bans made before it (still
   listed by vos.fastpath.xdp_bans, still dropping), and the budget
   state of a legitimate source that sent before it.

As root, from the repository root (takes 6 to 8 minutes; `--quick`
about one):
    .venv/bin/python bench/line_rate.py [--runs N] [--packets N]
                                        [--quick] [--write-docs]

Everything it creates (namespaces, veth pairs, nftables tables,
iptables rules, ipsets, the pins under its own bpffs directory, lock
files of its interfaces) is removed on the way out, also on errors and
Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import dataplane_frames as df  # noqa: E402
from bench import line_rate_net as ln  # noqa: E402
from bench import line_rate_traffic as lt  # noqa: E402
from bench.dataplane_programs import BenchError, build_trivial  # noqa: E402
from bench.docs_section import run_bench  # noqa: E402
from bench.line_rate_filters import (  # noqa: E402
    Iptables,
    Modules,
    Nftables,
    Ours,
    Plain,
    opened,
)
from bench.line_rate_floor import pin_drop_program  # noqa: E402
from bench.line_rate_gen import LiveFrames  # noqa: E402
from bench.line_rate_report import COLUMNS, Flood, Report, Sample, report  # noqa: E402
from plugins.module_utils import _abi, _lock  # noqa: E402
from tests.dataplane.harness import build  # noqa: E402

SIZES = (10, 100_000, 1_000_000)
QUICK_SIZES = (10, 100_000)
SOURCES = (1, 1_000)
FULL_RUNS, QUICK_RUNS = 5, 2
FULL_PACKETS, QUICK_PACKETS = 1_000_000, 200_000
FULL_V6_FLOOD, QUICK_V6_FLOOD = 1_000_000, 200_000
MIN_PPS = 20_000                # below this trafgen is stopped: broken
SETTLE_S = 3.0                  # longest wait for the last frames

GEN_NS = "fplr-gen"
PAIRS = {"ours": "lrours", "nft": "lrnft", "ipt": "lript",
         "floor": "lrdrop", "plain": "lrplain"}
PIN_ROOT = Path("/sys/fs/bpf") / ("fplr_%d" % os.getpid())
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- line_rate:begin -->", "<!-- line_rate:end -->"
DOCS_SECTION = """## Line rate: real packets through veth

`bench/line_rate.py` sends real frames from a network namespace, pinned
to CPU 0, through one veth pair per filter. Each receiving end, in a
namespace of its own, runs native XDP with
threaded NAPI, and its NAPI thread, pinned to CPU 1, does all its
receive work; a filter's cost is that thread's CPU time per packet the
filter counted as dropped. Side by side, holding the same 10, 100,000
and 1,000,000 IPv4 entries, with the frames from 1 or from 1,000 listed
sources: the collection's program (attached with
`vos.fastpath.xdp_attach` with the fastpath role's limits and
signatures, filled with `vos.fastpath.bpf_map_entry`), an nftables
netdev ingress chain on an interval set, `iptables -t raw ... -m set`
on an `ipset hash:net`, and an XDP program that drops everything (what
veth itself costs per frame). Then it floods the program, detection on,
with distinct spoofed sources (all of 198.18.0.0/15 but two rows, then
a million IPv6 /64s), and checks that the bans made before survive and
whether a legitimate source's budget state does.

The blocklist frames come from `bench/line_rate_gen.py`: an XDP program
run by `BPF_PROG_TEST_RUN` in its live-frames mode (what `xdp-trafficgen`
does; Debian's cannot load its tracepoint program on this kernel) gives
each copy of an INVITE the next listed source and redirects it to the
sending veth, so the receiving end gets XDP frames, as from a NIC's
driver, and builds an skb only for a frame its XDP program passes; the
kernel sends as fast as it can, and frames that find the receiving ring
full are dropped before the filter sees them (the cost is per frame the
filter counted). The floods come from `trafgen` (netsniff-ng), which
counts the bytes of the source address at run time; it sends from a
packet socket, so its frames reach XDP inside an skb. No kernel module
is needed (this kernel has no pktgen). As root, from the repository
root:

    make -s
    .venv/bin/python bench/line_rate.py              # full: ~4 to 8 min
    .venv/bin/python bench/line_rate.py --quick      # smoke test: ~30-60 s
    .venv/bin/python bench/line_rate.py --write-docs # and update below

It needs `netsniff-ng`, `nftables`, `ipset` and `iptables`. Read the
numbers with the machine's limits in mind (see the notes of the run):
two shared cores of a virtual machine with steal time, and veth's own
cost per frame, paid by every filter alike and shown as the floor (an
XDP program that drops everything). The packets per second are those the
filters handled while the generator sent, not their ceilings.

"""


def check_host() -> None:
    if os.geteuid() != 0:
        raise BenchError("needs root (namespaces, XDP, bpffs)")
    if not os.path.ismount("/sys/fs/bpf"):
        raise BenchError("needs bpffs on /sys/fs/bpf: run scripts/setup.sh")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("needs 2 CPUs: one sends, one receives")
    for tool, package in (("trafgen", "netsniff-ng"), ("nft", "nftables"),
                          ("ipset", "ipset"), ("iptables", "iptables"),
                          ("nsenter", "util-linux"),
                          ("taskset", "util-linux"), ("ip", "iproute2"),
                          ("bpftool", "bpftool"), ("clang", "clang")):
        if not shutil.which(tool):
            raise BenchError("%s not found: apt install %s"
                             % (tool, package))
    for name in (GEN_NS, *("fplr-%s" % k for k in PAIRS)):
        if (ln.NETNS_DIR / name).exists():
            raise BenchError("network namespace %s exists: another run is "
                             "going on, or remove it (ip netns del %s)"
                             % (name, name))


# -- set-up ---------------------------------------------------------------


@contextlib.contextmanager
def private_dir(path: Path) -> Iterator[Path]:
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def lock_files(keys: Sequence[str]) -> Iterator[None]:
    """Remove the modules' lock files of our interfaces and lists that
    were not there before."""
    paths = [Path(_lock.LOCK_DIR, key + ".lock") for key in keys]
    new = [p for p in paths if not p.exists()]
    try:
        yield
    finally:
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()


class Bench:
    """The pairs, the filters on them and the traffic configurations."""

    def __init__(self, stack: contextlib.ExitStack, work: Path,
                 pins: Path) -> None:
        self.work = work
        stack.enter_context(ln.netns(GEN_NS))
        self.pairs: dict[str, ln.Pair] = {}
        for key, dev in PAIRS.items():
            rx_ns = stack.enter_context(ln.netns("fplr-%s" % key))
            self.pairs[key] = stack.enter_context(ln.veth_pair(
                rx_ns, dev, GEN_NS, dev + "-g"))
        features = df.role_features()
        modules = Modules(work)
        ours_pins = pins / "ours"
        stack.enter_context(lock_files([
            _lock.interface_key(PAIRS["ours"]),
            _lock.list_key(str(ours_pins), "blocklist"),
            _lock.list_key(str(ours_pins), "allowlist")]))
        self.ours = stack.enter_context(opened(Ours(
            self.pairs["ours"], modules, ours_pins, work / "state",
            features.option, list(features.signatures))))
        trivial = build_trivial()
        self.nft = Nftables(self.pairs["nft"])
        stack.callback(self.nft.teardown)
        self.nft.setup(trivial, work)
        self.ipt = Iptables(self.pairs["ipt"])
        stack.callback(self.ipt.teardown)
        self.ipt.setup(trivial)
        self.plain = Plain(self.pairs["plain"])
        self.plain.setup(trivial)
        self.floor = Plain(self.pairs["floor"], "XDP_DROP floor")
        self.floor.pair.attach_pinned(pin_drop_program(pins / "drop"))
        self.gen = LiveFrames(pins / "gen")
        for pair in self.pairs.values():
            ln.threaded_napi(pair)

    def config(self, name: str, frames: Sequence[bytes]) -> Path:
        return lt.write_literal(self.work / ("%s.trafgen" % name), frames)

    def live_frames(self, sources: Sequence[ipaddress.IPv4Address]
                    ) -> Sender:
        """Send an INVITE from each of sources in turn, as XDP frames."""
        frame = lt.frame_v4(sources[0])
        return lambda pair, count: self.gen.send(
            pair, frame, sources, count, 10 + count / MIN_PPS)


# -- one measurement ------------------------------------------------------


Sender = Callable[[ln.Pair, int], ln.Sent]


def with_trafgen(config: Path) -> Sender:
    """Send count frames of a trafgen configuration, cycling over them."""
    return lambda pair, count: ln.trafgen(pair, config, count,
                                          10 + count / MIN_PPS)


def measure(pair: ln.Pair, send: Sender, count: int,
            counted: Callable[[], int]) -> Sample:
    """Send count frames to pair; the receiving thread's CPU time and
    what counted() moved by, once the frames still in the veth ring are
    through (counted() reaches what was sent, or stops)."""
    before, cpu = counted(), ln.cpu_ns(pair.napi_pid)
    sent = send(pair, count)
    deadline = time.monotonic() + SETTLE_S
    moved, last = counted() - before, -1
    while moved < sent.packets and moved != last and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        last, moved = moved, counted() - before
    return Sample(ln.cpu_ns(pair.napi_pid) - cpu, moved, sent)


def our_handled(ours: Ours) -> Callable[[], int]:
    return lambda: sum(ours.reasons())


def blocked_sample(bench: Bench, key: str, config: Sender,
                   count: int) -> Sample:
    """One run on one filter; ours must count every frame it handled as
    BLOCKED."""
    if key == "ours":
        ours = bench.ours
        before = ours.reasons()
        sample = measure(ours.pair, config, count, our_handled(ours))
        moved = [b - a for a, b in zip(before, ours.reasons(), strict=True)]
        blocked = moved[_abi.REASONS.index("BLOCKED")]
        if blocked != sum(moved):
            raise BenchError("the program counted %s, expected BLOCKED only"
                             % _reasons(moved))
        return sample
    if key == "floor":
        return measure(bench.floor.pair, config, count, bench.floor.handled)
    if key == "nft":
        return measure(bench.nft.pair, config, count, bench.nft.handled)
    return measure(bench.ipt.pair, config, count, bench.ipt.dropped)


def check_nft_drops(bench: Bench, rep: Report) -> None:
    """nftables' own counter: every frame its end took was dropped."""
    took = rep.handled("nft")
    dropped = bench.nft.dropped()
    if dropped != took:
        raise BenchError("nftables counted %d drops of %d frames its veth "
                         "took" % (dropped, took))
    rep.nft_dropped = dropped


def _reasons(moved: Sequence[int]) -> dict[str, int]:
    names = _abi.REASONS + _abi.REASONS_EXT
    return {names[i]: n for i, n in enumerate(moved) if n}


# -- 1. the blocklist matrix ----------------------------------------------


def blocklist_matrix(bench: Bench, args: argparse.Namespace,
                     rep: Report) -> None:
    sources = lt.blocklisted_sources(max(SOURCES))
    others = lt.other_keys(max(args.sizes))
    configs = {n: bench.live_frames(sources[:n]) for n in SOURCES}
    for entries in args.sizes:
        addrs = lt.blocklist(entries, sources, others)
        log("%s entries: filling the lists" % f"{entries:,}")
        for filt in (bench.ours, bench.nft, bench.ipt):
            load = filt.load(addrs, bench.work / ("list_%s" % filt.label
                                                  .split()[0]))
            log("  %s: %.1f s, peak RSS %s MB" % (
                filt.label, load.seconds,
                "–" if load.rss_mb is None else load.rss_mb))
        if not rep.warmup:          # the pairs' first frames, not kept
            rep.warmup = [blocked_sample(bench, key, configs[1],
                                         args.packets)
                          for key in COLUMNS]
        cells = [n for n in SOURCES if n <= entries]
        for run in range(args.runs):
            # Each run measures every filter in turn, starting with the
            # next one each time: a drift of the machine spreads evenly.
            turn = run % len(COLUMNS)
            order = COLUMNS[turn:] + COLUMNS[:turn]
            for n in cells:
                for key in order:
                    sample = blocked_sample(bench, key, configs[n],
                                            args.packets)
                    rep.add((key, entries, n), sample)
            log("  run %d/%d done" % (run + 1, args.runs))
        check_nft_drops(bench, rep)
    rep.loads = {key: filt.loads for key, filt in
                 (("ours", bench.ours), ("nft", bench.nft),
                  ("ipt", bench.ipt))}
    rep.stats_blocked = bench.ours.stats()["stats"]["BLOCKED"]["packets"]
    ours = rep.handled("ours")
    if rep.stats_blocked != ours:
        raise BenchError("vos.fastpath.xdp_stats reads BLOCKED %d, the runs "
                         "counted %d" % (rep.stats_blocked, ours))


# -- 2. detection on: floods of distinct sources --------------------------


def floods(bench: Bench, args: argparse.Namespace, rep: Report) -> None:
    ours = bench.ours
    # The flood's sources are in no list: keep the blocklist as large,
    # without the 1,000 sources the frames above came from.
    rest = lt.other_keys(max(args.sizes))[:max(args.sizes) - max(SOURCES)]
    ours.load(rest, bench.work / "list_flood")
    rep.flood_list = len(rest)
    scanners = bench.config("scanners", [lt.frame_v4(a, lt.SCANNER_UA)
                                         for a in lt.BANNED])
    make_bans(bench, scanners)
    legit = bench.config("legit", [lt.frame_v4(lt.LEGIT)])
    v4 = lt.write_flood_v4(bench.work / "flood_v4.trafgen")
    v6 = lt.write_flood_v6(bench.work / "flood_v6.trafgen")
    for flood in (Flood("IPv4, every address of 198.18.0.0/15 outside "
                        "two /24 rows", v4, lt.FLOOD_V4_SOURCES, 1),
                  Flood("IPv6, distinct /64s of 2001:db8::/32", v6,
                        args.v6_flood, args.runs)):
        log("flood: %s" % flood.title)
        run_flood(bench, flood, legit, scanners)
        rep.floods.append(flood)


def make_bans(bench: Bench, scanners: Path) -> None:
    """One request with a scanner's User-Agent from each BANNED source:
    the program bans each for the role's scanner_ban_time."""
    ours = bench.ours
    before = ours.reasons()
    ln.trafgen(ours.pair, scanners, len(lt.BANNED), 10)
    wait_for(lambda: _moved(ours, before).get("SCANNER", 0)
             >= len(lt.BANNED))
    if len(banned_now(ours)) != len(lt.BANNED):
        raise BenchError("the scanner requests made %d bans, expected %d"
                         % (len(banned_now(ours)), len(lt.BANNED)))


def banned_now(ours: Ours) -> set[str]:
    want = {"%s/32" % a for a in lt.BANNED}
    return {b["source"] for b in ours.bans()} & want


def _moved(ours: Ours, before: Sequence[int]) -> dict[str, int]:
    return _reasons([b - a for a, b in zip(before, ours.reasons(),
                                           strict=True)])


def wait_for(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def run_flood(bench: Bench, flood: Flood, legit: Path,
              scanners: Path) -> None:
    ours = bench.ours
    before = ours.reasons()
    ln.trafgen(ours.pair, legit, lt.LEGIT_REQUESTS, 10)
    wait_for(lambda: _moved(ours, before).get("PASSED", 0)
             >= lt.LEGIT_REQUESTS)
    flood.legit_before = ours.budget_state(lt.LEGIT)
    flood.bans_before = len(banned_now(ours))
    for run in range(flood.runs):
        before = ours.reasons()
        flood.ours.append(measure(ours.pair, with_trafgen(flood.config),
                                  flood.packets, our_handled(ours)))
        if run == 0:
            flood.tracked = ours.sources_tracked()
        for name, n in _moved(ours, before).items():
            flood.verdicts[name] = flood.verdicts.get(name, 0) + n
        flood.plain.append(measure(bench.plain.pair,
                                   with_trafgen(flood.config),
                                   flood.packets, bench.plain.handled))
    flood.legit_after = ours.budget_state(lt.LEGIT)
    flood.bans_after = len(banned_now(ours))
    before = ours.reasons()
    ln.trafgen(ours.pair, scanners, len(lt.BANNED), 10)
    wait_for(lambda: sum(_moved(ours, before).values()) >= len(lt.BANNED))
    flood.banned_drops = _moved(ours, before).get("BANNED", 0)


# -- main -----------------------------------------------------------------


def log(text: str) -> None:
    print("[bench] %s" % text, file=sys.stderr, flush=True)


def bench(args: argparse.Namespace, argv: Sequence[str]) -> str:
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    build()
    check_host()
    rep = Report(list(argv), args.runs, args.packets, tuple(args.sizes),
                 SOURCES)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="fplr-")))
        pins = stack.enter_context(private_dir(PIN_ROOT))
        b = Bench(stack, work, pins)
        rep.details = {"ours": b.ours.detail, "nft": b.nft.detail,
                       "ipt": b.ipt.detail}
        rep.frame_len = len(lt.frame_v4(lt.LEGIT))
        blocklist_matrix(b, args, rep)
        floods(b, args, rep)
    rep.load = (load_start, os.getloadavg()[0])
    rep.seconds = time.monotonic() - started
    rep.features = df.role_features()
    return report(rep)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="CPU per packet of the receiving core for real frames "
                    "through veth: the XDP program vs nftables and "
                    "iptables + ipset")
    ap.add_argument("--runs", type=int, help="runs per cell, the median "
                    "is shown (default %d; %d with --quick)"
                    % (FULL_RUNS, QUICK_RUNS))
    ap.add_argument("--packets", type=int, help="frames per run "
                    "(default %s; %s with --quick)"
                    % (f"{FULL_PACKETS:,}", f"{QUICK_PACKETS:,}"))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 runs of fewer frames, lists of "
                         "10 and 100,000 entries, a smaller IPv6 flood")
    ap.add_argument("--write-docs", action="store_true",
                    help="also write the report into %s"
                         % DOCS.relative_to(REPO))
    args = ap.parse_args(argv)
    if args.runs is None:
        args.runs = QUICK_RUNS if args.quick else FULL_RUNS
    if args.packets is None:
        args.packets = QUICK_PACKETS if args.quick else FULL_PACKETS
    if args.runs < 1 or args.packets < 1000:
        ap.error("--runs must be >= 1 and --packets >= 1000")
    args.sizes = QUICK_SIZES if args.quick else SIZES
    args.v6_flood = QUICK_V6_FLOOD if args.quick else FULL_V6_FLOOD
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    return run_bench("bench/line_rate.py", lambda: bench(args, argv),
                     args.write_docs, (BEGIN, END, DOCS_SECTION),
                     (signal.SIGTERM, signal.SIGINT))


if __name__ == "__main__":
    sys.exit(main())
