"""The README's run command: the playbooks deploy onto the lab, the burst
is counted as planned, and everything the demo made is gone afterwards.

The burst's counts are known from the plan in scripts/lab.py and the
fastpath role's default budget: the stats table must show them exactly,
except the REGISTER flood's split between PASSED and RATE_LIMITED, which
depends on how long the 300 REGISTERs took to send. A source with a fresh
budget of burst B and one request per T lets B + floor(t / T) of a flood
of t seconds through (docs/dataplane.md, Rate limits and bans): with B 30,
T 1/15 s and a flood sent in well under 1/15 s, exactly 30. The test
bounds it by the duration lab.py measured, give or take lab.py's slack
(SLACK_S, 50 ms) for when the program saw the first and last datagram.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load(
    (REPO / "roles" / "fastpath" / "defaults" / "main.yml").read_text())
SLACK_S = 0.05
FLOOD = 300
# The plan of scripts/lab.py, per counter, but for the flood.
EXACT = {
    "OPTIONS_DROPPED": 5,       # the scanner's first 5 OPTIONS
    "BLOCKED": 10,              # the blocklisted attacker
    "MALFORMED": 4,
    "REDIRECTED": 0,
    "NOT_SIP": 2,               # a datagram for port 53, a ping
    "NON_IP": 0,
    "SCANNER": 1,               # User-Agent: friendly-scanner
    "BANNED": 5,                # the scanner's 5 OPTIONS after it
    "TCP": 0,
    "UDP": 5 + 1 + 5 + 5 + 10 + 3 + FLOOD + 4 + 1,
    "ICMP": 1,
    "OTHER": 0,
    "friendly": 1,              # the first signature in the User-Agent
    "active": 1,                # the scanner, banned for an hour
}
PASSED_BESIDES_FLOOD = 5 + 3    # the allowlisted monitor, the client


def stats_table(out: str) -> dict[str, int]:
    """{row: lab-edge's packets} of the table stats.yml printed (YAML
    result format: one quoted line of the table per list item)."""
    start = out.index("TASK [Show the counter table]")
    rows: dict[str, int] = {}
    columns = None
    for line in out[start:].splitlines():
        item = re.fullmatch(r"\s*- (.*)", line)
        if item is None:
            if columns is not None:
                break
            continue
        text = yaml.safe_load(item.group(1))
        words = str(text).split()
        if words[0] == "packets":
            columns = words[1:]
            assert columns == ["lab-edge", "fleet"], columns
        elif columns and len(words) > len(columns):
            label = " ".join(words[:-len(columns)])
            host, fleet = (int(w) for w in words[-len(columns):])
            assert host == fleet
            rows[label] = host
    return rows


def test_demo_runs_the_playbooks_on_the_lab_and_removes_it(
        root_required: None) -> None:
    result = subprocess.run([str(REPO / "scripts" / "demo.sh")],
                            capture_output=True, text=True, timeout=600,
                            check=False)
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-3000:]
    for book in ("deploy.yml", "block.yml", "allow.yml", "stats.yml",
                 "teardown.yml"):
        assert "playbooks/%s" % book in out
    assert "failed=1" not in out
    # The demo shows the playbooks' current variable names.
    assert "The playbook variable" not in out + result.stderr
    assert "every counter and the socket match the plan" in out

    # stats.yml's table has the burst's counts for the lab edge, and
    # nothing else: the lab link carries only the burst.
    table = stats_table(out)
    for name, count in EXACT.items():
        assert table[name] == count, (name, table)
    for signature in DEFAULTS["fastpath_scanner_signatures"][1:]:
        assert table[signature.lower()] == 0, signature

    # The flood: every REGISTER is PASSED or RATE_LIMITED, and as many
    # passed as the budget allows over the time the flood took.
    register = DEFAULTS["fastpath_rate_limits"]["register"]
    burst, rate = register["burst"], register["rate"]
    flood = re.search(r"flooder: %d REGISTERs in ([0-9.]+) s, (\d+) passed"
                      % FLOOD, out)
    assert flood, out[-6000:]
    seconds, passed = float(flood.group(1)), int(flood.group(2))
    assert table["PASSED"] == PASSED_BESIDES_FLOOD + passed
    assert table["RATE_LIMITED"] == FLOOD - passed
    assert burst + math.floor(max(seconds - SLACK_S, 0) * rate) <= passed \
        <= burst + math.floor((seconds + SLACK_S) * rate)
    # Sent in under a second: most of the flood is stopped.
    assert seconds < 1.0
    assert table["RATE_LIMITED"] >= FLOOD - burst - rate
    assert table["total"] == sum(table[p] for p in
                                 ("TCP", "UDP", "ICMP", "OTHER"))

    links = subprocess.run(["ip", "-o", "link"], capture_output=True,
                           text=True, check=False).stdout
    assert "fp-lab0" not in links
    for path in ("/sys/fs/bpf/vos_fastpath_lab", "/var/lib/vos-fastpath-lab",
                 "/usr/local/lib/vos-fastpath-lab"):
        assert not Path(path).exists(), path
