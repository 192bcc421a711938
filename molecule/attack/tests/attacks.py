"""The attack scenario's tools and what the edges saw of them.

Every attack runs on the attacker host from an address of its own (its
eth0 is moved there first: a ban is per source). What it sent is the
attacker's own count of the IP packets it sent (UDP datagrams and ICMP
messages, /proc/net/snmp); what the edge made of them is the SIP shield's
verdict counters, read with bpftool before and after; what reached
Kamailio is Kamailio's own count of the requests from that source (the
htable `sources` of files/kamailio-registrar.cfg) and its core
statistics.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import fleet
import testinfra
import yaml

ATTACKER = fleet.only("attackers")
CLIENT = fleet.only("clients")
EDGES = fleet.group("sip_edges")
TOOLS = "/usr/local/share/molecule-attack"
# sipvicious's tools with a User-Agent that no signature matches.
INNOCENT_UA = "Linphone/5.2.0"
SIPVICIOUS_AS = "python3 %s/sipvicious_ua.py %s" % (TOOLS, INNOCENT_UA)
# The weak account of the edges' registrar, and what the attacks try:
# 1001 is the 502nd extension of the range, 1100 the 101st password.
EXTENSIONS = "500-1100"
PASSWORDS = "1000-1200"
ACCOUNT = ("1001", "1100")
# A tool gives up after this many seconds without an answer.
PATIENCE = 2
COUNTER_MAPS = ("stats", "stats_ext")
# Verdicts of IP packets: everything but NON_IP (ARP, which every host
# broadcasts to the whole network, is counted there).
NOT_IP = "NON_IP"
DEFAULTS = (fleet.REPO / "roles" / "fastpath" / "defaults" / "main.yml")
TABLE = "attack-table.json"


def budget(request_class: str, seconds: float) -> int:
    """The most requests of a class the role's default budget lets one
    untrusted source send in `seconds`: its burst, then its rate. GCRA
    admits at most burst + t / interval in any t (docs/dataplane.md);
    rounding t / interval up allows the one request that may fall on the
    window's last instant."""
    limits = yaml.safe_load(DEFAULTS.read_text())["fastpath_rate_limits"]
    rate, burst = limits[request_class]["rate"], limits[request_class]["burst"]
    return burst + math.ceil(rate * seconds)


def move_to(host: fleet.Host, address: str) -> None:
    """Give the host's eth0 this address instead of its own (the /24)."""
    host.run("ip -4 addr flush dev eth0 && ip addr add %s/24 dev eth0"
             % address)


def ip_packets_sent(host: fleet.Host) -> int:
    """UDP datagrams and ICMP messages the host has sent (/proc/net/snmp):
    every IP packet of the attack tools and of the host's answers to
    them (port unreachable for an answer that came after a tool quit)."""
    rows: dict[str, dict[str, int]] = {}
    lines = host.run("cat /proc/net/snmp").splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        proto = names.split(":")[0]
        rows[proto] = dict(zip(names.split()[1:],
                               map(int, values.split()[1:]), strict=True))
    return rows["Udp"]["OutDatagrams"] + rows["Icmp"]["OutMsgs"]


def kamailio_sources(edge: fleet.Host) -> dict[str, int]:
    """Requests Kamailio received, per source address."""
    return parse_sources(edge.run("kamcmd htable.dump sources"))


def parse_sources(dump: str) -> dict[str, int]:
    return {name: int(value) for name, value in
            re.findall(r"name: (\S+)\s+value: (\d+)", dump)}


def parse_stats(out: str) -> dict[str, int]:
    """kamcmd stats.get_statistics all: {"core:rcv_requests": n, ...}."""
    return {name: int(value) for name, value in
            re.findall(r"^(\S+) = (\d+)$", out, re.MULTILINE)}


def parse_counters(dump: str, names: tuple[str, ...]) -> dict[str, int]:
    """A per-CPU counter map as bpftool dumps it: {reason: packets}."""
    out = {}
    for entry in json.loads(dump):
        index = int.from_bytes(bytes(int(b, 16) for b in entry["key"]),
                               "little")
        if index < len(names):
            out[names[index]] = sum(
                fleet.abi().COUNTER.unpack(
                    bytes(int(b, 16) for b in cpu["value"]))[0]
                for cpu in entry["values"])
    return out


@dataclass
class Snapshot:
    verdicts: dict[str, int]
    sources: dict[str, int]
    stats: dict[str, int]

    @classmethod
    def of(cls, edge: fleet.Host) -> Snapshot:
        """The edge's verdict counters and Kamailio's counts, read in one
        go."""
        parts = edge.run(
            " && echo @@ && ".join(
                ["bpftool --json map dump pinned %s/%s" % (fleet.PIN_DIR, m)
                 for m in COUNTER_MAPS]
                + ["kamcmd htable.dump sources",
                   "kamcmd stats.get_statistics all"])).split("@@\n")
        verdicts = {}
        for name, dump in zip(COUNTER_MAPS, parts, strict=False):
            verdicts.update(parse_counters(
                dump, fleet.abi().COUNTER_MAPS[name][0]))
        return cls(verdicts, parse_sources(parts[-2]), parse_stats(parts[-1]))

    def since(self, before: Snapshot) -> Snapshot:
        def gained(now: dict[str, int], then: dict[str, int]
                   ) -> dict[str, int]:
            return {k: v - then.get(k, 0) for k, v in now.items()
                    if v != then.get(k, 0)}
        return Snapshot(gained(self.verdicts, before.verdicts),
                        gained(self.sources, before.sources),
                        gained(self.stats, before.stats))


def ip_verdicts(verdicts: dict[str, int]) -> int:
    return sum(n for name, n in verdicts.items() if name != NOT_IP)


@dataclass
class Attack:
    """One attack on one edge and what came of it."""
    name: str
    source: str
    edge: str
    seconds: float = 0.0
    sent: int = 0               # IP packets the attacker sent
    tool_sent: int | None = None    # requests the tool says it sent
    reached: int = 0            # requests from source Kamailio received
    kamailio_requests: int = 0  # every request Kamailio received
    verdicts: dict[str, int] = field(default_factory=dict)
    output: str = ""
    found: list[tuple[str, str]] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        return {"attack": self.name, "source": self.source,
                "edge": self.edge, "seconds": round(self.seconds, 1),
                "sent": self.sent, "tool_sent": self.tool_sent,
                "reached": self.reached, "verdicts": self.verdicts,
                "found": self.found}


def attack(name: str, source: str, edge: fleet.Host, command: str
           ) -> Attack:
    """Run command on the attacker from source against edge; what the
    edge counted meanwhile, once every packet sent has been counted (or
    after 3 s, for the tests to show the difference)."""
    move_to(ATTACKER, source)
    sent_before = ip_packets_sent(ATTACKER)
    before = Snapshot.of(edge)
    start = time.monotonic()
    output = run_any(ATTACKER, command)
    seconds = time.monotonic() - start
    deadline = time.monotonic() + 3
    while True:
        sent = ip_packets_sent(ATTACKER) - sent_before
        gained = Snapshot.of(edge).since(before)
        if ip_verdicts(gained.verdicts) >= sent or (
                time.monotonic() > deadline):
            break
        time.sleep(0.2)
    return Attack(name, source, edge.name, seconds, sent, None,
                  gained.sources.get(source, 0),
                  gained.stats.get("core:rcv_requests", 0),
                  gained.verdicts, output, table_rows(output))


def run_any(host: fleet.Host, command: str) -> str:
    """Standard output and error of a command, whatever its exit status
    (sipvicious's tools have none to go by)."""
    result = testinfra.get_host("podman://" + host.name).run(command)
    return result.stdout + result.stderr


def table_rows(output: str) -> list[tuple[str, str]]:
    """The rows of the result table sipvicious prints (extension and
    authentication for svwar, extension and password for svcrack)."""
    return [(a, b) for a, b in
            re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*$", output,
                       re.MULTILINE)
            if a != "Extension"]


def svwar(target: str, innocent: bool = False) -> str:
    tool = SIPVICIOUS_AS + " svwar" if innocent else "svwar"
    return "%s -e %s --maximumtime %d %s 2>&1" % (
        tool, EXTENSIONS, PATIENCE, target)


def svcrack(target: str, innocent: bool = False) -> str:
    # Each guess answers a fresh challenge; while none comes, svcrack asks
    # for one every few milliseconds. (Its -n, one nonce for all guesses,
    # fails on a qop=auth challenge in this version.)
    tool = SIPVICIOUS_AS + " svcrack" if innocent else "svcrack"
    return "%s -u %s -r %s --maximumtime %d %s 2>&1" % (
        tool, ACCOUNT[0], PASSWORDS, PATIENCE, target)


# SIPp -----------------------------------------------------------------

@dataclass
class Sipp:
    """A SIPp run's statistics (-trace_stat) and message counts
    (-trace_counts), from its directory on its host."""
    rc: int
    stats: dict[str, str]
    counts: dict[str, int]

    def stat(self, name: str) -> int:
        return int(self.stats[name])

    @property
    def sent(self) -> int:
        """Requests SIPp sent, retransmissions included."""
        return sum(n for name, n in self.counts.items()
                   if name.endswith(("_Sent", "_Retrans"))
                   and name.split("_")[1].isalpha())


def sipp_command(target: str, scenario: str, rate: int, calls: int,
                 port: int, timeout: int) -> str:
    """SIPp from its host's current address: `calls` calls of scenario at
    `rate` a second, bounded by timeout seconds."""
    return ("sipp %s -sf %s/%s.xml -i $(ip -4 -o addr show dev eth0 "
            "| awk '{split($4, a, \"/\"); print a[1]}') -p %d -r %d -m %d "
            "-nostdin -timeout %ds -trace_stat -stf stats.csv -fd 3600 "
            "-trace_counts > out.txt 2>&1"
            % (target, TOOLS, scenario, port, rate, calls, timeout))


def sipp_start(host: fleet.Host, run: str, command: str) -> None:
    """Start a SIPp command in the background in directory run."""
    script = ("%s & echo $! > pid; wait $!; echo $? > rc" % command)
    host.run("rm -rf %s && mkdir -p %s && cd %s && setsid sh -c %s "
             "> /dev/null 2>&1 < /dev/null &"
             % (run, run, run, shlex.quote(script)))


def sipp_stop(host: fleet.Host, run: str, timeout: float = 20) -> Sipp:
    """Let a background SIPp finish its calls in progress (SIGUSR1) and
    read its results."""
    host.run("kill -USR1 $(cat %s/pid) 2>/dev/null || true" % run)
    return sipp_wait(host, run, timeout)


def sipp_wait(host: fleet.Host, run: str, timeout: float) -> Sipp:
    deadline = time.monotonic() + timeout
    while host.run("cat %s/rc 2>/dev/null || true" % run) == "":
        assert time.monotonic() < deadline, (
            "SIPp in %s on %s did not end: %s" % (
                run, host, host.run("tail -c 2000 %s/out.txt" % run)))
        time.sleep(0.2)
    return sipp_results(host, run)


def sipp_results(host: fleet.Host, run: str) -> Sipp:
    rc = int(host.run("cat %s/rc" % run))
    stats = host.run("cat %s/stats.csv" % run).splitlines()
    counts = host.run("cat %s/*_counts.csv" % run).splitlines()
    assert len(stats) >= 2 and len(counts) >= 2, (
        "SIPp wrote no statistics (rc %d): %s"
        % (rc, host.run("tail -c 2000 %s/out.txt" % run)))
    names, last = counts[0].split(";"), counts[-1].split(";")
    return Sipp(rc, dict(zip(stats[0].split(";"), stats[-1].split(";"),
                             strict=True)),
                {n: int(v) for n, v in zip(names[2:], last[2:], strict=True)
                 if n})


def in_run_dir(run: str, command: str) -> str:
    """command run in a new directory run, its exit status in run/rc."""
    return "rm -rf %s && mkdir -p %s && cd %s && { %s; echo $? > rc; }" % (
        run, run, run, command)


def sipp_run(host: fleet.Host, run: str, command: str,
             timeout: float) -> Sipp:
    """Run a SIPp command in the foreground, in directory run."""
    host.run(in_run_dir(run, command))
    return sipp_wait(host, run, timeout)


# The table ------------------------------------------------------------

def record(attack: Attack) -> None:
    """Add an attack's row to the scenario's table (ephemeral directory),
    which conftest.py prints at the end."""
    path = table_path()
    rows = json.loads(path.read_text()) if path.exists() else []
    row = attack.row()
    key = ("attack", "source", "edge")
    rows = [r for r in rows if [r[k] for k in key] != [row[k] for k in key]]
    rows.append(row)
    path.write_text(json.dumps(rows, indent=1) + "\n")


def format_table(rows: list[dict[str, object]]) -> str:
    reasons = ["PASSED", "RATE_LIMITED", "SCANNER", "BANNED", "BLOCKED"]
    columns = ["source", "edge", "sent", "tool", "reached", *reasons,
               "other"]
    width = max(len(str(row["attack"])) for row in rows)
    lines = []
    for row in rows:
        verdicts = dict(row["verdicts"])
        verdicts.pop(NOT_IP, None)
        values = [row["source"], str(row["edge"]).rsplit("-", 1)[-1],
                  row["sent"],
                  "-" if row["tool_sent"] is None else row["tool_sent"],
                  row["reached"], *(verdicts.get(r, 0) for r in reasons),
                  sum(n for r, n in verdicts.items() if r not in reasons)]
        lines.append([str(row["attack"])] + [str(v) for v in values])
    sizes = [width] + [max(len(c), *(len(line[i + 1]) for line in lines))
                       for i, c in enumerate(columns)]
    out = ["  ".join(v.ljust(n) if i < 3 else v.rjust(n)
                     for i, (v, n) in enumerate(zip(line, sizes,
                                                    strict=True)))
           for line in [["attack", *columns], *lines]]
    out.append(
        "sent: IP packets the attacker sent (UDP and ICMP); tool: requests "
        "SIPp counted; reached: requests from the source that Kamailio "
        "received; then the edge's verdicts (ARP left out)")
    return "\n".join(out)


def table_path() -> Path:
    return Path(fleet.molecule_env("MOLECULE_EPHEMERAL_DIRECTORY")) / TABLE
