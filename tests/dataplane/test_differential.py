"""The program against the reference model, frame by frame.

Every generated frame runs through BPF_PROG_TEST_RUN; the XDP action, the
one reason counter that moved (`stats` or `stats_ext`, by the frame's
length in bytes), the `proto_stats` counter and the `scanner_hits` and
`rate_limited` counters that moved must equal what tests/dataplane/model.py
says, and so must the `rate_state` and `bans_v2` entries of the frame's
source (`pardons` are drawn with the rest of the state). Runs are seeded:
FASTPATH_SEED=N reproduces a failure.

The program reads the clock of budgets and bans itself (the coarse
CLOCK_MONOTONIC, or the precise one on older kernels): at or after the
coarse time read before its run and at or before the precise time read
after it. The model decides with the first, and when that does not match,
with each time in between at which its verdict can change (a ban, a
pardon or a budget that runs out), then with the second. Times the
program writes (a budget's TAT, a ban's expiry and since) may differ from
the model's by the width of that window; the model then takes the
program's exact values, so that the next frames start from the same
state. List entries, on CLOCK_BOOTTIME,
are an hour away from expiring or long expired.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field

from plugins.module_utils import _abi
from tests.dataplane import frames, frames_gen, frames_limits, model
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import (
    Dataplane,
    Outcome,
    boot_ns,
    mono_floor_ns,
    mono_ns,
)

SEED = int(os.environ.get("FASTPATH_SEED", "20261122"))
GENERATED = 20_000
LIMITED = 12_000
RANDOM = 100_000
MODEL_CHECKED_RANDOM = 10_000
FLAG_BATCH = 250        # frames between two changes of the settings flags
LIMITS_BATCH = 400      # frames between two draws of limits and state


def _tables(plan: frames.AddressPlan, allow: list[model.Entry],
            block: list[model.Entry]) -> model.Tables:
    return model.Tables(sip_ports=set(plan.ports), allow=allow, block=block,
                        xsk_queues={XSK_QUEUE})


def _program(got: Outcome) -> str:
    return "%s %s/%s sig%s (%d, %d bytes counted)" % (
        model.ACTION_NAMES.get(got.action, got.action),
        [model.REASON_NAMES[i] for i in got.reasons],
        [_abi.PROTOS[i] for i in got.protos], got.signatures,
        got.bytes_counted, got.signature_bytes)


def _same_verdict(got: Outcome, want: model.Verdict, size: int) -> bool:
    protos = [] if want.proto is None else [want.proto]
    hits = [] if want.signature is None else [want.signature]
    classes = [] if want.limited_class is None else [want.limited_class]
    return ((got.action, got.reasons, got.protos, got.signatures,
             got.classes)
            == (want.action, [want.reason], protos, hits, classes)
            and got.bytes_counted == size
            and got.signature_bytes == (size if hits else 0)
            and got.class_bytes == (size if classes else 0))


def _close(kernel: object, mine: object, slack: int) -> bool:
    """Two rate_state or bans_v2 values (or None), equal up to slack ns
    in each time."""
    if kernel is None or mine is None:
        return kernel is mine
    if isinstance(kernel, model.Ban) and isinstance(mine, model.Ban):
        return ((kernel.reason, kernel.detail, kernel.packets)
                == (mine.reason, mine.detail, mine.packets)
                and abs(kernel.expires_ns - mine.expires_ns) <= slack
                and abs(kernel.since_ns - mine.since_ns) <= slack)
    assert isinstance(kernel, model.Rate) and isinstance(mine, model.Rate)
    pairs = list(zip(kernel.tat_ns, mine.tat_ns, strict=True)) + [
        (kernel.over_since_ns, mine.over_since_ns),
        (kernel.last_drop_ns, mine.last_drop_ns)]
    return all(abs(a - b) <= slack for a, b in pairs)


def _breakpoints(tables: model.Tables, key: model.Source | None,
                 lo: int, hi: int) -> list[int]:
    """lo, hi and the times between at which a decision about the source
    can change: its ban or its pardon ends, a class fits its budget
    again, its streak breaks or reaches ban_after_ns."""
    times = {lo, hi}
    if key is not None:
        ban = tables.bans.get(key)
        if ban is not None:
            times.add(ban.expires_ns)
        pardon = tables.pardons.get(key)
        if pardon is not None:
            times.add(pardon.until_ns)
        rate = tables.rate_state.get(key)
        limits = tables.limits
        for budget_set in (limits.trusted, limits.untrusted):
            for cls, budget in enumerate(budget_set):
                if rate is None or not budget.interval_ns:
                    continue
                burst = budget.burst or 1
                times.add(rate.tat_ns[cls] - (burst - 1) * budget.interval_ns)
                times.add(rate.last_drop_ns + burst * budget.interval_ns + 1)
        if rate is not None:
            times.add(rate.over_since_ns + limits.ban_after_ns)
    return sorted(t for t in times if lo <= t <= hi)


@dataclass
class Checker:
    """Runs frames through the program and the model, and keeps the
    model's state in step with the program's maps."""

    dp: Dataplane
    tables: model.Tables
    failures: list[str] = field(default_factory=list)
    reasons: Counter[int] = field(default_factory=Counter)
    expired_bans: int = 0           # frames whose source's ban had expired
    pardoned_drops: int = 0         # drops that may ban, of pardoned sources
    sources: dict[model.Source, set[model.IPAddress]] = field(
        default_factory=dict)

    def configure(self, tables: model.Tables) -> None:
        self.tables = tables
        self.dp.load_tables(tables)
        self.sources = {}

    def _state(self, key: model.Source | None
               ) -> tuple[object, object] | None:
        """The program's rate_state and bans_v2 entries for key; None when
        the limits map is all zero: the program then changes no state,
        and check_maps() compares the whole maps instead."""
        if key is None or self.tables.limits == model.Limits():
            return None
        return self.dp.rate(key), self.dp.ban(key)

    def _matches(self, got: Outcome, state: tuple[object, object] | None,
                 key: model.Source | None, size: int, mine: model.Tables,
                 want: model.Verdict, slack: int) -> bool:
        if not _same_verdict(got, want, size):
            return False
        if key is None or state is None:
            return True
        return (_close(state[0], mine.rate_state.get(key), slack)
                and _close(state[1], mine.bans.get(key), slack))

    def check(self, label: str, frame: bytes, rx_queue: int) -> None:
        before = self.tables
        key = model.frame_source(frame, before)
        pkt = model.parse(frame)
        boot, t0 = boot_ns(), mono_floor_ns()
        got = self.dp.run(frame, rx_queue)
        t1 = mono_ns()
        state = self._state(key)
        slack = t1 - t0
        chosen = None
        for now in _breakpoints(before, key, t0, t1):
            mine = before.fork()
            want = model.decide(frame, mine, boot, rx_queue, now)
            if self._matches(got, state, key, len(frame), mine, want, slack):
                chosen = mine
                break
        if chosen is None:
            mine = before.fork()
            want = model.decide(frame, mine, boot, rx_queue, t0)
            self.failures.append(
                "%s flags=%#x: program %s, rate and ban %s; model %s, "
                "rate %s, ban %s; frame %s" % (
                    label, before.flags, _program(got), state, want,
                    mine.rate_state.get(key) if key else None,
                    mine.bans.get(key) if key else None, frame.hex()))
            chosen = mine
        self.reasons[want.reason] += 1
        pardon = before.pardons.get(key) if key is not None else None
        if pardon is not None and pardon.until_ns > t1 and want.reason in (
                _abi.FP_RATE_LIMITED, _abi.FP_SCANNER):
            self.pardoned_drops += 1
        if key is not None and state is not None:
            old = before.bans.get(key)
            if old is not None and old.expires_ns <= t0 and \
                    before.limits.flags & _abi.FP_LIMIT_BANS:
                self.expired_bans += 1
            if pkt is not None and key in chosen.rate_state:
                self.sources.setdefault(key, set()).add(pkt.src)
            # The program's exact times from here on.
            rate, ban = state
            chosen.rate_state.pop(key, None)
            chosen.bans.pop(key, None)
            if isinstance(rate, model.Rate):
                chosen.rate_state[key] = rate
            if isinstance(ban, model.Ban):
                chosen.bans[key] = ban
        self.tables = chosen

    def check_maps(self, label: str) -> None:
        """The whole of rate_state, bans_v2 and pardons."""
        if self.dp.rate_state() != self.tables.rate_state:
            self.failures.append("%s: rate_state differs" % label)
        if self.dp.bans() != self.tables.bans:
            self.failures.append("%s: bans_v2 differ" % label)
        if self.dp.pardons() != self.tables.pardons:
            self.failures.append("%s: pardons differ" % label)

    def report(self, seed: int, count: int) -> str:
        return "seed %d: %d of %d frames differ:\n%s" % (
            seed, len(self.failures), count, "\n".join(self.failures[:20]))


def test_generated_frames_match_the_model(dataplane: Dataplane) -> None:
    rng = random.Random(SEED)
    plan, allow, block = frames_gen.default_plan(boot_ns() + 3600 * 10**9)
    checker = Checker(dataplane, _tables(plan, allow, block))
    checker.configure(checker.tables)
    for i, (label, frame, rx_queue) in enumerate(
            frames_gen.generate(rng, GENERATED, plan)):
        if i % FLAG_BATCH == 0:
            checker.tables.flags = rng.randrange(16)
            dataplane.set_flags(checker.tables.flags)
        checker.check(label, frame, rx_queue)
    assert not checker.failures, checker.report(SEED, GENERATED)
    # The run is only worth something if it reached every verdict, and
    # without limits or signatures no other.
    assert set(checker.reasons) == set(range(len(_abi.REASONS))) - {
        _abi.FP_RATE_LIMITED}
    assert dataplane.rate_state() == {} and dataplane.bans() == {}


def _draw(rng: random.Random, checker: Checker,
          addresses: list[model.IPAddress]) -> None:
    """New limits, signatures, flags and state for the next batch."""
    tables = checker.tables
    tables.limits = frames_limits.random_limits(rng)
    tables.signatures = frames_limits.random_signatures(rng)
    tables.flags = rng.randrange(16)
    keys = sorted({model.source_of(a, tables.limits) for a in addresses},
                  key=repr)
    tables.rate_state, tables.bans, tables.pardons = \
        frames_limits.random_state(rng, keys, mono_ns())
    checker.configure(tables)


def test_generated_frames_with_limits_and_fingerprints_match_the_model(
        dataplane: Dataplane) -> None:
    rng = random.Random(SEED + 2)
    plan, allow, block = frames_limits.limits_plan(boot_ns() + 3600 * 10**9)
    addresses = frames_limits.plan_addresses(plan)
    checker = Checker(dataplane, _tables(plan, allow, block))
    hits_before = dataplane.counters("scanner_hits")
    limited_before = dataplane.counters("rate_limited")
    shared = 0
    for i, (label, frame, rx_queue) in enumerate(
            frames_limits.generate(rng, LIMITED, plan)):
        if i % LIMITS_BATCH == 0:
            if i:
                checker.check_maps("batch %d" % (i // LIMITS_BATCH))
                shared += sum(len(s) > 1 for s in checker.sources.values())
            _draw(rng, checker, addresses)
        checker.check("#%d %s" % (i, label), frame, rx_queue)
    checker.check_maps("last batch")
    assert not checker.failures, checker.report(SEED + 2, LIMITED)
    hits = checker.tables.scanner_hits
    hits_after = dataplane.counters("scanner_hits")
    grown = [a[0] - b[0]
             for a, b in zip(hits_after, hits_before, strict=True)]
    assert grown == hits
    limited_after = dataplane.counters("rate_limited")
    assert [a[0] - b[0] for a, b in zip(limited_after, limited_before,
                                        strict=True)] == \
        checker.tables.rate_limited
    # Every verdict, bans that expired under way, sources that shared a
    # budget through their prefix, and signatures in several slots.
    assert set(checker.reasons) == set(range(len(model.REASON_NAMES)))
    assert checker.expired_bans > 0
    assert checker.pardoned_drops > 0
    assert shared > 0
    assert sum(1 for n in hits if n) > 3


def test_random_frames_never_abort_and_count_once(
        dataplane: Dataplane) -> None:
    rng = random.Random(SEED + 1)
    plan, allow, block = frames_gen.default_plan(boot_ns() + 3600 * 10**9)
    checker = Checker(dataplane, _tables(plan, allow, block))
    checker.configure(checker.tables)
    before = sum(p for p, _bytes in dataplane.counters("stats"))

    aborted = []
    for i, frame in enumerate(frames_gen.random_frames(rng, RANDOM,
                                                       plan.ports)):
        if i < MODEL_CHECKED_RANDOM:
            checker.check("random #%d" % i, frame, 0)
        elif dataplane.test_run(frame).retval == _abi.XDP_ABORTED:
            aborted.append(frame.hex())
    assert not aborted, "XDP_ABORTED on %d frames, e.g. %s" % (
        len(aborted), aborted[:3])
    assert not checker.failures, checker.report(SEED + 1,
                                                MODEL_CHECKED_RANDOM)
    after = sum(p for p, _bytes in dataplane.counters("stats"))
    assert after - before == RANDOM
    assert dataplane.rate_state() == {} and dataplane.bans() == {}
