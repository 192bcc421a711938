"""Run one module of the collection through ansible-playbook, for real.

The module runs on this host with Debian's /usr/bin/python3, as it would on
a target: no virtual environment, no pip package.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_BIN = REPO / ".venv" / "bin" / "ansible-playbook"
TARGET_PYTHON = "/usr/bin/python3"


def run_module(module: str, args: dict[str, Any], workdir: Path, *,
               check: bool = False, diff: bool = False,
               output: list[str] | None = None) -> dict[str, Any]:
    """The registered result of one task (failed tasks included); what
    ansible-playbook printed is appended to output, when given."""
    out = workdir / "result.json"
    if out.exists():
        out.unlink()
    play = [{
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": TARGET_PYTHON},
        "tasks": [
            {"name": "module under test", module: args, "register": "result",
             "ignore_errors": True, "check_mode": check, "diff": diff},
            {"name": "save the result",
             "ansible.builtin.copy": {"content": "{{ result | to_json }}",
                                      "dest": str(out)},
             "check_mode": False, "diff": False},
        ],
    }]
    book = workdir / "play.yml"
    book.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(PLAYBOOK_BIN), "-i", "localhost,", str(book)], cwd=REPO,
        env=env, capture_output=True, text=True, timeout=600, check=False)
    if output is not None:
        output.append(proc.stdout + proc.stderr)
    if not out.exists():
        raise AssertionError("ansible-playbook did not run the module:\n"
                             + proc.stdout + proc.stderr)
    return json.loads(out.read_text())
