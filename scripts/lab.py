"""The data plane at work, in a lab that lives for a few seconds.

A network namespace `fp-lab-client` holds four clients; a veth pair joins it
to `fp-lab0` (198.51.100.1, the "SIP server") in the root namespace, where
the XDP program runs with its default settings. A short, bounded burst of
SIP and non-SIP packets goes from the clients to the server; the program's
counters and the server's UDP socket then show what was dropped and what got
through. Everything the lab created is removed at the end, whatever happens.

Run as root through `sudo ./scripts/demo.sh` (it builds the program and sets
PYTHONPATH to the repository). `lab.py send` is the sender half, which lab.py
itself runs inside the namespace.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plugins.module_utils import _abi, _bpf, _counters

REPO = Path(__file__).resolve().parents[1]
OBJECT = REPO / "build" / "sip_logic.bpf.o"
PIN_DIR = Path("/sys/fs/bpf/vos_fastpath_lab")
NETNS = "fp-lab-client"
SERVER_IF, CLIENT_IF = "fp-lab0", "fp-lab1"
SERVER_MAC, CLIENT_MAC = "02:00:5e:10:00:01", "02:00:5e:10:00:02"
SERVER_IP = "198.51.100.1"
SUBNET = ipaddress.ip_network("198.51.100.0/24")
SIP_PORT = 5060
LAB_SOURCE_TAG = 0x1AB      # fp_entry.source of the lab's list entries
WAIT_S = 5.0                # link up / program load bound
DRAIN_IDLE_S = 0.5          # the server socket is idle this long: all is in


class LabError(Exception):
    """Something essential failed; the message is one sentence."""


@dataclass(frozen=True)
class Host:
    role: str
    addr: str


SCANNER = Host("scanner", "198.51.100.10")
MONITOR = Host("monitoring", "198.51.100.20")
ATTACKER = Host("attacker", "198.51.100.66")
CLIENT = Host("client", "198.51.100.30")
HOSTS = (SCANNER, MONITOR, ATTACKER, CLIENT)


def sip_request(method: str, host: Host, seq: int) -> bytes:
    """A complete, well-formed SIP request without a body."""
    return (
        f"{method} sip:{SERVER_IP}:{SIP_PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host.addr};branch=z9hG4bK-lab{seq:04d}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{host.role}@{host.addr}>;tag=lab{seq:04d}\r\n"
        f"To: <sip:{SERVER_IP}>\r\n"
        f"Call-ID: lab-{method.lower()}-{seq:04d}@{host.addr}\r\n"
        f"CSeq: {seq + 1} {method}\r\n"
        f"Content-Length: 0\r\n\r\n").encode()


@dataclass(frozen=True)
class Burst:
    """count packets of one kind from one host, and what should count them."""

    host: Host
    label: str
    count: int
    port: int                          # UDP destination; 0 = ICMP echo
    payload: Callable[[Host, int], bytes]
    reason: str                        # the `stats` counter expected to move
    why: str = ""

    @property
    def proto(self) -> str:
        return "ICMP" if self.port == 0 else "UDP"


BURSTS = (
    Burst(SCANNER, "OPTIONS", 5, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, i),
          "OPTIONS_DROPPED", "stealth: untrusted scanner"),
    Burst(MONITOR, "OPTIONS", 5, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, i), "PASSED", "allowlisted"),
    Burst(ATTACKER, "INVITE", 10, SIP_PORT,
          lambda h, i: sip_request("INVITE", h, i), "BLOCKED", "blocklisted"),
    Burst(CLIENT, "REGISTER", 3, SIP_PORT,
          lambda h, i: sip_request("REGISTER", h, i), "PASSED"),
    Burst(CLIENT, "junk", 4, SIP_PORT,
          lambda h, i: b"\x00\xffnot SIP %d\x00" % i, "MALFORMED"),
    Burst(CLIENT, "UDP", 1, 53,
          lambda h, i: b"\x12\x34 a datagram for port 53", "NOT_SIP"),
    Burst(CLIENT, "ping", 1, 0,
          lambda h, i: b"fastpath lab ping", "NOT_SIP"),
)


# -- commands ------------------------------------------------------------

def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command (argv, no shell); on failure raise LabError."""
    proc = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "LANG": "C"}, check=False)
    if check and proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise LabError("`%s` failed (rc %d): %s" % (
            " ".join(argv), proc.returncode,
            detail[-1] if detail else "no message"))
    return proc


def in_netns(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def bpftool() -> str:
    path = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not os.access(path, os.X_OK):
        raise LabError("bpftool not found: run scripts/setup.sh first.")
    return path


def say(message: str) -> None:
    print("lab: " + message, flush=True)


# -- the lab: network ----------------------------------------------------

def remove_lab(xdp_mode: str | None = None) -> None:
    """Remove whatever a run of the lab left, quietly; safe to repeat."""
    if Path("/sys/class/net", SERVER_IF).exists():
        for mode in ([xdp_mode] if xdp_mode else ["xdpdrv", "xdpgeneric"]):
            run("ip", "link", "set", "dev", SERVER_IF, mode, "off",
                check=False)
        run("ip", "link", "del", SERVER_IF, check=False)
    run("ip", "netns", "del", NETNS, check=False)
    shutil.rmtree(PIN_DIR, ignore_errors=True)


def report_removal() -> None:
    """Say what was removed, or what could not be."""
    left = [str(p) for p in (Path("/sys/class/net", SERVER_IF),
                             Path("/run/netns", NETNS), PIN_DIR)
            if p.exists()]
    if left:
        print("lab: could not remove %s" % ", ".join(left), file=sys.stderr)
    else:
        say("removed %s, %s and %s" % (NETNS, SERVER_IF, PIN_DIR))


def check_subnet_free() -> None:
    """Fail when another interface already has an address in the subnet."""
    out = run("ip", "-o", "-4", "addr", "show").stdout
    for line in out.splitlines():
        fields = line.split()
        addr = ipaddress.ip_interface(fields[3]).ip
        if addr in SUBNET:
            raise LabError("%s is already in use on %s: the lab needs it "
                           "for itself." % (SUBNET, fields[1]))


def disable_ipv6(*netns_prefix: str, ifname: str) -> None:
    """No IPv6 on a lab link: no router solicitations or MLD in counters."""
    if Path("/proc/sys/net/ipv6").exists():
        run(*netns_prefix, "sysctl", "-qw",
            "net.ipv6.conf.%s.disable_ipv6=1" % ifname)


def create_network() -> None:
    """Namespace, veth pair, addresses and static neighbours: no ARP, no
    IPv6, so the only frames on the link are the ones the burst sends."""
    run("ip", "netns", "add", NETNS)
    run("ip", "link", "add", SERVER_IF, "address", SERVER_MAC, "type", "veth",
        "peer", "name", CLIENT_IF, "address", CLIENT_MAC, "netns", NETNS)
    disable_ipv6(ifname=SERVER_IF)
    disable_ipv6(*in_netns(), ifname=CLIENT_IF)
    run("ip", "addr", "add", "%s/%d" % (SERVER_IP, SUBNET.prefixlen),
        "dev", SERVER_IF)
    for host in HOSTS:
        run("ip", "-n", NETNS, "addr", "add",
            "%s/%d" % (host.addr, SUBNET.prefixlen), "dev", CLIENT_IF)
        run("ip", "neigh", "replace", host.addr, "lladdr", CLIENT_MAC,
            "dev", SERVER_IF, "nud", "permanent")
    run("ip", "-n", NETNS, "neigh", "replace", SERVER_IP, "lladdr",
        SERVER_MAC, "dev", CLIENT_IF, "nud", "permanent")
    run("ip", "-n", NETNS, "link", "set", "lo", "up")
    run("ip", "-n", NETNS, "link", "set", CLIENT_IF, "up")
    run("ip", "link", "set", SERVER_IF, "up")


def wait_link_up() -> None:
    """A veth is operationally up once both ends are up (carrier)."""
    state = Path("/sys/class/net", SERVER_IF, "operstate")
    deadline = time.monotonic() + WAIT_S
    while state.read_text().strip() != "up":
        if time.monotonic() > deadline:
            raise LabError("%s did not come up within %.0f s." % (
                SERVER_IF, WAIT_S))
        time.sleep(0.05)


# -- the lab: program ----------------------------------------------------

def check_prerequisites() -> None:
    """Everything the lab needs that it does not create itself."""
    if not OBJECT.exists():
        raise LabError("%s is missing: run make first." % OBJECT)
    if not os.path.ismount("/sys/fs/bpf"):
        raise LabError("bpffs is not mounted on /sys/fs/bpf: run "
                       "scripts/setup.sh first.")
    bpftool()


def load_program() -> None:
    PIN_DIR.mkdir(parents=True)
    run(bpftool(), "prog", "load", str(OBJECT), str(PIN_DIR / "prog"),
        "type", "xdp", "pinmaps", str(PIN_DIR))


def lpm_v4_key(addr: str) -> bytes:
    return _abi.LPM_V4_KEY.pack(32, ipaddress.IPv4Address(addr).packed)


def configure_maps() -> None:
    """sip_ports {5060}, the monitoring host allowed, the attacker blocked;
    `settings` stays zero: the defaults (stealth on, enforcing)."""
    entry = _abi.ENTRY.pack(0, LAB_SOURCE_TAG, 0)
    with _bpf.Map.open_pinned(str(PIN_DIR / "sip_ports")) as m:
        m.update(_abi.U32.pack(SIP_PORT), _abi.U8.pack(1))
    with _bpf.Map.open_pinned(str(PIN_DIR / "allow_v4")) as m:
        m.update(lpm_v4_key(MONITOR.addr), entry)
    with _bpf.Map.open_pinned(str(PIN_DIR / "block_v4")) as m:
        m.update(lpm_v4_key(ATTACKER.addr), entry)


def attach_xdp() -> str:
    """Attach natively, else in generic mode; return the mode used."""
    errors = []
    for mode in ("xdpdrv", "xdpgeneric"):
        proc = run("ip", "link", "set", "dev", SERVER_IF, mode, "pinned",
                   str(PIN_DIR / "prog"), check=False)
        if proc.returncode == 0:
            return mode
        errors.append("%s: %s" % (mode, proc.stderr.strip() or "refused"))
    raise LabError("XDP attach to %s refused in both modes (%s)." % (
        SERVER_IF, "; ".join(errors)))


# -- traffic -------------------------------------------------------------

def icmp_echo(payload: bytes, seq: int) -> bytes:
    header = bytes((8, 0, 0, 0)) + (0x1AB).to_bytes(2, "big") \
        + seq.to_bytes(2, "big")
    data = header + payload + b"\0" * (len(payload) % 2)
    total = sum(int.from_bytes(data[i:i + 2], "big")
                for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = (~total & 0xFFFF).to_bytes(2, "big")
    return header[:2] + checksum + header[4:] + payload


def send_burst(burst: Burst) -> None:
    if burst.port == 0:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                             socket.IPPROTO_ICMP)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((burst.host.addr, 0))
        for i in range(burst.count):
            data = burst.payload(burst.host, i)
            if burst.port == 0:
                data = icmp_echo(data, i)
            sock.sendto(data, (SERVER_IP, burst.port))


def sender_main() -> int:
    """`lab.py send`, run inside the namespace: every burst, once."""
    for burst in BURSTS:
        send_burst(burst)
    return 0


def open_sip_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((SERVER_IP, SIP_PORT))
    sock.settimeout(DRAIN_IDLE_S)
    return sock


def drain(sock: socket.socket) -> collections.Counter[str]:
    """Datagrams received per source address, until the socket is idle."""
    got: collections.Counter[str] = collections.Counter()
    while True:
        try:
            _data, (addr, _port) = sock.recvfrom(65535)
        except TimeoutError:
            return got
        got[addr] += 1


def send_from_netns() -> None:
    run(*in_netns(sys.executable, str(Path(__file__).resolve()), "send"))


# -- report --------------------------------------------------------------

def print_plan() -> None:
    say("sending %d packets from %s to %s:" % (
        sum(b.count for b in BURSTS), NETNS, SERVER_IP))
    for b in BURSTS:
        what = "%2d x %s" % (b.count, b.label)
        to = "to %d" % b.port if b.port else ""
        expect = b.reason + (" (%s)" % b.why if b.why else "")
        print("  %-10s %-13s %-13s %-7s -> %s" % (
            b.host.role, b.host.addr, what, to, expect))


def expected_counters() -> dict[str, dict[str, int]]:
    """Packets per counter name that the burst must produce, nothing else."""
    expect: dict[str, dict[str, int]] = {
        map_name: dict.fromkeys(names, 0)
        for map_name, (names, _help) in _counters.COUNTER_MAPS.items()}
    for b in BURSTS:
        expect["stats"][b.reason] += b.count
        expect["proto_stats"][b.proto] += b.count
    return expect


def counter_mismatches(counters: _counters.Counters) -> list[str]:
    return ["%s %s: %d, expected %d" % (map_name, name,
                                        counters[map_name][name]["packets"], n)
            for map_name, want in expected_counters().items()
            for name, n in want.items()
            if counters[map_name][name]["packets"] != n]


def sip_socket_counts() -> tuple[
        collections.Counter[str], collections.Counter[str]]:
    """Datagrams sent to the SIP port, and expected at its socket, by
    source address."""
    sent: collections.Counter[str] = collections.Counter()
    want: collections.Counter[str] = collections.Counter()
    for b in BURSTS:
        if b.port == SIP_PORT:
            sent[b.host.addr] += b.count
            want[b.host.addr] += b.count if b.reason == "PASSED" else 0
    return sent, want


def report(counters: _counters.Counters,
           got: collections.Counter[str]) -> bool:
    """Print the table and the summary; True when all is as planned."""
    sent, want = sip_socket_counts()
    mismatches = counter_mismatches(counters) + [
        "%s at the SIP socket: %d, expected %d" % (addr, got[addr], want[addr])
        for addr in sorted(set(sent) | set(got)) if got[addr] != want[addr]]
    print()
    print(_counters.format_table(counters))
    print()
    print("reached the SIP server socket %s:%d: %d of %d sent" % (
        SERVER_IP, SIP_PORT, sum(got.values()), sum(sent.values())))
    print("  " + ", ".join("%s %d of %d" % (h.role, got[h.addr], sent[h.addr])
                           for h in HOSTS if h.addr in sent))
    for line in mismatches:
        print("! " + line)
    if not mismatches:
        print("check: every counter and the socket match the plan above")
    return not mismatches


# -- main ----------------------------------------------------------------

def run_lab() -> bool:
    check_prerequisites()
    xdp_mode = None
    try:
        remove_lab()
        check_subnet_free()
        create_network()
        say("namespace %s (%s) <-veth-> %s %s (SIP server)" % (
            NETNS, CLIENT_IF, SERVER_IF, SERVER_IP))
        load_program()
        configure_maps()
        say("loaded %s, maps pinned in %s" % (OBJECT.relative_to(REPO),
                                              PIN_DIR))
        say("sip_ports %d, allow_v4 %s/32, block_v4 %s/32" % (
            SIP_PORT, MONITOR.addr, ATTACKER.addr))
        xdp_mode = attach_xdp()
        wait_link_up()
        say("XDP attached to %s in %s mode (%s), default settings" % (
            SERVER_IF, "native" if xdp_mode == "xdpdrv" else "generic",
            xdp_mode))
        print_plan()
        with open_sip_socket() as sock:
            send_from_netns()
            got = drain(sock)
        return report(_counters.read_counters(str(PIN_DIR)), got)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)   # let removal finish
        remove_lab(xdp_mode)
        report_removal()


def terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if argv[1:] == ["send"]:
        return sender_main()
    if os.geteuid() != 0:
        print("lab: run as root: sudo ./scripts/demo.sh", file=sys.stderr)
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, terminate)
    try:
        ok = run_lab()
    except (LabError, OSError) as e:
        print("lab: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    if not ok:
        print("lab: error: the counts differ from the plan (lines with !).",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
