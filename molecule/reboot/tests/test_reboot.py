"""The edge's container restarted: its eth0 is a new interface and its
bpffs a new one, so the program and the pins are gone until the boot
service (vos-fastpath.service) brings them back."""

from __future__ import annotations

from typing import Any

import fleet
import pytest

EDGE = fleet.only("sip_edges")
SCANNER = fleet.only("scanners")
TTL = 3600


def state() -> dict[str, Any]:
    return {"xdp": EDGE.xdp(), "lists": EDGE.lists()}


def systemd_property(unit: str, name: str) -> str:
    return EDGE.run("systemctl show -P %s %s" % (name, unit))


@pytest.fixture(scope="module")
def reboot() -> dict[str, dict[str, Any]]:
    # One entry with a TTL too: it must come back, still counting down.
    fleet.run_playbook("block", fastpath_address="198.51.100.7",
                       fastpath_ttl=TTL)
    before = state()
    EDGE.stop()
    EDGE.start()
    return {"before": before, "after": state()}


def test_the_program_was_loaded_again_at_boot(
        reboot: dict[str, dict[str, Any]]) -> None:
    assert reboot["after"]["xdp"]["id"] != reboot["before"]["xdp"]["id"]


def test_boot_service_restored_every_blocklist_entry(
        reboot: dict[str, dict[str, Any]]) -> None:
    lists = reboot["before"]["lists"]
    journal = EDGE.run("journalctl --boot --unit vos-fastpath.service "
                       "--output cat")
    assert "blocklist: %d entries restored" % (
        len(lists["block_v4"]) + len(lists["block_v6"])) in journal


def test_boot_service_was_done_before_kamailio_started(
        reboot: dict[str, dict[str, Any]]) -> None:
    boot = "vos-fastpath.service"
    assert systemd_property(boot, "Result") == "success"
    done = int(systemd_property(boot, "ActiveEnterTimestampMonotonic"))
    kamailio = int(systemd_property("kamailio.service",
                                    "ExecMainStartTimestampMonotonic"))
    assert 0 < done <= kamailio


def test_program_is_back_natively_from_the_same_object(
        reboot: dict[str, dict[str, Any]]) -> None:
    before, after = reboot["before"]["xdp"], reboot["after"]["xdp"]
    assert after["mode"] == "native"
    assert after["tag"] == before["tag"]


def test_every_list_entry_is_back(reboot: dict[str, dict[str, Any]]) -> None:
    before = reboot["before"]["lists"]
    assert len(before["block_v4"]) > 20_000 * 0.8
    assert "198.51.100.7/32" in before["block_v4"]
    assert reboot["after"]["lists"] == before


def test_blocklisted_scanner_is_dropped_after_the_reboot(
        reboot: dict[str, dict[str, Any]]) -> None:
    assert fleet.invite_burst(SCANNER, [EDGE], 40) == \
        {EDGE.name: {"blocked": 40, "invites": 0}}


def test_deploy_after_the_reboot_changes_nothing(
        reboot: dict[str, dict[str, Any]]) -> None:
    output = fleet.run_playbook("deploy")
    assert fleet.changed_tasks(output)[EDGE.name] == 0, output[-3000:]
