"""The README's run command: the lab demo runs, checks itself, cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plugins.module_utils import _abi

REPO = Path(__file__).resolve().parents[1]


def test_demo_lab_counts_every_verdict_and_removes_the_lab(
        root_required: None) -> None:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / "scripts/lab.py")],
                            capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in _abi.REASONS + _abi.PROTOS:
        assert name in result.stdout
    assert "every counter and the socket match the plan" in result.stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True,
                           text=True, check=False).stdout
    assert "fp-lab0" not in links
    assert not Path("/sys/fs/bpf/vos_fastpath_lab").exists()
