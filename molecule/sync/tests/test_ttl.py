"""A blocklist entry with a TTL matches until it expires, then no more."""

from __future__ import annotations

import time

import fleet
import pytest

EDGES = fleet.group("sip_edges")
SCANNER = fleet.only("scanners")
TTL = 30
BURST = 20


def burst() -> dict[str, dict[str, int]]:
    return fleet.invite_burst(SCANNER, EDGES, BURST)


@pytest.fixture(scope="module")
def blocked_until() -> float:
    """Block the scanner for TTL seconds; when it is sure to have expired."""
    fleet.run_playbook("block", fastpath_address=SCANNER.address,
                       fastpath_ttl=TTL)
    return time.monotonic() + TTL + 1


def test_entry_with_ttl_blocks_while_it_lives(blocked_until: float) -> None:
    gained = burst()
    assert time.monotonic() < blocked_until - 2, "the burst came too late"
    assert gained == {e.name: {"blocked": BURST, "invites": 0}
                      for e in EDGES}


def test_entry_with_ttl_stops_matching_once_expired(
        blocked_until: float) -> None:
    time.sleep(max(0.0, blocked_until - time.monotonic()))
    assert burst() == {e.name: {"blocked": 0, "invites": BURST}
                       for e in EDGES}
