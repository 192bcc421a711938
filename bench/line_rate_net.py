"""Namespaces, veth pairs, the receiving NAPI thread and trafgen for
bench/line_rate.py.

Every pair has its receiving end in a network namespace of its own (its
own firewall, no route out of it: nothing it answers can leave) and its
sending end in the generator's namespace. Receiving ends run their
XDP program in native mode with threaded NAPI: veth hands the frames
of a peer with an XDP program to its NAPI, whose kernel thread
`napi/<dev>-<id>` then does all the receive work of that end (XDP, the
stack up to the drop) and is pinned to RX_CPU; trafgen runs on GEN_CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import line_rate_traffic as lt
from bench.dataplane_programs import BenchError, quiet, run

GEN_CPU, RX_CPU = 0, 1
NETNS_DIR = Path("/run/netns")
# trafgen: one process (-P 1) on GEN_CPU, the socket buffer the
# namespace gives (it cannot tune the system's), no IRQ affinity changes,
# and its per-frame sendto() path (-t 0): the veth then holds it back
# while the receiver is busy, where the TX ring would fail with EAGAIN.
TRAFGEN_OPTS = ("-P", "1", "--no-sock-mem", "-Q", "-t", "0")
_OUTGOING = re.compile(r"^\s*(\d+) packets outgoing", re.M)
_DURATION = re.compile(r"^\s*(\d+) sec, (\d+) usec on CPU0", re.M)


def in_netns(netns: str, *cmd: str) -> list[str]:
    """cmd in netns's network namespace only: the bpffs pins stay
    visible (`ip netns exec` would mount a fresh /sys)."""
    return ["nsenter", "--net=%s" % (NETNS_DIR / netns), *cmd]


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    try:
        run("ip", "netns", "add", name)
        run(*in_netns(name, "ip", "link", "set", "lo", "up"))
        yield name
    finally:
        quiet("ip", "netns", "del", name)


@dataclass
class Pair:
    """A veth pair: rx_dev in rx_ns receives, gen_dev in gen_ns sends."""

    rx_ns: str
    rx_dev: str
    gen_ns: str
    gen_dev: str
    napi_pid: int = 0

    def rx(self, *cmd: str) -> str:
        return run(*in_netns(self.rx_ns, *cmd))

    def rx_packets(self) -> int:
        """Frames the receiving end took, whatever XDP did with them
        (veth counts every frame its XDP program saw)."""
        info = json.loads(self.rx("ip", "-j", "-s", "link", "show",
                                  "dev", self.rx_dev))
        return int(info[0]["stats64"]["rx"]["packets"])

    def attach_trivial(self, obj: Path) -> None:
        self.rx("ip", "link", "set", "dev", self.rx_dev, "xdpdrv",
                "obj", str(obj), "sec", "xdp")

    def attach_pinned(self, pin: Path) -> None:
        self.rx("ip", "link", "set", "dev", self.rx_dev, "xdpdrv",
                "pinned", str(pin))


@contextlib.contextmanager
def veth_pair(rx_ns: str, rx_dev: str, gen_ns: str,
              gen_dev: str) -> Iterator[Pair]:
    """The pair, with IPv6 off on both ends so that the kernel sends
    nothing of its own on it, and the receiving end's MAC lt.RX_MAC."""
    pair = Pair(rx_ns, rx_dev, gen_ns, gen_dev)
    try:
        run("ip", "link", "add", "name", gen_dev, "netns", gen_ns,
            "address", lt.GEN_MAC.hex(":"), "type", "veth", "peer",
            "name", rx_dev, "netns", rx_ns, "address", lt.RX_MAC.hex(":"))
        for ns, dev in ((rx_ns, rx_dev), (gen_ns, gen_dev)):
            run(*in_netns(ns, "sysctl", "-qw",
                          "net.ipv6.conf.%s.disable_ipv6=1" % dev))
            run(*in_netns(ns, "ip", "link", "set", dev, "up"))
        yield pair
    finally:
        quiet(*in_netns(rx_ns, "ip", "link", "del", rx_dev))


# -- the receiving core ---------------------------------------------------


def threaded_napi(pair: Pair) -> int:
    """Make the receiving end's NAPI threaded and pin its thread to
    RX_CPU; its pid. Needs the XDP program attached first: veth has no
    NAPI without it (or GRO), and the kernel refuses `threaded` then."""
    run("ip", "netns", "exec", pair.rx_ns, "sh", "-c",
        "echo 1 > /sys/class/net/%s/threaded" % pair.rx_dev)
    pids = napi_threads(pair.rx_dev)
    if len(pids) != 1:
        raise BenchError("expected one NAPI thread of %s, found %s"
                         % (pair.rx_dev, pids or "none"))
    pid = pids[0]
    run("taskset", "-pc", str(RX_CPU), str(pid))
    pair.napi_pid = pid
    return pid


def napi_threads(dev: str) -> list[int]:
    """Threads named napi/<dev>-<id> (the name is cut at 15 bytes)."""
    prefix = ("napi/%s-" % dev)[:15]
    out = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().startswith(prefix):
                out.append(int(comm.parent.name))
    return sorted(out)


def cpu_ns(pid: int) -> int:
    """Time the thread has run, in ns (/proc/<pid>/schedstat, field 1)."""
    return int(Path("/proc/%d/schedstat" % pid).read_text().split()[0])


# -- the generator --------------------------------------------------------


@dataclass
class Sent:
    packets: int
    seconds: float          # trafgen's own time sending them

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0


def trafgen(pair: Pair, config: Path, count: int,
            timeout: float) -> Sent:
    """count frames of config on GEN_CPU, trafgen cycling over its
    packets; bounded by count and by timeout seconds."""
    cmd = in_netns(pair.gen_ns, "taskset", "-c", str(GEN_CPU), "timeout",
                   "%d" % max(1, int(timeout)), "trafgen", "-i",
                   str(config), "-o", pair.gen_dev, "-n", str(count),
                   *TRAFGEN_OPTS)
    # In a session of its own, so that an interruption of the bench stops
    # trafgen too (timeout keeps it in that process group).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    sent, took = _OUTGOING.search(out), _DURATION.search(out)
    if proc.returncode or not sent or not took:
        raise BenchError("trafgen failed (rc %d%s): %s" % (
            proc.returncode, ", timed out" if proc.returncode == 124
            else "", (err or out).strip()[-400:]))
    return Sent(int(sent.group(1)),
                int(took.group(1)) + int(took.group(2)) / 1e6)


def trafgen_version() -> str:
    done = subprocess.run(["trafgen", "-v"], capture_output=True,
                          text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "trafgen"


def tool_version(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True,
                          check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]
