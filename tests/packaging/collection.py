"""The collection as its users get it: built by ansible-galaxy from this
checkout, installed from that tarball, and run with nothing of the
checkout's: no ansible.cfg of ours, no collections path but the install's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"],
                                    GALAXY["version"])


def tool(name: str) -> str:
    """A tool of the pinned environment (requirements-dev.txt)."""
    return str(VENV_BIN / name)


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run one command; fail the test with its output when it fails."""
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, "`%s` failed (rc %d):\n%s%s" % (
        " ".join(argv), proc.returncode, proc.stdout[-6000:],
        proc.stderr[-3000:])
    return proc


def build(dest: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    run([tool("ansible-galaxy"), "collection", "build", "--output-path",
         str(dest), str(REPO)], cwd=dest)
    tarball = dest / TARBALL_NAME
    assert tarball.is_file(), sorted(p.name for p in dest.iterdir())
    return tarball


def user_env(workdir: Path, collections: Path) -> dict[str, str]:
    """The environment of a user of the installed collection: an empty
    ansible.cfg of their own (so no other one is read), the install as the
    only collections path, and no ANSIBLE_* setting of this process."""
    config = workdir / "empty-ansible.cfg"
    config.touch()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(config),
               ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    return env
