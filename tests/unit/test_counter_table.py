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
ROW_NAMES = ["stats", *_abi.REASONS, "proto_stats", *_abi.PROTOS, "total"]


def result(stats: dict[str, int], protos: dict[str, int],
           byte_factor: int = 100) -> dict[str, Any]:
    """An xdp_stats result: every counter, those given with packets n and
    bytes n * byte_factor, the others zero."""
    def counters(names: tuple[str, ...],
                 given: dict[str, int]) -> dict[str, dict[str, int]]:
        return {name: {"packets": given.get(name, 0),
                       "bytes": given.get(name, 0) * byte_factor}
                for name in names}
    return {"changed": False, "failed": False,
            "stats": counters(_abi.REASONS, stats),
            "proto_stats": counters(_abi.PROTOS, protos),
            "total_packets": sum(stats.values()), "attached": []}


EDGE_A = result({"PASSED": 7, "OPTIONS_DROPPED": 3, "NON_IP": 1},
                {"UDP": 10, "TCP": 1})
EDGE_B = result({"BLOCKED": 40, "PASSED": 2}, {"UDP": 41, "ICMP": 1},
                byte_factor=60)
MISSING_MAPS = {"failed": True, "changed": False,
                "msg": "No vos.fastpath maps are pinned under /x: attach "
                       "the program with vos.fastpath.xdp_attach first, "
                       "or set pin_dir."}


def rows(text: str) -> dict[str, list[str]]:
    """{row label: cells} of the first table in text."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            break
        label, *cells = line.split()
        out.setdefault(label, cells)
    return out


def test_one_row_per_counter_in_abi_order() -> None:
    lines = counter_table({"edge-a": EDGE_A}).splitlines()
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == ROW_NAMES
    # Counters are indented under their map's name.
    assert lines[1] == "stats"
    assert lines[2].startswith("  PASSED ")
    assert lines[1 + len(_abi.REASONS) + 1] == "proto_stats"


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


def test_every_counter_of_both_maps_is_shown() -> None:
    numbered = result({name: i + 1 for i, name in enumerate(_abi.REASONS)},
                      {name: 100 + i for i, name in enumerate(_abi.PROTOS)})
    table = rows(counter_table({"h": numbered}))
    for i, name in enumerate(_abi.REASONS):
        assert table[name] == [str(i + 1)] * 2
    for i, name in enumerate(_abi.PROTOS):
        assert table[name] == [str(100 + i)] * 2


def test_columns_are_aligned() -> None:
    text = counter_table({"a": result({"PASSED": 123456789}, {}),
                          "a-very-long-host-name": EDGE_A})
    lines = [line for line in text.splitlines()
             if line not in ("stats", "proto_stats")]

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
    table = {line.split()[0]: line.split()[1:]
             for line in byte_table.splitlines()[1:]}
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
