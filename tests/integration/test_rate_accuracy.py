"""Rate limits on a real veth: one source's budget holds whichever CPU
its requests land on (docs/dataplane.md, "Rate limits and bans":
"The state is shared by all CPUs").

The program is attached natively to one end of a veth pair inside a
network namespace made for the test; a child process pinned to a CPU
writes REGISTER requests to the other end with AF_PACKET. With veth the
receiving end's XDP program runs on the CPU that sends (the frame is
handed over in the sender's softirq), so the per-CPU `stats` say which
CPU decided: each test checks that it was the intended one. The packet
socket bypasses the qdisc, so that each CPU sends on its own queue
(queue = CPU) and two CPUs sending at once are not serialized by one
queue's NAPI.

Run with -s to see the table of sent, allowed and expected requests; it
is printed at the end of the module in any case.

The spoofed floods (test_spoofed_flood.py) use the same receiver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.module_utils import _abi, _bpf
from tests.dataplane import frames

REPO = Path(__file__).resolve().parents[2]
OBJECT = REPO / "build" / "sip_logic.bpf.o"
SERVER = ipaddress.IPv4Address("198.19.255.254")
SIP_PORT = 5060
QUEUES = 2                  # veth queues: one per CPU the tests send from
SOL_PACKET, PACKET_QDISC_BYPASS = 263, 20

# The budget under test: 200 REGISTER/s, burst 50, sent at 10x.
RATE, BURST = 200, 50
SEND_RATE = 10 * RATE
SECONDS = 2.5
TOLERANCE = 0.10

ALLOWED_REASONS = (_abi.FP_PASSED, _abi.FP_REDIRECTED)
_RECEIVERS = itertools.count()


# -- the receiver: the program attached in a namespace of its own -----------


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError("%s failed (rc %d): %s" % (
            " ".join(cmd), done.returncode, done.stderr.strip()))
    return done.stdout


def limits_value(budgets: dict[int, tuple[int, int]], *,
                 ban_after_ns: int = 0, ban_ns: int = 0,
                 scanner_ban_ns: int = 0, bans: bool = False) -> bytes:
    """struct fp_limits with untrusted budgets {class: (interval_ns,
    burst)}, no trusted budget, and the ban settings."""
    fields: list[int] = []
    for slot in range(2 * _abi.CLASS_SLOTS):
        interval, burst = budgets.get(slot, (0, 0))
        fields += [interval, burst, 0]
    return _abi.LIMITS.pack(*fields, ban_after_ns, ban_ns, scanner_ban_ns,
                            _abi.FP_LIMIT_BANS if bans else 0, 0, 0, 0)


def source_key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """struct fp_source of an address at the default aggregation (/32
    for IPv4, /64 for IPv6)."""
    if addr.version == 4:
        return _abi.SOURCE.pack(4, 32, 0, addr.packed)
    net = ipaddress.IPv6Network((addr, 64), strict=False)
    return _abi.SOURCE.pack(6, 64, 0, net.network_address.packed)


class Receiver:
    """The built program attached natively (xdpdrv) to the namespace end
    of a veth pair; `sender` is the host end, where frames are written.
    Maps are pinned under a private directory; 5060 is a SIP port."""

    def __init__(self, obj: Path) -> None:
        tag = "fpra%d%d" % (os.getpid() % 100000, next(_RECEIVERS) % 100)
        self.netns = tag
        self.sender = tag
        self.peer = tag + "p"
        self.pin_dir = Path("/sys/fs/bpf/vos_fastpath_%s" % tag)
        self.obj = obj
        self.maps: dict[str, _bpf.Map] = {}

    def __enter__(self) -> Receiver:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        self.close()                # leftovers of a run with this pid
        run("ip", "netns", "add", self.netns)
        queues = ("numtxqueues", str(QUEUES), "numrxqueues", str(QUEUES))
        run("ip", "link", "add", self.sender, *queues, "type", "veth",
            "peer", "name", self.peer, *queues, "netns", self.netns)
        # No IPv6 on either end: the kernel sends nothing of its own.
        run("sysctl", "-qw",
            "net.ipv6.conf.%s.disable_ipv6=1" % self.sender)
        self._in_netns("sysctl", "-qw",
                       "net.ipv6.conf.%s.disable_ipv6=1" % self.peer)
        run("ip", "link", "set", self.sender, "up")
        self._in_netns("ip", "link", "set", self.peer, "up")
        self.pin_dir.mkdir()
        prog = str(self.pin_dir / "prog")
        run("bpftool", "prog", "load", str(self.obj), prog, "type", "xdp",
            "pinmaps", str(self.pin_dir))
        self.maps = {name: _bpf.Map.open_pinned(str(self.pin_dir / name))
                     for name in _abi.MAPS}
        self.maps["sip_ports"].update(_abi.U32.pack(SIP_PORT),
                                      _abi.U8.pack(1))
        self._in_netns("ip", "link", "set", "dev", self.peer, "xdpdrv",
                       "pinned", prog)

    def _in_netns(self, *cmd: str) -> str:
        # nsenter changes the network namespace only: the bpffs pins stay
        # visible (`ip netns exec` would mount a fresh /sys).
        return run("nsenter", "--net=/run/netns/%s" % self.netns, *cmd)

    def close(self) -> None:
        for m in self.maps.values():
            m.close()
        self.maps = {}
        # Deleting the namespace deletes its veth end, and so the pair.
        subprocess.run(["ip", "netns", "del", self.netns],
                       capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.sender],
                       capture_output=True, check=False)
        shutil.rmtree(self.pin_dir, ignore_errors=True)

    # -- maps ---------------------------------------------------------------

    def set_limits(self, value: bytes) -> None:
        self.maps["limits"].update(_abi.U32.pack(0), value)

    def set_signatures(self, texts: list[bytes]) -> None:
        for slot, text in enumerate(texts):
            self.maps["scanner_sigs"].update(
                _abi.U32.pack(slot), _abi.SIGNATURE.pack(len(text), 0, text))

    def percpu(self, name: str, index: int) -> list[int]:
        """Packets of one counter, one number per possible CPU."""
        m = self.maps[name]
        raw = m.lookup(_abi.U32.pack(index)) or b""
        return [_abi.COUNTER.unpack_from(raw, off)[0]
                for off in range(0, len(raw), m.slot_size)]

    def packets(self, name: str, index: int) -> int:
        return sum(self.percpu(name, index))

    def entries(self, name: str) -> int:
        keys, _values = self.maps[name].lookup_batch(8192)
        return len(keys) // self.maps[name].key_size


@contextlib.contextmanager
def attached() -> Iterator[Receiver]:
    """The freshly built program in a new Receiver (call it from a fixture
    that requires root_required)."""
    for tool in ("ip", "bpftool", "nsenter", "sysctl"):
        if not shutil.which(tool):
            pytest.skip("needs %s" % tool)
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    with Receiver(OBJECT) as rx:
        yield rx


@pytest.fixture(scope="module")
def receiver(root_required: None) -> Iterator[Receiver]:
    with attached() as rx:
        yield rx


def packet_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    # Past the qdisc the packet socket picks the queue of its CPU.
    s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    s.bind((ifname, 0))
    return s


def register_frame(src: ipaddress.IPv4Address | ipaddress.IPv6Address,
                   dst: ipaddress.IPv4Address | ipaddress.IPv6Address
                   = SERVER) -> bytes:
    payload = frames.sip_request(random.Random(SIP_PORT), b"REGISTER",
                                 b"sip:example.com")
    return frames.build_frame(frames.FrameSpec(
        src, dst, sport=SIP_PORT, dport=SIP_PORT, payload=payload))


# -- senders in child processes pinned to a CPU ---------------------------


@dataclasses.dataclass
class Sent:
    count: int
    first_ns: int           # CLOCK_MONOTONIC of the first and last send
    last_ns: int


def paced_send(ifname: str, frame: bytes, rate: int, count: int,
               start_ns: int) -> Sent:
    """count frames at rate per second from start_ns on; a late frame is
    sent at once, so the pace catches up instead of drifting."""
    step = 1_000_000_000 // rate
    with packet_socket(ifname) as s:
        while time.monotonic_ns() < start_ns:
            time.sleep(0.001)
        first = last = time.monotonic_ns()
        for i in range(count):
            due = start_ns + i * step
            now = time.monotonic_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
            s.send(frame)
            last = time.monotonic_ns()
            if i == 0:
                first = last
    return Sent(count, first, last)


class Child:
    """fn(*args) in a child process pinned to one CPU; result() waits for
    it and returns what fn returned (a dataclass, as a dict)."""

    def __init__(self, cpu: int, fn: Callable[..., Any], *args: Any) -> None:
        self.cpu = cpu
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:               # the child
            os.close(read)
            status = 1
            try:
                os.sched_setaffinity(0, {cpu})
                done = dataclasses.asdict(fn(*args))
                os.write(write, json.dumps(done).encode())
                status = 0
            except BaseException as e:  # reported by the parent
                os.write(write, json.dumps({"error": repr(e)}).encode())
            finally:
                os._exit(status)
        os.close(write)
        self.read = read

    def result(self) -> dict[str, Any]:
        chunks = []
        while chunk := os.read(self.read, 65536):
            chunks.append(chunk)
        os.close(self.read)
        os.waitpid(self.pid, 0)
        got = json.loads(b"".join(chunks) or b'{"error": "no result"}')
        if "error" in got:
            raise RuntimeError("sender on CPU %d: %s"
                               % (self.cpu, got["error"]))
        return got


# -- the accuracy test ---------------------------------------------------


@dataclasses.dataclass
class Row:
    cpus: str
    sent: int
    allowed: int
    dropped: int
    seconds: float
    expected: float
    per_cpu: list[tuple[int, int]]      # (allowed, dropped) on each CPU


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    """The rows the tests add, printed as a table at the end."""
    rows: list[Row] = []
    yield rows
    if not rows:
        return
    lines = [
        "",
        "Rate limit accuracy: untrusted REGISTER %d/s, burst %d, sent at "
        "%d/s; expected = rate x T + burst" % (RATE, BURST, SEND_RATE),
        "| sending CPUs | sent | T (s) | allowed | dropped | expected "
        "| allowed/expected | allowed, dropped per CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        split = ", ".join("CPU %d: %d, %d" % (cpu, a, d)
                          for cpu, (a, d) in enumerate(r.per_cpu)
                          if a or d)
        lines.append("| %s | %d | %.3f | %d | %d | %.1f | %.3f | %s |" % (
            r.cpus, r.sent, r.seconds, r.allowed, r.dropped, r.expected,
            r.allowed / r.expected, split))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with (capture.global_and_fixture_disabled() if capture
          else contextlib.nullcontext()):
        print("\n".join(lines), flush=True)


def online_cpus() -> set[int]:
    return os.sched_getaffinity(0)


@pytest.mark.parametrize("cpus", [(0,), (1,), (0, 1)],
                         ids=["cpu0", "cpu1", "cpu0+cpu1"])
def test_one_source_gets_its_budget_whichever_cpu_it_lands_on(
        receiver: Receiver, table: list[Row], cpus: tuple[int, ...]) -> None:
    missing = set(cpus) - online_cpus()
    if missing:
        pytest.skip("needs CPUs %s, this machine lets us run on %s"
                    % (sorted(cpus), sorted(online_cpus())))
    rx = receiver
    # A source of its own for each case: a fresh full burst.
    src = ipaddress.IPv4Address("198.18.7.%d" % (11 + sum(1 << c
                                                          for c in cpus)))
    interval = 1_000_000_000 // RATE
    rx.set_limits(limits_value({_abi.FP_CLASS_REGISTER: (interval, BURST)}))
    assert rx.maps["rate_state"].lookup(source_key(src)) is None

    frame = register_frame(src)
    each_rate = SEND_RATE // len(cpus)
    count = int(each_rate * SECONDS)
    before = {r: rx.percpu("stats", r)
              for r in (*ALLOWED_REASONS, _abi.FP_RATE_LIMITED)}
    start = time.monotonic_ns() + 200_000_000
    children = [Child(cpu, paced_send, rx.sender, frame, each_rate, count,
                      start) for cpu in cpus]
    sent = [Sent(**c.result()) for c in children]
    delta = {r: [a - b for a, b in zip(rx.percpu("stats", r), before[r],
                                       strict=True)]
             for r in before}

    allowed_cpu = [sum(delta[r][cpu] for r in ALLOWED_REASONS)
                   for cpu in range(len(delta[_abi.FP_PASSED]))]
    dropped_cpu = delta[_abi.FP_RATE_LIMITED]
    total = sum(s.count for s in sent)
    seconds = (max(s.last_ns for s in sent)
               - min(s.first_ns for s in sent)) / 1e9
    expected = RATE * seconds + BURST
    allowed, dropped = sum(allowed_cpu), sum(dropped_cpu)
    table.append(Row("+".join(map(str, cpus)), total, allowed, dropped,
                     seconds, expected, list(zip(allowed_cpu, dropped_cpu,
                                                 strict=True))))

    # Every request was decided, each on the CPU that sent it.
    assert allowed + dropped == total
    for cpu, s in zip(cpus, sent, strict=True):
        assert allowed_cpu[cpu] + dropped_cpu[cpu] == s.count, (
            "CPU %d sent %d, decided there: %d"
            % (cpu, s.count, allowed_cpu[cpu] + dropped_cpu[cpu]))
    # At most rate x T + burst, within 10%, and no over-drop either.
    assert allowed <= expected * (1 + TOLERANCE), (allowed, expected)
    assert allowed >= expected * (1 - TOLERANCE), (allowed, expected)
