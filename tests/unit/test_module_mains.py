"""bpf_map_entry and xdp_stats end to end in-process, with the kernel
boundary (the pinned maps) faked by tries that keep what is written, and
the list's saved file in a temporary state directory."""

from __future__ import annotations

import errno
import functools
import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _abi,
    _counters,
    _facts,
    _ledger,
    _lists,
    _lock,
    _snapshot,
)
from ansible_collections.vos.fastpath.plugins.module_utils._split_list import (
    SplitList,
)
from ansible_collections.vos.fastpath.plugins.modules import (
    bpf_map_entry,
    xdp_stats,
)

SEC = 10**9
NOW = 5000 * SEC


class KernelError(OSError):
    """As _bpf.BpfError: `done` is how many leading elements of a batch
    call the kernel handled."""

    def __init__(self, code: int, done: int = 0) -> None:
        OSError.__init__(self, code, errno.errorcode[code])
        self.done = done


class FakeTrie:
    """A trie in memory, with the kernel's batch calls: elements handled in
    order, a failure saying how many were; delete_batch goes on past a key
    already gone (as _bpf.Map.delete_batch). Writes, undo steps or reads
    fail when told to."""

    def __init__(self, name: str, key_size: int, fail_write: bool = False,
                 fail_read: bool = False) -> None:
        self.name, self.key_size, self.value_size = name, key_size, 16
        self.max_entries = 4
        self.fail_write = fail_write        # update_batch, at its 1st entry
        self.fail_undo = False              # update, delete
        self.fail_read = fail_read
        self.entries: dict[bytes, bytes] = {}
        self.writes = 0

    def _split(self, data: bytes, size: int) -> list[bytes]:
        return [data[i:i + size] for i in range(0, len(data), size)]

    def lookup_batch(self, chunk: int) -> tuple[bytes, bytes]:
        if self.fail_read:
            raise OSError(errno.EPERM, "Operation not permitted")
        keys = sorted(self.entries)
        return b"".join(keys), b"".join(self.entries[k] for k in keys)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        self.writes += 1
        for done, (key, value) in enumerate(zip(
                self._split(keys, self.key_size),
                self._split(values, self.value_size), strict=True)):
            if self.fail_write or (key not in self.entries and
                                   len(self.entries) >= self.max_entries):
                raise KernelError(errno.ENOSPC, done)
            self.entries[key] = value

    def delete_batch(self, keys: bytes) -> int:
        return sum(self.entries.pop(key, None) is not None
                   for key in self._split(keys, self.key_size))

    def delete(self, key: bytes) -> bool:
        if self.fail_undo:
            raise KernelError(errno.EIO)
        return self.entries.pop(key, None) is not None

    def update(self, key: bytes, raw: bytes) -> None:
        if self.fail_undo:
            raise KernelError(errno.EIO)
        self.entries[key] = raw

    def close(self) -> None:
        pass

    def cidrs(self) -> set[str]:
        return {_lists.key_text(k) for k in self.entries}

    def owners(self) -> dict[str, tuple[int, int]]:
        """{cidr: (expires_ns, owner tag)}"""
        return {_lists.key_text(k): _lists.entry_fields(v)
                for k, v in self.entries.items()}


def run(module, args: dict, check: bool = False) -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    # Warnings are kept in a global for the module's one run per process,
    # and go to the controller's display instead once any test has
    # imported the controller (ansible.errors, say).
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            mock.patch.object(ansible_internal, "is_controller", False), \
            pytest.raises(SystemExit):
        module.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


def warnings(result: dict) -> list[str]:
    return [w["event"]["msg"] if isinstance(w, dict) else w
            for w in result.get("warnings", [])]


class Host:
    """The block list's two tries and its state directory; run() runs the
    module against them, as often as a test likes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tries = [FakeTrie("block_v4", 8), FakeTrie("block_v6", 20)]
        self.state_dir = tmp_path / "state"
        self.saved = self.state_dir / "lists" / "blocklist.list"
        self.marker = Path(str(self.saved) + ".applying")

    def run(self, args: dict, check: bool = False,
            diff: bool = False) -> dict:
        args = dict({"map": "blocklist", "state_dir": str(self.state_dir)},
                    **args)
        if diff:
            args["_ansible_diff"] = True
        return run(bpf_map_entry, args, check)

    def ledger(self) -> _ledger.Ledger:
        return _snapshot.parse(str(self.saved), self.saved.read_bytes(),
                               "blocklist", _abi.DEFAULT_PIN_DIR)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    """The maps are the host's tries; the lock lives under tmp_path (hold()
    binds LOCK_DIR when it is defined, so that constant cannot be
    patched); the clock stands still at NOW unless a test moves it."""
    found = Host(tmp_path)
    # The tries alone, as on a host whose program predates the hashes of
    # exact addresses (tests/integration/test_split_list.py has both).
    monkeypatch.setattr(bpf_map_entry._pins, "open_list_maps",
                        lambda pin_dir, name: [SplitList(t, None)
                                               for t in found.tries])
    monkeypatch.setattr(bpf_map_entry._lock, "hold", functools.partial(
        _lock.hold, lock_dir=str(tmp_path / "locks")))
    monkeypatch.setattr(_lists, "boot_ns", lambda: NOW)
    return found


BLOCK = {"entries": ["192.0.2.1", "2001:db8::1"]}
A = _lists.source_tag("feedA")
B = _lists.source_tag("feedB")


def test_first_run_writes_and_saves_and_second_changes_nothing(
        host: Host) -> None:
    first = host.run(BLOCK)
    assert (first["changed"], first["added"], first["total"],
            first["saved"]) == (True, 2, 2, True)
    assert [t.writes for t in host.tries] == [1, 1]
    assert host.tries[0].cidrs() == {"192.0.2.1/32"}
    assert host.tries[1].cidrs() == {"2001:db8::1/128"}
    data = host.saved.read_bytes()
    assert not host.marker.exists()
    assert host.ledger().names == {_lists.source_tag("default"): "default"}

    second = host.run(BLOCK)
    assert (second["changed"], second["added"], second["unchanged"],
            second["saved"], second["recovered"]) == (False, 0, 2, False,
                                                      False)
    assert [t.writes for t in host.tries] == [1, 1]
    assert host.saved.read_bytes() == data


def test_exact_removes_what_is_no_longer_listed(host: Host) -> None:
    host.run(dict(BLOCK, state="exact"))
    result = host.run({"state": "exact", "entries": ["192.0.2.1"]})
    assert (result["changed"], result["removed"], result["total"]) == (
        True, 1, 1)
    assert result["owners"] == {"default": dict(added=0, removed=1,
                                                expired=0)}
    assert host.tries[1].cidrs() == set()


def test_check_mode_writes_nothing(host: Host) -> None:
    result = host.run(BLOCK, check=True)
    assert result["changed"] is True and result["added"] == 2
    assert [t.writes for t in host.tries] == [0, 0]
    assert [t.entries for t in host.tries] == [{}, {}]
    assert not host.state_dir.exists()


def test_diff_shows_the_entries_and_the_owners(host: Host) -> None:
    result = host.run(dict(BLOCK, source="feedA"), diff=True)
    assert result["diff"]["before"] == "removed: 0\n"
    assert result["diff"]["after"] == ("added: 2\n192.0.2.1/32\n"
                                       "2001:db8::1/128\nfeedA: +2 -0\n")


def test_garbage_entry_fails_and_changes_nothing(host: Host) -> None:
    result = host.run({"entries": ["192.0.2.1", "bogus"]})
    assert result["failed"] is True
    assert result["msg"] == ("entry 2: 'bogus' is not an IPv4 or IPv6 "
                             "address. Nothing was changed.")
    assert host.tries[0].entries == {}
    assert not host.saved.exists()


def test_over_capacity_fails_before_writing(host: Host) -> None:
    result = host.run({"entries": ["192.0.2.%d" % i for i in range(1, 6)]})
    assert result["failed"] is True
    assert result["msg"] == (
        "block_v4 would hold 5 entries, more than its 4: shorten the list "
        "or aggregate it into wider prefixes. Nothing was changed.")
    assert host.tries[0].entries == {}
    assert not host.saved.exists()


def test_negative_ttl_is_refused(host: Host) -> None:
    result = host.run({"ttl": -5})
    assert result["failed"] is True
    assert result["msg"].startswith("ttl '-5' is not a duration: ")
    assert not host.saved.exists()


# Owners


def test_an_entry_stays_while_any_owner_lists_it(host: Host) -> None:
    host.run({"entries": ["192.0.2.1", "192.0.2.2"], "state": "exact",
              "source": "feedA"})
    host.run({"entries": ["192.0.2.1"], "state": "exact",
              "source": "feedB"})
    result = host.run({"entries": ["192.0.2.2"], "state": "exact",
                       "source": "feedA"})
    assert (result["changed"], result["removed"], result["total"]) == (
        True, 0, 2)
    assert result["owners"] == {"feedA": dict(added=0, removed=1,
                                              expired=0)}
    assert host.tries[0].owners() == {"192.0.2.1/32": (0, B),
                                      "192.0.2.2/32": (0, A)}

    result = host.run({"state": "exact", "source": "feedB"})
    assert (result["removed"], result["total"]) == (1, 1)
    assert host.tries[0].cidrs() == {"192.0.2.2/32"}
    assert host.ledger().names == {A: "feedA"}


def test_a_ttl_claim_never_shadows_another_owners_permanent_one(
        host: Host) -> None:
    host.run({"entries": ["192.0.2.1"], "source": "feedA"})
    result = host.run({"entries": ["192.0.2.1"], "source": "feedB",
                       "ttl": "1h"})
    assert (result["changed"], result["added"], result["saved"]) == (
        True, 0, True)
    assert host.tries[0].owners() == {"192.0.2.1/32": (0, A)}


def test_each_owners_ttl_counts_for_that_owner_only(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    host.run({"entries": ["192.0.2.1"], "source": "feedA", "ttl": 60})
    host.run({"entries": ["192.0.2.1"], "source": "feedB", "ttl": 600})
    assert host.tries[0].owners() == {"192.0.2.1/32": (NOW + 600 * SEC, B)}

    monkeypatch.setattr(_lists, "boot_ns", lambda: NOW + 60 * SEC)
    result = host.run({"source": "feedA"})
    assert (result["expired_removed"], result["removed"]) == (1, 0)
    assert list(result["owners"].values()) == [
        dict(added=0, removed=0, expired=1)]
    assert host.tries[0].owners() == {"192.0.2.1/32": (NOW + 600 * SEC, B)}

    monkeypatch.setattr(_lists, "boot_ns", lambda: NOW + 600 * SEC)
    result = host.run({"source": "feedA"})
    assert (result["changed"], result["expired_removed"],
            result["removed"]) == (True, 0, 1)
    assert list(result["owners"].values()) == [
        dict(added=0, removed=0, expired=1)]
    assert host.tries[0].entries == {}
    assert host.ledger().size() == 0


def test_absent_removes_every_owners_claim(host: Host) -> None:
    host.run({"entries": ["192.0.2.1", "192.0.2.2"], "source": "feedA"})
    host.run({"entries": ["192.0.2.1"], "source": "feedB", "ttl": 60})
    result = host.run({"entries": ["192.0.2.1", "192.0.2.3"],
                       "state": "absent", "source": "manual"})
    assert (result["changed"], result["removed"], result["unchanged"]) == (
        True, 1, 1)
    assert list(result["owners"].values()) == 2 * [
        dict(added=0, removed=1, expired=0)]
    assert host.tries[0].cidrs() == {"192.0.2.2/32"}


def test_the_report_names_owners_whose_last_claim_went(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    host.run({"entries": ["192.0.2.1"], "source": "feedA", "ttl": 60})
    host.run({"entries": ["192.0.2.2"], "source": "feedB"})
    monkeypatch.setattr(_lists, "boot_ns", lambda: NOW + 60 * SEC)
    result = host.run({"entries": ["192.0.2.2"], "state": "absent",
                       "source": "manual"})
    assert result["owners"] == {
        "feedA": dict(added=0, removed=0, expired=1),
        "feedB": dict(added=0, removed=1, expired=0)}


def test_absent_removes_an_entry_no_owner_recorded(host: Host) -> None:
    host.run({"entries": ["192.0.2.2"]})
    host.tries[0].entries[_lists.parse_entry("192.0.2.1", True)[1]] = \
        _abi.ENTRY.pack(0, 12345, 0)                # another tool's
    result = host.run({"entries": ["192.0.2.1"], "state": "absent"})
    assert (result["changed"], result["removed"]) == (True, 1)
    assert host.tries[0].cidrs() == {"192.0.2.2/32"}


def test_an_entry_another_tool_wrote_is_left_alone(host: Host) -> None:
    host.run({"entries": ["192.0.2.2"]})
    foreign = {_lists.parse_entry("192.0.2.1", True)[1]:
               _abi.ENTRY.pack(0, 12345, 0)}
    host.tries[0].entries.update(foreign)
    result = host.run({"state": "exact", "entries": []})
    assert (result["removed"], host.tries[0].entries) == (1, foreign)


@pytest.mark.parametrize("before, after", [(0, "1h"), ("1h", 0)])
def test_switching_between_permanent_and_ttl_is_saved(
        host: Host, before: object, after: object) -> None:
    host.run({"entries": ["192.0.2.1"], "ttl": before})
    switched = host.run({"entries": ["192.0.2.1"], "ttl": after})
    assert (switched["changed"], switched["saved"]) == (True, True)
    expiry = host.tries[0].owners()["192.0.2.1/32"][0]
    again = host.run({"entries": ["192.0.2.1"], "ttl": after})
    assert again["changed"] is False
    other = host.run({"entries": ["192.0.2.2"], "source": "feedB"})
    assert other["added"] == 1
    assert host.tries[0].owners()["192.0.2.1/32"][0] == expiry


# Failures, and the runs after them


def test_a_failed_write_puts_back_the_maps_and_the_saved_list(
        host: Host) -> None:
    host.run({"entries": ["192.0.2.9"]})
    data = host.saved.read_bytes()
    host.tries[1].fail_write = True
    result = host.run(BLOCK)
    assert result["failed"] is True
    assert result["msg"] == (
        "Writing block_v6 ([Errno 28] ENOSPC) failed; the maps and the "
        "saved list are as they were before this run.")
    assert host.tries[0].writes == 2
    assert host.tries[0].cidrs() == {"192.0.2.9/32"}
    assert host.saved.read_bytes() == data
    assert not host.marker.exists()


def test_a_failed_first_write_leaves_no_saved_list(host: Host) -> None:
    host.tries[1].fail_write = True
    result = host.run(BLOCK)
    assert result["failed"] is True
    assert [t.entries for t in host.tries] == [{}, {}]
    assert not host.saved.exists() and not host.marker.exists()


def test_a_failed_undo_is_reported_and_the_next_run_repairs_it(
        host: Host) -> None:
    host.tries[1].fail_write = True
    host.tries[0].fail_undo = True
    result = host.run(BLOCK)
    assert result["failed"] is True
    assert result["msg"] == (
        "Writing block_v6 ([Errno 28] ENOSPC) failed, and 1 changes could "
        "not be put back (first: 192.0.2.1/32 in block_v4 ([Errno 5] EIO)): "
        "run the same task again; it makes the maps match the saved list.")
    assert result["undo_failed"] == ["192.0.2.1/32 in block_v4 ([Errno 5] "
                                     "EIO)"]
    assert host.marker.exists()
    assert host.ledger().size() == 2

    host.tries[1].fail_write = False
    again = host.run(BLOCK)
    assert (again["changed"], again["recovered"], again["added"]) == (
        True, True, 1)
    assert warnings(again) == [
        "The previous change of the blocklist was interrupted; this run "
        "made the maps match the saved list again."]
    assert host.tries[0].cidrs() == {"192.0.2.1/32"}
    assert host.tries[1].cidrs() == {"2001:db8::1/128"}
    assert not host.marker.exists()
    assert host.run(BLOCK)["changed"] is False


def test_a_run_stopped_after_saving_is_finished_by_any_next_run(
        host: Host) -> None:
    """kill -9 between saving the ledger and writing the maps: the saved
    list and the marker are there, the maps are not changed yet."""
    host.run({"entries": ["192.0.2.1"], "source": "feedA"})
    host.tries[0].entries.clear()
    host.marker.write_bytes(b"")
    result = host.run({"entries": ["192.0.2.2"], "source": "feedB"})
    assert (result["changed"], result["recovered"], result["added"]) == (
        True, True, 2)
    assert host.tries[0].owners() == {"192.0.2.1/32": (0, A),
                                      "192.0.2.2/32": (0, B)}
    assert not host.marker.exists()


def test_a_failed_read_of_the_maps_is_one_sentence(host: Host) -> None:
    host.tries[0].fail_read = True
    result = host.run(BLOCK)
    assert result["failed"] is True
    assert result["msg"] == (
        "Could not read the blocklist maps ([Errno 1] Operation not "
        "permitted): run as root, and check that the program's maps are "
        "still pinned.")
    assert "Traceback" not in json.dumps(result)


def test_missing_maps_say_to_attach_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real open_list_maps on a private directory without pins."""
    pins = tmp_path / "pins"
    pins.mkdir(mode=0o700)
    monkeypatch.setattr(bpf_map_entry._lock, "hold", functools.partial(
        _lock.hold, lock_dir=str(tmp_path / "locks")))
    with mock.patch.object(_facts, "bpffs_mount",
                           return_value="/sys/fs/bpf"):
        result = run(bpf_map_entry, {"map": "blocklist",
                                     "pin_dir": str(pins),
                                     "state_dir": str(tmp_path / "state")})
    assert result["failed"] is True
    assert result["msg"] == (
        "The map block_v4 is not pinned under %s: attach the program with "
        "vos.fastpath.xdp_attach first, or set pin_dir." % pins)
    assert not (tmp_path / "state").exists()


# The saved list: restore, damage, another pin directory


def test_restore_fills_empty_maps_once(host: Host) -> None:
    host.run(dict(BLOCK, source="feedA"))
    old = [dict(t.entries) for t in host.tries]
    for trie in host.tries:
        trie.entries.clear()
    first = host.run({"restore": True})
    assert (first["changed"], first["restored"], first["saved"],
            first["expired_while_down"]) == (True, 2, False, 0)
    assert [t.entries for t in host.tries] == old
    again = host.run({"restore": True})
    assert (again["changed"], again["restored"]) == (False, 0)


def test_restore_drops_what_expired_while_down(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    host.run(dict(BLOCK, ttl=60))
    host.run({"entries": ["192.0.2.2"]})
    for trie in host.tries:
        trie.entries.clear()
    monkeypatch.setattr(_lists, "boot_ns", lambda: NOW + 60 * SEC)
    result = host.run({"restore": True})
    assert (result["restored"], result["expired_while_down"]) == (1, 2)
    assert host.tries[0].cidrs() == {"192.0.2.2/32"}
    assert host.tries[1].entries == {}


def test_a_damaged_saved_list_fails_the_run_and_is_left_alone(
        host: Host) -> None:
    host.run(BLOCK)
    data = host.saved.read_bytes()[:-1]
    host.saved.write_bytes(data)
    result = host.run({"entries": ["192.0.2.2"]})
    assert result["failed"] is True
    assert result["msg"] == (
        "The saved list %s is damaged (its checksum does not match its "
        "contents). Nothing was changed: run deploy.yml (or this module "
        "with restore: true), which sets it aside and saves the list the "
        "maps hold, or put back a good copy." % host.saved)
    assert host.saved.read_bytes() == data
    assert host.tries[0].cidrs() == {"192.0.2.1/32"}


def test_restore_sets_a_damaged_saved_list_aside(host: Host) -> None:
    host.run(BLOCK)
    host.saved.write_bytes(b"garbage")
    result = host.run({"restore": True})
    assert result.get("failed") is not True, result
    aside = Path(result["set_aside"])
    assert aside.name.startswith("blocklist.list.damaged-")
    assert aside.read_bytes() == b"garbage"
    assert warnings(result) == [
        "The saved list %s is damaged (it is not a vos-fastpath list file). "
        "It was moved to %s, and the list the maps hold now is saved in its "
        "place." % (host.saved, aside)]
    assert (result["changed"], result["saved"]) == (True, True)
    assert host.ledger().size() == 2        # what the maps held
    assert host.tries[0].cidrs() == {"192.0.2.1/32"}


def test_a_saved_list_of_another_pin_dir_is_refused_even_by_restore(
        host: Host) -> None:
    host.state_dir.joinpath("lists").mkdir(parents=True)
    data = _snapshot.render("blocklist", "/sys/fs/bpf/other",
                            _ledger.Ledger())
    host.saved.write_bytes(data)
    result = host.run({"restore": True})
    assert result["failed"] is True
    assert "belongs to the maps pinned under /sys/fs/bpf/other" in \
        result["msg"]
    assert host.saved.read_bytes() == data
    assert list(host.saved.parent.iterdir()) == [host.saved]


def counters() -> dict:
    return {"stats": {n: {"packets": 1, "bytes": 60}
                      for n in _abi.REASONS},
            "proto_stats": {n: {"packets": 1, "bytes": 60}
                            for n in _abi.PROTOS}}


def run_stats(args: dict, attached: list[dict], tmp_path: Path) -> dict:
    (tmp_path / "stats").write_text("")     # the pin, as far as it is looked
    stats_map = mock.MagicMock()
    stats_map.__enter__.return_value.id = 7
    with mock.patch.object(_facts, "bpffs_mount",
                           return_value="/sys/fs/bpf"), \
            mock.patch.object(_counters, "read_counters",
                              return_value=counters()), \
            mock.patch.object(xdp_stats._pins, "open_map",
                              return_value=stats_map), \
            mock.patch.object(_facts, "interfaces_using_map",
                              return_value=attached):
        return run(xdp_stats, dict({"pin_dir": str(tmp_path)}, **args))


def test_stats_off_bpffs_fail_with_the_mount() -> None:
    with mock.patch.object(_facts, "bpffs_mount", return_value=None):
        result = run(xdp_stats, {"pin_dir": "/tmp/nowhere"})
    assert result["failed"] is True
    assert "mount -t bpf bpf /sys/fs/bpf" in result["msg"]


def test_stats_textfile_is_written_once(tmp_path: Path) -> None:
    prom = tmp_path / "fp.prom"
    first = run_stats({"prometheus_textfile": str(prom)}, [], tmp_path)
    assert first["changed"] is True
    assert prom.read_text() == _counters.prometheus_text(counters())
    second = run_stats({"prometheus_textfile": str(prom)}, [], tmp_path)
    assert second["changed"] is False
    assert second["total_packets"] == len(_abi.REASONS)


EDGE = {"interface": "eth0", "id": 9, "name": "sip_xdp_prog",
        "tag": "0729d17d290e5598", "mode": "generic"}


def test_health_passes_where_the_program_runs_as_expected(
        tmp_path: Path) -> None:
    result = run_stats({"expect": {"interfaces": ["eth0"]}}, [EDGE],
                       tmp_path)
    assert result.get("failed") is not True, result
    assert result["problems"] == []


@pytest.mark.parametrize("expect, problem", [
    ({"interfaces": ["eth0"], "require_native": True},
     "eth0: attached in generic mode, native required"),
    ({"interfaces": ["eth0"], "mode": "native"},
     "eth0: attached in generic mode, native required"),
    ({"interfaces": ["eth0", "eth1"]}, "eth1: the program is not attached"),
])
def test_health_fails_naming_each_problem(expect: dict, problem: str,
                                          tmp_path: Path) -> None:
    result = run_stats({"expect": expect}, [EDGE], tmp_path)
    assert result["failed"] is True
    assert result["problems"] == [problem]
    assert problem in result["msg"]


def test_health_counts_unreadable_counters_as_a_problem() -> None:
    with mock.patch.object(_facts, "bpffs_mount", return_value=None):
        result = run(xdp_stats, {"pin_dir": "/tmp/nowhere",
                                 "expect": {"interfaces": ["eth0"]}})
    assert result["failed"] is True
    assert result["problems"] == [result["msg"]]
