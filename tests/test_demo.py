"""The README's run command: the playbooks deploy onto the lab, the burst
is counted as planned, and everything the demo made is gone afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
    # stats.yml's table has the burst's counts for the lab edge.
    assert "BLOCKED" in out and "OPTIONS_DROPPED" in out
    links = subprocess.run(["ip", "-o", "link"], capture_output=True,
                           text=True, check=False).stdout
    assert "fp-lab0" not in links
    for path in ("/sys/fs/bpf/vos_fastpath_lab", "/var/lib/vos-fastpath-lab",
                 "/usr/local/lib/vos-fastpath-lab"):
        assert not Path(path).exists(), path
