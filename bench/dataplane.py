"""Data plane benchmark: nanoseconds per packet through BPF_PROG_TEST_RUN.

Runs three frames through our XDP program (build/sip_logic.bpf.o) with a
blocklist of 10, 5,000 and 1,000,000 IPv4 /32 entries, side by side with
Debian's xdp-filter (xdp-tools: its default build with every feature, and
its IP-only build, `-f ipv4`) holding the same source addresses, and a
trivial XDP_PASS program as the floor of the test-run harness:

1. a blocklisted INVITE: ours DROP (BLOCKED), xdp-filter DROP;
2. an OPTIONS from an untrusted source: ours DROP (OPTIONS_DROPPED),
   xdp-filter PASS;
3. a valid INVITE from an untrusted source: both PASS.

Each program runs each frame `repeat` times per round in the kernel (the
kernel reports the mean ns per run); the table shows the median of the
rounds. Needs root, bpffs on /sys/fs/bpf, bpftool, clang and xdp-tools.

    .venv/bin/python bench/dataplane.py [--repeat N] [--rounds R] [--quick]
                                        [--write-docs]

Everything it creates (a veth pair, xdp-filter, pins under /sys/fs/bpf)
is removed again on the way out, also on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from plugins.module_utils import _abi, _bpf  # noqa: E402
from tests.dataplane.frames import (  # noqa: E402
    FrameSpec,
    build_frame,
    sip_request,
)
from tests.dataplane.harness import BPFTOOL, Dataplane, build  # noqa: E402

# -- settings -------------------------------------------------------------

SIZES = (10, 5_000, 1_000_000)
QUICK_SIZES = (10, 5_000)
FULL_REPEAT, FULL_ROUNDS = 1_000_000, 5
QUICK_REPEAT, QUICK_ROUNDS = 100_000, 2
SEED = 5060
SIP_PORT = 5060
SOURCE_TAG = 0xBE7C            # fp_entry.source of the benchmark entries

# Addresses of the sent frames, all in the benchmark range 198.18.0.0/15.
# The blocklist is drawn from the same range (all of it but CLEAN_SRC and
# SERVER), so the untrusted source sits among listed addresses and its
# lookup misses as deep in the trie as the blocklisted one hits.
BENCH_NET = ipaddress.IPv4Network("198.18.0.0/15")
BLOCKED_SRC = ipaddress.IPv4Address("198.18.42.42")
CLEAN_SRC = ipaddress.IPv4Address("198.19.0.10")
SERVER = ipaddress.IPv4Address("198.19.255.254")

# Interfaces and pins this script creates (never /sys/fs/bpf/vos_fastpath*).
VETH = ("fpbench0", "fpbench1")
BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / ("fpbench_%d" % os.getpid())
XDP_FILTER_PINS = BPFFS / "xdp-filter"     # pinned by xdp-filter itself
LIBXDP_PINS = BPFFS / "xdp"                # created by libxdp on load

# The floor: a trivial XDP program built from bench/ into build/.
TRIVIAL_SRC = REPO / "bench" / "xdp_pass.bpf.c"
TRIVIAL_OBJ = REPO / "build" / "bench_xdp_pass.bpf.o"

DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- dataplane:begin -->", "<!-- dataplane:end -->"
DOCS_HEADER = """# Benchmarks

Measurements of the collection's components. Each section is written by
the script it names; edit the text around the markers, not between them.
"""

BPF_PROG_TYPE_XDP = 6
XDP_FILTER_SRC = 1 << 0        # MAP_FLAG_SRC of xdp-tools' xdp-filter

OURS, XDPF, XDPF_IP, TRIVIAL = ("vos.fastpath", "xdp-filter",
                                "xdp-filter -f ipv4", "trivial XDP_PASS")
ACTIONS = {_abi.XDP_ABORTED: "ABORTED", _abi.XDP_DROP: "DROP",
           _abi.XDP_PASS: "PASS", _abi.XDP_TX: "TX",
           _abi.XDP_REDIRECT: "REDIRECT"}


class BenchError(RuntimeError):
    """A precondition or a verdict check failed: nothing was measured."""


# -- blocklist addresses --------------------------------------------------


def blocklist(count: int) -> list[int]:
    """count distinct IPv4 addresses (as ints), BLOCKED_SRC first.

    The first 131,070 come from BENCH_NET (198.18.0.0/15) but for the
    addresses of the sent frames, shuffled. The rest, only needed for the
    1,000,000-entry list, are synthetic keys: a seeded sample of the whole
    32-bit space outside BENCH_NET. They are only LPM-trie keys in a test
    run: no packet is ever sent to or from them, and no frame carries one.
    """
    rng = random.Random(SEED)
    blocked = int(BLOCKED_SRC)
    sent = {blocked, int(CLEAN_SRC), int(SERVER)}
    dense = [a for a in range(int(BENCH_NET.network_address),
                              int(BENCH_NET.broadcast_address) + 1)
             if a not in sent]
    rng.shuffle(dense)
    out = [blocked, *dense[:count - 1]]
    if len(out) < count:
        out += _synthetic(rng, count - len(out))
    return out


def _synthetic(rng: random.Random, need: int) -> list[int]:
    lo = int(BENCH_NET.network_address)
    hi = int(BENCH_NET.broadcast_address)
    sample = rng.sample(range(1 << 32), need + 4096)  # distinct
    out = [a for a in sample if not lo <= a <= hi][:need]
    if len(out) < need:
        raise BenchError("could not draw %d synthetic addresses" % need)
    return out


def packed(addrs: Sequence[int]) -> list[bytes]:
    return [a.to_bytes(4, "big") for a in addrs]


# -- frames ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One frame and the verdicts expected from each program."""

    key: str
    title: str
    frame: bytes
    ours: tuple[int, int]       # (XDP action, stats reason)
    xdp_filter: int             # XDP action


def sip_frame(src: ipaddress.IPv4Address, method: bytes) -> bytes:
    payload = sip_request(random.Random(SEED), method)
    return build_frame(FrameSpec(src, SERVER, sport=SIP_PORT,
                                 dport=SIP_PORT, payload=payload))


def cases() -> list[Case]:
    return [
        Case("blocked", "blocklisted INVITE (drop)",
             sip_frame(BLOCKED_SRC, b"INVITE"),
             (_abi.XDP_DROP, _abi.FP_BLOCKED), _abi.XDP_DROP),
        Case("options", "stealth OPTIONS (drop)",
             sip_frame(CLEAN_SRC, b"OPTIONS"),
             (_abi.XDP_DROP, _abi.FP_OPTIONS_DROPPED), _abi.XDP_PASS),
        Case("invite", "valid INVITE (pass)",
             sip_frame(CLEAN_SRC, b"INVITE"),
             (_abi.XDP_PASS, _abi.FP_PASSED), _abi.XDP_PASS),
    ]


# -- programs under test --------------------------------------------------


@dataclass
class Program:
    """A program under test: one column of the table."""

    label: str
    fd: int
    expect: dict[str, int]          # case key -> XDP action
    capacity: int | None = None     # blocklist size limit; None: no list
    detail: str = ""                # how it was found, for the report

    def measures(self, entries: int) -> bool:
        return self.capacity is None or entries <= self.capacity


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise BenchError("%s failed: %s" % (shlex.join(cmd),
                                            done.stderr.strip()))
    return done.stdout


def quiet(*cmd: str) -> None:
    """A clean-up command: its failure must not hide the real error."""
    subprocess.run(cmd, capture_output=True, check=False)


def check_host() -> None:
    if os.geteuid() != 0:
        raise BenchError("needs root (BPF_PROG_TEST_RUN, veth, bpffs)")
    if not os.path.ismount(BPFFS):
        raise BenchError("needs bpffs mounted on %s" % BPFFS)
    for tool in ("xdp-filter", "clang", "ip"):
        if not shutil.which(tool):
            raise BenchError("%s not found (apt install xdp-tools clang "
                             "iproute2)" % tool)
    if XDP_FILTER_PINS.exists():
        raise BenchError("%s exists: xdp-filter is in use on this host and "
                         "its maps would be shared" % XDP_FILTER_PINS)
    for name in VETH:
        if Path("/sys/class/net", name).exists():
            raise BenchError("interface %s exists: remove it first" % name)


@contextlib.contextmanager
def pin_root() -> Iterator[Path]:
    PIN_ROOT.mkdir()
    try:
        yield PIN_ROOT
    finally:
        shutil.rmtree(PIN_ROOT, ignore_errors=True)


@contextlib.contextmanager
def fd_closed(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def ours(pins: Path) -> Iterator[tuple[Dataplane, Program]]:
    """Our program, its maps pinned under pins, 5060 a SIP port."""
    dp = Dataplane(pins / "sip")
    try:
        dp.maps["sip_ports"].update(_abi.U32.pack(SIP_PORT), _abi.U8.pack(1))
        block = dp.maps["block_v4"]
        prog = Program(OURS, dp.prog_fd,
                       {c.key: c.ours[0] for c in cases()},
                       block.max_entries)
        yield dp, prog
    finally:
        dp.close()
        os.close(dp.prog_fd)


def build_trivial() -> Path:
    if (TRIVIAL_OBJ.exists()
            and TRIVIAL_OBJ.stat().st_mtime >= TRIVIAL_SRC.stat().st_mtime):
        return TRIVIAL_OBJ
    arch = "arm64" if platform.machine() == "aarch64" else "x86"
    run("clang", "-target", "bpf", "-O2", "-mcpu=v3", "-g",
        "-D__TARGET_ARCH_%s" % arch, "-I", str(REPO / "build"),
        "-I", "/usr/include", "-Wall", "-Wno-unused",
        "-c", str(TRIVIAL_SRC), "-o", str(TRIVIAL_OBJ))
    return TRIVIAL_OBJ


@contextlib.contextmanager
def trivial(pins: Path) -> Iterator[Program]:
    pin = pins / "trivial"
    run(BPFTOOL, "prog", "load", str(build_trivial()), str(pin),
        "type", "xdp")
    try:
        fd = _bpf.obj_get(str(pin))
    finally:
        pin.unlink()
    with fd_closed(fd):
        yield Program(TRIVIAL, fd, {c.key: _abi.XDP_PASS for c in cases()})


@contextlib.contextmanager
def veth_pair() -> Iterator[tuple[str, str]]:
    try:
        run("ip", "link", "add", VETH[0], "type", "veth",
            "peer", "name", VETH[1])
        for name in VETH:
            run("ip", "link", "set", name, "up")
        yield VETH
    finally:
        quiet("ip", "link", "del", VETH[0])


@contextlib.contextmanager
def xdp_filter_state() -> Iterator[None]:
    """Remove what xdp-filter and libxdp leave in bpffs after unloading."""
    had_libxdp_dir = LIBXDP_PINS.exists()
    try:
        yield
    finally:
        # check_host() made sure these pins did not exist before us.
        shutil.rmtree(XDP_FILTER_PINS, ignore_errors=True)
        if not had_libxdp_dir:
            with contextlib.suppress(OSError):
                LIBXDP_PINS.rmdir()     # only when empty


def attached_prog_id(iface: str) -> int:
    info = json.loads(run(BPFTOOL, "-j", "net", "show", "dev", iface))
    xdp = [p for entry in info for p in entry.get("xdp", [])]
    if len(xdp) != 1:
        raise BenchError("no XDP program on %s: %r" % (iface, info))
    return int(xdp[0]["id"])


def xdp_filter_prog_fd(iface: str) -> tuple[int, str]:
    """An fd of the xdp-filter program itself on iface, and how it runs.

    libxdp attaches either the xdp-filter program directly (when its
    dispatcher cannot load, as on kernels without freplace for XDP) or a
    dispatcher with xdp-filter as an extension; xdp-filter pins its
    program under programs/<iface>/ in both cases.
    """
    prog_id = attached_prog_id(iface)
    fd = _bpf.prog_fd_by_id(prog_id)
    name = _bpf.prog_info(fd).name.decode()
    if name.startswith("xdpfilt_"):
        return fd, "`%s` (id %d, attached directly: libxdp's dispatcher " \
            "did not load here)" % (name, prog_id)
    os.close(fd)
    pins = list((XDP_FILTER_PINS / "programs" / iface).iterdir())
    if len(pins) != 1:
        raise BenchError("cannot find xdp-filter's program on %s" % iface)
    pinned = _bpf.obj_get(str(pins[0]))
    try:
        info = _bpf.prog_info(pinned)
    finally:
        os.close(pinned)
    if info.type != BPF_PROG_TYPE_XDP:
        raise BenchError("xdp-filter runs as an extension of libxdp's "
                         "dispatcher on %s: it cannot be test-run alone"
                         % iface)
    return _bpf.prog_fd_by_id(info.id), "`%s` (id %d, behind libxdp's " \
        "dispatcher, test-run alone)" % (info.name.decode(), info.id)


@contextlib.contextmanager
def xdp_filter(iface: str, label: str,
               features: Sequence[str] = ()) -> Iterator[Program]:
    """xdp-filter loaded on iface with its default policy (allow: the
    listed addresses are the ones dropped)."""
    args = ["-f", ",".join(features)] if features else []
    try:
        run("xdp-filter", "load", *args, iface)
        fd, detail = xdp_filter_prog_fd(iface)
        with fd_closed(fd):
            yield Program(label, fd,
                          {c.key: c.xdp_filter for c in cases()},
                          xdp_filter_map_capacity(), detail)
    finally:
        quiet("xdp-filter", "unload", iface)


def xdp_filter_map() -> _bpf.Map:
    return _bpf.Map.open_pinned(str(XDP_FILTER_PINS / "filter_ipv4"))


def xdp_filter_map_capacity() -> int:
    with xdp_filter_map() as m:
        return m.max_entries


def xdp_filter_value() -> bytes:
    """The per-CPU value xdp-filter itself writes for `ip ADDR -m src`.

    Taken from the tool (one address added with it) rather than assumed:
    a u64 per possible CPU, MAP_FLAG_SRC in the low bits and a hit counter
    from bit 6 up.
    """
    run("xdp-filter", "ip", "-m", "src", str(BLOCKED_SRC))
    with xdp_filter_map() as m:
        value = m.lookup(BLOCKED_SRC.packed)
    if value is None:
        raise BenchError("xdp-filter ip did not write %s" % BLOCKED_SRC)
    slot = struct.unpack_from("=Q", value)[0]
    if slot & 0x3F != XDP_FILTER_SRC:
        raise BenchError("unexpected xdp-filter value %#x" % slot)
    return value


# -- filling the blocklists -----------------------------------------------


@dataclass
class Lists:
    """Both blocklists, grown in place from one address sequence."""

    dp: Dataplane
    addrs: list[bytes]
    xdpf_value: bytes | None = None
    ours_len: int = 0
    xdpf_len: int = 0
    fills: list[tuple[int, float]] = field(default_factory=list)

    def grow(self, entries: int, xdpf_capacity: int | None) -> None:
        self._grow_ours(entries)
        if xdpf_capacity is not None and entries <= xdpf_capacity:
            self._grow_xdpf(entries)

    def _grow_ours(self, entries: int) -> None:
        new = self.addrs[self.ours_len:entries]
        keys = b"".join(_abi.LPM_V4_KEY.pack(32, a) for a in new)
        value = _abi.ENTRY.pack(0, SOURCE_TAG, 0)
        start = time.monotonic()
        self.dp.maps["block_v4"].update_batch(keys, value * len(new))
        self.fills.append((len(new), time.monotonic() - start))
        self.ours_len = entries

    def _grow_xdpf(self, entries: int) -> None:
        if self.xdpf_value is None:
            self.xdpf_value = xdp_filter_value()    # writes addrs[0]
            self.xdpf_len = 1
        new = self.addrs[self.xdpf_len:entries]
        with xdp_filter_map() as m:
            m.update_batch(b"".join(new), self.xdpf_value * len(new))
        self.xdpf_len = entries


# -- verdict checks and timing --------------------------------------------


def check_ours(dp: Dataplane, case: Case) -> None:
    """Our verdict and the one counter that moved, as in the tests."""
    outcome = dp.run(case.frame)
    action, reason = case.ours
    if outcome.action != action or outcome.reasons != [reason]:
        raise BenchError(
            "%s: %s gave %s %s, expected %s %s" % (
                case.title, OURS, ACTIONS.get(outcome.action),
                [_abi.REASONS[r] for r in outcome.reasons],
                ACTIONS[action], _abi.REASONS[reason]))


def check_verdict(prog: Program, case: Case) -> None:
    got = _bpf.prog_test_run(prog.fd, case.frame).retval
    if got != prog.expect[case.key]:
        raise BenchError("%s: %s returned %s, expected %s" % (
            case.title, prog.label, ACTIONS.get(got, got),
            ACTIONS[prog.expect[case.key]]))


Key = tuple[str, str, int]      # (program, case, entries)


@dataclass
class Results:
    samples: dict[Key, list[int]] = field(default_factory=dict)
    fills: list[tuple[int, float]] = field(default_factory=list)

    def add(self, key: Key, ns: int) -> None:
        self.samples.setdefault(key, []).append(ns)

    def median(self, prog: str, case: str, entries: int) -> float | None:
        got = self.samples.get((prog, case, entries))
        return statistics.median(got) if got else None

    def cell(self, prog: str, case: str, entries: int) -> str:
        got = self.samples.get((prog, case, entries))
        if not got:
            return "n/a"
        text = _ns(statistics.median(got))
        if len(got) > 1:
            text += " (%d–%d)" % (min(got), max(got))
        return text


def _count(n: int) -> str:
    return f"{n:,}"


def _ns(value: float) -> str:
    return "%d" % value if value == int(value) else "%.1f" % value


def timed(prog: Program, case: Case, repeat: int) -> int:
    outcome = _bpf.prog_test_run(prog.fd, case.frame, repeat)
    if outcome.retval != prog.expect[case.key]:
        raise BenchError("%s changed its verdict on %s while timed"
                         % (prog.label, case.title))
    return outcome.duration_ns


def measure(programs: Sequence[Program], frames: Sequence[Case],
            entries: int, repeat: int, rounds: int,
            results: Results) -> None:
    """rounds rounds, each running every (program, frame) once, so that
    slow drifts of the machine spread over all of them alike."""
    live = [p for p in programs if p.measures(entries)]
    for prog in live:                       # warm-up, not recorded
        for case in frames:
            timed(prog, case, max(1, repeat // 10))
    for _round in range(rounds):
        for prog in live:
            for case in frames:
                key_entries = entries if prog.capacity is not None else 0
                results.add((prog.label, case.key, key_entries),
                            timed(prog, case, repeat))


# -- the report -----------------------------------------------------------


@dataclass
class Setup:
    """What the report says about how it was measured."""

    argv: list[str]
    repeat: int
    rounds: int
    sizes: tuple[int, ...]
    xdpf_capacity: int
    xdpf_details: dict[str, str]        # label -> how the program runs
    fills: list[tuple[int, float]]      # (entries added, seconds)


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    model = found.group(1).strip() if found else platform.processor()
    return "%s, %d CPUs" % (model or "unknown", os.cpu_count() or 0)


def xdp_tools_version() -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}",
                           "xdp-tools"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "unknown"


def command_line(argv: Sequence[str]) -> str:
    return shlex.join([".venv/bin/python", "bench/dataplane.py", *argv])


def header(setup: Setup) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    progs = "; ".join("%s: %s" % kv for kv in setup.xdpf_details.items())
    return [
        "### Data plane: ns per packet (BPF_PROG_TEST_RUN)",
        "",
        "- Command: `%s`" % command_line(setup.argv),
        "- Date: %s; kernel %s; CPU: %s"
        % (when, platform.release(), cpu_model()),
        "- Each cell: median of %d rounds of %s runs (the kernel's mean "
        "ns/run per round), min–max of the rounds in parentheses."
        % (setup.rounds, _count(setup.repeat)),
        "- xdp-filter: xdp-tools %s, loaded with `xdp-filter load` and its "
        "default policy *allow* (the listed addresses are the ones "
        "dropped), the same source addresses written to its `filter_ipv4` "
        "map as `xdp-filter ip ADDR -m src` writes them. Programs: %s."
        % (xdp_tools_version(), progs),
    ]


def table(res: Results, setup: Setup, frames: Sequence[Case]) -> list[str]:
    cols = (OURS, XDPF, XDPF_IP)
    out = ["| Frame | Entries | %s | %s |" % (" | ".join(cols), TRIVIAL),
           "|---|---:|" + "---:|" * (len(cols) + 1)]
    for case in frames:
        for entries in setup.sizes:
            cells = [res.cell(p, case.key, entries) for p in cols]
            cells.append(res.cell(TRIVIAL, case.key, 0))
            out.append("| %s | %s | %s |" % (
                case.title, _count(entries), " | ".join(cells)))
    return out


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _x(value: float | None) -> str:
    return "n/a" if value is None else "%.2fx" % value


def _net(res: Results, prog: str, case: str, entries: int) -> float | None:
    """The median minus the floor: the program's own cost."""
    value = res.median(prog, case, entries)
    floor = res.median(TRIVIAL, case, 0)
    if value is None or floor is None:
        return None
    return value - floor


def _both(res: Results, num: tuple[str, str, int],
          den: tuple[str, str, int]) -> tuple[float | None, float | None]:
    """(raw, net of floor) ratio of two medians."""
    return (_ratio(res.median(*num), res.median(*den)),
            _ratio(_net(res, *num), _net(res, *den)))


TARGETS = (("blocked", "our blocklisted drop", 1.0),
           ("invite", "our INVITE pass", 1.5))


def versus(res: Results, setup: Setup) -> list[str]:
    """Ours against each xdp-filter, at the sizes both hold."""
    out = ["| Ratio | Entries | Raw | Net of floor | Target | Result |",
           "|---|---:|---:|---:|---:|---|"]
    for other in (XDPF, XDPF_IP):
        for case, what, target in TARGETS:
            for entries in setup.sizes:
                if entries > setup.xdpf_capacity:
                    continue
                raw, net = _both(res, (OURS, case, entries),
                                 (other, case, entries))
                result = "n/a" if raw is None else (
                    "met" if raw <= target else "**missed**")
                out.append("| %s / %s | %s | %s | %s | <= %.1fx | %s |" % (
                    what, other, _count(entries), _x(raw), _x(net),
                    target, result))
    return out


def scaling(res: Results, setup: Setup,
            frames: Sequence[Case]) -> list[str]:
    """Our cost at each list size against the smallest one."""
    small, bigger = setup.sizes[0], setup.sizes[1:]
    columns = " | ".join("%s / %s entries" % (_count(n), _count(small))
                         for n in bigger)
    out = ["| %s, frame | %s |" % (OURS, columns),
           "|---|" + "---:|" * len(bigger)]
    for case in frames:
        cells = []
        for entries in bigger:
            raw, net = _both(res, (OURS, case.key, entries),
                             (OURS, case.key, small))
            cells.append("%s (net %s)" % (_x(raw), _x(net)))
        out.append("| %s | %s |" % (case.title, " | ".join(cells)))
    return out


def notes(setup: Setup) -> list[str]:
    fills = ", ".join("+%s in %.3f s" % (_count(n), sec)
                      for n, sec in setup.fills)
    return [
        "Notes:",
        "",
        "- Sent frames: UDP 5060 -> 5060 with a one-line SIP request and "
        "the usual headers; sources and destination in 198.18.0.0/15 only "
        "(blocklisted source %s, untrusted source %s, server %s)."
        % (BLOCKED_SRC, CLEAN_SRC, SERVER),
        "- Blocklist: /32 entries, `expires_ns` 0, the blocklisted source "
        "among them, up to 131,070 drawn at random from 198.18.0.0/15 (so "
        "the untrusted source sits among listed addresses). The "
        "1,000,000-entry list adds a seeded random sample of the whole "
        "IPv4 space outside 198.18.0.0/15: those are only LPM-trie keys of "
        "a test run, no packet is ever sent to or from them.",
        "- xdp-filter's `filter_ipv4` is a PERCPU_HASH of max_entries %s, "
        "fixed in its object file: xdp-filter is measured at the sizes "
        "that fit only." % _count(setup.xdpf_capacity),
        "- `xdp-filter -f ipv4` is its IP-only variant (no Ethernet or "
        "port lookups), a leaner competitor than the default "
        "(all features).",
        "- Net of floor: both medians minus the trivial program's on the "
        "same frame, i.e. the programs' own cost without the test-run "
        "harness. The kernel reports whole ns per run: +-1 ns is noise.",
        "- Our block_v4 filled with batch updates: %s." % fills,
    ]


def report(res: Results, setup: Setup, frames: Sequence[Case]) -> str:
    parts = [header(setup), table(res, setup, frames), versus(res, setup)]
    if len(setup.sizes) > 1:
        parts.append(scaling(res, setup, frames))
    parts.append(notes(setup))
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def write_docs(text: str) -> None:
    block = "%s\n%s%s\n" % (BEGIN, text, END)
    if not DOCS.exists():
        DOCS.write_text(DOCS_HEADER + "\n" + block)
        return
    old = DOCS.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?",
                         re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + block
    DOCS.write_text(new)


# -- main -----------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="ns/packet of the XDP program vs xdp-filter through "
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


def check_all(dp: Dataplane, programs: Sequence[Program],
              frames: Sequence[Case], entries: int) -> None:
    """Every program's verdict on every frame before anything is timed."""
    for case in frames:
        check_ours(dp, case)
        for prog in programs:
            if prog.measures(entries):
                check_verdict(prog, case)


def run_sizes(dp: Dataplane, programs: Sequence[Program],
              frames: Sequence[Case], args: argparse.Namespace,
              sizes: Sequence[int], xdpf_capacity: int) -> Results:
    """Grow the lists size by size; check, then time, at each size."""
    lists = Lists(dp, packed(blocklist(max(sizes))))
    results = Results()
    for entries in sizes:
        print("[bench] %s entries" % _count(entries), file=sys.stderr)
        lists.grow(entries, xdpf_capacity)
        check_all(dp, programs, frames, entries)
        measure(programs, frames, entries, args.repeat, args.rounds,
                results)
    results.fills = lists.fills
    return results


def bench(args: argparse.Namespace, argv: Sequence[str]) -> str:
    sizes = QUICK_SIZES if args.quick else SIZES
    frames = cases()
    build()
    check_host()
    with contextlib.ExitStack() as stack:
        pins = stack.enter_context(pin_root())
        dp, mine = stack.enter_context(ours(pins))
        floor = stack.enter_context(trivial(pins))
        dev, peer = stack.enter_context(veth_pair())
        stack.enter_context(xdp_filter_state())
        xdpf = stack.enter_context(xdp_filter(dev, XDPF))
        xdpf_ip = stack.enter_context(xdp_filter(peer, XDPF_IP, ["ipv4"]))
        capacity = xdpf.capacity or 0
        results = run_sizes(dp, [mine, xdpf, xdpf_ip, floor], frames, args,
                            sizes, capacity)
    setup = Setup(list(argv), args.repeat, args.rounds, sizes, capacity,
                  {p.label: p.detail for p in (xdpf, xdpf_ip)},
                  results.fills)
    return report(results, setup, frames)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)     # run the clean-up of bench()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        text = bench(args, argv)
    except (BenchError, _bpf.BpfError) as e:
        print("bench/dataplane.py: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(text)
    if args.write_docs:
        write_docs(text)
        print("[bench] written to %s" % DOCS.relative_to(REPO),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
