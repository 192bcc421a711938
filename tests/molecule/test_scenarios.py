"""Every molecule scenario (molecule/<name>/molecule.yml) passes
`molecule test`: create, prepare, converge, idempotence, verify and
destroy, on podman containers that scripts/setup.sh makes possible.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
SCENARIOS = sorted(path.parent.name
                   for path in (REPO / "molecule").glob("*/molecule.yml"))
TIMEOUT = 1200


def molecule(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH="%s:%s" % (VENV_BIN, os.environ["PATH"]),
               NO_COLOR="1", PY_COLORS="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(VENV_BIN / "molecule"), *args], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def leftover_containers(scenario: str) -> list[str]:
    config = yaml.safe_load(
        (REPO / "molecule" / scenario / "molecule.yml").read_text())
    return [p["name"] for p in config["platforms"]
            if subprocess.run(["podman", "container", "exists", p["name"]],
                              check=False).returncode == 0]


def test_there_are_scenarios() -> None:
    assert "default" in SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_test_passes(root_required: None, scenario: str) -> None:
    try:
        proc = molecule("test", "--scenario-name", scenario)
    finally:
        if leftover_containers(scenario):
            molecule("destroy", "--scenario-name", scenario)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-12000:]
    assert leftover_containers(scenario) == []
