"""Attacks on edge 1, each from its own address, while the legitimate
client registers and calls through edges 2 and 3.

sipvicious's svwar and svcrack with their own User-Agent (friendly-scanner:
fingerprinted, never reach Kamailio) and with an innocent one (caught by
the REGISTER budget, then banned); SIPp floods at ten times the REGISTER
and INVITE budgets. Each finds nothing and gets through no more than the
role's default budget; run on the edge's loopback, where the shield is
not, the same svwar and svcrack find the account and its password.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import attacks
import fleet
import pytest
from attacks import ATTACKER, CLIENT, EDGES, Attack, Sipp, Snapshot

EDGE, *OTHERS = EDGES
# Ten times the default budget of the class (15 a second), for a bounded
# time.
FLOOD_RATE = 150
FLOODS = {"REGISTER": 10, "INVITE": 5}     # seconds
# The client: one registration and one call a second through each edge
# it uses (REGISTER 2/s, INVITE 1/s, ACK and BYE 2/s: well within budget).
CLIENT_RATE = 1
CLIENT_PORTS = {EDGES[1].name: 5062, EDGES[2].name: 5063}
CLIENT_RUN = "/run/molecule-client-%s"


def flood(method: str) -> str:
    run = "/run/molecule-flood-%s" % method.lower()
    seconds = FLOODS[method]
    return attacks.in_run_dir(run, attacks.sipp_command(
        EDGE.address, "flood_" + method.lower(), FLOOD_RATE,
        FLOOD_RATE * seconds, 5070, seconds + 10))


# name: (source address, command, class of its requests)
ATTACKS = {
    "svwar (friendly-scanner)": ("198.18.106.51", attacks.svwar(EDGE.address),
                                 "register"),
    "svcrack (friendly-scanner)": ("198.18.106.52",
                                   attacks.svcrack(EDGE.address), "register"),
    "svwar (innocent User-Agent)": (
        "198.18.106.53", attacks.svwar(EDGE.address, innocent=True),
        "register"),
    "svcrack (innocent User-Agent)": (
        "198.18.106.54", attacks.svcrack(EDGE.address, innocent=True),
        "register"),
    "SIPp REGISTER flood 150/s 10 s": ("198.18.106.55", flood("REGISTER"),
                                       "register"),
    "SIPp INVITE flood 150/s 5 s": ("198.18.106.56", flood("INVITE"),
                                    "invite"),
}
FINGERPRINTED = [name for name in ATTACKS if "friendly" in name]
RATE_LIMITED = [name for name in ATTACKS if name not in FINGERPRINTED]
SVWAR = [name for name in ATTACKS if name.startswith("svwar")]
SVCRACK = [name for name in ATTACKS if name.startswith("svcrack")]
SIPP_FLOODS = {name: method for method in FLOODS for name in ATTACKS
               if "SIPp %s" % method in name}


@dataclass
class Campaign:
    attacks: dict[str, Attack]
    client: dict[str, Sipp]
    # What Kamailio on the client's edges counted meanwhile.
    client_edges: dict[str, Snapshot]
    # Edge 1's bans at the end, by source address (xdp_bans).
    bans: dict[str, dict]


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    before = {e.name: Snapshot.of(e) for e in OTHERS}
    for edge in OTHERS:
        attacks.sipp_start(CLIENT, CLIENT_RUN % edge.name,
                           attacks.sipp_command(
                               edge.address, "register_call", CLIENT_RATE,
                               600, CLIENT_PORTS[edge.name], 600))
    done: dict[str, Attack] = {}
    try:
        for name, (source, command, _class) in ATTACKS.items():
            done[name] = attacks.attack(name, source, EDGE, command)
            method = SIPP_FLOODS.get(name)
            if method:
                done[name].tool_sent = attacks.sipp_results(
                    ATTACKER, "/run/molecule-flood-%s" % method.lower()).sent
            attacks.record(done[name])
    finally:
        client = {e.name: attacks.sipp_stop(CLIENT, CLIENT_RUN % e.name)
                  for e in OTHERS}
        attacks.move_to(ATTACKER, ATTACKER.address)
    (read,) = fleet.run_module(EDGE.name, "vos.fastpath.xdp_bans",
                               {"lists": False}).values()
    yield Campaign(done, client,
                   {e.name: Snapshot.of(e).since(before[e.name])
                    for e in OTHERS},
                   {ban["source"].split("/")[0]: ban for ban in read["bans"]})


@pytest.mark.parametrize("name", FINGERPRINTED)
def test_fingerprinted_scanner_never_reaches_kamailio(
        campaign: Campaign, name: str) -> None:
    attack = campaign.attacks[name]
    assert attack.sent > 0
    assert (attack.reached, attack.kamailio_requests) == (0, 0)
    # Its first request is the scanner's, the others come banned.
    assert attack.verdicts.get("SCANNER", 0) >= 1
    assert set(attack.verdicts) - {attacks.NOT_IP} <= {"SCANNER", "BANNED"}
    ban = campaign.bans[attack.source]
    assert (ban["reason"], ban["detail"]) == ("scanner", "friendly")


@pytest.mark.parametrize("name", RATE_LIMITED)
def test_changed_user_agent_is_rate_limited_then_banned(
        campaign: Campaign, name: str) -> None:
    attack = campaign.attacks[name]
    assert attack.verdicts.get("RATE_LIMITED", 0) > 0
    assert attack.verdicts.get("BANNED", 0) > 0
    assert "SCANNER" not in attack.verdicts


@pytest.mark.parametrize("name", RATE_LIMITED)
def test_no_more_reaches_kamailio_than_the_budget(
        campaign: Campaign, name: str) -> None:
    attack = campaign.attacks[name]
    _source, _command, request_class = ATTACKS[name]
    # Every request that passed reached Kamailio, and nothing else did.
    assert attack.reached == attack.verdicts.get("PASSED", 0) \
        == attack.kamailio_requests
    assert 0 < attack.reached <= attacks.budget(request_class,
                                                attack.seconds)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_packet_sent_is_counted_once(campaign: Campaign,
                                           name: str) -> None:
    attack = campaign.attacks[name]
    assert attacks.ip_verdicts(attack.verdicts) == attack.sent


@pytest.mark.parametrize("name", list(SIPP_FLOODS))
def test_flood_sent_what_was_asked(campaign: Campaign, name: str) -> None:
    attack = campaign.attacks[name]
    asked = FLOOD_RATE * FLOODS[SIPP_FLOODS[name]]
    assert attack.tool_sent == asked
    assert attack.sent >= asked


@pytest.mark.parametrize("name", SVWAR)
def test_svwar_finds_no_extension(campaign: Campaign, name: str) -> None:
    assert campaign.attacks[name].found == []


@pytest.mark.parametrize("name", SVCRACK)
def test_svcrack_finds_no_password(campaign: Campaign, name: str) -> None:
    assert campaign.attacks[name].found == []


@pytest.mark.parametrize("edge", OTHERS, ids=str)
def test_every_legitimate_call_completes(campaign: Campaign,
                                         edge: fleet.Host) -> None:
    client = campaign.client[edge.name]
    calls = client.stat("SuccessfulCall(C)")
    assert (client.rc, client.stat("FailedCall(C)")) == (0, 0)
    assert calls >= 20
    # Each call registered first: SIPp got each 200 OK, Kamailio saved
    # each registration.
    assert client.counts["3_200_Recv"] == calls
    gained = campaign.client_edges[edge.name].stats
    assert gained.get("registrar:accepted_regs", 0) == calls


def test_client_still_calls_through_the_attacked_edge(
        campaign: Campaign) -> None:
    client = attacks.sipp_run(CLIENT, "/run/molecule-client-after",
                              attacks.sipp_command(
                                  EDGE.address, "register_call",
                                  4, 8, 5061, 30), 40)
    assert (client.rc, client.stat("SuccessfulCall(C)"),
            client.stat("FailedCall(C)")) == (0, 8, 0)


# Controls: the same runs on the edge's loopback, where the program is not
# attached, find what the attacks did not.

def test_unshielded_svwar_finds_the_extension(campaign: Campaign) -> None:
    out = attacks.run_any(EDGE, attacks.svwar("127.0.0.1", innocent=True))
    assert attacks.table_rows(out) == [(attacks.ACCOUNT[0], "reqauth")]


def test_unshielded_svcrack_finds_the_password(campaign: Campaign) -> None:
    out = attacks.run_any(EDGE,
                          attacks.svcrack("127.0.0.1", innocent=True))
    assert attacks.table_rows(out) == [attacks.ACCOUNT]
