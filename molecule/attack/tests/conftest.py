"""The attack scenario's table: per attack, what was sent, what reached
Kamailio and what the edge dropped, printed after the tests (and kept in
the scenario's ephemeral directory, attack-table.json)."""

from __future__ import annotations

import json

import attacks
import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    path = attacks.table_path()
    if path.exists():
        path.unlink()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter
                            ) -> None:
    path = attacks.table_path()
    if path.exists():
        terminalreporter.section("what each attack sent, got through and "
                                 "had dropped")
        terminalreporter.write_line(
            attacks.format_table(json.loads(path.read_text())))
