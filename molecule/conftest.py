"""Every scenario's tests import shared/ (fleet.py, addresses.py).

molecule's testinfra verifier runs pytest from the scenario directory on
its tests/ files; pytest finds the rootdir at pyproject.toml and loads each
conftest.py from there down, so this one serves every scenario.

A test marked `last` runs after all the others of its scenario: it checks
what the whole scenario did.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "last: run after every other test of the scenario")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
