"""Every module's documentation renders with ansible-doc."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name: str) -> None:
    doc_bin = REPO / ".venv" / "bin" / "ansible-doc"
    result = subprocess.run([str(doc_bin), "-j", "vos.fastpath." + name],
                            cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)["vos.fastpath." + name]
    assert entry["doc"]["short_description"]
    assert entry["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert entry["examples"].strip()
    assert entry["return"]


def test_every_module_is_documented() -> None:
    # ansible-doc lists a module without DOCUMENTATION as "UNDOCUMENTED",
    # and misses one it cannot load: its listing must be the module files.
    doc_bin = REPO / ".venv" / "bin" / "ansible-doc"
    result = subprocess.run([str(doc_bin), "-l", "-j", "vos.fastpath"],
                            cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted(listed) == ["vos.fastpath." + name for name in MODULES]
    undocumented = [name for name, text in listed.items()
                    if not text or text == "UNDOCUMENTED"]
    assert undocumented == []
