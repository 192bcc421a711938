"""Seeded frames and state for the differential run with rate limits, bans
and scanner fingerprints configured (tests/dataplane/test_differential.py).

The frames are those of frames_gen.generate(), with User-Agent headers put at
every position around the bounds of [step 12] (the LF before the header
around byte 1024 of S, the signature around byte 128 of the value) and TCP
segments with every mix of SYN and ACK ([step 9]). random_limits(),
random_signatures() and random_state() draw a configuration and the state
the program finds in its maps: budgets that run out and refill within a
batch, bans that expire while the batch runs, every source aggregation.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

from plugins.module_utils import _abi
from tests.dataplane import frames, frames_gen, model

SECOND = 10**9
MS = 10**6

# Scanner User-Agent signatures, in lower case as the map holds them.
SIGNATURE_POOL = (b"sipvicious", b"friendly-scanner", b"sipcli", b"iwar",
                  b"sip-scan", b"vaxasip", b"sundayddr", b"pplsip",
                  b"voipbuster/v3", b"x" * _abi.MAX_SIGNATURE_LEN)
# Filler of User-Agent values and padding headers: no letter, so no
# accidental signature.
FILLER = b"0123456789 ./_()=+-"
UA_NAMES = (b"User-Agent", b"user-agent", b"USER-AGENT", b"uSeR-aGeNt",
            b"User-Agen", b"X-User-Agent", b"User_Agent", b"User-Agentx")
TCP_FLAG_MIXES = (0x02, 0x02, 0x02, 0x12, 0x18, 0x10, 0x03, 0x06, 0x00)

# Neighbours of the plan's plain sources: same /24, /64, /48 or /56.
NEIGHBOURS = ("192.0.2.3", "192.0.2.200", "192.0.2.129", "2001:db8:9::2",
              "2001:db8:9:0:ffff::1", "2001:db8:9:1::1",
              "2001:db8:9:ff00::1", "2001:db8:ffff::3",
              "2001:db8:ffff:0:8000::1")


def limits_plan(live_expires_ns: int) -> tuple[
        frames.AddressPlan, list[model.Entry], list[model.Entry]]:
    """The default plan with more plain sources that share prefixes."""
    plan, allow, block = frames_gen.default_plan(live_expires_ns)
    plan.plain += [ipaddress.ip_address(a) for a in NEIGHBOURS]
    return plan, allow, block


def plan_addresses(plan: frames.AddressPlan) -> list[model.IPAddress]:
    return [a for category in frames.CATEGORIES
            for a in getattr(plan, category)]


# Configuration.


def _budget(rng: random.Random, share: float) -> model.Budget:
    if rng.random() >= share:
        return model.Budget()
    interval = rng.choice((2 * MS, 20 * MS, SECOND, 60 * SECOND))
    return model.Budget(interval, rng.choice((0, 1, 1, 2, 3, 8)))


def random_limits(rng: random.Random) -> model.Limits:
    limits = model.Limits(
        untrusted=[_budget(rng, 0.7) for _i in range(_abi.CLASS_SLOTS)],
        trusted=[_budget(rng, 0.4) for _i in range(_abi.CLASS_SLOTS)],
        ban_after_ns=rng.choice((0, 0, 5 * MS, 50 * MS, 10 * SECOND)),
        ban_ns=rng.choice((0, 10 * MS, 100 * MS, 60 * SECOND)),
        scanner_ban_ns=rng.choice((0, 10 * MS, 60 * SECOND)),
        flags=_abi.FP_LIMIT_BANS if rng.random() < 0.7 else 0,
        prefix_v4=rng.choice((0, 0, 32, 31, 24, 16, 1, 40, 255)),
        prefix_v6=rng.choice((0, 0, 64, 48, 56, 127, 128, 1, 200)),
    )
    if rng.random() < 0.1:
        return model.Limits()   # the empty map
    return limits


def random_signatures(rng: random.Random) -> list[model.Signature]:
    kind = rng.random()
    if kind < 0.1:
        return []
    sigs = [model.Signature(s) for s in
            rng.sample(SIGNATURE_POOL, rng.randint(1, len(SIGNATURE_POOL)))]
    if kind < 0.2:      # the list ends before it starts
        sigs.insert(0, model.Signature(b"", 0))
    elif kind < 0.4:    # an end of the list in the middle
        sigs.insert(rng.randrange(len(sigs) + 1), model.Signature(b"", 0))
    if rng.random() < 0.3:   # slots that are skipped
        bad = rng.choice((model.Signature(b"si", 2), model.Signature(b"sip"),
                          model.Signature(b"x" * 32, 33),
                          model.Signature(b"sipvicious", 200)))
        sigs.insert(rng.randrange(len(sigs) + 1), bad)
    return sigs[:model.SIGNATURE_SLOTS]


def random_state(rng: random.Random, keys: list[model.Source],
                 now_ns: int) -> tuple[dict[model.Source, model.Rate],
                                       dict[model.Source, model.Ban],
                                       dict[model.Source, model.Pardon]]:
    """rate_state, bans_v2 and pardons entries for a share of the sources:
    buckets used up or refilled, streaks under way, bans and pardons
    live, expiring within a batch or expired."""
    rates, bans, pardons = {}, {}, {}
    for key in keys:
        if rng.random() < 0.4:
            tat = [rng.choice((0, now_ns - rng.randint(0, 100) * SECOND,
                               now_ns + rng.randint(-50, 200) * MS,
                               now_ns + rng.randint(0, 120) * SECOND))
                   for _i in range(_abi.CLASS_SLOTS)]
            over = rng.choice((0, now_ns - rng.randint(0, 20_000) * MS))
            last = max(over, now_ns - rng.randint(0, 20_000) * MS) \
                if over else 0
            rates[key] = model.Rate(tat, over, last)
        if rng.random() < 0.15:
            expires = rng.choice((1, now_ns - MS,
                                  now_ns + rng.randint(5, 150) * MS,
                                  now_ns + 60 * SECOND))
            reason = rng.choice((_abi.FP_RATE_LIMITED, _abi.FP_SCANNER))
            detail = rng.randrange(len(_abi.CLASSES)
                                   if reason == _abi.FP_RATE_LIMITED
                                   else model.SIGNATURE_SLOTS)
            bans[key] = model.Ban(expires, reason, detail,
                                  now_ns - rng.randint(0, 600) * SECOND,
                                  rng.choice((0, 1, rng.randrange(10**6))))
        if rng.random() < 0.15:
            pardons[key] = model.Pardon(rng.choice((
                1, now_ns - MS, now_ns + rng.randint(5, 150) * MS,
                now_ns + 3600 * SECOND)))
    return rates, bans, pardons


# Frames.


def _cased(rng: random.Random, text: bytes) -> bytes:
    return bytes(c ^ 0x20 if chr(c).isalpha() and rng.random() < 0.3 else c
                 for c in text)


def _filler(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(FILLER) for _i in range(n))


def user_agent_line(rng: random.Random) -> tuple[str, bytes]:
    """A User-Agent header line (CR LF included) with a signature, or
    something close to one, around the value bound."""
    name = rng.choice(UA_NAMES[:4] * 3 + UA_NAMES)
    blanks = bytes(rng.choice(b" \t")
                   for _i in range(rng.choice((0, 0, 1, 2, 8, 9))))
    sig = rng.choice(SIGNATURE_POOL + (b"yealink", b"sipvicio"))
    bound = model.UA_VALUE_BOUND
    at = rng.choice((0, 1, rng.randint(0, bound + 4), bound - len(sig),
                     bound - len(sig) + 1, bound - len(sig) - 1))
    value = _filler(rng, max(0, at)) + _cased(rng, sig) + _filler(
        rng, rng.randint(0, 20))
    if rng.random() < 0.1:      # the value ends before the signature
        cut = rng.randint(0, len(value))
        value = value[:cut] + rng.choice((b"\r", b"\n")) + value[cut:]
    label = "ua[%s%s:%d%s]" % (name.decode(), "+%d" % len(blanks) if blanks
                               else "", at, sig.decode()[:6])
    return label, name + blanks + b":" + value + b"\r\n"


def with_user_agent(rng: random.Random, payload: bytes) -> tuple[str, bytes]:
    """payload with a User-Agent line after its first line, and padding
    that puts the LF before it near byte 1024 of S, or not."""
    first = payload.find(b"\r\n")
    if first < 0:
        return "", payload
    label, line = user_agent_line(rng)
    skipped = len(payload) - len(model.strip_crlf(payload))
    lf = first + 1 - skipped            # the LF's index in S
    pad = b""
    if rng.random() < 0.4:
        target = rng.randint(model.UA_LINE_BOUND - 12,
                             model.UA_LINE_BOUND + 6)
        # "X-Pad:" + filler + CR LF moves the LF by its length.
        n = target - lf - len(b"X-Pad:\r\n")
        if n >= 0:
            pad = b"X-Pad:" + _filler(rng, n) + b"\r\n"
            label += " lf@%d" % (lf + len(pad))
    if rng.random() < 0.1:      # a second one: only the first counts
        line += user_agent_line(rng)[1]
        label += "x2"
    cut = first + 2
    return label, payload[:cut] + pad + line + payload[cut:]


def _decorate(rng: random.Random, spec: frames.FrameSpec,
              labels: list[str]) -> None:
    if spec.proto == frames.TCP:
        spec.tcp_flags = rng.choice(TCP_FLAG_MIXES)
        labels.append("tcp=%#04x" % spec.tcp_flags)
    if spec.proto == frames.UDP and rng.random() < 0.6:
        label, spec.payload = with_user_agent(rng, spec.payload)
        if label:
            labels.append(label)


def generate(rng: random.Random, count: int, addrs: frames.AddressPlan
             ) -> Iterator[tuple[str, bytes, int]]:
    """(label, frame, rx_queue): frames_gen.generate()'s frames with User-Agent
    headers and TCP flags; fewer of them mutated, so that more are
    requests."""
    for _i in range(count):
        spec, labels = frames_gen.base_frame(rng, addrs)
        _decorate(rng, spec, labels)
        if rng.random() < 0.4:
            frames_gen.mutate(rng, spec, labels)
        frame = frames.build_frame(spec)
        queue = frames_gen.rx_queue(rng)
        if queue:
            labels.append(f"q{queue}")
        yield " ".join(labels), frame, queue
