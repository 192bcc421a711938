"""The filters that bench/line_rate.py compares, each on its own veth
pair and namespace, holding the same blocklist:

- ours: the collection's program, attached with vos.fastpath.xdp_attach
  (the fastpath role's limits and signatures) and filled with
  vos.fastpath.bpf_map_entry, both run as a target runs them;
- nftables: a netdev ingress chain of the receiving end that drops the
  sources of an interval set;
- iptables: `-t raw PREROUTING -m set --match-set S src -j DROP` with an
  ipset hash:net;
- Plain: no filter, for the floors: the trivial XDP_PASS (the floods'
  floor) or the XDP program that drops everything (line_rate_floor).

nftables and iptables run the trivial XDP_PASS program, without which
veth would do their receive work on the sender's CPU (see
line_rate_net). Each filter counts what it dropped with its own
counters; a Plain end counts what its veth took.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import line_rate_traffic as lt
from bench.dataplane_programs import BenchError, counters, quiet
from bench.line_rate_net import Pair, in_netns
from bench.line_rate_proc import run_measured
from plugins.module_utils import _abi, _bpf

REPO = Path(__file__).resolve().parents[1]
MODULES = REPO / "plugins" / "modules"
OBJECT = REPO / "build" / "sip_logic.bpf.o"
NFT_TABLE = "fplr"
SET = "fplr"
NFT_CHUNK = 10_000          # elements per `add element` line
IPTABLES_RULE = ("PREROUTING", "-m", "set", "--match-set", SET, "src",
                 "-j", "DROP")


@dataclass
class Load:
    """One fill of a filter's list: how long it took, the tool's peak
    RSS (MB), and the size it was filled to."""

    entries: int
    seconds: float
    rss_mb: int | None


def run_tool(netns: str, *command: str, stdin: Path | None = None
             ) -> tuple[float, int | None]:
    """Wall seconds and peak RSS (MB, None if unseen) of command in netns;
    it must succeed."""
    done = run_measured(in_netns(netns, *command), command, stdin)
    if done.returncode:
        raise BenchError("%s failed (rc %d): %s" % (
            " ".join(command[:4]), done.returncode,
            (done.err or done.out).decode(errors="replace").strip()[-400:]))
    return done.seconds, done.peak_mb


# -- our program, through the collection's modules ------------------------


@dataclass
class Modules:
    """Runs a module as a target runs it: one Python process reading its
    arguments file, the collection on PYTHONPATH; in a network namespace
    when given."""

    work: Path

    def __call__(self, name: str, args: dict, netns: str | None = None
                 ) -> tuple[dict, float, int | None]:
        path = self.work / ("%s.json" % name)
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        command = [sys.executable, str(MODULES / ("%s.py" % name)),
                   str(path)]
        argv = command if netns is None else in_netns(netns, *command)
        env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
        done = run_measured(argv, command, env=env)
        try:
            result = json.loads(done.out)
        except ValueError:
            result = {"failed": True, "msg": (done.err or done.out).decode(
                errors="replace").strip()[-400:]}
        if done.returncode or result.get("failed"):
            raise BenchError("vos.fastpath.%s failed: %s"
                             % (name, result.get("msg")))
        return result, done.seconds, done.peak_mb


@dataclass
class Ours:
    """The collection's program on pair, its maps under pin_dir."""

    pair: Pair
    modules: Modules
    pin_dir: Path
    state_dir: Path
    limits: dict
    signatures: list[str]
    label: str = "vos.fastpath"
    loads: list[Load] = field(default_factory=list)
    maps: dict[str, _bpf.Map] = field(default_factory=dict)
    detail: str = ""

    def attach(self) -> None:
        result, _wall, _rss = self.modules("xdp_attach", {
            "interface": self.pair.rx_dev, "object": str(OBJECT),
            "mode": "native", "pin_dir": str(self.pin_dir),
            "sip_ports": [lt.SIP_PORT], "limits": self.limits,
            "scanner_signatures": self.signatures}, self.pair.rx_ns)
        if result.get("mode") != "native":
            raise BenchError("xdp_attach gave mode %s, not native"
                             % result.get("mode"))
        self.detail = "program tag %s, attached through a %s" % (
            result.get("tag"), result.get("attach_method"))
        for name in ("stats", "stats_ext", "rate_state"):
            self.maps[name] = _bpf.Map.open_pinned(str(self.pin_dir / name))

    def detach(self) -> None:
        for m in self.maps.values():
            m.close()
        self.maps = {}
        self.modules("xdp_attach", {
            "interface": self.pair.rx_dev, "pin_dir": str(self.pin_dir),
            "state": "absent", "keep_maps": False}, self.pair.rx_ns)

    def load(self, addrs: Sequence[str], listing: Path) -> Load:
        listing.write_text("".join(a + "\n" for a in addrs))
        _result, wall, rss = self.modules("bpf_map_entry", {
            "map": "blocklist", "state": "exact", "src": [str(listing)],
            "source": "bench", "pin_dir": str(self.pin_dir),
            "state_dir": str(self.state_dir)})
        load = Load(len(addrs), wall, rss)
        self.loads.append(load)
        return load

    def reasons(self) -> list[int]:
        """Frames counted per reason: stats, then stats_ext."""
        return counters(self.maps["stats"]) + counters(
            self.maps["stats_ext"])

    def stats(self) -> dict:
        result, _wall, _rss = self.modules("xdp_stats", {
            "pin_dir": str(self.pin_dir)}, self.pair.rx_ns)
        return result

    def bans(self) -> list[dict]:
        result, _wall, _rss = self.modules("xdp_bans", {
            "pin_dir": str(self.pin_dir), "state_dir": str(self.state_dir),
            "lists": False})
        return [b for b in result["bans"] if b.get("origin") == "program"]

    def budget_state(self, src: ipaddress.IPv4Address) -> bytes | None:
        """The source's rate_state value (docs/dataplane.md), or None."""
        key = _abi.SOURCE.pack(4, 32, 0, src.packed)
        return self.maps["rate_state"].lookup(key)

    def sources_tracked(self) -> int:
        return len(self.maps["rate_state"].keys())


# -- nftables -------------------------------------------------------------


@dataclass
class Nftables:
    pair: Pair
    label: str = "nftables"
    loads: list[Load] = field(default_factory=list)
    detail: str = ""

    def setup(self, trivial: Path, work: Path) -> None:
        self.pair.attach_trivial(trivial)
        ruleset = work / "nft_table.nft"
        ruleset.write_text(
            "table netdev %s {\n"
            "  counter drops { }\n"
            "  set block { type ipv4_addr; flags interval; }\n"
            "  chain ingress {\n"
            "    type filter hook ingress device \"%s\" priority filter;\n"
            "    ip saddr @block counter name \"drops\" drop\n"
            "  }\n"
            "}\n" % (NFT_TABLE, self.pair.rx_dev))
        self.pair.rx("nft", "-f", str(ruleset))
        self.detail = ("netdev ingress chain of the receiving veth: "
                       "`ip saddr @block counter name \"drops\" drop`, "
                       "`block` a set of `type ipv4_addr; flags interval`")

    def teardown(self) -> None:
        quiet(*in_netns(self.pair.rx_ns, "nft", "delete", "table", "netdev",
                        NFT_TABLE))

    def load(self, addrs: Sequence[str], script: Path) -> Load:
        """Flush the set, then `nft -f` of one `add element` line per
        NFT_CHUNK addresses."""
        with script.open("w") as f:
            f.write("flush set netdev %s block\n" % NFT_TABLE)
            for i in range(0, len(addrs), NFT_CHUNK):
                f.write("add element netdev %s block { %s }\n" % (
                    NFT_TABLE, ", ".join(addrs[i:i + NFT_CHUNK])))
        wall, rss = run_tool(self.pair.rx_ns, "nft", "-f", str(script))
        load = Load(len(addrs), wall, rss)
        self.loads.append(load)
        return load

    def handled(self) -> int:
        """Frames the receiving end took: the counter read at every run
        (nft reads the whole set for any listing, seconds at 1,000,000
        entries; its own counter is checked per list size instead)."""
        return self.pair.rx_packets()

    def dropped(self) -> int:
        """The rule's named counter."""
        out = self.pair.rx("nft", "-j", "list", "counter", "netdev",
                           NFT_TABLE, "drops")
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise BenchError("no counter `drops` in nftables: %s" % out[:300])


# -- iptables with ipset --------------------------------------------------


@dataclass
class Iptables:
    pair: Pair
    label: str = "iptables + ipset"
    loads: list[Load] = field(default_factory=list)
    detail: str = ""

    def setup(self, trivial: Path) -> None:
        self.pair.attach_trivial(trivial)
        self.pair.rx("ipset", "create", SET, "hash:net", "family", "inet",
                     "maxelem", "2097152")
        self.pair.rx("iptables", "-t", "raw", "-A", *IPTABLES_RULE)
        self.detail = ("`iptables -t raw -A PREROUTING -m set --match-set "
                       "S src -j DROP`, S an `ipset` `hash:net` (family "
                       "inet, default hashsize, which grows)")

    def teardown(self) -> None:
        quiet(*in_netns(self.pair.rx_ns, "iptables", "-t", "raw", "-D",
                        *IPTABLES_RULE))
        quiet(*in_netns(self.pair.rx_ns, "ipset", "destroy", SET))

    def load(self, addrs: Sequence[str], script: Path) -> Load:
        """Flush the set, then `ipset restore -exist` of the adds."""
        script.write_text("flush %s\n" % SET + "".join(
            "add %s %s\n" % (SET, a) for a in addrs))
        wall, rss = run_tool(self.pair.rx_ns, "ipset", "restore", "-exist",
                             stdin=script)
        load = Load(len(addrs), wall, rss)
        self.loads.append(load)
        return load

    def dropped(self) -> int:
        out = self.pair.rx("iptables", "-t", "raw", "-L", "PREROUTING",
                           "-v", "-x", "-n")
        for line in out.splitlines():
            if "match-set %s src" % SET in line:
                return int(line.split()[0])
        raise BenchError("no set rule in the raw table: %s" % out[:300])


# -- no filter: the floors -------------------------------------------------


@dataclass
class Plain:
    """A receiving end with no filter; its program is attached apart."""

    pair: Pair
    label: str = "trivial XDP_PASS"

    def setup(self, trivial: Path) -> None:
        self.pair.attach_trivial(trivial)

    def handled(self) -> int:
        return self.pair.rx_packets()


@contextlib.contextmanager
def opened(ours: Ours) -> Iterator[Ours]:
    """ours attached, detached again on the way out (the pins go with the
    bench's pin directory)."""
    try:
        ours.attach()
        yield ours
    finally:
        with contextlib.suppress(BenchError):
            ours.detach()
