"""Run the collection's playbooks with ansible-playbook, for real.

Hosts of a test inventory run on this machine (ansible_connection=local)
with Debian's /usr/bin/python3, as a target would: each host gets its own
interfaces, pin directory and state directory, so several "hosts" share
one kernel without touching each other.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_BIN = REPO / ".venv" / "bin" / "ansible-playbook"
PLAYBOOKS = REPO / "playbooks"
TARGET_PYTHON = "/usr/bin/python3"

_RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookResult:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]   # host -> {ok, changed, failed, ...}

    def changed(self, host: str) -> int:
        return self.recap[host]["changed"]

    def total(self, field: str) -> int:
        return sum(counts[field] for counts in self.recap.values())


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP block of ansible-playbook's default output."""
    recap: dict[str, dict[str, int]] = {}
    lines = output.splitlines()
    try:
        start = max(i for i, line in enumerate(lines)
                    if line.startswith("PLAY RECAP"))
    except ValueError:
        return recap
    for line in lines[start + 1:]:
        match = _RECAP.match(line.strip())
        if match:
            recap[match.group(1)] = {
                key: int(value) for key, value in
                (pair.split("=") for pair in match.group(2).split())}
    return recap


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]],
                    group: str = "sip_edges",
                    group_vars: dict[str, Any] | None = None) -> Path:
    """A YAML (JSON) inventory: every host local, with Debian's python."""
    base = {"ansible_connection": "local",
            "ansible_python_interpreter": TARGET_PYTHON}
    inventory = {"all": {"children": {group: {
        "hosts": {name: dict(base, **hv) for name, hv in hosts.items()},
        "vars": group_vars or {}}}}}
    path.write_text(json.dumps(inventory, indent=1))
    return path


def run_playbook(playbook: str | Path, inventory: Path, *,
                 extra_vars: dict[str, Any] | None = None,
                 check: bool = False, diff: bool = False,
                 limit: str | None = None,
                 timeout: int = 900) -> PlaybookResult:
    """Run playbooks/<playbook> (or a path) and return rc, output, recap."""
    book = Path(playbook)
    if not book.is_absolute():
        book = PLAYBOOKS / book
    argv = [str(PLAYBOOK_BIN), "-i", str(inventory), str(book)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if limit:
        argv += ["--limit", limit]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    return PlaybookResult(proc.returncode, output, parse_recap(output))
