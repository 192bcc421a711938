"""An edge whose eth0 refuses native XDP runs generic, with the same
verdicts as a native edge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import fleet
import pytest

NATIVE, GENERIC = fleet.group("sip_edges")
MONITOR = fleet.only("monitors")
SCANNER = fleet.only("scanners")
CLIENT = fleet.only("clients")
VERDICTS = ["PASSED", "OPTIONS_DROPPED", "BLOCKED", "MALFORMED",
            "REDIRECTED"]


def attach_result(edge: fleet.Host) -> dict:
    path = Path(fleet.molecule_env("MOLECULE_EPHEMERAL_DIRECTORY"),
                "attach-%s.json" % edge.name)
    return json.loads(path.read_text())


def facts(edge: fleet.Host) -> dict:
    result = fleet.run_module(edge.name, "vos.fastpath.bpf_facts", {})
    return result[edge.name]["ansible_facts"]["vos_fastpath"]


def traffic(edge: fleet.Host) -> dict[str, str]:
    """The same traffic to an edge: what came back to each request."""
    target = edge.address
    answers = {
        "monitor OPTIONS": MONITOR.run("%s request OPTIONS %s || true"
                                       % (fleet.SIP_TOOL, target)),
        "client OPTIONS": CLIENT.run("%s request OPTIONS %s || true"
                                     % (fleet.SIP_TOOL, target)),
        "client REGISTER": CLIENT.run("%s request REGISTER %s --user bob"
                                      % (fleet.SIP_TOOL, target)),
    }
    CLIENT.run("%s junk - %s --count 7" % (fleet.SIP_TOOL, target))
    SCANNER.run("%s burst INVITE %s --count 30" % (fleet.SIP_TOOL, target))
    return answers


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict]:
    """Per edge: the answers, and what the verdict counters gained."""
    before = fleet.counters()
    answers = {edge.name: traffic(edge) for edge in (NATIVE, GENERIC)}
    time.sleep(1)
    after = fleet.counters()
    return {edge.name: {"answers": answers[edge.name],
                        "gained": {name: after[edge.name][name]
                                   - before[edge.name][name]
                                   for name in VERDICTS}}
            for edge in (NATIVE, GENERIC)}


def test_edge_refusing_native_runs_generic_the_other_native() -> None:
    assert NATIVE.xdp()["mode"] == "native"
    assert GENERIC.xdp()["mode"] == "generic"


def test_attach_result_says_generic_and_why() -> None:
    result = attach_result(GENERIC)
    assert result["mode"] == "generic"
    assert "refused native XDP (" in result["mode_reason"]
    assert "Peer MTU is too large" in result["mode_reason"]
    assert attach_result(NATIVE)["mode"] == "native"


def test_facts_show_the_generic_program() -> None:
    assert facts(GENERIC)["interfaces"]["eth0"]["xdp"]["mode"] == "generic"
    assert facts(NATIVE)["interfaces"]["eth0"]["xdp"]["mode"] == "native"


def test_same_answers_on_both_edges(verdicts: dict[str, dict]) -> None:
    answers = verdicts[GENERIC.name]["answers"]
    assert answers == {"monitor OPTIONS": "SIP/2.0 200 OK",
                       "client OPTIONS": "no answer",
                       "client REGISTER": "SIP/2.0 200 OK"}
    assert verdicts[NATIVE.name]["answers"] == answers


def test_same_verdict_counts_on_both_edges(
        verdicts: dict[str, dict]) -> None:
    gained = verdicts[GENERIC.name]["gained"]
    assert gained == {"PASSED": 2, "OPTIONS_DROPPED": 1, "BLOCKED": 30,
                      "MALFORMED": 7, "REDIRECTED": 0}
    assert verdicts[NATIVE.name]["gained"] == gained
