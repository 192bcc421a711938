"""The report of bench/line_rate.py: the cost and rate tables, the
targets, the floods and the notes, as the Markdown of its section of
docs/benchmarks.md."""

from __future__ import annotations

import platform
import shlex
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataplane_frames as df
from bench import line_rate_net as ln
from bench import line_rate_traffic as lt
from bench.dataplane_report import _budgets, cpu_model, source_state
from bench.line_rate_filters import Load
from plugins.module_utils import _abi

LABELS = {"ours": "vos.fastpath", "nft": "nftables",
          "ipt": "iptables + ipset", "floor": "XDP_DROP floor"}
FILTERS = ("ours", "nft", "ipt")
COLUMNS = (*FILTERS, "floor")
TARGET_CELL = (100_000, 1_000)          # entries, sources
TARGET_VS_PEERS = 0.25
TARGET_SCALING = 1.3

Key = tuple[str, int, int]              # (filter, entries, sources)


@dataclass
class Sample:
    """One run on one filter."""

    cpu_ns: int             # the receiving NAPI thread's CPU time
    handled: int            # frames the filter counted
    sent: ln.Sent

    @property
    def ns_per_packet(self) -> float:
        return self.cpu_ns / self.handled if self.handled else 0.0

    @property
    def pps(self) -> float:
        """Frames handled per second of the generator's sending."""
        return self.handled / self.sent.seconds if self.sent.seconds else 0

    @property
    def busy(self) -> float:
        """Share of the sending time the receiving thread ran."""
        return self.cpu_ns / (self.sent.seconds * 1e9) \
            if self.sent.seconds else 0.0


@dataclass
class Flood:
    title: str
    config: Path
    packets: int
    runs: int
    ours: list[Sample] = field(default_factory=list)
    plain: list[Sample] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    tracked: int = 0                    # rate_state entries after run 1
    bans_before: int = 0
    bans_after: int = 0
    banned_drops: int = 0
    legit_before: bytes | None = None
    legit_after: bytes | None = None


@dataclass
class Report:
    argv: list[str]
    runs: int
    packets: int
    sizes: tuple[int, ...]
    sources: tuple[int, ...]
    samples: dict[Key, list[Sample]] = field(default_factory=dict)
    warmup: list[Sample] = field(default_factory=list)  # one per COLUMNS
    loads: dict[str, list[Load]] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    floods: list[Flood] = field(default_factory=list)
    flood_list: int = 0
    stats_blocked: int = 0
    nft_dropped: int = 0
    frame_len: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0
    features: df.Features | None = None

    def add(self, key: Key, sample: Sample) -> None:
        self.samples.setdefault(key, []).append(sample)

    def handled(self, name: str) -> int:
        """Frames the filter counted over every run, its warm-up run
        included."""
        runs = sum(s.handled for (key, _e, _n), got in self.samples.items()
                   if key == name for s in got)
        warmup = self.warmup[COLUMNS.index(name)] if self.warmup else None
        return runs + (warmup.handled if warmup else 0)

    def median_ns(self, key: Key) -> float | None:
        got = self.samples.get(key)
        return statistics.median(s.ns_per_packet for s in got) \
            if got else None

    def net_values(self, key: Key) -> list[float]:
        """Each run's cost net of the floor's in the same run and cell
        (measured seconds apart, so a drift of the machine cancels)."""
        floors = self.samples.get(("floor", key[1], key[2]), [])
        return [a.ns_per_packet - b.ns_per_packet for a, b in
                zip(self.samples.get(key, []), floors, strict=False)]

    def net_ns(self, key: Key) -> float | None:
        got = self.net_values(key)
        return statistics.median(got) if got else None


# -- formatting -----------------------------------------------------------


def _count(n: float) -> str:
    return f"{int(n):,}"


def _kpps(pps: float) -> str:
    return "%dk" % round(pps / 1000)


def _spread(values: Sequence[float], fmt: str) -> str:
    text = fmt % statistics.median(values)
    if len(values) > 1:
        text += (" (" + fmt + "–" + fmt + ")") % (min(values), max(values))
    return text


def _mb(value: int | None) -> str:
    return "–" if value is None else "%d MB" % value


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def command_line(argv: Sequence[str]) -> str:
    return shlex.join([".venv/bin/python", "bench/line_rate.py", *argv])


# -- sections -------------------------------------------------------------


def header(rep: Report) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        "### Line rate: receiving-core CPU per packet, real frames "
        "through veth",
        "",
        "- Command: `%s` (%.0f s)" % (command_line(rep.argv), rep.seconds),
        "- Date: %s; kernel %s; CPU: %s; load average (1 min) %.2f at "
        "the start, %.2f at the end"
        % (when, platform.release(), cpu_model(), *rep.load),
        "- Generator of the blocklist runs: `bench/line_rate_gen.py` in "
        "its own network namespace on CPU %d, one `BPF_PROG_TEST_RUN` "
        "of N repeats in live-frames mode (batches of 64): each copy of "
        "an Ethernet/IPv4/UDP 5060 -> 5060 frame (%d bytes, a short SIP "
        "INVITE) gets the next source and its IP header checksum, and is "
        "redirected to the sending veth as an XDP frame. Floods: %s, "
        "`taskset -c %d trafgen -n N %s`."
        % (ln.GEN_CPU, rep.frame_len, ln.trafgen_version(), ln.GEN_CPU,
           " ".join(ln.TRAFGEN_OPTS)),
        "- Receiving: one veth pair per filter, its receiving end in a "
        "namespace of its own with native XDP and threaded NAPI (`echo 1 "
        "> /sys/class/net/<dev>/threaded`, written once the XDP program "
        "is attached: veth has no NAPI before, and the kernel refuses the "
        "write), the NAPI thread `napi/<dev>-<id>` pinned to CPU %d; it "
        "does all the receive work of its veth. Cost: that thread's CPU "
        "time (`/proc/<pid>/schedstat`) over the frames the filter "
        "counted. Every filter got one unrecorded run first." % ln.RX_CPU,
        "- Each cell: median of %d runs of %s frames, min–max of the runs "
        "in parentheses." % (rep.runs, _count(rep.packets)),
        "- vos.fastpath: the working tree's program (%s), %s, with the "
        "fastpath role's limits and signatures; its list filled with "
        "`vos.fastpath.bpf_map_entry` (`state: exact`, `src` a file)."
        % (source_state(), rep.details.get("ours", "")),
        "- nftables %s: %s; the trivial XDP_PASS program on the veth."
        % (ln.tool_version(["nft", "--version"]).split()[1],
           rep.details.get("nft", "")),
        "- iptables + ipset: %s, %s: %s; the trivial XDP_PASS program on "
        "the veth." % (ln.tool_version(["iptables", "-V"]),
                       ln.tool_version(["ipset", "-v"]).split(",")[0],
                       rep.details.get("ipt", "")),
    ]


def _row(entries: int, sources: int, cells: Sequence[str]) -> str:
    return "| %s | %s | %s |" % (_count(entries), _count(sources),
                                 " | ".join(cells))


def _cells(rep: Report) -> Iterator[tuple[int, int]]:
    """(entries, sources) of the cells measured, in table order."""
    for entries in rep.sizes:
        for n in rep.sources:
            if n <= entries:
                yield entries, n


def _matrix(rep: Report, intro: str, keys: Sequence[str],
            cell: Callable[[Key], str]) -> list[str]:
    """A table of one cell per filter of `keys` for each list size and
    source count, under its introduction."""
    out = ["", intro, "",
           "| Entries | Sources | %s |" % " | ".join(LABELS[k] for k in keys),
           "|---:|---:|" + "---:|" * len(keys)]
    for entries, n in _cells(rep):
        out.append(_row(entries, n, [cell((k, entries, n)) for k in keys]))
    return out


def cost_table(rep: Report) -> list[str]:
    def cost(key: Key) -> str:
        got = rep.samples.get(key)
        return _spread([s.ns_per_packet for s in got], "%.0f") if got \
            else "n/a"

    def net(key: Key) -> str:
        values = rep.net_values(key)
        return _spread(values, "%.0f") if values else "n/a"

    return _matrix(
        rep, "CPU of the receiving core per dropped packet, ns (= ms per "
        "million packets); the XDP_DROP floor is what veth itself costs "
        "(see the notes):", COLUMNS, cost) + _matrix(
        rep, "Net of the floor: each filter's own cost, ns per packet (each "
        "run's cost minus the floor's in the same run; median, min–max):",
        FILTERS, net)


def rate_table(rep: Report) -> list[str]:
    def rate(key: Key) -> str:
        got = rep.samples.get(key, [])
        return "%s pps, %.0f%% busy" % (
            _kpps(statistics.median(s.pps for s in got)),
            100 * statistics.median(s.busy for s in got)) if got else "n/a"

    return _matrix(rep, "Packets per second dropped while the generator "
                   "sent (median), and the share of that time the receiving "
                   "thread ran:", COLUMNS, rate)


def _run_ratios(rep: Report, num: Key, den: Key) -> str:
    """min–max of the ratios of the same runs (each run measures every
    filter in turn)."""
    pairs = zip(rep.samples.get(num, []), rep.samples.get(den, []),
                strict=False)
    ratios = [a.ns_per_packet / b.ns_per_packet for a, b in pairs
              if b.ns_per_packet]
    if len(ratios) < 2:
        return ""
    return " (runs %.2f–%.2f)" % (min(ratios), max(ratios))


def _net_pair(rep: Report, num: Key, den: Key) -> str:
    """Both sides net of the floor, and their ratio when both are above
    it."""
    a, b = rep.net_ns(num), rep.net_ns(den)
    if a is None or b is None:
        return "n/a"
    text = "%.0f / %.0f ns" % (a, b)
    return text + (" (%.2fx)" % (a / b) if a > 0 and b > 0 else "")


def targets(rep: Report) -> list[str]:
    entries, n = TARGET_CELL
    out = ["", "Targets, judged on the raw ratio of the medians (the runs' "
           "own ratios in parentheses); net of floor: both sides' own "
           "cost, ns per packet:", "",
           "| Target | Raw | Net of floor | Result |", "|---|---:|---:|---|"]

    def row(what: str, num: Key, den: Key, limit: float) -> None:
        raw = _ratio(rep.median_ns(num), rep.median_ns(den))
        if raw is None:
            out.append("| %s | n/a | n/a | not measured |" % what)
            return
        out.append("| %s | %.2fx%s | %s | %s |" % (
            what, raw, _run_ratios(rep, num, den), _net_pair(rep, num, den),
            "met" if raw <= limit else "**missed**"))

    for key in ("ipt", "nft"):
        row("vos.fastpath / %s, %s entries, %s sources: <= %.2fx"
            % (LABELS[key], _count(entries), _count(n), TARGET_VS_PEERS),
            ("ours", entries, n), (key, entries, n), TARGET_VS_PEERS)
    big, small = max(rep.sizes), min(rep.sizes)
    row("vos.fastpath at %s entries / at %s, 1 source: <= %.1fx"
        % (_count(big), _count(small), TARGET_SCALING),
        ("ours", big, 1), ("ours", small, 1), TARGET_SCALING)
    if len(rep.sizes) > 2:
        mid, many = sorted(rep.sizes)[-2], max(rep.sources)
        num, den = ("ours", big, many), ("ours", mid, many)
        raw = _ratio(rep.median_ns(num), rep.median_ns(den))
        if raw is not None:
            out.append("| vos.fastpath at %s entries / at %s, %s sources "
                       "(for information) | %.2fx%s | %s | |" % (
                           _count(big), _count(mid), _count(many), raw,
                           _run_ratios(rep, num, den),
                           _net_pair(rep, num, den)))
    return out


def flood_tables(rep: Report) -> list[str]:
    if not rep.floods:
        return []
    out = ["", "Detection on: floods of distinct spoofed sources, one "
           "INVITE each, to vos.fastpath with the role's limits and to "
           "the trivial XDP_PASS program (the stack's own cost of frames "
           "that pass):", "",
           "| Flood | Frames a run | Runs | trafgen reached | "
           "vos.fastpath ns/packet | trivial XDP_PASS ns/packet | "
           "Program's own share | vos.fastpath verdicts |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for f in rep.floods:
        ours = [s.ns_per_packet for s in f.ours]
        plain = [s.ns_per_packet for s in f.plain]
        verdicts = ", ".join("%s %s" % (k, _count(v))
                             for k, v in sorted(f.verdicts.items()))
        out.append("| %s | %s | %d | %s pps | %s | %s | %.0f | %s |" % (
            f.title, _count(f.packets), f.runs,
            _kpps(statistics.median(s.sent.pps for s in f.ours)),
            _spread(ours, "%.0f"), _spread(plain, "%.0f"),
            statistics.median(ours) - statistics.median(plain), verdicts))
    out += ["", "| Flood | Sources tracked after its first run "
            "(`rate_state`, %s at most) | Bans before -> after "
            "(`xdp_bans`) | Banned sources' next request | Legitimate "
            "source's budget state |"
            % _count(_abi.MAPS["rate_state"].max_entries),
            "|---|---:|---|---|---|"]
    for f in rep.floods:
        out.append("| %s | %s | %d -> %d | %d of %d dropped as BANNED | "
                   "%s |" % (f.title, _count(f.tracked), f.bans_before,
                             f.bans_after, f.banned_drops, f.bans_before,
                             _legit(f)))
    return out


def _legit(f: Flood) -> str:
    if f.legit_before is None:
        return "missing before the flood"
    if f.legit_after is None:
        return "**evicted**: its next request starts a full burst"
    if f.legit_after == f.legit_before:
        return "kept, unchanged"
    return "kept, changed"


def loads_table(rep: Report) -> list[str]:
    out = ["", "Filling the lists (each from the previous size: an exact "
           "sync for ours, flush and refill for the others); wall time "
           "and the tool's peak RSS (–: it was done before the first read, "
           "10 ms in):", "",
           "| Entries | %s |" % " | ".join(
               ("vos.fastpath.bpf_map_entry", "nft -f", "ipset restore")),
           "|---:|---:|---:|---:|"]
    for i, entries in enumerate(rep.sizes):
        cells = []
        for key in FILTERS:
            loads = rep.loads.get(key, [])
            cells.append("%.1f s, %s" % (loads[i].seconds,
                                         _mb(loads[i].rss_mb))
                         if i < len(loads) else "n/a")
        out.append("| %s | %s |" % (_count(entries), " | ".join(cells)))
    return out


def notes(rep: Report) -> list[str]:
    sent = {k: sum(s.sent.packets for (f, _e, _n), got in
                   rep.samples.items() if f == k for s in got)
            for k in LABELS}
    counted = {k: sum(s.handled for (f, _e, _n), got in rep.samples.items()
                      if f == k for s in got) for k in LABELS}
    delivered = "; ".join("%s counted %s of %s sent" % (
        LABELS[k], _count(counted[k]), _count(sent[k])) for k in LABELS)
    feats = rep.features
    limits = "" if feats is None else (
        "untrusted budgets %s; bans %s, ban_after %s, ban_time %s, "
        "scanner_ban_time %s; %d signatures" % (
            _budgets(feats.option.get("untrusted")),
            "on" if feats.option.get("bans") else "off",
            feats.option.get("ban_after"), feats.option.get("ban_time"),
            feats.option.get("scanner_ban_time"), len(feats.signatures)))
    return [
        "", "Notes:", "",
        "- Limits of the machine: 2 cores of a virtual machine (with "
        "steal time), one for the generator and one for the receiving "
        "thread, both shared with whatever else runs (see the load "
        "average). The live-frames generator sends faster than the "
        "receiving end drains its ring of 256 frames, and does not wait: "
        "the frames that find the ring full are dropped by veth before "
        "any filter sees them, at the sender's cost. The receiving "
        "thread still sleeps between polls when it has emptied the ring, "
        "and its CPU per packet includes those wake-ups (see the busy "
        "share), and moves with the load of the machine. veth is not a "
        "NIC (no DMA, no interrupts): the floor is what veth costs per "
        "XDP frame. A frame that XDP passes gets an skb built around it, "
        "which nftables and iptables need, as from a NIC's driver. The "
        "list sizes are "
        "measured one after the other, so a change in the machine's load "
        "between them moves a whole row; the floor, measured in every "
        "run, shows it, and the net costs take it out as far as it "
        "goes. Differences of a few tens of ns are within the noise.",
        "- Counting, at every run: vos.fastpath's `stats` map, every "
        "reason (each run must count BLOCKED only); the iptables rule's "
        "packet counter (`-L -v -x`); for nftables and the floor, the "
        "receiving veth's rx packets (veth counts every frame its XDP "
        "program sees), since any nft listing reads the whole set "
        "(seconds at 1,000,000 entries); the nftables rule's named "
        "counter is checked after each list size instead: it dropped "
        "%s, every frame its veth took. Over all runs: %s. After them "
        "`vos.fastpath.xdp_stats` read BLOCKED %s, the warm-up run "
        "included, as the `stats` map had counted." % (
            _count(rep.nft_dropped), delivered, _count(rep.stats_blocked)),
        "- Blocklists: the sources of the frames, a seeded sample of "
        "198.18.0.0/15, then a seeded sample of the IPv4 space outside it "
        "(0/8, 127/8 and 224/3 left out): those are only keys, no packet "
        "is sent to or from them. With 10 entries only the 1-source "
        "frames run (the 1,000 sources would not all be listed).",
        "- vos.fastpath's limits (the fastpath role's defaults, "
        "roles/fastpath/defaults/main.yml): %s. A blocklisted frame is "
        "dropped before the budgets are looked at." % limits,
        "- Floods: the blocklist holds %s entries then (the largest list "
        "without the 1,000 sources). trafgen counts bytes of the source "
        "address at run time (`dinc`, `csumip` for the IPv4 header "
        "checksum): two IPv4 templates give 2 x 255 x 256 distinct "
        "sources, every address of 198.18.0.0/15 outside the rows "
        "198.18.255.0/24 and 198.19.255.0/24, which hold the server, the "
        "legitimate source and the 100 banned ones; the IPv6 template's "
        "bytes 5 to 7 count with periods 253, 255 and 256, so each of "
        "its frames has a /64 of its own (the default source prefix). "
        "198.18.0.0/15 holds only 131,072 IPv4 addresses, hence IPv6 for "
        "a flood of a million. The IPv4 flood runs once (a second run "
        "would find its sources known); the IPv6 one is larger than "
        "`rate_state`, so every run meets new sources. IPv6 is off on "
        "the receiving end: the stack drops the IPv6 frames that pass "
        "at once, while IPv4 ones go as far as the route lookup, which "
        "is why the floors differ." % _count(rep.flood_list),
        "- Bans: one INVITE with the User-Agent `sipvicious` from each of "
        "100 sources before the floods made 100 scanner bans; after each "
        "flood `vos.fastpath.xdp_bans` lists them again and each banned "
        "source sends one more such request. The legitimate source sends "
        "%d INVITEs (within its burst) before each flood; its "
        "`rate_state` entry is compared before and after."
        % lt.LEGIT_REQUESTS,
    ]


def report(rep: Report) -> str:
    lines = (header(rep) + cost_table(rep) + rate_table(rep)
             + targets(rep) + flood_tables(rep) + loads_table(rep)
             + notes(rep))
    return "\n".join(lines) + "\n"
