"""The lab of the README's demo: one SIP edge and its clients, on this machine.

A network namespace `fp-lab-client` holds four clients; a veth pair joins it
to `fp-lab0` (198.51.100.1, the "SIP server") in the root namespace. The
demo deploys the collection onto fp-lab0 with its playbooks
(inventories/lab.yml), and this script sends the clients' traffic:

  lab.py up      create the namespace and the veth pair
  lab.py burst   send a short, bounded burst of SIP and non-SIP packets and
                 check the program's counters and what reached the server's
                 UDP socket against the plan (blocklisted 198.51.100.66,
                 allowlisted 198.51.100.20, stealth on)
  lab.py down    remove everything the lab created; safe to repeat
  lab.py send    the sender half of burst, run inside the namespace

Run as root through `./scripts/demo.sh` (it sets PYTHONPATH to the
repository).
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

from plugins.module_utils import _counters

PIN_DIR = Path("/sys/fs/bpf/vos_fastpath_lab")
NETNS = "fp-lab-client"
SERVER_IF, CLIENT_IF = "fp-lab0", "fp-lab1"
SERVER_MAC, CLIENT_MAC = "02:00:5e:10:00:01", "02:00:5e:10:00:02"
SERVER_IP = "198.51.100.1"
SUBNET = ipaddress.ip_network("198.51.100.0/24")
SIP_PORT = 5060
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


def say(message: str) -> None:
    print("lab: " + message, flush=True)


# -- the lab: network ----------------------------------------------------

def remove_lab() -> None:
    """Remove whatever a run of the lab left, quietly; safe to repeat."""
    if Path("/sys/class/net", SERVER_IF).exists():
        for mode in ("xdpdrv", "xdpgeneric"):
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
    """The counters the burst is checked against."""
    if not (PIN_DIR / "stats").exists():
        raise LabError("No program maps under %s: deploy the lab first "
                       "(./scripts/demo.sh does)." % PIN_DIR)


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


def counter_delta(before: _counters.Counters,
                  after: _counters.Counters) -> _counters.Counters:
    """What the burst added to each counter."""
    return {map_name: {name: {key: after[map_name][name][key]
                              - before[map_name][name][key]
                              for key in ("packets", "bytes")}
                       for name in names}
            for map_name, names in after.items()}


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

def lab_up() -> bool:
    remove_lab()
    check_subnet_free()
    create_network()
    wait_link_up()
    say("namespace %s (%s) <-veth-> %s %s (the SIP edge)" % (
        NETNS, CLIENT_IF, SERVER_IF, SERVER_IP))
    return True


def lab_burst() -> bool:
    check_prerequisites()
    before = _counters.read_counters(str(PIN_DIR))
    print_plan()
    with open_sip_socket() as sock:
        send_from_netns()
        got = drain(sock)
    after = _counters.read_counters(str(PIN_DIR))
    return report(counter_delta(before, after), got)


def lab_down() -> bool:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)   # let removal finish
    remove_lab()
    report_removal()
    return True


COMMANDS = {"up": lab_up, "burst": lab_burst, "down": lab_down}


def terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if argv[1:] == ["send"]:
        return sender_main()
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print("usage: lab.py up|burst|down", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("lab: run as root: sudo ./scripts/demo.sh", file=sys.stderr)
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, terminate)
    try:
        ok = COMMANDS[argv[1]]()
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
