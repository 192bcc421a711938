"""sipvicious_svmap from the scanner sees the edges only without stealth."""

from __future__ import annotations

import re
from collections.abc import Iterator

import fleet
import pytest

EDGES = fleet.group("sip_edges")
SCANNER = fleet.only("scanners")


def svmap() -> set[str]:
    """The addresses sipvicious_svmap finds among the edges."""
    out = SCANNER.run("sipvicious_svmap %s 2>&1"
                      % " ".join(e.address for e in EDGES))
    return set(re.findall(r"(\d+\.\d+\.\d+\.\d+):5060", out))


def set_stealth(on: bool) -> None:
    fleet.run_module("sip_edges", "vos.fastpath.xdp_attach", {
        "interface": "eth0", "object": fleet.OBJECT,
        "pin_dir": fleet.PIN_DIR, "settings": {"stealth": on}})


@pytest.fixture
def stealth_off() -> Iterator[None]:
    set_stealth(False)
    try:
        yield
    finally:
        set_stealth(True)


def test_scanner_finds_no_edge() -> None:
    assert svmap() == set()


def test_scanner_finds_every_edge_with_stealth_off(stealth_off: None
                                                   ) -> None:
    assert svmap() == {e.address for e in EDGES}
