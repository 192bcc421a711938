"""The report of bench/dataplane.py: the ns table, the targets and the
notes, as the Markdown of its section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataplane_frames as df
from bench.dataplane_programs import (
    OFF,
    ON,
    REL,
    TRIVIAL,
    XDPF,
    XDPF_IP,
)

COLUMNS = (REL, OFF, ON, XDPF, XDPF_IP)
REPO = Path(__file__).resolve().parents[1]

Key = tuple[str, str, int]      # (program, case, entries)


@dataclass
class Results:
    samples: dict[Key, list[int]] = field(default_factory=dict)
    runs: dict[Key, int] = field(default_factory=dict)   # per round
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
    load: tuple[float, float]           # 1-min load average, start and end
    seconds: float                      # the whole run
    features: df.Features               # the role's defaults, for ON
    filler_costs: dict[bytes, int]      # the fingerprint's filler probe


def _count(n: int) -> str:
    return f"{n:,}"


def _ns(value: float) -> str:
    return "%d" % value if value == int(value) else "%.1f" % value


def _x(value: float | None) -> str:
    return "n/a" if value is None else "%.2fx" % value


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _net(res: Results, prog: str, case: str, entries: int) -> float | None:
    """The median minus the floor on the same frame: the program's own
    cost."""
    value = res.median(prog, case, entries)
    floor = res.median(TRIVIAL, case, 0)
    if value is None or floor is None:
        return None
    return value - floor


def _both(res: Results, num: Key, den: Key
          ) -> tuple[float | None, float | None]:
    """(raw, net of floor) ratio of two medians."""
    return (_ratio(res.median(*num), res.median(*den)),
            _ratio(_net(res, *num), _net(res, *den)))


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


def source_state() -> str:
    """The commit of the working tree, and whether bpf/ differs from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args],
                              capture_output=True, text=True, check=False)
        return done.stdout.strip()
    changed = git("status", "--porcelain", "--", "bpf")
    return "commit %s%s" % (git("rev-parse", "--short", "HEAD") or "?",
                            ", bpf/ changed since" if changed else "")


def command_line(argv: Sequence[str]) -> str:
    return shlex.join([".venv/bin/python", "bench/dataplane.py", *argv])


def header(setup: Setup) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    progs = "; ".join("%s: %s" % kv for kv in setup.xdpf_details.items())
    return [
        "### Data plane: ns per packet (BPF_PROG_TEST_RUN)",
        "",
        "- Command: `%s` (%.0f s)" % (command_line(setup.argv),
                                      setup.seconds),
        "- Date: %s; kernel %s; CPU: %s; load average (1 min) %.2f at "
        "the start, %.2f at the end"
        % (when, platform.release(), cpu_model(), *setup.load),
        "- Each cell: median of %d rounds of %s runs (the kernel's mean "
        "ns/run per round; fewer runs where a round would last over half "
        "a second, see the notes), min–max of the rounds in parentheses."
        % (setup.rounds, _count(setup.repeat)),
        "- Programs: `%s` is release 0.1.0's program, built from the git "
        "tag with today's compile flags; `%s` is the working tree's "
        "program (%s) with the maps of the new features empty; `%s` is "
        "the same program with the roles' default budgets, bans and "
        "scanner signatures (see the notes). Each holds the blocklist "
        "where the collection puts it: 0.1.0 in its `block_v4` trie, the "
        "new program in `block_v4_hosts` (shared by both of its builds), "
        "its trie empty." % (REL, OFF, source_state(), ON),
        "- xdp-filter: xdp-tools %s, loaded with `xdp-filter load` and its "
        "default policy *allow* (the listed addresses are the ones "
        "dropped), the same source addresses written to its `filter_ipv4` "
        "map as `xdp-filter ip ADDR -m src` writes them; it runs today's "
        "three frames. Programs: %s." % (xdp_tools_version(), progs),
    ]


def table(res: Results, setup: Setup,
          frames: Sequence[df.Case]) -> list[str]:
    out = ["| Frame | Entries | %s | %s |" % (" | ".join(COLUMNS), TRIVIAL),
           "|---|---:|" + "---:|" * (len(COLUMNS) + 1)]
    for case in frames:
        for entries in setup.sizes:
            cells = [res.cell(p, case.key, entries) for p in COLUMNS]
            cells.append(res.cell(TRIVIAL, case.key, 0))
            out.append("| %s | %s | %s |" % (
                case.title, _count(entries), " | ".join(cells)))
    return out


def _target_row(res: Results, what: str, num: Key, den: Key,
                target: float) -> str:
    raw, net = _both(res, num, den)
    result = "n/a" if raw is None else (
        "met" if raw <= target else "**missed**")
    return "| %s | %s | %s | %s | <= %.2fx | %s |" % (
        what, _count(num[2]), _x(raw), _x(net), target, result)


TARGET_HEAD = ["| Ratio | Entries | Raw | Net of floor | Target | Result |",
               "|---|---:|---:|---:|---:|---|"]


def against_release(res: Results, setup: Setup,
                    frames: Sequence[df.Case]) -> list[str]:
    """The targets against 0.1.0: its cost kept with the new features
    off, bounded with them on."""
    titles = {c.key: c.title for c in frames}
    rows = []           # (what, program, frame, 0.1.0's frame, target)
    for key in df.TODAY:
        rows.append(("%s: %s / %s" % (titles[key], OFF, REL),
                     OFF, key, key, 1.05))
    for key in ("invite", "phone"):
        rows.append(("%s: %s / %s" % (titles[key], ON, REL),
                     ON, key, key, 1.5))
    for key in ("limited", "banned"):
        what = "%s: %s / %s %s" % (titles[key], ON, REL, titles["blocked"])
        rows.append((what, ON, key, "blocked", 1.0))
    out = list(TARGET_HEAD)
    for what, prog, num, den, target in rows:
        for entries in setup.sizes:
            out.append(_target_row(res, what, (prog, num, entries),
                                   (REL, den, entries), target))
    return out


def fingerprint(res: Results, setup: Setup) -> list[str]:
    """The end-of-bound fingerprint on its own: no target."""
    out = ["| End-of-bound fingerprint, %s | Entries | ns | Net of floor "
           "| / 0.1.0 on the same frame (pass) | / 0.1.0 valid INVITE "
           "(pass) |" % ON,
           "|---|---:|---:|---:|---:|---:|"]
    for entries in setup.sizes:
        net = _net(res, ON, "scanner", entries)
        same, _n1 = _both(res, (ON, "scanner", entries),
                          (REL, "scanner", entries))
        invite, _n2 = _both(res, (ON, "scanner", entries),
                            (REL, "invite", entries))
        out.append("| signature ending at byte %d of the value, line "
                   "after byte %d | %s | %s | %s | %s | %s |" % (
                       df.UA_VALUE_BOUND, df.UA_LINE_BOUND, _count(entries),
                       res.cell(ON, "scanner", entries),
                       "n/a" if net is None else _ns(net), _x(same),
                       _x(invite)))
    return out


XDPF_TARGETS = (("blocked", "blocklisted drop", 0.8),
                ("invite", "INVITE pass", 1.5))


def versus(res: Results, setup: Setup) -> list[str]:
    """Ours against each xdp-filter, at the sizes both hold."""
    out = list(TARGET_HEAD)
    for ours in (OFF, ON):
        for other in (XDPF, XDPF_IP):
            for case, what, target in XDPF_TARGETS:
                for entries in setup.sizes:
                    if entries > setup.xdpf_capacity:
                        continue
                    out.append(_target_row(
                        res, "%s, %s / %s" % (what, ours, other),
                        (ours, case, entries), (other, case, entries),
                        target))
    return out


FLAT_TARGET = 1.2     # the blocklisted drop, biggest list / smallest


def flat_drop(res: Results, setup: Setup) -> list[str]:
    """The blocklisted drop at the biggest list against the smallest: the
    target of a flat drop cost."""
    small, big = setup.sizes[0], setup.sizes[-1]
    out = list(TARGET_HEAD)
    for prog in (OFF, ON):
        out.append(_target_row(
            res, "blocklisted drop, %s, %s / %s entries"
            % (prog, _count(big), _count(small)),
            (prog, "blocked", big), (prog, "blocked", small), FLAT_TARGET))
    return out


def scaling(res: Results, setup: Setup,
            frames: Sequence[df.Case]) -> list[str]:
    """Our cost at each list size against the smallest one."""
    small, bigger = setup.sizes[0], setup.sizes[1:]
    columns = " | ".join("%s / %s entries" % (_count(n), _count(small))
                         for n in bigger)
    out = ["| %s, frame | %s |" % (ON, columns),
           "|---|" + "---:|" * len(bigger)]
    for case in frames:
        cells = []
        for entries in bigger:
            raw, net = _both(res, (ON, case.key, entries),
                             (ON, case.key, small))
            cells.append("%s (net %s)" % (_x(raw), _x(net)))
        out.append("| %s | %s |" % (case.title, " | ".join(cells)))
    return out


def _budgets(option: object) -> str:
    """A group of budgets of the `limits` option, as the role gives it."""
    if not isinstance(option, dict) or not option:
        return "none"
    return ", ".join("%s %s/s burst %s" % (cls, b.get("rate"),
                                           b.get("burst"))
                     for cls, b in option.items() if isinstance(b, dict))


def fewer_runs(res: Results, setup: Setup,
               frames: Sequence[df.Case]) -> str:
    """The cells timed with fewer runs a round than the others."""
    titles = {c.key: c.title for c in frames}
    cells = []
    for (prog, case, entries), n in sorted(res.runs.items()):
        if n < setup.repeat:
            cells.append("%s on %s at %s entries: %s" % (
                prog, titles[case], _count(entries), _count(n)))
    if not cells:
        return "every cell ran %s times a round" % _count(setup.repeat)
    return "runs a round where fewer than %s: %s" % (
        _count(setup.repeat), "; ".join(cells))


def notes(res: Results, setup: Setup,
          frames: Sequence[df.Case]) -> list[str]:
    fills = ", ".join("+%s in %.3f s" % (_count(n), sec)
                      for n, sec in setup.fills)
    opt = setup.features.option
    last = setup.features.last_signature()
    costs = setup.filler_costs
    worst = max(costs, key=costs.__getitem__)
    best = min(costs, key=costs.__getitem__)
    phone = df.phone_invite()
    return [
        "Notes:",
        "",
        "- Sent frames: UDP 5060 -> 5060, sources and destination in "
        "198.18.0.0/15 only (blocklisted source %s, untrusted source %s, "
        "over-budget source %s, banned source %s, scanner %s, server %s). "
        "Today's three are a one-line SIP request with the usual headers; "
        "the phone INVITE (%s bytes of SIP) has `User-Agent: %s` %d "
        "bytes in, an Authorization header and SDP."
        % (df.BLOCKED_SRC, df.CLEAN_SRC, df.LIMITED_SRC, df.BANNED_SRC,
           df.SCANNER_SRC, df.SERVER, _count(len(phone)),
           df.PHONE_UA.decode(), phone.index(b"User-Agent:")),
        "- `%s`: the fastpath role's defaults (%s), packed by the "
        "collection's own code: untrusted budgets %s; trusted %s; bans %s, "
        "ban_after %s, ban_time %s, scanner_ban_time %s; %d signatures "
        "(%s). Before each timed round of a frame the program gets the "
        "state that frame meets: the over-budget source an INVITE TAT an "
        "hour ahead and no streak (no round lasts the ban_after time); "
        "the banned source a ban for an hour; every other frame's source "
        "a fresh budget state and bursts of %s, as one source sends %s "
        "requests back to back in a round and must stay within budget to "
        "pass or to reach the fingerprint and stealth steps (the "
        "instructions are those of any request within budget); the "
        "fingerprint frame no scanner ban (else its runs after the first "
        "would be BANNED drops). Each round's counters are checked: the "
        "frame's reason moved by the number of runs, and nothing else."
        % (ON, df.ROLE_DEFAULTS.relative_to(REPO),
           _budgets(opt["untrusted"]), _budgets(opt["trusted"]),
           "on" if opt["bans"] else "off", opt["ban_after"],
           opt["ban_time"], opt["scanner_ban_time"],
           len(setup.features.signatures),
           ", ".join(setup.features.signatures),
           _count(df.ROOMY_BURST), _count(setup.repeat)),
        "- End-of-bound fingerprint: an INVITE whose `User-Agent` line "
        "starts right after the first %d bytes of the request and whose "
        "value's bytes %d to %d are `%s` (the last signature in slot "
        "order): the search finds it as late as its bounds allow. Before "
        "it the value is a space and one filler byte repeated: `%s`, the "
        "costliest of the %d bytes tried (`%s`), %s ns against %s ns for "
        "the cheapest, `%s`, in a probe of %s runs each. Checked before "
        "timing: with the line or the signature one byte later, the "
        "request passes."
        % (df.UA_LINE_BOUND, df.UA_VALUE_BOUND - len(last) + 1,
           df.UA_VALUE_BOUND, last.decode(), worst.decode(), len(costs),
           df.FILLERS.decode(), _count(costs[worst]), _count(costs[best]),
           best.decode(), _count(df.FILLER_PROBE_RUNS)),
        "- Blocklist: /32 entries, `expires_ns` 0, the blocklisted source "
        "among them, up to %s drawn at random from 198.18.0.0/15 (so the "
        "other sources sit among listed addresses). The 1,000,000-entry "
        "list adds a seeded random sample of the whole IPv4 space outside "
        "198.18.0.0/15: those are only LPM-trie keys of a test run, no "
        "packet is ever sent to or from them." % _count(df.dense_count()),
        "- xdp-filter's `filter_ipv4` is a PERCPU_HASH of max_entries %s, "
        "fixed in its object file: xdp-filter is measured at the sizes "
        "that fit only. `xdp-filter -f ipv4` is its IP-only variant (no "
        "Ethernet or port lookups), a leaner competitor than the default "
        "(all features)." % _count(setup.xdpf_capacity),
        "- Net of floor: both medians minus the trivial program's on the "
        "same frame, i.e. the programs' own cost without the test-run "
        "harness. The kernel reports whole ns per run: +-1 ns is noise. "
        "Targets are judged on the raw ratio.",
        "- The blocklist filled with batch updates (0.1.0's block_v4 and "
        "the new program's block_v4_hosts, both each time): %s." % fills,
        "- Timed rounds: %s." % fewer_runs(res, setup, frames),
    ]


def report(res: Results, setup: Setup, frames: Sequence[df.Case]) -> str:
    parts = [header(setup), table(res, setup, frames),
             ["Against release 0.1.0:", ""]
             + against_release(res, setup, frames),
             fingerprint(res, setup),
             ["Against xdp-filter:", ""] + versus(res, setup)]
    if len(setup.sizes) > 1:
        parts.append(["A flat drop cost:", ""] + flat_drop(res, setup))
        parts.append(scaling(res, setup, frames))
    parts.append(notes(res, setup, frames))
    return "\n\n".join("\n".join(p) for p in parts) + "\n"
