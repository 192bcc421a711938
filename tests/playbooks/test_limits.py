"""deploy.yml writes the fastpath role's rate limits, bans and scanner
signatures into each host's maps and its boot configuration: the
defaults, a change (without reloading the program), a table that leaves
a class out, and a reboot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from plugins.module_utils import _abi, _bpf
from tests.playbooks.conftest import LabHost
from tests.playbooks.playbook_run import PlaybookResult, run_playbook

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load(
    (REPO / "roles" / "fastpath" / "defaults" / "main.yml").read_text())
NS = 10**9
CLASSES = [name.lower() for name in _abi.CLASSES]


def assert_ok(result: PlaybookResult) -> None:
    assert result.rc == 0, result.output[-6000:]


def read_limits(host: LabHost) -> dict[str, Any]:
    """The `limits` map of a host as the program reads it
    (docs/dataplane.md, Rate limits and bans): each class's (interval_ns,
    burst), the ban times, the flags, and the prefixes (0 means 32 and
    64)."""
    with _bpf.Map.open_pinned(str(host.pin_dir / "limits")) as limits:
        values = _abi.LIMITS.unpack(limits.lookup(_abi.U32.pack(0)))
    budgets = {}
    for g, group in enumerate(("untrusted", "trusted")):
        budgets[group] = {
            name: values[3 * (g * _abi.CLASS_SLOTS + i):
                         3 * (g * _abi.CLASS_SLOTS + i) + 2]
            for i, name in enumerate(CLASSES)}
        unused = values[3 * (g * _abi.CLASS_SLOTS + len(CLASSES)):
                        3 * (g + 1) * _abi.CLASS_SLOTS]
        assert set(unused) == {0}, "reserved class slots stay 0"
    ban_after, ban, scanner_ban, flags, v4, v6, reserved = \
        values[6 * _abi.CLASS_SLOTS:]
    return dict(budgets, ban_after_ns=ban_after, ban_ns=ban,
                scanner_ban_ns=scanner_ban, flags=flags,
                prefix_v4=v4 if 0 < v4 <= 32 else 32,
                prefix_v6=min(v6, 128) if v6 else 64, reserved=reserved)


def read_signatures(host: LabHost) -> list[str]:
    """The signatures of scanner_sigs, up to the first empty slot."""
    out = []
    with _bpf.Map.open_pinned(str(host.pin_dir / "scanner_sigs")) as sigs:
        for slot in range(sigs.max_entries):
            length, reserved, text = _abi.SIGNATURE.unpack(
                sigs.lookup(_abi.U32.pack(slot)))
            if length == 0:
                break
            assert reserved == 0 and text[length:] == bytes(32 - length)
            out.append(text[:length].decode())
    return out


def budgets(table: dict[str, dict[str, float]]) -> dict[str, tuple]:
    """What a role table of {rate, burst} is in the map: one request per
    interval_ns (the nearest ns), burst; rate 0 is (0, 0), no limit."""
    return {name: ((round(NS / b["rate"]), b["burst"]) if b["rate"]
                   else (0, 0)) for name, b in table.items()}


def test_deploy_writes_the_default_limits_and_signatures(fleet_factory):
    fleet = fleet_factory(1)
    assert_ok(run_playbook("deploy.yml", fleet.inventory()))
    host = fleet["edge1"]

    limits = read_limits(host)
    assert limits["untrusted"] == budgets(DEFAULTS["fastpath_rate_limits"])
    assert limits["trusted"] == budgets(
        DEFAULTS["fastpath_trusted_rate_limits"])
    # The documented defaults: 30 per 2 s (other 50) untrusted, ten times
    # as much trusted.
    assert limits["untrusted"]["register"] == (66_666_667, 30)
    assert limits["untrusted"]["other"] == (40_000_000, 50)
    assert limits["trusted"]["syn"] == (6_666_667, 300)
    assert limits["trusted"]["other"] == (4_000_000, 500)
    assert (limits["ban_after_ns"], limits["ban_ns"],
            limits["scanner_ban_ns"]) == (2 * NS, 300 * NS, 3600 * NS)
    assert limits["flags"] == _abi.FP_LIMIT_BANS
    assert (limits["prefix_v4"], limits["prefix_v6"]) == (32, 64)
    assert limits["reserved"] == 0
    assert read_signatures(host) == [
        s.lower() for s in DEFAULTS["fastpath_scanner_signatures"]]
    assert read_signatures(host)[:6] == [
        "friendly", "scanner", "sipcli", "sipvicious", "vaxsipuseragent",
        "pplsip"]

    # The boot command attaches with exactly what the role passed.
    config = json.loads((host.state_dir / "boot.json").read_text())
    assert config["limits"] == {
        "untrusted": DEFAULTS["fastpath_rate_limits"],
        "trusted": DEFAULTS["fastpath_trusted_rate_limits"],
        "bans": True, "ban_after": "2s", "ban_time": "300s",
        "scanner_ban_time": "1h", "prefix_v4": 32, "prefix_v6": 64}
    assert config["scanner_signatures"] == \
        DEFAULTS["fastpath_scanner_signatures"]


def test_changed_limits_are_written_without_reloading_the_program(
        fleet_factory):
    fleet = fleet_factory(1)
    assert_ok(run_playbook("deploy.yml", fleet.inventory()))
    host = fleet["edge1"]
    program = host.xdp()
    table = dict(DEFAULTS["fastpath_rate_limits"],
                 register={"rate": 0.5, "burst": 4},
                 options={"rate": 0, "burst": 1})
    changed = fleet.inventory({
        "fastpath_rate_limits": table,
        "fastpath_bans": False,
        "fastpath_scanner_ban_time": 0,
        "fastpath_source_prefix_v6": 56,
        "fastpath_scanner_signatures": ["SIPVicious", "sipcli"]})

    result = run_playbook("deploy.yml", changed)

    assert_ok(result)
    assert host.xdp() == program, "the same program, not reloaded"
    limits = read_limits(host)
    assert limits["untrusted"]["register"] == (2 * NS, 4)
    assert limits["untrusted"]["options"] == (0, 0)
    assert limits["untrusted"]["invite"] == (66_666_667, 30)
    assert (limits["flags"], limits["scanner_ban_ns"]) == (0, 0)
    assert limits["prefix_v6"] == 56
    assert read_signatures(host) == ["sipvicious", "sipcli"]
    config = json.loads((host.state_dir / "boot.json").read_text())
    assert config["limits"]["untrusted"]["register"] == {"rate": 0.5,
                                                         "burst": 4}
    assert config["scanner_signatures"] == ["SIPVicious", "sipcli"]

    again = run_playbook("deploy.yml", changed)
    assert_ok(again)
    assert again.total("changed") == 0, again.output[-6000:]


def test_a_table_without_every_class_fails_naming_the_missing(
        fleet_factory):
    fleet = fleet_factory(1)
    inventory = fleet.inventory({
        "fastpath_rate_limits": {"register": {"rate": 5, "burst": 10}}})

    result = run_playbook("deploy.yml", inventory)

    assert result.rc != 0
    assert ("missing required arguments: invite, options, other, syn found "
            "in fastpath_rate_limits") in result.output
    assert fleet["edge1"].xdp() is None


def test_a_bad_signature_fails_before_anything_is_attached(fleet_factory):
    fleet = fleet_factory(1)
    inventory = fleet.inventory({"fastpath_scanner_signatures": ["sip"]})

    result = run_playbook("deploy.yml", inventory)

    assert result.rc != 0
    assert "at most 32 fastpath_scanner_signatures of 4 to 32 printable " \
        "ASCII characters" in " ".join(result.output.split())
    assert fleet["edge1"].xdp() is None


def test_the_boot_command_puts_the_limits_back(fleet_factory):
    fleet = fleet_factory(1)
    assert_ok(run_playbook("deploy.yml", fleet.inventory(
        {"fastpath_scanner_signatures": ["friendly", "sipcli"]})))
    host = fleet["edge1"]
    before = read_limits(host), read_signatures(host)

    host.reboot_kernel_state()
    subprocess.run(["rm", "-f", "/run/vos-fastpath/object-tags.json"],
                   check=True)
    booted = host.boot()

    assert booted.returncode == 0, booted.stdout + booted.stderr
    assert (read_limits(host), read_signatures(host)) == before
