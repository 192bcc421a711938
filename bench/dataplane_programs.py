"""The programs that bench/dataplane.py times: our release 0.1.0 built
from its git tag, the new program with its new features off and on,
Debian's xdp-filter, and a trivial XDP_PASS program as the floor; and
the blocklists they hold.

Everything here undoes what it creates (pins, a veth pair, xdp-filter's
bpffs state) on the way out, also on errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataplane_frames as df
from plugins.module_utils import _abi, _bpf, _build
from tests.dataplane.harness import BPFTOOL, mono_ns
from tests.releases import build_release_object

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
NEW_OBJ = BUILD / "sip_logic.bpf.o"
RELEASE = "0.1.0"
RELEASE_OBJ = BUILD / ("bench_sip_logic_%s.bpf.o" % RELEASE)
TRIVIAL_SRC = REPO / "bench" / "xdp_pass.bpf.c"
TRIVIAL_OBJ = BUILD / "bench_xdp_pass.bpf.o"
SOURCE_TAG = 0xBE7C            # fp_entry.source of the benchmark entries

# Interfaces and pins created here (never /sys/fs/bpf/vos_fastpath*).
VETH = ("fpbench0", "fpbench1")
BPFFS = Path("/sys/fs/bpf")
XDP_FILTER_PINS = BPFFS / "xdp-filter"     # pinned by xdp-filter itself
LIBXDP_PINS = BPFFS / "xdp"                # created by libxdp on load

BPF_PROG_TYPE_XDP = 6
XDP_FILTER_SRC = 1 << 0        # MAP_FLAG_SRC of xdp-tools' xdp-filter

REL = RELEASE
OFF = "new, features off"
ON = "new, limits + fingerprints"
XDPF, XDPF_IP = "xdp-filter", "xdp-filter -f ipv4"
TRIVIAL = "trivial XDP_PASS"
OURS = (REL, OFF, ON)
ACTIONS = {_abi.XDP_ABORTED: "ABORTED", _abi.XDP_DROP: "DROP",
           _abi.XDP_PASS: "PASS", _abi.XDP_TX: "TX",
           _abi.XDP_REDIRECT: "REDIRECT"}
REASON_NAMES = _abi.REASONS + _abi.REASONS_EXT


class BenchError(RuntimeError):
    """A precondition or a verdict check failed: nothing was measured."""


def run(*cmd: str, data: bytes | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, input=data,
                          check=False)
    if done.returncode:
        raise BenchError("%s failed: %s" % (
            shlex.join(cmd), done.stderr.decode(errors="replace").strip()))
    return done.stdout.decode(errors="replace")


def quiet(*cmd: str) -> None:
    """A clean-up command: its failure must not hide the real error."""
    subprocess.run(cmd, capture_output=True, check=False)


@contextlib.contextmanager
def fd_closed(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# -- our programs ---------------------------------------------------------


def build_release() -> Path:
    """Release 0.1.0's program, from its commit's bpf/ with the flags of
    today's build (_build.compile_flags, which the Makefile repeats)."""
    try:
        return build_release_object(RELEASE, RELEASE_OBJ)
    except subprocess.CalledProcessError as e:
        raise BenchError("Release %s's program could not be built: %s"
                         % (RELEASE, e)) from None


def counters(m: _bpf.Map) -> list[int]:
    """Packets of each counter of a per-CPU counter map, over all CPUs."""
    out = []
    for index in range(m.max_entries):
        raw = m.lookup(_abi.U32.pack(index)) or b""
        out.append(sum(_abi.COUNTER.unpack_from(raw, off)[0]
                       for off in range(0, len(raw), m.slot_size)))
    return out


class Ours:
    """One of our objects loaded with its maps pinned under pin_dir (the
    maps of `shared`, {name: pin}, reused), 5060 a SIP port. With features, the
    limits, bans and signatures of "new, limits + fingerprints" are set,
    and prepare() puts the state each frame needs before it is run."""

    def __init__(self, obj: Path, pin_dir: Path,
                 shared: dict[str, Path],
                 features: df.Features | None) -> None:
        pin_dir.mkdir()
        self.pin_dir = pin_dir
        self.features = features
        cmd = [BPFTOOL, "prog", "load", str(obj), str(pin_dir / "prog"),
               "type", "xdp"]
        for name, pin in shared.items():
            cmd += ["map", "name", name, "pinned", str(pin)]
        run(*cmd, "pinmaps", str(pin_dir))
        self.fd = _bpf.obj_get(str(pin_dir / "prog"))
        self.maps = {name: _bpf.Map.open_pinned(str(pin_dir / name))
                     for name in _abi.MAPS if (pin_dir / name).exists()}
        self.maps["sip_ports"].update(_abi.U32.pack(df.SIP_PORT),
                                      _abi.U8.pack(1))
        if features is not None:
            sigs = self.maps["scanner_sigs"]
            for slot, value in enumerate(features.slots):
                sigs.update(_abi.U32.pack(slot), value)
            self.maps["limits"].update(_abi.U32.pack(0), features.limits)

    def close(self) -> None:
        for m in self.maps.values():
            m.close()
        os.close(self.fd)

    def reasons(self) -> list[int]:
        """Packets counted per reason (stats, then stats_ext if any)."""
        out = counters(self.maps["stats"])
        if "stats_ext" in self.maps:
            out += counters(self.maps["stats_ext"])
        return out

    def prepare(self, key: str) -> None:
        """The limits and the source state that the frame `key` meets:
        - the over-budget INVITE: the roles' limits, its source's INVITE
          TAT an hour ahead and no streak, so that each of its runs is
          over budget and no round lasts the ban_after time that would
          ban it;
        - the banned source: a ban for an hour;
        - every other frame: its source a fresh budget state and every
          burst raised, so that it stays within budget for the round;
          and for the end-of-bound fingerprint no scanner ban, which
          would make its runs after the first BANNED drops.
        Budgets and bans run on CLOCK_MONOTONIC (docs/dataplane.md)."""
        features = self.features
        if features is None:
            return
        if key == "limited":
            lim = features.limits
            tat = [0] * _abi.CLASS_SLOTS
            tat[_abi.FP_CLASS_INVITE] = mono_ns() + 3600 * df.SECOND
            self._put("rate_state", df.LIMITED_SRC,
                      _abi.RATE.pack(*tat, 0, 0))
        elif key == "banned":
            lim = features.limits
            now = mono_ns()
            self._put("bans_v2", df.BANNED_SRC, _abi.BAN_V2.pack(
                now + 3600 * df.SECOND, now, 0, _abi.FP_RATE_LIMITED,
                _abi.FP_CLASS_INVITE))
        else:
            lim = features.roomy(scanner_ban=key != "scanner")
            src = df.SCANNER_SRC if key == "scanner" else df.CLEAN_SRC
            self._put("rate_state", src, b"\0" * _abi.RATE.size)
        self.maps["limits"].update(_abi.U32.pack(0), lim)

    def _put(self, name: str, src: ipaddress.IPv4Address,
             value: bytes) -> None:
        self.maps[name].update(df.source_key(src), value)


@dataclass
class Program:
    """A program under test: one column of the table."""

    label: str
    fd: int
    expect: dict[str, int]          # case key -> XDP action: what it runs
    capacity: int | None = None     # blocklist size limit; None: no list
    detail: str = ""                # how it was found, for the report
    ours: Ours | None = None
    # Ours only: case key -> the reason (stats or stats_ext) it counts.
    reasons: dict[str, int] = field(default_factory=dict)

    def runs(self, key: str, entries: int) -> bool:
        return key in self.expect and (self.capacity is None
                                       or entries <= self.capacity)


@contextlib.contextmanager
def our_programs(pins: Path, frames: Sequence[df.Case],
                 features: df.Features) -> Iterator[list[Program]]:
    """0.1.0, then the new program twice (features off, on). Each holds the
    blocklist where the collection puts it: 0.1.0 in its block_v4 trie,
    the new program (both builds share its maps) in block_v4_hosts, next
    to an empty trie."""
    loaded: list[Ours] = []
    try:
        off = Ours(NEW_OBJ, pins / "off", {}, None)
        loaded.append(off)
        rel = Ours(build_release(), pins / "release", {}, None)
        loaded.append(rel)
        shared = dict((name, off.pin_dir / name)
                      for name in ("block_v4", "block_v4_hosts"))
        on = Ours(NEW_OBJ, pins / "on", shared, features)
        loaded.append(on)
        if set(rel.maps) != set(_abi.MAPS_0_1) or set(on.maps) != set(
                _abi.MAPS):
            raise BenchError("the %s build has maps %s, the new one %s"
                             % (REL, sorted(rel.maps), sorted(on.maps)))
        out = []
        for label, ours in ((REL, rel), (OFF, off), (ON, on)):
            verdicts = {c.key: c.release if ours.features is None
                        else c.limited for c in frames}
            out.append(Program(
                label, ours.fd, {k: v[0] for k, v in verdicts.items()},
                ours.maps["block_v4"].max_entries, ours=ours,
                reasons={k: v[1] for k, v in verdicts.items()}))
        yield out
    finally:
        for ours in loaded:
            ours.close()


def block_maps(programs: Sequence[Program]) -> tuple[_bpf.Map, _bpf.Map]:
    """0.1.0's block_v4, and the block_v4_hosts of the new program."""
    rel, off = programs[0].ours, programs[1].ours
    if rel is None or off is None:
        raise BenchError("not our programs: %s, %s"
                         % (programs[0].label, programs[1].label))
    return rel.maps["block_v4"], off.maps["block_v4_hosts"]


# -- the floor ------------------------------------------------------------


def build_trivial() -> Path:
    if (TRIVIAL_OBJ.exists()
            and TRIVIAL_OBJ.stat().st_mtime >= TRIVIAL_SRC.stat().st_mtime):
        return TRIVIAL_OBJ
    flags = _build.compile_flags([str(REPO / "bpf")], [])
    run(*_build.compile_argv("clang", flags, str(TRIVIAL_SRC),
                             str(TRIVIAL_OBJ)))
    return TRIVIAL_OBJ


@contextlib.contextmanager
def trivial(pins: Path, frames: Sequence[df.Case]) -> Iterator[Program]:
    pin = pins / "trivial"
    run(BPFTOOL, "prog", "load", str(build_trivial()), str(pin),
        "type", "xdp")
    try:
        fd = _bpf.obj_get(str(pin))
    finally:
        pin.unlink()
    with fd_closed(fd):
        yield Program(TRIVIAL, fd, {c.key: _abi.XDP_PASS for c in frames})


# -- xdp-filter -----------------------------------------------------------


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
def xdp_filter(iface: str, label: str, frames: Sequence[df.Case],
               options: Sequence[str] = ()) -> Iterator[Program]:
    """xdp-filter loaded on iface with its default policy (allow: the
    listed addresses are the ones dropped), with its `-f` options; it
    runs today's frames."""
    args = ["-f", ",".join(options)] if options else []
    try:
        run("xdp-filter", "load", *args, iface)
        fd, detail = xdp_filter_prog_fd(iface)
        with fd_closed(fd):
            yield Program(label, fd,
                          {c.key: c.xdp_filter for c in frames
                           if c.xdp_filter is not None},
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
    run("xdp-filter", "ip", "-m", "src", str(df.BLOCKED_SRC))
    with xdp_filter_map() as m:
        value = m.lookup(df.BLOCKED_SRC.packed)
    if value is None:
        raise BenchError("xdp-filter ip did not write %s" % df.BLOCKED_SRC)
    slot = struct.unpack_from("=Q", value)[0]
    if slot & 0x3F != XDP_FILTER_SRC:
        raise BenchError("unexpected xdp-filter value %#x" % slot)
    return value


# -- filling the blocklists -----------------------------------------------


@dataclass
class Lists:
    """0.1.0's trie, the new program's hash and xdp-filter's map, grown in
    place from one address sequence."""

    block: _bpf.Map
    hosts: _bpf.Map
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
        self.block.update_batch(keys, value * len(new))
        self.hosts.update_batch(b"".join(new), value * len(new))
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
