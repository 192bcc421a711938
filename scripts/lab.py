"""The lab of the README's demo: one SIP edge and its clients, on this machine.

A network namespace `fp-lab-client` holds four clients; a veth pair joins it
to `fp-lab0` (198.51.100.1, the "SIP server") in the root namespace. The
demo deploys the collection onto fp-lab0 with its playbooks
(inventories/lab.yml), and this script sends the clients' traffic:

  lab.py up      create the namespace and the veth pair
  lab.py burst   send a short, bounded burst of SIP and non-SIP packets and
                 check the program's counters and what reached the server's
                 UDP socket against the plan (blocklisted 198.51.100.66,
                 allowlisted 198.51.100.20, stealth on, a scanner's
                 User-Agent from 198.51.100.10, a REGISTER flood from
                 198.51.100.40 against the REGISTER budget the deploy
                 wrote); once per deploy, since bans and budgets carry
                 over
  lab.py down    remove everything the lab created; safe to repeat
  lab.py send    the sender half of burst, run inside the namespace

Run as root through `./scripts/demo.sh` (it sets PYTHONPATH to the
repository).
"""

from __future__ import annotations

import collections
import ipaddress
import json
import math
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

PIN_DIR = Path("/sys/fs/bpf/vos_fastpath_lab")
NETNS = "fp-lab-client"
SERVER_IF, CLIENT_IF = "fp-lab0", "fp-lab1"
SERVER_MAC, CLIENT_MAC = "02:00:5e:10:00:01", "02:00:5e:10:00:02"
SERVER_IP = "198.51.100.1"
SUBNET = ipaddress.ip_network("198.51.100.0/24")
SIP_PORT = 5060
WAIT_S = 5.0                # link up / program load bound
DRAIN_IDLE_S = 0.5          # the server socket is idle this long: all is in
# How much earlier or later than its send the program may see a datagram,
# relative to the others of its burst: the bound on the flood's count.
SLACK_S = 0.05
SCANNER_UA = "friendly-scanner"


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
FLOODER = Host("flooder", "198.51.100.40")
HOSTS = (SCANNER, MONITOR, ATTACKER, CLIENT, FLOODER)


def sip_request(method: str, host: Host, seq: int,
                user_agent: str = "") -> bytes:
    """A complete, well-formed SIP request without a body."""
    ua = f"User-Agent: {user_agent}\r\n" if user_agent else ""
    return (
        f"{method} sip:{SERVER_IP}:{SIP_PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host.addr};branch=z9hG4bK-lab{seq:04d}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{host.role}@{host.addr}>;tag=lab{seq:04d}\r\n"
        f"To: <sip:{SERVER_IP}>\r\n"
        f"Call-ID: lab-{method.lower()}-{seq:04d}@{host.addr}\r\n"
        f"CSeq: {seq + 1} {method}\r\n"
        f"{ua}"
        f"Content-Length: 0\r\n\r\n").encode()


@dataclass(frozen=True)
class Burst:
    """count packets of one kind from one host, sent back to back, and
    what should count them. `charged`: the request class whose budget they
    meet before their verdict ([step 11]), "" for none (not a request,
    or dropped before: banned, blocked). A `flood` goes over that budget:
    the first ones pass, the rest are `reason`."""

    host: Host
    label: str
    count: int
    port: int                          # UDP destination; 0 = ICMP echo
    payload: Callable[[Host, int], bytes]
    reason: str                        # the counter expected to move
    why: str = ""
    charged: str = ""                  # e.g. "OPTIONS"
    flood: bool = False

    @property
    def proto(self) -> str:
        return "ICMP" if self.port == 0 else "UDP"


# In order: the scanner's requests after its fingerprint find it banned.
BURSTS = (
    Burst(SCANNER, "OPTIONS", 5, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, i),
          "OPTIONS_DROPPED", "stealth: untrusted scanner", "OPTIONS"),
    Burst(SCANNER, "OPTIONS+UA", 1, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, 100 + i, SCANNER_UA),
          "SCANNER", "User-Agent: %s, banned" % SCANNER_UA, "OPTIONS"),
    Burst(SCANNER, "OPTIONS", 5, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, 200 + i),
          "BANNED", "the scanner, from now on"),
    Burst(MONITOR, "OPTIONS", 5, SIP_PORT,
          lambda h, i: sip_request("OPTIONS", h, i), "PASSED", "allowlisted",
          "OPTIONS"),
    Burst(ATTACKER, "INVITE", 10, SIP_PORT,
          lambda h, i: sip_request("INVITE", h, i), "BLOCKED", "blocklisted"),
    Burst(CLIENT, "REGISTER", 3, SIP_PORT,
          lambda h, i: sip_request("REGISTER", h, i), "PASSED", "",
          "REGISTER"),
    Burst(FLOODER, "REGISTER", 300, SIP_PORT,
          lambda h, i: sip_request("REGISTER", h, i), "RATE_LIMITED",
          "over its REGISTER budget", "REGISTER", flood=True),
    Burst(CLIENT, "junk", 4, SIP_PORT,
          lambda h, i: b"\x00\xffnot SIP %d\x00" % i, "MALFORMED"),
    Burst(CLIENT, "UDP", 1, 53,
          lambda h, i: b"\x12\x34 a datagram for port 53", "NOT_SIP"),
    Burst(CLIENT, "ping", 1, 0,
          lambda h, i: b"fastpath lab ping", "NOT_SIP"),
)


def reason_map(reason: str) -> str:
    """The counter map of a reason: stats, or stats_ext."""
    return "stats_ext" if reason in _abi.REASONS_EXT else "stats"


@dataclass(frozen=True)
class Budget:
    """One class's budget as the `limits` map holds it."""

    interval_ns: int                   # 0: no limit
    burst: int

    def passed(self, count: int, seconds: float) -> int:
        """How many of count requests sent back to back over `seconds`
        pass (docs/dataplane.md, Rate limits and bans): the burst, then
        one per interval, for a source with its whole burst left."""
        if not self.interval_ns:
            return count
        refill = math.floor(max(seconds, 0.0) * 1e9 / self.interval_ns)
        return min(count, max(self.burst, 1) + refill)


@dataclass(frozen=True)
class Policy:
    """What the deploy wrote into `limits` and `scanner_sigs`, as far as
    the plan depends on it."""

    untrusted: dict[str, Budget]
    trusted: dict[str, Budget]
    bans: bool
    ban_after_ns: int
    scanner_ban_ns: int
    signatures: tuple[str, ...]

    def signature_for(self, user_agent: str) -> str | None:
        """The signature that matches the User-Agent ([step 12]): the one
        found first in its first 128 bytes, any case; at the same place,
        the one listed first."""
        value = user_agent.lower()[:128]
        found = [(value.find(s), slot, s)
                 for slot, s in enumerate(self.signatures) if s in value]
        return min(found)[2] if found else None

    def budget(self, burst: Burst) -> Budget:
        group = self.trusted if burst.host == MONITOR else self.untrusted
        return group[burst.charged]


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


def read_policy() -> Policy:
    """The limits and signatures the deploy wrote."""
    for name in ("limits", "scanner_sigs"):
        if not (PIN_DIR / name).exists():
            raise LabError("No %s map under %s: the program there predates "
                           "rate limits; deploy this version." % (name,
                                                                  PIN_DIR))
    with _bpf.Map.open_pinned(str(PIN_DIR / "limits")) as limits:
        values = _abi.LIMITS.unpack(limits.lookup(_abi.U32.pack(0)))
    groups = []
    for g in range(2):
        groups.append({
            name: Budget(*values[3 * (g * _abi.CLASS_SLOTS + i):
                                 3 * (g * _abi.CLASS_SLOTS + i) + 2])
            for i, name in enumerate(_abi.CLASSES)})
    ban_after, _ban, scanner_ban, flags = values[6 * _abi.CLASS_SLOTS:][:4]
    # The signatures as the program tries them: the keys of their hits.
    signatures = tuple(_counters.read_scanner_hits(str(PIN_DIR)) or {})
    return Policy(groups[0], groups[1], bool(flags & _abi.FP_LIMIT_BANS),
                  ban_after, scanner_ban, signatures)


def check_policy(policy: Policy) -> None:
    """The plan needs what the fastpath role deploys by default: a
    REGISTER budget that 300 requests overflow, budgets the other
    requests fit in, a signature for the scanner's User-Agent, bans."""
    problems = []
    charged: collections.Counter[tuple[Host, str]] = collections.Counter()
    for b in BURSTS:
        budget = policy.budget(b) if b.charged else None
        if b.flood:
            if not budget.interval_ns or budget.burst >= b.count:
                problems.append("no %s budget that %d requests go over"
                                % (b.charged, b.count))
        elif budget is not None:
            charged[b.host, b.charged] += b.count
            if budget.passed(charged[b.host, b.charged], 0.0) \
                    < charged[b.host, b.charged]:
                problems.append("a %s budget of fewer than %d requests"
                                % (b.charged, charged[b.host, b.charged]))
    if policy.signature_for(SCANNER_UA) is None:
        problems.append("no scanner signature in %r" % SCANNER_UA)
    if not (policy.bans and policy.scanner_ban_ns):
        problems.append("no bans for scanners")
    if problems:
        raise LabError("The lab's plan needs the fastpath role's default "
                       "limits and signatures, and %s has %s: deploy it "
                       "with them (./scripts/demo.sh does)."
                       % (PIN_DIR, "; ".join(problems)))


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


def send_burst(burst: Burst) -> float:
    """Send the burst back to back; the seconds from its first datagram
    to its last."""
    if burst.port == 0:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                             socket.IPPROTO_ICMP)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((burst.host.addr, 0))
        datagrams = []
        for i in range(burst.count):
            data = burst.payload(burst.host, i)
            if burst.port == 0:
                data = icmp_echo(data, i)
            datagrams.append(data)
        start = time.monotonic()
        for data in datagrams:
            sock.sendto(data, (SERVER_IP, burst.port))
        return time.monotonic() - start


def sender_main() -> int:
    """`lab.py send`, run inside the namespace: every burst, once; prints
    how long each took, as JSON."""
    seconds = [send_burst(burst) for burst in BURSTS]
    print(json.dumps({"seconds": seconds}))
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


def send_from_netns() -> list[float]:
    """Send every burst from the clients; how long each one took."""
    out = run(*in_netns(sys.executable, str(Path(__file__).resolve()),
                        "send")).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


# -- report --------------------------------------------------------------

Range = tuple[int, int]        # the fewest and the most packets expected


@dataclass
class Reading:
    """What the program holds that the burst moves."""

    counters: _counters.Counters
    hits: dict[str, _counters.Counter]
    bans: int

    @classmethod
    def now(cls) -> Reading:
        pin_dir = str(PIN_DIR)
        return cls(_counters.read_counters(pin_dir),
                   _counters.read_scanner_hits(pin_dir) or {},
                   _counters.count_active_bans(pin_dir) or 0)

    def minus(self, before: Reading) -> Reading:
        """What the burst added."""
        counters = {map_name: {name: {key: names[name][key]
                                      - before.counters[map_name][name][key]
                                      for key in ("packets", "bytes")}
                               for name in names}
                    for map_name, names in self.counters.items()}
        none = {"packets": 0, "bytes": 0}
        hits = {sig: {key: c[key] - before.hits.get(sig, none)[key]
                      for key in ("packets", "bytes")}
                for sig, c in self.hits.items()}
        return Reading(counters, hits, self.bans - before.bans)


def budget_text(budget: Budget) -> str:
    return "a burst of %d, then one each %.1f ms" % (
        max(budget.burst, 1), budget.interval_ns / 1e6)


def print_plan(policy: Policy) -> None:
    say("sending %d packets from %s to %s:" % (
        sum(b.count for b in BURSTS), NETNS, SERVER_IP))
    for b in BURSTS:
        what = "%3d x %s" % (b.count, b.label)
        to = "to %d" % b.port if b.port else ""
        expect = b.reason + (" (%s)" % b.why if b.why else "")
        if b.flood:
            expect = "PASSED within its budget (%s), the rest %s" % (
                budget_text(policy.budget(b)), expect)
        print("  %-10s %-13s %-15s %-7s -> %s" % (
            b.host.role, b.host.addr, what, to, expect))


def flood_range(burst: Burst, policy: Policy, seconds: float) -> Range:
    """How many of a flood pass: its budget over the time it took, give
    or take SLACK_S for when the program saw its first and last."""
    budget = policy.budget(burst)
    return (budget.passed(burst.count, seconds - SLACK_S),
            budget.passed(burst.count, seconds + SLACK_S))


def expected_counters(policy: Policy, seconds: list[float]
                      ) -> dict[str, dict[str, Range]]:
    """Packets per counter that the burst must produce, nothing else."""
    expect: dict[str, dict[str, Range]] = {
        map_name: dict.fromkeys(names, (0, 0))
        for map_name, (names, _help) in _counters.COUNTER_MAPS.items()}

    def add(map_name: str, name: str, low: int, high: int) -> None:
        was = expect[map_name][name]
        expect[map_name][name] = (was[0] + low, was[1] + high)

    for b, took in zip(BURSTS, seconds, strict=True):
        add("proto_stats", b.proto, b.count, b.count)
        if b.flood:
            low, high = flood_range(b, policy, took)
            add("stats", "PASSED", low, high)
            add(reason_map(b.reason), b.reason, b.count - high,
                b.count - low)
        else:
            add(reason_map(b.reason), b.reason, b.count, b.count)
    return expect


def expected_hits(policy: Policy) -> dict[str, int]:
    """Packets per signature: the scanner's request, once."""
    want = dict.fromkeys(policy.signatures, 0)
    for b in BURSTS:
        if b.reason == "SCANNER":
            want[policy.signature_for(SCANNER_UA) or ""] += b.count
    return want


def shown(want: Range) -> str:
    return str(want[0]) if want[0] == want[1] else "%d to %d" % want


def counter_mismatches(delta: Reading, policy: Policy,
                       seconds: list[float]) -> list[str]:
    out = []
    for map_name, want in expected_counters(policy, seconds).items():
        for name, (low, high) in want.items():
            got = delta.counters[map_name][name]["packets"]
            if not low <= got <= high:
                out.append("%s %s: %d, expected %s" % (
                    map_name, name, got, shown((low, high))))
    for sig, n in expected_hits(policy).items():
        got = delta.hits.get(sig, {"packets": 0})["packets"]
        if got != n:
            out.append("scanner_hits %s: %d, expected %d" % (sig, got, n))
    if delta.bans != 1:
        out.append("active bans: %d more, expected 1 (the scanner)"
                   % delta.bans)
    for b, took in zip(BURSTS, seconds, strict=True):
        if b.flood and (took + SLACK_S) * 1e9 >= policy.ban_after_ns:
            out.append("the %s flood took %.3f s, long enough to be "
                       "banned: this machine is too slow for the plan"
                       % (b.label, took))
    return out


def socket_mismatches(delta: Reading, got: collections.Counter[str]
                      ) -> list[str]:
    """What reached the SIP socket is what passed: per source for the
    bursts of one verdict, and for a flood what its counters left."""
    out = []
    passed = delta.counters["stats"]["PASSED"]["packets"]
    if sum(got.values()) != passed:
        out.append("at the SIP socket: %d, but %d PASSED"
                   % (sum(got.values()), passed))
    want: collections.Counter[str] = collections.Counter()
    for b in BURSTS:
        if b.port != SIP_PORT:
            continue
        if b.flood:
            dropped = delta.counters[reason_map(b.reason)][b.reason]
            want[b.host.addr] += b.count - dropped["packets"]
        elif b.reason == "PASSED":
            want[b.host.addr] += b.count
    for addr in sorted(set(want) | set(got)):
        if got[addr] != want[addr]:
            out.append("%s at the SIP socket: %d, expected %d"
                       % (addr, got[addr], want[addr]))
    return out


def report(delta: Reading, got: collections.Counter[str], policy: Policy,
           seconds: list[float]) -> bool:
    """Print the summary; True when all is as planned."""
    sent: collections.Counter[str] = collections.Counter()
    for b in BURSTS:
        if b.port == SIP_PORT:
            sent[b.host.addr] += b.count
    mismatches = (counter_mismatches(delta, policy, seconds)
                  + socket_mismatches(delta, got))
    print("reached the SIP server socket %s:%d: %d of %d sent" % (
        SERVER_IP, SIP_PORT, sum(got.values()), sum(sent.values())))
    print("  " + ", ".join("%s %d of %d" % (h.role, got[h.addr], sent[h.addr])
                           for h in HOSTS if h.addr in sent))
    for b, took in zip(BURSTS, seconds, strict=True):
        if b.flood:
            dropped = delta.counters[reason_map(b.reason)][b.reason]
            print("%s: %d %ss in %.3f s, %d passed (its budget lets %s "
                  "through in that time), %d %s" % (
                      b.host.role, b.count, b.label, took,
                      b.count - dropped["packets"],
                      shown(flood_range(b, policy, took)),
                      dropped["packets"], b.reason))
    print("%s: User-Agent %r matched the signature %r; %d source banned "
          "now" % (SCANNER.role, SCANNER_UA,
                   policy.signature_for(SCANNER_UA), delta.bans))
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
    policy = read_policy()
    check_policy(policy)
    before = Reading.now()
    if before.bans:
        raise LabError("The lab edge still bans %d source(s) from an earlier "
                       "burst: bring the lab up and deploy again "
                       "(./scripts/demo.sh does)." % before.bans)
    print_plan(policy)
    with open_sip_socket() as sock:
        seconds = send_from_netns()
        got = drain(sock)
    return report(Reading.now().minus(before), got, policy, seconds)


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
