"""Counter arithmetic, signatures, bans and the node_exporter text,
without the kernel: the maps are fakes behind _pins.open_map."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from plugins.module_utils import _abi, _counters


def counters(packets: int, ext: bool = True) -> _counters.Counters:
    out = {
        "stats": {name: {"packets": packets * i, "bytes": 100 * i}
                  for i, name in enumerate(_abi.REASONS)},
        "stats_ext": {name: {"packets": 1000 + i, "bytes": 5000 + i}
                      for i, name in enumerate(_abi.REASONS_EXT)},
        "proto_stats": {name: {"packets": i, "bytes": 10 * i}
                        for i, name in enumerate(_abi.PROTOS)},
    }
    if not ext:
        del out["stats_ext"]
    return out


class FakeMap:
    """A map as _bpf.Map shows it: lookup by key, lookup_batch, sizes."""

    def __init__(self, values: dict[bytes, bytes], max_entries: int = 32,
                 slot_size: int = 16) -> None:
        self.values = values
        self.max_entries = max_entries
        self.slot_size = slot_size

    def __enter__(self) -> FakeMap:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def lookup(self, key: bytes) -> bytes | None:
        return self.values.get(key)

    def lookup_batch(self) -> tuple[bytes, bytes]:
        return b"".join(self.values), b"".join(self.values.values())


def pins(tmp_path: Path, maps: dict[str, FakeMap]) -> mock._patch:
    """Pin files for maps under tmp_path, and open_map serving the fakes."""
    for name in maps:
        (tmp_path / name).write_text("")
    return mock.patch.object(_counters._pins, "open_map",
                             side_effect=lambda _dir, name: maps[name])


def signature(text: bytes, length: int | None = None) -> bytes:
    return _abi.SIGNATURE.pack(len(text) if length is None else length, 0,
                               text)


def percpu(*slots: tuple[int, int]) -> bytes:
    return b"".join(_abi.COUNTER.pack(p, b) for p, b in slots)


def slot(i: int) -> bytes:
    return _abi.U32.pack(i)


def test_per_cpu_slots_are_summed() -> None:
    raw = _abi.COUNTER.pack(3, 300) + _abi.COUNTER.pack(4, 400)
    assert _counters.sum_percpu(raw, _abi.COUNTER.size) == (7, 700)


def test_total_is_every_reason_of_stats_and_stats_ext() -> None:
    assert _counters.total_packets(counters(2)) == \
        2 * sum(range(len(_abi.REASONS))) + 1000 + 1001
    assert _counters.total_packets(counters(2, ext=False)) == \
        2 * sum(range(len(_abi.REASONS)))


def test_prometheus_text_has_every_counter_once() -> None:
    text = _counters.prometheus_text(counters(2))
    assert 'vos_fastpath_packets_total{reason="blocked"} 4\n' in text
    assert 'vos_fastpath_bytes_total{reason="non_ip"} 700\n' in text
    assert 'vos_fastpath_protocol_packets_total{protocol="other"} 3\n' in text
    # BANNED and SCANNER are verdicts like the others: the same metrics.
    assert 'vos_fastpath_packets_total{reason="banned"} 1000\n' in text
    assert 'vos_fastpath_bytes_total{reason="scanner"} 5001\n' in text
    samples = [line for line in text.splitlines()
               if not line.startswith("#")]
    assert len(samples) == 2 * (len(_abi.REASONS) + len(_abi.REASONS_EXT)
                                + len(_abi.PROTOS))
    assert text.count("# TYPE") == 4


def test_prometheus_text_of_a_first_release_host_leaves_out_what_it_lacks() \
        -> None:
    text = _counters.prometheus_text(counters(2, ext=False))
    assert 'reason="banned"' not in text
    assert "scanner" not in text and "bans" not in text
    assert 'vos_fastpath_packets_total{reason="blocked"} 4\n' in text


def test_prometheus_text_has_signature_hits_and_active_bans() -> None:
    text = _counters.prometheus_text(
        counters(1), {"friendly": {"packets": 3, "bytes": 1500},
                      'odd"\\ua': {"packets": 1, "bytes": 9}},
        active_bans=2)
    assert 'vos_fastpath_scanner_packets_total{signature="friendly"} 3\n' \
        in text
    assert 'vos_fastpath_scanner_bytes_total{signature="friendly"} 1500\n' \
        in text
    # A label value escapes backslash and double quote.
    assert 'vos_fastpath_scanner_packets_total{signature="odd\\"\\\\ua"} 1\n' \
        in text
    assert "# TYPE vos_fastpath_bans_active gauge\n" in text
    assert text.endswith("vos_fastpath_bans_active 2\n")
    assert text.count("# TYPE") == 7


@pytest.mark.parametrize("raw, text", [
    (signature(b"friendly"), "friendly"),
    (signature(b"nmap nse"), "nmap nse"),
    (signature(b"x" * 32), "x" * 32),
    (signature(b""), ""),                   # len 0: the end of the list
    (signature(b"abc"), None),              # below 4: skipped
    (signature(b"x" * 32, length=33), None),  # above 32: skipped
    (signature(b"sipcli-and-more", length=6), "sipcli"),
])
def test_signature_slots_read_as_the_program_reads_them(
        raw: bytes, text: str | None) -> None:
    assert _counters.signature_text(raw) == text


def test_scanner_hits_by_signature_in_slot_order(tmp_path: Path) -> None:
    sigs = FakeMap({slot(0): signature(b"friendly"),
                    slot(1): signature(b"abc"),       # skipped
                    slot(2): signature(b"sipcli"),
                    slot(3): signature(b"friendly"),  # never matches
                    slot(4): signature(b""),          # ends the list
                    slot(5): signature(b"pplsip")},
                   max_entries=32, slot_size=40)
    hits = FakeMap({slot(0): percpu((2, 900), (1, 450)),
                    slot(1): percpu((7, 7), (0, 0)),
                    slot(2): percpu((0, 0), (4, 1800)),
                    slot(3): percpu((0, 0), (0, 0)),
                    slot(5): percpu((9, 9), (9, 9))})
    with pins(tmp_path, {"scanner_sigs": sigs, "scanner_hits": hits}):
        assert _counters.read_scanner_hits(str(tmp_path)) == {
            "friendly": {"packets": 3, "bytes": 1350},
            "sipcli": {"packets": 4, "bytes": 1800}}


def test_an_empty_signature_list_has_no_hits(tmp_path: Path) -> None:
    with pins(tmp_path, {"scanner_sigs": FakeMap({}, slot_size=40),
                         "scanner_hits": FakeMap({})}):
        assert _counters.read_scanner_hits(str(tmp_path)) == {}


def ban(expires_ns: int, reason: int = _abi.FP_RATE_LIMITED) -> bytes:
    """A bans_v2 value: made at 1,000 ns, with 3 packets dropped since."""
    return _abi.BAN_V2.pack(expires_ns, 1_000, 3, reason, 0)


def source(last: int) -> bytes:
    return _abi.SOURCE.pack(4, 32, 0, bytes((192, 0, 2, last)) + bytes(12))


def test_only_bans_that_end_after_now_are_active(tmp_path: Path) -> None:
    bans = FakeMap({source(1): ban(5_000),
                    source(2): ban(4_999, _abi.FP_SCANNER),
                    source(3): ban(5_001, _abi.FP_SCANNER),
                    source(4): ban(10**18)})
    with pins(tmp_path, {"bans_v2": bans}):
        assert _counters.count_active_bans(str(tmp_path), now_ns=5_000) == 2
    assert _counters.count_active_bans(str(tmp_path / "x")) is None


def test_a_retired_bans_pin_is_not_read_as_bans(tmp_path: Path) -> None:
    """Only bans_v2 holds the bans: a `bans` pin left by an earlier build
    is not counted, and without bans_v2 there is no count at all."""
    (tmp_path / "bans").write_text("")
    assert _counters.count_active_bans(str(tmp_path)) is None
    # open_map serves bans_v2 only: reading `bans` would fail.
    with pins(tmp_path, {"bans_v2": FakeMap({source(1): ban(10**18)})}):
        assert _counters.count_active_bans(str(tmp_path), now_ns=0) == 1


def test_a_first_release_host_has_no_later_maps(tmp_path: Path) -> None:
    for name in _abi.MAPS_0_1:
        (tmp_path / name).write_text("")
    assert _counters.missing_maps(str(tmp_path)) == [
        "stats_ext", "scanner_sigs", "scanner_hits", "bans_v2"]
    assert _counters.read_scanner_hits(str(tmp_path)) is None
    assert _counters.count_active_bans(str(tmp_path)) is None
    opened = []

    def open_map(_dir: str, name: str) -> FakeMap:
        opened.append(name)
        return FakeMap({}, max_entries=8)

    with mock.patch.object(_counters._pins, "open_map",
                           side_effect=open_map):
        read = _counters.read_counters(str(tmp_path))
    assert opened == ["stats", "proto_stats"]
    assert list(read) == ["stats", "proto_stats"]
    assert read["stats"]["PASSED"] == {"packets": 0, "bytes": 0}


def test_the_note_names_the_missing_maps() -> None:
    assert _counters.later_maps_note("/p", ["stats_ext"]).startswith(
        "/p has no stats_ext map: the program there predates rate limits")
    assert _counters.later_maps_note(
        "/p", ["stats_ext", "scanner_sigs", "bans_v2"]).startswith(
        "/p has no stats_ext, scanner_sigs or bans_v2 map: ")
