"""What block.yml and allow.yml do with input they must refuse, and with a
saved list that was damaged on the host: one sentence, nothing changed,
and a deploy that sets the damaged file aside."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from plugins.module_utils import _pins, _snapshot
from tests.playbooks.conftest import LabHost, list_file
from tests.playbooks.playbook_run import PlaybookResult, run_playbook
from tests.playbooks.test_deploy import assert_ok

LISTS = ("blocklist", "allowlist")
_FATAL = re.compile(r"^fatal: \[(\S+)\]: FAILED! => (\{.*\})$", re.MULTILINE)

# (playbook, extra vars, what the one sentence says)
BAD_INPUT = [
    ("block.yml", {"fastpath_address": "::/0"},
     "::/0 is shorter than /32"),
    ("allow.yml", {"fastpath_address": "0.0.0.0/0"},
     "0.0.0.0/0 is shorter than /8"),
    ("block.yml", {"fastpath_address": "203.0.113.9", "fastpath_ttl": "abc"},
     "ttl 'abc' is not a duration"),
    ("block.yml", {"fastpath_address": "203.0.113.9", "fastpath_owner": ""},
     "source must name the owner of the entries"),
]


def failures(result: PlaybookResult) -> dict[str, str]:
    """{host: msg} of the tasks that failed."""
    return {host: json.loads(body)["msg"]
            for host, body in _FATAL.findall(result.output)}


def saved_path(host: LabHost, list_name: str) -> Path:
    return host.state_dir / "lists" / (list_name + ".list")


def kept_state(host: LabHost) -> dict[str, object]:
    """Both lists as the maps hold them, and their saved files' bytes."""
    state: dict[str, object] = {}
    for name in LISTS:
        state[name] = host.entries(name)
        path = saved_path(host, name)
        state[name + " file"] = path.read_bytes() if path.exists() else None
    return state


def map_rows(host: LabHost, list_name: str) -> list[dict[bytes, bytes]]:
    """Per family, {key: raw fp_entry} of the list's trie."""
    rows = []
    for trie in _pins.open_list_maps(str(host.pin_dir), list_name):
        with trie:
            keys, values = trie.lookup_batch(chunk=65536)
            ksize, vsize = trie.key_size, trie.value_size
            rows.append({keys[i * ksize:(i + 1) * ksize]:
                         values[i * vsize:(i + 1) * vsize]
                         for i in range(len(keys) // ksize)})
    return rows


def saved_rows(host: LabHost, list_name: str) -> list[dict[bytes, bytes]]:
    """Per family, what the saved file says the trie must hold."""
    ledger = _snapshot.load(str(saved_path(host, list_name)), list_name,
                            str(host.pin_dir))
    assert ledger is not None, "no saved %s" % list_name
    return [dict(zip(*ledger.target(family).rows(), strict=True))
            for family in (0, 1)]


def test_refused_input_fails_in_one_sentence_and_changes_nothing(
        fleet_factory) -> None:
    fleet = fleet_factory(1)
    host = fleet["edge1"]
    inventory = fleet.inventory({"policy_blocklist": ["203.0.113.7"],
                                 "policy_allowlist": ["192.0.2.20"]})
    assert_ok(run_playbook("deploy.yml", inventory))
    before = kept_state(host)
    assert "203.0.113.7/32" in before["blocklist"]

    for playbook, extra_vars, sentence in BAD_INPUT:
        result = run_playbook(playbook, inventory, extra_vars=extra_vars)
        case = "%s %s" % (playbook, extra_vars)
        assert result.rc != 0, case
        assert result.recap["edge1"]["failed"] == 1, case
        (msg,) = failures(result).values()
        assert msg.startswith(sentence), (case, msg)
        assert "\n" not in msg and len(msg) < 300, (case, msg)
        assert kept_state(host) == before, case

    # A ttl with a unit works, and a lowered limit takes a wider prefix.
    result = run_playbook("block.yml", inventory, extra_vars={
        "fastpath_address": "100.0.0.0/7", "fastpath_ttl": "1h",
        "fastpath_min_prefix_v4": 7})
    assert_ok(result)
    assert "blocklist (manual): 1 added, 0 removed" in result.output
    expires_ns, _source = host.entries("blocklist")["100.0.0.0/7"]
    left = expires_ns / 1e9 - time.clock_gettime(time.CLOCK_BOOTTIME)
    assert 3500 < left <= 3600
    assert saved_rows(host, "blocklist") == map_rows(host, "blocklist")


def test_a_damaged_saved_list_stops_block_until_a_deploy_sets_it_aside(
        fleet_factory, tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    host = fleet["edge1"]
    feed = list_file(tmp_path / "feed.txt", 2000)
    inventory = fleet.inventory({"policy_blocklist_files": [str(feed)]})
    assert_ok(run_playbook("deploy.yml", inventory))

    path = saved_path(host, "blocklist")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    assert data.index(b"\n") < middle, "the middle is past the header"
    data[middle] ^= 0xFF
    path.write_bytes(bytes(data))
    entries = host.entries("blocklist")
    assert len(entries) == 2000

    refused = run_playbook("block.yml", inventory,
                           extra_vars={"fastpath_address": "203.0.113.77"})
    assert refused.rc != 0
    (msg,) = failures(refused).values()
    assert msg.startswith(
        "The saved list %s is damaged (its checksum does not match its "
        "contents). Nothing was changed: run deploy.yml" % path), msg
    assert host.entries("blocklist") == entries
    assert path.read_bytes() == bytes(data)

    deployed = run_playbook("deploy.yml", inventory)
    assert_ok(deployed)            # the health gate passed the batch
    assert deployed.recap["edge1"]["rescued"] == 0
    assert host.xdp() is not None
    # The warning, however the terminal wrapped it.
    assert "".join(("It was moved to %s.damaged-" % path).split()) in \
        "".join(deployed.output.split())
    (aside,) = path.parent.glob("blocklist.list.damaged-*")
    assert aside.read_bytes() == bytes(data)
    assert host.entries("blocklist") == entries
    assert saved_rows(host, "blocklist") == map_rows(host, "blocklist")

    assert_ok(run_playbook("block.yml", inventory,
                           extra_vars={"fastpath_address": "203.0.113.77"}))
    assert "203.0.113.77/32" in host.entries("blocklist")
    assert saved_rows(host, "blocklist") == map_rows(host, "blocklist")
