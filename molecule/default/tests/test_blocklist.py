"""A blocklisted scanner's INVITEs stop at the program; clients go on."""

from __future__ import annotations

from collections.abc import Iterator

import fleet
import pytest

EDGES = fleet.group("sip_edges")
SCANNER = fleet.only("scanners")
CLIENT = fleet.only("clients")
BURST = 200
INVITES = fleet.KAMAILIO_INVITES


@pytest.fixture(scope="module")
def scanner_blocked() -> Iterator[None]:
    fleet.run_playbook("block", fastpath_address=SCANNER.address)
    try:
        yield
    finally:
        fleet.run_playbook("unblock", fastpath_address=SCANNER.address)


@pytest.fixture(scope="module")
def burst(scanner_blocked: None) -> dict[str, dict[str, int]]:
    return fleet.invite_burst(SCANNER, EDGES, BURST)


def test_blocked_scanner_invites_never_reach_kamailio(
        burst: dict[str, dict[str, int]]) -> None:
    assert {edge: gained["invites"] for edge, gained in burst.items()} == \
        {e.name: 0 for e in EDGES}


def test_blocked_counter_grew_by_exactly_the_burst(
        burst: dict[str, dict[str, int]]) -> None:
    assert {edge: gained["blocked"] for edge, gained in burst.items()} == \
        {e.name: BURST for e in EDGES}


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_client_invite_reaches_kamailio(edge: fleet.Host) -> None:
    before = edge.kamailio_stat(INVITES)
    answer = CLIENT.run("%s request INVITE %s" % (fleet.SIP_TOOL,
                                                  edge.address))
    assert answer.startswith("SIP/2.0 403")
    assert edge.kamailio_stat(INVITES) == before + 1


@pytest.mark.parametrize("edge", EDGES, ids=str)
def test_ordinary_client_still_registers(scanner_blocked: None,
                                         edge: fleet.Host) -> None:
    answer = CLIENT.run("%s request REGISTER %s --user alice"
                        % (fleet.SIP_TOOL, edge.address))
    assert answer == "SIP/2.0 200 OK"
