"""Shared fixtures: the repository on sys.path, root and kernel checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The repository for tests/ and plugins/, and the collection link made by
# scripts/setup.sh for the modules' own imports (ansible_collections.vos...).
for path in (REPO, REPO / ".collections"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def root_required() -> None:
    """Kernel tests need root; say so loudly instead of failing oddly."""
    if os.geteuid() != 0:
        pytest.skip("needs root: run the README's test command as root")
    if not os.path.ismount("/sys/fs/bpf"):
        pytest.skip("needs bpffs on /sys/fs/bpf: run scripts/setup.sh")
