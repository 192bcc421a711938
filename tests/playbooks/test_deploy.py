"""deploy.yml, block/unblock/allow, the lock-out guard, the health gate,
boot persistence and teardown, on a lab fleet sharing this kernel."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.integration.test_xdp_attach import UPGRADE_ANCHOR, UPGRADE_PATCH
from tests.playbooks.conftest import ip
from tests.playbooks.playbook_run import PlaybookResult, run_playbook

REPO = Path(__file__).resolve().parents[2]


def assert_ok(result: PlaybookResult) -> None:
    assert result.rc == 0, result.output[-6000:]


def changed_source(tmp: Path) -> Path:
    """A copy of bpf/ with one more branch in the program: a new build."""
    src = tmp / "bpf-changed"
    shutil.copytree(REPO / "bpf", src)
    prog = src / "sip_logic.bpf.c"
    text = prog.read_text()
    assert UPGRADE_ANCHOR in text
    prog.write_text(text.replace(UPGRADE_ANCHOR,
                                 UPGRADE_PATCH + UPGRADE_ANCHOR, 1))
    return src


def test_deploy_attaches_everywhere_and_a_second_run_changes_nothing(
        fleet_factory):
    fleet = fleet_factory(2)
    inventory = fleet.inventory()

    first = run_playbook("deploy.yml", inventory,
                         extra_vars={"fastpath_serial": 1})
    assert_ok(first)
    tags = set()
    for host in fleet.hosts:
        prog = host.xdp()
        assert prog is not None and prog["name"] == "sip_xdp_prog"
        assert prog["mode"] == "native"
        assert (host.pin_dir / "block_v4").exists()
        assert (host.state_dir / "boot.json").exists()
        tags.add(prog["tag"])
        # The boot command runs with the system's Python, isolated; what it
        # reads is root's alone.
        command = host.lib_dir / "vos-fastpath-boot"
        assert command.read_text().splitlines()[0] == \
            "#!/usr/bin/python3 -I"
        for path, mode in ((host.state_dir, 0o700),
                           (host.state_dir / "lists", 0o700),
                           (host.state_dir / "boot.json", 0o600),
                           (command, 0o755), (host.pin_dir, 0o700)):
            st = path.stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
                (0, 0, mode), path
    assert len(tags) == 1, "every host runs the same object"
    assert first.total("changed") > 0

    again = run_playbook("deploy.yml", inventory)
    assert_ok(again)
    assert again.total("changed") == 0, again.output[-6000:]
    assert {h.xdp()["id"] for h in fleet.hosts} == \
        {h.xdp()["id"] for h in fleet.hosts}


def test_check_mode_after_a_deploy_changes_no_program(fleet_factory):
    fleet = fleet_factory(1)
    assert_ok(run_playbook("deploy.yml", fleet.inventory()))
    before = fleet["edge1"].xdp()
    checked = run_playbook("deploy.yml", fleet.inventory(), check=True)
    assert_ok(checked)
    assert checked.total("changed") == 0, checked.output[-6000:]
    assert fleet["edge1"].xdp() == before


def test_block_unblock_and_allow_reach_every_host(fleet_factory):
    fleet = fleet_factory(2)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))

    blocked = run_playbook("block.yml", inventory,
                           extra_vars={"fastpath_address": "203.0.113.7"})
    assert_ok(blocked)
    assert blocked.total("changed") == 2
    for host in fleet.hosts:
        assert "203.0.113.7/32" in host.entries("blocklist")
        assert (host.state_dir / "lists" / "blocklist.list").exists()
    assert run_playbook("block.yml", inventory, extra_vars={
        "fastpath_address": "203.0.113.7"}).total("changed") == 0

    assert_ok(run_playbook("allow.yml", inventory,
                           extra_vars={"fastpath_address": "2001:db8::20"}))
    assert_ok(run_playbook("unblock.yml", inventory,
                           extra_vars={"fastpath_address": "203.0.113.7"}))
    for host in fleet.hosts:
        assert "203.0.113.7/32" not in host.entries("blocklist")
        assert "2001:db8::20/128" in host.entries("allowlist")


def test_block_without_an_address_says_how_to_give_one(fleet_factory):
    fleet = fleet_factory(1)
    result = run_playbook("block.yml", fleet.inventory())
    assert result.rc != 0
    assert "-e fastpath_address=" in result.output


def test_lockout_guard_refuses_to_block_a_protected_network(fleet_factory):
    fleet = fleet_factory(2)
    inventory = fleet.inventory(
        {"fastpath_protected_networks": ["192.0.2.0/28"]})
    assert_ok(run_playbook("deploy.yml", inventory))
    for host in fleet.hosts:
        assert "192.0.2.0/28" in host.entries("allowlist"), \
            "protected networks are trusted by default"

    result = run_playbook("block.yml", inventory,
                          extra_vars={"fastpath_address": "192.0.2.0/24"})
    assert result.rc != 0
    assert "would block the protected 192.0.2.0/28" in result.output
    assert "Nothing was changed" in result.output
    for host in fleet.hosts:
        assert host.entries("blocklist") == {}


def test_lockout_guard_protects_the_controller_address(fleet_factory):
    fleet = fleet_factory(1)
    inventory = fleet.inventory(
        {"policy_controller_address": "198.51.100.200"})
    assert_ok(run_playbook("deploy.yml", inventory))
    result = run_playbook("block.yml", inventory,
                          extra_vars={"fastpath_address": "198.51.100.128/25"})
    assert result.rc != 0
    assert "would block the protected 198.51.100.200/32" in result.output


def test_deploy_applies_the_inventory_lists_exactly(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    feed = tmp_path / "feed.txt"
    feed.write_text("# scanners\n198.18.0.1\n198.18.0.2/31\n")
    inventory = fleet.inventory({
        "policy_blocklist": ["203.0.113.9"],
        "policy_blocklist_files": [str(feed)],
        "policy_allowlist": ["192.0.2.50"]})
    assert_ok(run_playbook("deploy.yml", inventory))
    assert set(fleet["edge1"].entries("blocklist")) == {
        "203.0.113.9/32", "198.18.0.1/32", "198.18.0.2/31"}

    feed.write_text("198.18.0.1\n")
    assert_ok(run_playbook("deploy.yml", inventory))
    assert set(fleet["edge1"].entries("blocklist")) == {
        "203.0.113.9/32", "198.18.0.1/32"}
    assert "192.0.2.50/32" in fleet["edge1"].entries("allowlist")


def test_a_failed_health_gate_rolls_the_batch_back_and_stops(
        fleet_factory, tmp_path):
    fleet = fleet_factory(3)
    # edge2's link refuses native XDP (peer MTU too big for it): auto mode
    # runs it generic.
    ip("link", "set", "dev", fleet["edge2"].ifname + "p", "mtu", "9000")
    ip("link", "set", "dev", fleet["edge2"].ifname, "mtu", "9000")
    assert_ok(run_playbook("deploy.yml", fleet.inventory()))
    old = {h.name: h.xdp()["tag"] for h in fleet.hosts}
    assert fleet["edge2"].xdp()["mode"] == "generic"

    # The upgrade now also requires native mode, which edge2 cannot give.
    inventory = fleet.inventory(
        {"fastpath_source_dir": str(changed_source(tmp_path))},
        edge2={"fastpath_require_native": True})
    result = run_playbook("deploy.yml", inventory,
                          extra_vars={"fastpath_serial": 1})

    assert result.rc != 0
    assert "The health gate failed (edge2:" in result.output
    assert "generic mode, native required" in result.output
    assert fleet["edge1"].xdp()["tag"] != old["edge1"], "batch 1 upgraded"
    assert fleet["edge2"].xdp()["tag"] == old["edge2"], "batch 2 rolled back"
    assert fleet["edge3"].xdp()["tag"] == old["edge3"], "batch 3 never ran"
    assert "edge3" not in result.recap or \
        result.recap["edge3"]["changed"] == 0


def test_boot_service_brings_back_program_and_lists(fleet_factory):
    fleet = fleet_factory(2)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))
    assert_ok(run_playbook("block.yml", inventory, extra_vars={
        "fastpath_address": "203.0.113.0/26"}))
    assert_ok(run_playbook("block.yml", inventory, extra_vars={
        "fastpath_address": "2001:db8:bad::/48", "fastpath_ttl": 3600,
        "fastpath_owner": "ids"}))
    assert_ok(run_playbook("allow.yml", inventory, extra_vars={
        "fastpath_address": "192.0.2.20"}))
    before = {h.name: (h.xdp()["tag"], h.entries("blocklist"),
                       h.entries("allowlist")) for h in fleet.hosts}

    for host in fleet.hosts:
        host.reboot_kernel_state()
        assert host.xdp() is None and not host.pin_dir.exists()
        subprocess.run(["rm", "-f", "/run/vos-fastpath/object-tags.json"],
                       check=True)
        booted = host.boot()
        assert booted.returncode == 0, booted.stdout + booted.stderr
        assert "attached" in booted.stdout

        tag, blocklist, allowlist = before[host.name]
        assert host.xdp()["tag"] == tag
        assert set(host.entries("blocklist")) == set(blocklist)
        assert host.entries("allowlist") == allowlist
        ttl_now = host.entries("blocklist")["2001:db8:bad::/48"][0]
        assert 0 < ttl_now <= blocklist["2001:db8:bad::/48"][0] + 10**9

    # The fleet is back where the deploy left it.
    again = run_playbook("deploy.yml", inventory)
    assert_ok(again)
    assert again.total("changed") == 0, again.output[-6000:]


def test_teardown_detaches_and_keeps_the_saved_lists(fleet_factory):
    fleet = fleet_factory(1)
    inventory = fleet.inventory()
    assert_ok(run_playbook("deploy.yml", inventory))
    assert_ok(run_playbook("block.yml", inventory, extra_vars={
        "fastpath_address": "203.0.113.7"}))
    host = fleet["edge1"]

    assert_ok(run_playbook("teardown.yml", inventory))
    assert host.xdp() is None
    assert not host.pin_dir.exists()
    assert not host.lib_dir.exists()
    assert not (host.state_dir / "boot.json").exists()
    assert (host.state_dir / "lists" / "blocklist.list").exists()
    again = run_playbook("teardown.yml", inventory)
    assert_ok(again)
    assert again.total("changed") == 0

    # A new deploy puts the kept lists into its new maps.
    assert_ok(run_playbook("deploy.yml", inventory))
    assert "203.0.113.7/32" in host.entries("blocklist")
    assert_ok(run_playbook("teardown.yml", inventory))

    assert_ok(run_playbook("teardown.yml", inventory, extra_vars={
        "fastpath_remove_state": True}))
    assert not host.state_dir.exists()


def test_boot_json_describes_the_deployment(fleet_factory):
    fleet = fleet_factory(1)
    inventory = fleet.inventory({
        "fastpath_sip_ports": [5060, 5080],
        "fastpath_settings": {"stealth": False}})
    assert_ok(run_playbook("deploy.yml", inventory))
    host = fleet["edge1"]
    config = json.loads((host.state_dir / "boot.json").read_text())
    assert config["interfaces"] == [host.ifname]
    assert config["sip_ports"] == [5060, 5080]
    assert config["settings"] == {"block_all_ports": False,
                                  "stealth": False, "malformed": "drop",
                                  "shadow": False}
