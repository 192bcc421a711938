"""Data plane benchmark: nanoseconds per packet through BPF_PROG_TEST_RUN.

Runs seven frames through three builds of our XDP program side by side,
with a blocklist of 10, 5,000 and 1,000,000 IPv4 /32 entries:

- `0.1.0`: release 0.1.0's program, built from the git tag `0.1.0`;
- `new, features off`: build/sip_logic.bpf.o with the maps of rate
  limits, bans and fingerprints empty;
- `new, limits + fingerprints`: the same object with the fastpath
  role's defaults (roles/fastpath/defaults/main.yml): budgets, bans and
  scanner signatures;

next to Debian's xdp-filter (xdp-tools: its default build with every
feature, and its IP-only build, `-f ipv4`) holding the same source
addresses, and a trivial XDP_PASS program as the floor of the test-run
harness. The frames (bench/dataplane_frames.py):

1. a blocklisted INVITE: ours DROP (BLOCKED), xdp-filter DROP;
2. an OPTIONS from an untrusted source: ours DROP (OPTIONS_DROPPED),
   xdp-filter PASS;
3. a valid INVITE from an untrusted source: all PASS;
4. a desk phone's INVITE with its User-Agent: PASS;
5. an INVITE from a source over its budget: DROP (RATE_LIMITED) with
   limits on, else PASS;
6. an INVITE from a banned source: DROP (BANNED) with bans on, else PASS;
7. an INVITE whose scanner fingerprint lies at the end of the bound of
   the User-Agent search: DROP (SCANNER) with fingerprints on, else PASS;
   the bytes before it in the value are the costliest filler of a short
   probe.

xdp-filter runs the first three. Each program runs each frame `repeat`
times per round in the kernel, fewer where that would take over half a
second (the kernel reports the mean ns per run);
the table shows the median of the rounds, and the report the ratios the
project targets. Needs root, bpffs on /sys/fs/bpf, bpftool, clang, git
(the tag 0.1.0) and xdp-tools. A full run takes about two minutes of CPU
(two minutes on a quiet machine, five when other work keeps both CPUs
busy), the quick one about half a minute.

    .venv/bin/python bench/dataplane.py [--repeat N] [--rounds R] [--quick]
                                        [--write-docs]

Everything it creates (a veth pair, xdp-filter, pins under /sys/fs/bpf)
is removed again on the way out, also on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import dataplane_frames as df  # noqa: E402
from bench import dataplane_programs as dp  # noqa: E402
from bench.dataplane_programs import BenchError, Program  # noqa: E402
from bench.dataplane_report import Results, Setup, report  # noqa: E402
from bench.docs_section import run_bench  # noqa: E402
from plugins.module_utils import _abi, _bpf  # noqa: E402
from tests.dataplane.harness import build  # noqa: E402

SIZES = (10, 5_000, 1_000_000)
QUICK_SIZES = (10, 5_000)
FULL_REPEAT, FULL_ROUNDS = 1_000_000, 5
QUICK_REPEAT, QUICK_ROUNDS = 100_000, 2
MAX_ROUND_NS = 500_000_000      # longest timed round of one cell

PIN_ROOT = dp.BPFFS / ("fpbench_%d" % os.getpid())
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- dataplane:begin -->", "<!-- dataplane:end -->"
DOCS_SECTION = """## Data plane

`bench/dataplane.py` times the XDP program with `BPF_PROG_TEST_RUN`; see
its docstring for the programs and frames.

"""


def check_host() -> None:
    if os.geteuid() != 0:
        raise BenchError("needs root (BPF_PROG_TEST_RUN, veth, bpffs)")
    if not os.path.ismount(dp.BPFFS):
        raise BenchError("needs bpffs mounted on %s" % dp.BPFFS)
    for tool in ("xdp-filter", "clang", "ip", "git", "tar"):
        if not shutil.which(tool):
            raise BenchError("%s not found (apt install xdp-tools clang "
                             "iproute2 git tar)" % tool)
    if dp.XDP_FILTER_PINS.exists():
        raise BenchError("%s exists: xdp-filter is in use on this host and "
                         "its maps would be shared" % dp.XDP_FILTER_PINS)
    for name in dp.VETH:
        if Path("/sys/class/net", name).exists():
            raise BenchError("interface %s exists: remove it first" % name)


@contextlib.contextmanager
def pin_root() -> Iterator[Path]:
    PIN_ROOT.mkdir()
    try:
        yield PIN_ROOT
    finally:
        shutil.rmtree(PIN_ROOT, ignore_errors=True)


# -- verdict checks and timing --------------------------------------------


def _names(reasons: Sequence[int]) -> list[str]:
    return [dp.REASON_NAMES[r] for r in reasons]


def run_checked(prog: Program, case: df.Case, repeat: int) -> int:
    """repeat runs of the frame; the mean ns per run. The action must be
    the expected one, and for our programs the frame's reason must have
    counted every run and no other reason any."""
    ours = prog.ours
    before = None
    if ours is not None:
        ours.prepare(case.key)
        before = ours.reasons()
    outcome = _bpf.prog_test_run(prog.fd, case.frame, repeat)
    expected = prog.expect[case.key]
    if outcome.retval != expected:
        raise BenchError("%s: %s returned %s, expected %s" % (
            case.title, prog.label, dp.ACTIONS.get(outcome.retval,
                                                   outcome.retval),
            dp.ACTIONS[expected]))
    if ours is not None and before is not None:
        moved = {i: b - a for i, (a, b) in enumerate(
            zip(before, ours.reasons(), strict=True)) if a != b}
        reason = prog.reasons[case.key]
        if moved != {reason: repeat}:
            raise BenchError("%s: %s counted %s over %d runs, expected %s" % (
                case.title, prog.label,
                {dp.REASON_NAMES[r]: n for r, n in moved.items()}, repeat,
                dp.REASON_NAMES[reason]))
    return outcome.duration_ns


def costliest_filler(on: Program, features: df.Features
                     ) -> dict[bytes, int]:
    """ns per run of the end-of-bound fingerprint with each filler byte
    (df.FILLER_PROBE_RUNS runs each): the search's cost depends on what the
    value holds before the signature, and the costliest is its bound."""
    return {bytes([b]): run_checked(on, df.scanner_case(features,
                                                        bytes([b])),
                                    df.FILLER_PROBE_RUNS)
            for b in df.FILLERS}


def check_bounds(on: Program, features: df.Features,
                 filler: bytes) -> None:
    """The end-of-bound fingerprint is at the bound: one byte further,
    the line or the signature is not searched and the request passes."""
    if on.ours is None:
        raise BenchError("%s is not one of our programs" % dp.ON)
    on.ours.prepare("scanner")
    for data in df.beyond_bound_frames(features, filler):
        got = _bpf.prog_test_run(on.fd, data).retval
        if got != _abi.XDP_PASS:
            raise BenchError("a fingerprint past the bound gave %s, "
                             "expected PASS" % dp.ACTIONS.get(got, got))


def measure(programs: Sequence[Program], frames: Sequence[df.Case],
            entries: int, repeat: int, rounds: int,
            results: Results) -> None:
    """Check every verdict once, then rounds rounds, each running every
    (program, frame) once, so that slow drifts of the machine spread over
    all of them alike. A frame that costs a program so much that repeat
    runs would last over MAX_ROUND_NS runs fewer times."""
    live = [(p, c) for p in programs for c in frames
            if p.runs(c.key, entries)]
    runs = {}
    for prog, case in live:                 # check and warm up
        run_checked(prog, case, 1)
        ns = run_checked(prog, case, max(1, repeat // 10))
        runs[prog.label, case.key] = max(1, min(repeat,
                                                MAX_ROUND_NS // max(ns, 1)))
    for _round in range(rounds):
        for prog, case in live:
            key_entries = entries if prog.capacity is not None else 0
            key = (prog.label, case.key, key_entries)
            results.runs[key] = runs[prog.label, case.key]
            results.add(key, run_checked(prog, case, results.runs[key]))


def run_sizes(programs: Sequence[Program], frames: Sequence[df.Case],
              args: argparse.Namespace, sizes: Sequence[int],
              xdpf_capacity: int) -> Results:
    """Grow the lists size by size; check, then time, at each size."""
    lists = dp.Lists(*dp.block_maps(programs),
                     df.packed(df.blocklist(max(sizes))))
    results = Results()
    for entries in sizes:
        print("[bench] %s entries" % f"{entries:,}", file=sys.stderr)
        lists.grow(entries, xdpf_capacity)
        measure(programs, frames, entries, args.repeat, args.rounds,
                results)
    results.fills = lists.fills
    return results


def bench(args: argparse.Namespace, argv: Sequence[str]) -> str:
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    sizes = QUICK_SIZES if args.quick else SIZES
    features = df.role_features()
    frames = df.cases(features)
    build()
    check_host()
    with contextlib.ExitStack() as stack:
        pins = stack.enter_context(pin_root())
        ours = stack.enter_context(dp.our_programs(pins, frames, features))
        floor = stack.enter_context(dp.trivial(pins, frames))
        dev, peer = stack.enter_context(dp.veth_pair())
        stack.enter_context(dp.xdp_filter_state())
        xdpf = stack.enter_context(dp.xdp_filter(dev, dp.XDPF, frames))
        xdpf_ip = stack.enter_context(dp.xdp_filter(peer, dp.XDPF_IP,
                                                    frames, ["ipv4"]))
        capacity = xdpf.capacity or 0
        on = next(p for p in ours if p.label == dp.ON)
        filler_costs = costliest_filler(on, features)
        filler = max(filler_costs, key=filler_costs.__getitem__)
        frames = df.cases(features, filler)
        check_bounds(on, features, filler)
        results = run_sizes([*ours, xdpf, xdpf_ip, floor], frames, args,
                            sizes, capacity)
    setup = Setup(list(argv), args.repeat, args.rounds, sizes, capacity,
                  {p.label: p.detail for p in (xdpf, xdpf_ip)},
                  results.fills, (load_start, os.getloadavg()[0]),
                  time.monotonic() - started, features, filler_costs)
    return report(results, setup, frames)


# -- main -----------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="ns/packet of the XDP program (0.1.0, new with its "
                    "features off and on) vs xdp-filter through "
                    "BPF_PROG_TEST_RUN")
    ap.add_argument("--repeat", type=int, help="runs per round "
                    "(default %d; %d with --quick)"
                    % (FULL_REPEAT, QUICK_REPEAT))
    ap.add_argument("--rounds", type=int, help="rounds per case, the "
                    "median is shown (default %d; %d with --quick)"
                    % (FULL_ROUNDS, QUICK_ROUNDS))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: small repeat, 2 rounds, no "
                         "1,000,000-entry list")
    ap.add_argument("--write-docs", action="store_true",
                    help="also write the report into %s"
                         % DOCS.relative_to(REPO))
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else FULL_REPEAT
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else FULL_ROUNDS
    if args.repeat < 1 or args.rounds < 1:
        ap.error("--repeat and --rounds must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    return run_bench("bench/dataplane.py", lambda: bench(args, argv),
                     args.write_docs, (BEGIN, END, DOCS_SECTION))


if __name__ == "__main__":
    sys.exit(main())
