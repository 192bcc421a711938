"""blocklist_sync.yml and allowlist_sync.yml: every host's list becomes the
file; a host that cannot be reached is reported, the others converge, and a
re-run converges it."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.playbooks.conftest import list_file
from tests.playbooks.playbook_run import run_playbook
from tests.playbooks.test_deploy import assert_ok


def closed_port() -> int:
    """A loopback TCP port nobody listens on: ssh to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_converges_the_reachable_hosts_and_reports_the_other(
        fleet_factory, tmp_path: Path):
    fleet = fleet_factory(3)
    assert_ok(run_playbook("deploy.yml", fleet.inventory()))
    feed = list_file(tmp_path / "feed.txt", 2000)
    wanted = {line if "/" in line else line + "/32"
              for line in feed.read_text().split()
              if line[0].isdigit()}

    down = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
            "ansible_port": closed_port(), "ansible_timeout": 5}
    result = run_playbook("blocklist_sync.yml", fleet.inventory(edge3=down),
                          extra_vars={"fastpath_list_file": str(feed)})
    assert result.rc == 4, result.output[-4000:]       # unreachable host
    assert result.recap["edge3"]["unreachable"] == 1
    assert "edge3: NOT SYNCED (unreachable or failed)" in result.output
    assert "edge1: 2000 added, 0 removed, 2000 entries" in result.output
    for name in ("edge1", "edge2"):
        assert set(fleet[name].entries("blocklist")) == wanted
    assert fleet["edge3"].entries("blocklist") == {}

    again = run_playbook("blocklist_sync.yml", fleet.inventory(),
                         extra_vars={"fastpath_list_file": str(feed)})
    assert_ok(again)
    assert again.changed("edge1") == 0 and again.changed("edge2") == 0
    assert again.changed("edge3") > 0
    assert set(fleet["edge3"].entries("blocklist")) == wanted

    # An entry taken out of the file goes everywhere.
    lines = feed.read_text().splitlines()
    gone = lines[-1]
    feed.write_text("\n".join(lines[:-1]) + "\n")
    assert_ok(run_playbook("blocklist_sync.yml", fleet.inventory(),
                           extra_vars={"fastpath_list_file": str(feed)}))
    for host in fleet.hosts:
        entries = host.entries("blocklist")
        assert gone + "/32" not in entries and len(entries) == 1999


def test_sync_leaves_other_owners_alone(fleet_factory, tmp_path: Path):
    fleet = fleet_factory(1)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))
    assert_ok(run_playbook("block.yml", inventory,
                           extra_vars={"fastpath_address": "192.0.2.99"}))
    feed = tmp_path / "feed.txt"
    feed.write_text("203.0.113.1\n")
    assert_ok(run_playbook("blocklist_sync.yml", inventory,
                           extra_vars={"fastpath_list_file": str(feed)}))
    assert set(fleet["edge1"].entries("blocklist")) == {
        "192.0.2.99/32", "203.0.113.1/32"}


def test_allowlist_sync_and_a_missing_file(fleet_factory, tmp_path: Path):
    fleet = fleet_factory(1)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))
    trusted = tmp_path / "trusted.txt"
    trusted.write_text("# monitors\n192.0.2.20\n2001:db8::20\n")
    assert_ok(run_playbook("allowlist_sync.yml", inventory,
                           extra_vars={"fastpath_list_file": str(trusted)}))
    assert {"192.0.2.20/32", "2001:db8::20/128"} <= set(
        fleet["edge1"].entries("allowlist"))

    missing = run_playbook("allowlist_sync.yml", inventory, extra_vars={
        "fastpath_list_file": str(tmp_path / "none.txt")})
    assert missing.rc != 0
    assert "Give the list as a file on the controller" in missing.output


def test_a_bad_line_fails_the_sync_and_changes_nothing(fleet_factory,
                                                       tmp_path: Path):
    fleet = fleet_factory(1)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))
    feed = tmp_path / "feed.txt"
    feed.write_text("203.0.113.1\n203.0.113.2\n")
    assert_ok(run_playbook("blocklist_sync.yml", inventory,
                           extra_vars={"fastpath_list_file": str(feed)}))
    feed.write_text("203.0.113.3\nnot-an-address\n")
    result = run_playbook("blocklist_sync.yml", inventory,
                          extra_vars={"fastpath_list_file": str(feed)})
    assert result.rc != 0
    assert "line 2 of" in result.output and "Nothing was changed" in \
        result.output
    assert set(fleet["edge1"].entries("blocklist")) == {
        "203.0.113.1/32", "203.0.113.2/32"}
