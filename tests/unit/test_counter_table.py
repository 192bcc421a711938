"""The counter_table filter: rows, columns, fleet sums, hosts not read."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from plugins.filter.counter_table import FilterModule, counter_table
from plugins.module_utils import _abi

REPO = Path(__file__).resolve().parents[2]
ROW_NAMES = ["stats", *_abi.REASONS, "stats_ext", *_abi.REASONS_EXT,
             "proto_stats", *_abi.PROTOS, "total"]
OLD_NOTE = ("/sys/fs/bpf/vos_fastpath has no stats_ext, scanner_sigs, "
            "scanner_hits or bans_v2 map: the program there predates rate "
            "limits, bans and scanner fingerprints (0.1.0), so BANNED, "
            "SCANNER, the signature hits and the active bans are not shown; "
            "deploy this version to get them.")


def result(stats: dict[str, int], protos: dict[str, int],
           byte_factor: int = 100, hits: dict[str, int] | None = None,
           active_bans: int | None = None) -> dict[str, Any]:
    """An xdp_stats result: every counter, those given with packets n and
    bytes n * byte_factor, the others zero; stats holds the reasons of
    both stats and stats_ext; hits and active_bans when given."""
    def counters(names: tuple[str, ...], given: dict[str, int],
                 ) -> dict[str, dict[str, int]]:
        return {name: {"packets": given.get(name, 0),
                       "bytes": given.get(name, 0) * byte_factor}
                for name in names}
    out = {"changed": False, "failed": False,
           "stats": counters(_abi.REASONS, stats),
           "stats_ext": counters(_abi.REASONS_EXT, stats),
           "proto_stats": counters(_abi.PROTOS, protos),
           "total_packets": sum(stats.values()), "attached": [],
           "notes": []}
    if hits is not None:
        out["scanner_hits"] = counters(tuple(hits), hits)
    if active_bans is not None:
        out["active_bans"] = active_bans
    return out


def old_result(stats: dict[str, int], protos: dict[str, int]
               ) -> dict[str, Any]:
    """The result for a host whose program is 0.1.0: no stats_ext, no
    scanner hits, no bans, and a note that says so."""
    out = result(stats, protos)
    del out["stats_ext"]
    out["notes"] = [OLD_NOTE]
    return out


EDGE_A = result({"PASSED": 7, "OPTIONS_DROPPED": 3, "NON_IP": 1},
                {"UDP": 10, "TCP": 1})
EDGE_B = result({"BLOCKED": 40, "PASSED": 2}, {"UDP": 41, "ICMP": 1},
                byte_factor=60)
MISSING_MAPS = {"failed": True, "changed": False,
                "msg": "No vos.fastpath maps are pinned under /x: attach "
                       "the program with vos.fastpath.xdp_attach first, "
                       "or set pin_dir."}


def split_row(line: str, columns: int) -> tuple[str, list[str]]:
    """(label, cells) of one line of a table of `columns` value columns;
    a label may hold spaces (a signature), a section's line has no
    cells."""
    words = line.split()
    if len(words) <= columns:
        return line.strip(), []
    return " ".join(words[:-columns]), words[-columns:]


def rows(text: str) -> dict[str, list[str]]:
    """{row label: cells} of the first table in text."""
    lines = text.splitlines()
    columns = len(lines[0].split()) - 1
    out: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith(("note: ", "not read: ")):
            break
        label, cells = split_row(line, columns)
        out.setdefault(label, cells)
    return out


def labels(text: str) -> list[str]:
    lines = text.splitlines()
    columns = len(lines[0].split()) - 1
    out = []
    for line in lines[1:]:
        if not line.strip() or line.startswith(("note: ", "not read: ")):
            break
        out.append(split_row(line, columns)[0])
    return out


def test_one_row_per_counter_in_abi_order() -> None:
    text = counter_table({"edge-a": EDGE_A})
    lines = text.splitlines()
    assert labels(text) == ROW_NAMES
    # Counters are indented under their map's name.
    assert lines[1] == "stats"
    assert lines[2].startswith("  PASSED ")
    assert lines[1 + len(_abi.REASONS) + 1] == "stats_ext"
    assert lines[1 + len(_abi.REASONS) + 2].startswith("  BANNED ")
    assert lines[1 + len(_abi.REASONS) + len(_abi.REASONS_EXT) + 2] == \
        "proto_stats"


def test_header_names_every_host_then_the_fleet() -> None:
    text = counter_table({"edge-b": EDGE_B, "edge-a": EDGE_A})
    assert text.splitlines()[0].split() == ["packets", "edge-b", "edge-a",
                                            "fleet"]


def test_cells_fleet_sum_and_total() -> None:
    table = rows(counter_table({"edge-a": EDGE_A, "edge-b": EDGE_B}))
    assert table["PASSED"] == ["7", "2", "9"]
    assert table["OPTIONS_DROPPED"] == ["3", "0", "3"]
    assert table["BLOCKED"] == ["0", "40", "40"]
    assert table["NON_IP"] == ["1", "0", "1"]
    assert table["UDP"] == ["10", "41", "51"]
    assert table["TCP"] == ["1", "0", "1"]
    assert table["ICMP"] == ["0", "1", "1"]
    assert table["OTHER"] == ["0", "0", "0"]
    # total: every frame the program saw, the sum of the stats rows only.
    assert table["total"] == ["11", "42", "53"]


def test_total_adds_the_stats_ext_reasons_but_no_protocol() -> None:
    flooded = result({"PASSED": 30, "RATE_LIMITED": 270, "SCANNER": 1,
                      "BANNED": 5}, {"UDP": 306})
    table = rows(counter_table({"edge-f": flooded, "edge-a": EDGE_A}))
    assert table["RATE_LIMITED"] == ["270", "0", "270"]
    assert table["SCANNER"] == ["1", "0", "1"]
    assert table["BANNED"] == ["5", "0", "5"]
    # Each frame is in one reason, of stats or of stats_ext.
    assert table["total"] == ["306", "11", "317"]


def test_every_counter_of_every_map_is_shown() -> None:
    numbered = result({name: i + 1 for i, name in
                       enumerate(_abi.REASONS + _abi.REASONS_EXT)},
                      {name: 100 + i for i, name in enumerate(_abi.PROTOS)})
    table = rows(counter_table({"h": numbered}))
    for i, name in enumerate(_abi.REASONS + _abi.REASONS_EXT):
        assert table[name] == [str(i + 1)] * 2
    for i, name in enumerate(_abi.PROTOS):
        assert table[name] == [str(100 + i)] * 2


def test_signature_hits_follow_the_protocols_in_the_order_first_seen() \
        -> None:
    a = result({"SCANNER": 4}, {}, hits={"friendly": 3, "sipcli": 1,
                                         "nmap nse": 0})
    b = result({"SCANNER": 2}, {}, hits={"sipcli": 2, "iwar": 0})
    text = counter_table({"edge-a": a, "edge-old": old_result({}, {}),
                          "edge-b": b})
    after_protocols = labels(text)[labels(text).index("OTHER") + 1:]
    assert after_protocols == ["scanner_hits", "friendly", "sipcli",
                               "nmap nse", "iwar", "total"]
    table = rows(text)
    assert table["friendly"] == ["3", "-", "-", "3"]
    assert table["sipcli"] == ["1", "-", "2", "3"]
    assert table["nmap nse"] == ["0", "-", "-", "0"]
    assert table["iwar"] == ["-", "-", "0", "0"]
    # A hit is a SCANNER frame already in total: not counted twice.
    assert table["total"] == ["4", "0", "2", "6"]


def test_no_signature_rows_without_hits_in_any_result() -> None:
    text = counter_table({"edge-a": EDGE_A})
    assert "scanner_hits" not in labels(text)


def test_active_bans_are_a_row_of_the_packets_table_only() -> None:
    banning = result({"BANNED": 7}, {}, active_bans=2)
    text = counter_table({"edge-a": banning, "edge-old": old_result({}, {}),
                          "edge-b": result({}, {}, active_bans=0)},
                         show_bytes=True)
    packets, byte_table = text.split("\n\n")
    assert labels(packets)[-3:] == ["bans", "active", "total"]
    assert rows(packets)["active"] == ["2", "-", "0", "2"]
    assert "active" not in labels(byte_table)
    assert labels(byte_table)[-1] == "total"


def test_a_host_running_the_first_release_is_shown_with_a_note() -> None:
    old = old_result({"PASSED": 5, "BLOCKED": 2}, {"UDP": 7})
    text = counter_table({"edge-old": old, "edge-a": EDGE_A,
                          "edge-c": MISSING_MAPS})
    table = rows(text)
    assert table["PASSED"] == ["5", "7", "12"]
    assert table["BANNED"] == ["-", "0", "0"]
    assert table["SCANNER"] == ["-", "0", "0"]
    assert table["total"] == ["7", "11", "18"]
    assert "bans" not in labels(text)
    assert text.splitlines()[-2:] == [
        "note: edge-old: " + OLD_NOTE,
        "not read: edge-c (failed: " + MISSING_MAPS["msg"] + ")"]


def test_columns_are_aligned() -> None:
    text = counter_table({"a": result({"PASSED": 123456789}, {}),
                          "a-very-long-host-name": EDGE_A})
    lines = [line for line in text.splitlines()
             if line not in ("stats", "stats_ext", "proto_stats")]

    def ends(line: str) -> list[int]:
        return [m.end() for m in re.finditer(r"\S+", line)][1:]

    # Every number ends where its column's header ends.
    first = len("  OPTIONS_DROPPED") + 2 + len("123456789")
    second = first + 2 + len("a-very-long-host-name")
    assert ends(lines[0]) == [first, second, second + 2 + len("123456796")]
    assert {tuple(ends(line)) for line in lines} == {tuple(ends(lines[0]))}


def test_failed_and_unreachable_hosts_are_listed_as_not_read() -> None:
    text = counter_table({
        "edge-a": EDGE_A,
        "edge-c": MISSING_MAPS,
        "edge-d": {"unreachable": True, "changed": False,
                   "msg": "Failed to connect to the host via ssh:\n  refused"},
        "edge-b": EDGE_B,
        "edge-e": None,
    })
    lines = text.splitlines()
    assert lines[0].split() == ["packets", "edge-a", "edge-b", "fleet"]
    assert rows(text)["PASSED"] == ["7", "2", "9"]
    assert lines[-3:] == [
        "not read: edge-c (failed: " + MISSING_MAPS["msg"] + ")",
        "not read: edge-d (unreachable: Failed to connect to the host via "
        "ssh: refused)",
        "not read: edge-e (no result)",
    ]


def test_skipped_and_empty_results_are_not_read() -> None:
    text = counter_table({"a": {"skipped": True, "changed": False},
                          "b": {"changed": False}, "c": EDGE_A})
    assert "not read: a (skipped)" in text.splitlines()
    assert "not read: b (no counters in the result)" in text.splitlines()
    assert text.splitlines()[0].split() == ["packets", "c", "fleet"]


def test_no_host_read_says_so() -> None:
    assert counter_table({"edge-c": MISSING_MAPS}).splitlines() == [
        "No host's counters were read.",
        "not read: edge-c (failed: " + MISSING_MAPS["msg"] + ")"]
    assert counter_table({}) == "No host's counters were read."


def test_a_counter_missing_from_a_result_shows_a_dash() -> None:
    old = result({"PASSED": 5}, {"UDP": 5})
    del old["stats"]["NON_IP"]
    table = rows(counter_table({"old": old, "edge-a": EDGE_A}))
    assert table["NON_IP"] == ["-", "1", "1"]
    assert table["PASSED"] == ["5", "7", "12"]


def test_bytes_table_follows_the_packets_table() -> None:
    text = counter_table({"edge-a": EDGE_A, "edge-b": EDGE_B},
                         show_bytes=True)
    packets, byte_table = text.split("\n\n")
    assert packets == counter_table({"edge-a": EDGE_A, "edge-b": EDGE_B})
    assert byte_table.splitlines()[0].split() == ["bytes", "edge-a",
                                                  "edge-b", "fleet"]
    table = rows(byte_table)
    assert table["PASSED"] == ["700", "120", "820"]
    assert table["BLOCKED"] == ["0", "2400", "2400"]
    assert table["UDP"] == ["1000", "2460", "3460"]
    assert table["total"] == ["1100", "2520", "3620"]


def test_not_a_dict_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="dict of host"):
        counter_table([EDGE_A])


def test_filter_is_registered_by_name() -> None:
    assert FilterModule().filters()["counter_table"] is counter_table


def test_usable_from_jinja_by_fqcn(tmp_path: Path) -> None:
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps(
        {"results": {"edge-a": EDGE_A, "edge-c": MISSING_MAPS}}))
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible"), "localhost",
         "-m", "ansible.builtin.debug", "-e", "@%s" % variables, "-a",
         "msg={{ results | vos.fastpath.counter_table(show_bytes=true)"
         " | split('\\n') }}"],
        cwd=REPO, capture_output=True, text=True, check=False,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                 ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # "localhost | SUCCESS => {...}"
    lines = json.loads(proc.stdout.split("=>", 1)[1])["msg"]
    assert lines == counter_table(
        {"edge-a": EDGE_A, "edge-c": MISSING_MAPS},
        show_bytes=True).split("\n")
    assert lines[0].split() == ["packets", "edge-a", "fleet"]


def test_ansible_doc_renders() -> None:
    doc_bin = REPO / ".venv" / "bin" / "ansible-doc"
    proc = subprocess.run(
        [str(doc_bin), "-t", "filter", "-j", "vos.fastpath.counter_table"],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)["vos.fastpath.counter_table"]
    assert entry["doc"]["name"] == "counter_table"
    assert set(entry["doc"]["options"]) == {"_input", "show_bytes"}
    assert "vos.fastpath.counter_table" in entry["examples"]
    assert entry["return"]["_value"]["type"] == "string"
