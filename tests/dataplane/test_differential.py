"""The program against the reference model, frame by frame.

Every generated frame runs through BPF_PROG_TEST_RUN; the XDP action, the
one `stats` counter that moved (and by the frame's length in bytes) and the
`proto_stats` counter that moved must equal what tests/dataplane/model.py
says. Runs are seeded: FASTPATH_SEED=N reproduces a failure.
"""

from __future__ import annotations

import os
import random

from plugins.module_utils import _abi
from tests.dataplane import frames, model
from tests.dataplane.conftest import XSK_QUEUE
from tests.dataplane.harness import Dataplane, boot_ns

SEED = int(os.environ.get("FASTPATH_SEED", "20261122"))
GENERATED = 20_000
RANDOM = 100_000
MODEL_CHECKED_RANDOM = 10_000
FLAG_BATCH = 250        # frames between two changes of the settings flags


def _tables(plan: frames.AddressPlan, allow: list[model.Entry],
            block: list[model.Entry]) -> model.Tables:
    return model.Tables(sip_ports=set(plan.ports), allow=allow, block=block,
                        xsk_queues={XSK_QUEUE})


def _describe(outcome_reasons: list[int], protos: list[int]) -> str:
    return "%s/%s" % ([_abi.REASONS[i] for i in outcome_reasons],
                      [_abi.PROTOS[i] for i in protos])


def _check(dp: Dataplane, tables: model.Tables, label: str, frame: bytes,
           rx_queue: int) -> str | None:
    want = model.decide(frame, tables, boot_ns(), rx_queue)
    got = dp.run(frame, rx_queue)
    want_protos = [] if want.proto is None else [want.proto]
    if (got.action, got.reasons, got.protos) == (
            want.action, [want.reason], want_protos) and \
            got.bytes_counted == len(frame):
        return None
    return ("%s: program %d %s (%d bytes counted), model %s; frame %s"
            % (label, got.action, _describe(got.reasons, got.protos),
               got.bytes_counted, want, frame.hex()))


def test_generated_frames_match_the_model(dataplane: Dataplane) -> None:
    rng = random.Random(SEED)
    plan, allow, block = frames.default_plan(boot_ns() + 3600 * 10**9)
    tables = _tables(plan, allow, block)
    dataplane.load_tables(tables)

    failures: list[str] = []
    seen_reasons: set[int] = set()
    for i, (label, frame, rx_queue) in enumerate(
            frames.generate(rng, GENERATED, plan)):
        if i % FLAG_BATCH == 0:
            tables.flags = rng.randrange(16)
            dataplane.set_flags(tables.flags)
        seen_reasons.add(model.decide(frame, tables, boot_ns(),
                                      rx_queue).reason)
        problem = _check(dataplane, tables,
                         "%s flags=%#x" % (label, tables.flags), frame,
                         rx_queue)
        if problem:
            failures.append(problem)
    assert not failures, "seed %d: %d of %d frames differ:\n%s" % (
        SEED, len(failures), GENERATED, "\n".join(failures[:20]))
    # The run is only worth something if it reached every verdict.
    assert seen_reasons == set(range(len(_abi.REASONS))) - {
        _abi.FP_RATE_LIMITED}


def test_random_frames_never_abort_and_count_once(
        dataplane: Dataplane) -> None:
    rng = random.Random(SEED + 1)
    plan, allow, block = frames.default_plan(boot_ns() + 3600 * 10**9)
    tables = _tables(plan, allow, block)
    dataplane.load_tables(tables)
    before = sum(p for p, _bytes in dataplane.counters("stats"))

    aborted, failures = [], []
    for i, frame in enumerate(frames.random_frames(rng, RANDOM, plan.ports)):
        if i < MODEL_CHECKED_RANDOM:
            problem = _check(dataplane, tables, "random #%d" % i, frame, 0)
            if problem:
                failures.append(problem)
        elif dataplane.test_run(frame).retval == _abi.XDP_ABORTED:
            aborted.append(frame.hex())
    assert not aborted, "XDP_ABORTED on %d frames, e.g. %s" % (
        len(aborted), aborted[:3])
    assert not failures, "seed %d:\n%s" % (SEED + 1, "\n".join(failures[:20]))
    after = sum(p for p, _bytes in dataplane.counters("stats"))
    assert after - before == RANDOM
