"""The metrics command without the kernel: the textfile it renders, the
maps it reads (fakes behind _pins.open_map), the list sizes and their
cache (real saved files), its configuration, its atomic write, and the
bundle the role installs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import yaml

from plugins.module_utils import (
    _abi,
    _counters,
    _facts,
    _ledger,
    _list_sizes,
    _lists,
    _metrics,
    _snapshot,
)
from plugins.module_utils._errors import FastpathError
from tests.unit.test_boot import imported_module_utils
from tests.unit.test_boot_trust import one_sentence
from tests.unit.test_counters import (
    FakeMap,
    counters,
    percpu,
    pins,
    signature,
    slot,
    source,
)

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "fastpath"
SEC = 10**9
PIN_DIR = "/sys/fs/bpf/vos_fastpath"
FEED = _lists.source_tag("feed")
MANUAL = _lists.source_tag("manual")
BOOT = "11111111-2222-3333-4444-555555555555"


def samples(text: str, metric: str) -> dict[str, str]:
    """{labels: value} of one metric's samples in a textfile."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"%s(\{.*\})? (\S+)" % re.escape(metric), line)
        if match:
            found[match.group(1) or ""] = match.group(2)
    return found


def full_reading() -> _counters.Reading:
    reading = _counters.Reading()
    reading.counters = counters(2)
    reading.scanner_hits = {"friendly": {"packets": 3, "bytes": 1500}}
    reading.signatures = ["friendly", "sipcli", None]
    reading.rate_limited = {
        name: {"packets": 10 * i, "bytes": 1000 * i}
        for i, name in enumerate(_abi.CLASSES)}
    reading.bans = {(_abi.FP_RATE_LIMITED, _abi.FP_CLASS_REGISTER): 2,
                    (_abi.FP_RATE_LIMITED, _abi.FP_CLASS_SYN): 1,
                    (_abi.FP_SCANNER, 1): 3}
    reading.pardons = 4
    reading.lists = [
        {"list": "blocklist", "family": "ipv4", "keys": 7,
         "capacity": 2097152, "owners": {"feed": 5, "manual": 3}},
        {"list": "blocklist", "family": "ipv6", "keys": 0,
         "capacity": 1048576, "owners": {}}]
    reading.attached = {"eth0": True, "eth1": False}
    reading.interval_s = 15
    reading.last_run = 1700000000.25
    return reading


# The textfile


def test_the_textfile_starts_with_the_stats_playbooks_metrics() -> None:
    """Existing names stay: the first part is prometheus_text()'s."""
    reading = full_reading()
    text = _counters.metrics_text(reading)
    assert text.startswith(_counters.prometheus_text(
        reading.counters, reading.scanner_hits, 6))
    assert samples(text, "vos_fastpath_bans_active") == {"": "6"}


def test_every_metric_has_help_and_type_once() -> None:
    text = _counters.metrics_text(full_reading())
    names = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, re.M)
    helps = re.findall(r"^# HELP (\S+) ", text, re.M)
    assert [n for n, _kind in names] == helps
    assert len(set(helps)) == len(helps) == 18
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.split("{")[0].split(" ")[0] in helps, line


def test_rate_limited_drops_are_counted_per_class() -> None:
    text = _counters.metrics_text(full_reading())
    assert samples(text, "vos_fastpath_rate_limited_packets_total") == {
        '{class="register"}': "0", '{class="invite"}': "10",
        '{class="options"}': "20", '{class="other"}': "30",
        '{class="syn"}': "40"}
    assert samples(text, "vos_fastpath_rate_limited_bytes_total")[
        '{class="syn"}'] == "4000"


def test_bans_in_force_by_reason_and_class_or_signature() -> None:
    text = _counters.metrics_text(full_reading())
    assert samples(text, "vos_fastpath_bans_in_force") == {
        '{reason="rate_limited",class="register"}': "2",
        '{reason="rate_limited",class="invite"}': "0",
        '{reason="rate_limited",class="options"}': "0",
        '{reason="rate_limited",class="other"}': "0",
        '{reason="rate_limited",class="syn"}': "1",
        '{reason="scanner",signature="friendly"}': "0",
        '{reason="scanner",signature="sipcli"}': "3"}
    assert samples(text, "vos_fastpath_bans_capacity") == {"": "65536"}
    assert samples(text, "vos_fastpath_pardons_active") == {"": "4"}


def test_a_ban_whose_slot_names_nothing_now_shows_its_slot() -> None:
    signatures = ["friendly", None]
    assert _counters.ban_labels(_abi.FP_SCANNER, 1, signatures) == (
        ("reason", "scanner"), ("signature", "slot 1"))
    assert _counters.ban_labels(_abi.FP_SCANNER, 9, signatures) == (
        ("reason", "scanner"), ("signature", "slot 9"))
    assert _counters.ban_labels(_abi.FP_RATE_LIMITED, 6, None) == (
        ("reason", "rate_limited"), ("class", "slot 6"))
    assert _counters.ban_labels(_abi.FP_MALFORMED, 0, None) == (
        ("reason", "malformed"),)
    assert _counters.ban_labels(40, 0, None) == (("reason", "reason 40"),)
    # Two bans of one signature in two slots are one series.
    assert dict(_counters.ban_samples(
        {(_abi.FP_SCANNER, 0): 1, (_abi.FP_SCANNER, 2): 2},
        ["friendly", "sipcli", "friendly"]))[
        (("reason", "scanner"), ("signature", "friendly"))] == 3


def test_list_sizes_attachments_and_the_run_time() -> None:
    text = _counters.metrics_text(full_reading())
    assert samples(text, "vos_fastpath_list_entries") == {
        '{list="blocklist",family="ipv4",owner="feed"}': "5",
        '{list="blocklist",family="ipv4",owner="manual"}': "3"}
    assert samples(text, "vos_fastpath_list_keys") == {
        '{list="blocklist",family="ipv4"}': "7",
        '{list="blocklist",family="ipv6"}': "0"}
    assert samples(text, "vos_fastpath_list_capacity")[
        '{list="blocklist",family="ipv6"}'] == "1048576"
    assert samples(text, "vos_fastpath_attached") == {
        '{interface="eth0"}': "1", '{interface="eth1"}': "0"}
    assert samples(text, "vos_fastpath_metrics_interval_seconds") == {
        "": "15"}
    assert samples(
        text, "vos_fastpath_metrics_last_run_timestamp_seconds") == {
        "": "1700000000.25"}


def test_an_older_program_gets_what_it_has_and_a_note() -> None:
    reading = _counters.Reading()
    reading.counters = counters(1, ext=False)
    reading.attached = {"eth0": True}
    reading.last_run = 1.0
    reading.notes = [_counters.metrics_note(PIN_DIR, ["pardons",
                                                      "rate_limited"])]
    text = _counters.metrics_text(reading)
    assert text.startswith(
        "# note: %s has no pardons or rate_limited map, so the pardons in "
        "force and the RATE_LIMITED drops by request class are not "
        "exported: the program there is older than this collection; "
        "deploy this version to get them.\n" % PIN_DIR)
    for left_out in ("rate_limited_packets", "bans_in_force",
                     "pardons_active", "list_entries", "bans_active",
                     'reason="banned"'):
        assert left_out not in text
    assert samples(text, "vos_fastpath_attached") == {
        '{interface="eth0"}': "1"}


def test_promtool_accepts_the_textfile() -> None:
    reading = full_reading()
    reading.notes = ["a note"]
    reading.scanner_hits = {'odd "ua\\': {"packets": 1, "bytes": 2}}
    proc = subprocess.run(["promtool", "check", "metrics"],
                          input=_counters.metrics_text(reading),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# What is read from the maps


def test_bans_in_force_are_counted_by_what_made_them(tmp_path: Path) -> None:
    def ban(expires: int, reason: int, detail: int) -> bytes:
        return _abi.BAN_V2.pack(expires, 1, 9, reason, detail)

    bans = FakeMap({
        source(1): ban(5_001, _abi.FP_RATE_LIMITED, _abi.FP_CLASS_INVITE),
        source(2): ban(5_000, _abi.FP_RATE_LIMITED, _abi.FP_CLASS_INVITE),
        source(3): ban(9_000, _abi.FP_RATE_LIMITED, _abi.FP_CLASS_INVITE),
        source(4): ban(9_000, _abi.FP_SCANNER, 2)})
    with pins(tmp_path, {"bans_v2": bans}):
        assert _counters.read_ban_causes(str(tmp_path), now_ns=5_000) == {
            (_abi.FP_RATE_LIMITED, _abi.FP_CLASS_INVITE): 2,
            (_abi.FP_SCANNER, 2): 1}
        assert _counters.count_active_bans(str(tmp_path), now_ns=5_000) == 3
    assert _counters.read_ban_causes(str(tmp_path / "none")) is None


def test_pardons_in_force_are_counted(tmp_path: Path) -> None:
    pardons = FakeMap({source(1): _abi.PARDON.pack(100, 0),
                       source(2): _abi.PARDON.pack(101, 0),
                       source(3): _abi.PARDON.pack(2**64 - 1, 0)})
    with pins(tmp_path, {"pardons": pardons}):
        assert _counters.count_active_pardons(str(tmp_path), now_ns=100) == 2
    assert _counters.count_active_pardons(str(tmp_path / "none")) is None


def test_rate_limited_drops_are_summed_over_cpus(tmp_path: Path) -> None:
    drops = FakeMap({slot(_abi.FP_CLASS_REGISTER): percpu((3, 300), (4, 400)),
                     slot(_abi.FP_CLASS_SYN): percpu((1, 60), (0, 0)),
                     slot(6): percpu((9, 9), (9, 9))}, max_entries=8)
    with pins(tmp_path, {"rate_limited": drops}):
        read = _counters.read_rate_limited(str(tmp_path))
    assert list(read) == list(_abi.CLASSES)
    assert read["REGISTER"] == {"packets": 7, "bytes": 700}
    assert read["SYN"] == {"packets": 1, "bytes": 60}
    assert read["INVITE"] == {"packets": 0, "bytes": 0}
    assert _counters.read_rate_limited(str(tmp_path / "none")) is None


def test_signature_slots_end_at_the_first_empty_one(tmp_path: Path) -> None:
    sigs = FakeMap({slot(0): signature(b"friendly"),
                    slot(1): signature(b"abc"),
                    slot(2): signature(b"sipcli"),
                    slot(3): signature(b""),
                    slot(4): signature(b"pplsip")}, slot_size=40)
    with pins(tmp_path, {"scanner_sigs": sigs}):
        assert _counters.read_signature_slots(str(tmp_path)) == [
            "friendly", None, "sipcli"]


def test_the_maps_an_older_program_lacks_are_named(tmp_path: Path) -> None:
    for name in _abi.MAPS_0_1:
        (tmp_path / name).write_text("")
    assert _counters.metrics_missing(str(tmp_path)) == list(
        _counters.METRICS_MAPS)
    for name in _counters.METRICS_MAPS:
        (tmp_path / name).write_text("")
    assert _counters.metrics_missing(str(tmp_path)) == []
    assert set(_counters.METRICS_MAPS) <= set(_abi.MAPS) - set(
        _abi.MAPS_0_1)
    note = _counters.metrics_note("/p", ["bans_v2"])
    assert one_sentence(note), note


# List sizes


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_snapshot, "boot_id", lambda: BOOT)
    monkeypatch.setattr(_list_sizes, "boot_id", lambda: BOOT)
    monkeypatch.setattr(_snapshot, "wall_minus_boot_ns", lambda: 0)


def v4(i: int) -> bytes:
    return _lists._PREFIX.pack(32) + (0xC6120000 + i).to_bytes(4, "big")


def saved_blocklist(state: Path, extra_feed: int = 0) -> Path:
    """feed: 3 + extra_feed permanent IPv4 entries; manual: one of the
    same, one expiring at 100 s, one at 200 s, one IPv6 permanent."""
    ledger = _ledger.Ledger()
    _ledger.change(ledger, FEED, [{v4(i) for i in range(3 + extra_feed)},
                                  set()], "present", 0)
    _ledger.change(ledger, MANUAL, [{v4(0)}, set()], "present", 0)
    _ledger.change(ledger, MANUAL, [{v4(50)}, set()], "present", 100 * SEC)
    _ledger.change(ledger, MANUAL, [{v4(51)}, set()], "present", 200 * SEC)
    _ledger.change(ledger, MANUAL, [set(), {_lists.parse_entry(
        "2001:db8::/48", True)[1]}], "present", 0)
    ledger.names = {FEED: "feed", MANUAL: "manual"}
    path = Path(_list_sizes._defaults.saved_list(str(state), "blocklist"))
    path.parent.mkdir(parents=True, exist_ok=True)
    _snapshot.save(str(path), _snapshot.render("blocklist", PIN_DIR, ledger))
    return path


def sizes(state: Path, cache: _list_sizes.Cache, now_s: float,
          lists: tuple[str, ...] = ("blocklist",)
          ) -> tuple[list[dict], list[str]]:
    return _list_sizes.sizes(str(state), PIN_DIR, lists, cache,
                             now_ns=int(now_s * SEC))


def test_a_saved_list_is_counted_per_family_and_owner(
        tmp_path: Path, clocks: None) -> None:
    saved_blocklist(tmp_path)
    rows, errors = sizes(tmp_path, _list_sizes.Cache(str(tmp_path / "c")),
                         now_s=50)
    assert errors == []
    assert rows == [
        {"list": "blocklist", "family": "ipv4", "keys": 5,
         "capacity": 2097152, "owners": {"feed": 3, "manual": 3}},
        {"list": "blocklist", "family": "ipv6", "keys": 1,
         "capacity": 1048576, "owners": {"manual": 1}}]


def test_ttl_entries_stop_counting_once_expired(tmp_path: Path,
                                                clocks: None) -> None:
    saved_blocklist(tmp_path)
    cache = _list_sizes.Cache(str(tmp_path / "c"))
    manual = [sizes(tmp_path, cache, now)[0][0]["owners"]["manual"]
              for now in (99.5, 100, 150, 200, 250)]
    assert manual == [3, 2, 2, 1, 1]
    # The trie keeps expired keys until a list change removes them.
    assert sizes(tmp_path, cache, 250)[0][0]["keys"] == 5


def test_an_unchanged_file_is_not_read_again(tmp_path: Path,
                                             clocks: None) -> None:
    saved_blocklist(tmp_path)
    cache_path = str(tmp_path / "run" / "cache.json")
    first, _errors = sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    with mock.patch.object(_snapshot, "parse",
                           side_effect=AssertionError("read again")):
        again, errors = sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    assert (again, errors) == (first, [])
    assert oct(os.stat(os.path.dirname(cache_path)).st_mode & 0o777) == \
        "0o700"


def test_a_changed_file_is_read_again(tmp_path: Path, clocks: None) -> None:
    saved_blocklist(tmp_path)
    cache_path = str(tmp_path / "cache.json")
    sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    saved_blocklist(tmp_path, extra_feed=2)
    rows, _errors = sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    assert rows[0]["owners"]["feed"] == 5


def test_a_damaged_file_is_an_error_until_it_is_replaced(
        tmp_path: Path, clocks: None) -> None:
    path = saved_blocklist(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    cache_path = str(tmp_path / "cache.json")
    rows, errors = sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    assert rows == []
    assert errors == ["blocklist: The saved list %s is damaged (its "
                      "checksum does not match its contents)." % path]
    # Remembered: not read again while the file stays the same.
    with mock.patch.object(_snapshot, "parse",
                           side_effect=AssertionError("read again")):
        assert sizes(tmp_path, _list_sizes.Cache(cache_path), 50)[1] == \
            errors
    saved_blocklist(tmp_path)
    rows, errors = sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    assert errors == [] and rows[0]["keys"] == 5


def test_a_list_never_saved_is_empty(tmp_path: Path, clocks: None) -> None:
    rows, errors = sizes(tmp_path, _list_sizes.Cache(str(tmp_path / "c")),
                         50, ("allowlist",))
    assert errors == []
    assert [(r["family"], r["keys"], r["owners"]) for r in rows] == [
        ("ipv4", 0, {}), ("ipv6", 0, {})]


def test_a_cache_of_another_boot_is_not_used(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             clocks: None) -> None:
    saved_blocklist(tmp_path)
    cache_path = str(tmp_path / "cache.json")
    sizes(tmp_path, _list_sizes.Cache(cache_path), 50)
    monkeypatch.setattr(_list_sizes, "boot_id", lambda: "another boot")
    assert _list_sizes.Cache(cache_path).entries == {}


def test_a_cache_directory_others_may_write_is_not_used(
        tmp_path: Path, clocks: None) -> None:
    saved_blocklist(tmp_path)
    run = tmp_path / "run"
    run.mkdir(mode=0o777)
    run.chmod(0o777)
    cache = _list_sizes.Cache(str(run / "cache.json"))
    rows, _errors = sizes(tmp_path, cache, 50)
    cache.save()
    assert rows[0]["keys"] == 5
    assert not (run / "cache.json").exists()
    assert cache.problem and one_sentence(cache.problem)
    assert str(run) in cache.problem


def test_expiry_buckets_widen_past_their_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _list_sizes.buckets([SEC, SEC + 1, 3 * SEC]) == [
        [1, 1], [2, 1], [3, 1]]
    monkeypatch.setattr(_list_sizes, "MAX_BUCKETS", 4)
    wide = _list_sizes.buckets([s * SEC for s in range(1, 11)])
    assert len(wide) <= 4
    assert sum(n for _end, n in wide) == 10
    # An entry is never counted out before its expiry.
    owner = {"permanent": 0, "expiring": wide}
    for second in range(1, 11):
        assert _list_sizes.in_force(owner, second - 0.5) >= 11 - second


def test_the_tries_are_those_of_the_lists() -> None:
    assert _list_sizes.TRIES == _lists.LISTS


# The command


@pytest.mark.parametrize("text, seconds", [
    ("15s", 15), ("1m", 60), ("2h", 7200), ("30", 30), (45, 45)])
def test_an_interval_is_read_in_seconds(text: object, seconds: int) -> None:
    assert _metrics.interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "15ms", "1d", "1m30s", "-5",
                                  "1.5s", "", "15 s"])
def test_a_bad_interval_is_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(FastpathError) as err:
        _metrics.interval_seconds(text)
    assert one_sentence(err.value.msg), err.value.msg


def test_the_role_accepts_the_intervals_the_command_reads() -> None:
    tasks = (ROLE / "tasks" / "metrics.yml").read_text()
    pattern = re.search(r"fastpath_metrics_interval \| string is "
                        r"match\('(.+?)'\)", tasks).group(1)
    for text in ("15s", "1m", "2h", "30", "0", "0s", "15ms", "1d", "1m30s",
                 "1.5s", "15 s", "1234567s"):
        role_ok = re.match(pattern, text) is not None
        try:
            _metrics.interval_seconds(text)
            command_ok = True
        except FastpathError:
            command_ok = False
        assert role_ok == command_ok, text


def private_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    state.chmod(0o700)
    return state


def write_config(state: Path, mode: int = 0o600, **config: object) -> Path:
    path = state / "metrics.json"
    base = {"pin_dir": str(state / "pins"), "interfaces": ["eth0"],
            "textfile": str(state / "out" / "vos_fastpath.prom"),
            "state_dir": str(state)}
    path.write_text(json.dumps(dict(base, **config)))
    path.chmod(mode)
    return path


def test_a_configuration_takes_the_defaults_it_leaves_out(
        tmp_path: Path) -> None:
    path = private_state(tmp_path) / "metrics.json"
    path.write_text(json.dumps({"pin_dir": "/p", "interfaces": ["eth0"],
                                "textfile": "/t.prom"}))
    path.chmod(0o600)
    config = _metrics.read_config(str(path))
    assert (config["state_dir"], config["lists"], config["interval"]) == (
        "/var/lib/vos-fastpath", ["blocklist", "allowlist"], "15s")


@pytest.mark.parametrize("config, mode, starts", [
    ({}, 0o666, "The metrics configuration %(path)s is owned by uid"),
    ({"interval": "1d"}, 0o600, "The interval '1d' is not"),
    ({"lists": ["denylist"]}, 0o600, "%(path)s: 'denylist' is not a list"),
    ({"interfaces": "eth0"}, 0o600, "%(path)s: interfaces is not a list"),
])
def test_a_bad_configuration_is_refused_in_one_sentence(
        tmp_path: Path, config: dict, mode: int, starts: str) -> None:
    path = write_config(private_state(tmp_path), mode, **config)
    with pytest.raises(FastpathError) as err:
        _metrics.read_config(str(path))
    assert err.value.msg.startswith(starts % {"path": path}), err.value.msg
    assert one_sentence(err.value.msg), err.value.msg


def test_a_configuration_in_an_open_directory_is_refused(
        tmp_path: Path) -> None:
    state = private_state(tmp_path)
    path = write_config(state)
    state.chmod(0o777)
    with pytest.raises(FastpathError) as err:
        _metrics.read_config(str(path))
    assert err.value.msg.startswith("The state directory %s is owned by"
                                    % state)


def test_a_configuration_without_a_key_names_it(tmp_path: Path) -> None:
    path = private_state(tmp_path) / "metrics.json"
    path.write_text(json.dumps({"pin_dir": "/p", "interfaces": []}))
    path.chmod(0o600)
    with pytest.raises(FastpathError) as err:
        _metrics.read_config(str(path))
    assert err.value.msg == ("%s has no 'textfile': deploy again to "
                             "rewrite it." % path)


def test_the_textfile_is_renamed_into_place_readable_by_all(
        tmp_path: Path) -> None:
    out = tmp_path / "vos_fastpath.prom"
    out.write_text("old\n")
    renamed = []
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        # At the rename the temporary file is whole and readable by all,
        # in the same directory, with a name node_exporter skips.
        assert Path(src).read_text() == "new\n"
        assert os.stat(src).st_mode & 0o777 == 0o644
        assert os.path.dirname(src) == str(tmp_path)
        assert not src.endswith(".prom")
        renamed.append(dst)
        real_rename(src, dst)

    with mock.patch.object(_metrics.os, "rename", side_effect=rename):
        _metrics.write_textfile(str(out), "new\n")
    assert renamed == [str(out)]
    assert out.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vos_fastpath.prom"]


def test_a_missing_textfile_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FastpathError) as err:
        _metrics.write_textfile(str(tmp_path / "no" / "x.prom"), "")
    assert "fastpath_metrics_textfile" in err.value.msg
    assert one_sentence(err.value.msg)


def test_without_pins_the_file_still_says_detached_and_when(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = private_state(tmp_path)
    (state / "out").mkdir()
    path = write_config(state, interfaces=["eth0", "eth1"])
    cache = str(tmp_path / "cache.json")

    assert _metrics.main(["--config", str(path), "--cache", cache]) == 1

    assert capsys.readouterr().err.splitlines() == [
        "error: " + _facts.NOT_ON_BPFFS % (state / "pins")]
    text = (state / "out" / "vos_fastpath.prom").read_text()
    assert samples(text, "vos_fastpath_attached") == {
        '{interface="eth0"}': "0", '{interface="eth1"}': "0"}
    assert samples(text, "vos_fastpath_list_keys")[
        '{list="blocklist",family="ipv4"}'] == "0"
    assert len(samples(
        text, "vos_fastpath_metrics_last_run_timestamp_seconds")) == 1
    assert "vos_fastpath_packets_total{" not in text


def test_print_writes_to_stdout_and_not_the_textfile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = private_state(tmp_path)
    path = write_config(state)
    _metrics.main(["--config", str(path), "--cache",
                   str(tmp_path / "c.json"), "--print"])
    assert "vos_fastpath_attached{interface=\"eth0\"} 0" in \
        capsys.readouterr().out
    assert not (state / "out").exists()


def test_main_without_a_configuration_exits_1_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _metrics.main(["--config", str(tmp_path / "none.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: Could not read %s" % (tmp_path
                                                        / "none.json"))


# What the role installs


def role_vars() -> dict:
    return yaml.safe_load((ROLE / "vars" / "main.yml").read_text())


def test_the_bundle_carries_exactly_what_the_command_imports() -> None:
    listed = role_vars()["__fastpath_metrics_module_utils_files"]
    needed = imported_module_utils("_metrics",
                                   REPO / "plugins" / "module_utils")
    assert sorted(listed) == sorted(name + ".py" for name in needed)
    # Neither the attach code nor the compiler driver.
    assert "_boot.py" not in listed and "_build.py" not in listed


def test_the_command_loads_its_code_as_the_boot_command_does() -> None:
    templates = ROLE / "templates"
    boot = (templates / "vos-fastpath-boot.j2").read_text()
    metrics = (templates / "vos-fastpath-metrics.j2").read_text()

    def loader(text: str) -> str:
        start = text.index('PACKAGE = "')
        end = text.index("sys.meta_path.insert")
        return re.sub(r"__fastpath_\w*module_utils_files", "FILES",
                      text[start:end])

    assert loader(metrics) == loader(boot)
    assert metrics.splitlines()[0] == boot.splitlines()[0]
    assert metrics.rstrip().endswith("sys.exit(_metrics.main())")


def test_the_role_defaults_are_the_commands() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["fastpath_metrics_textfile"] == _metrics.TEXTFILE
    assert defaults["fastpath_metrics_interval"] == _metrics.INTERVAL
    assert role_vars()["__fastpath_metrics_config"] == \
        "{{ fastpath_state_dir }}/metrics.json"
    assert _metrics.DEFAULT_CONFIG == "/var/lib/vos-fastpath/metrics.json"
