"""blocklist_sync.yml across five edges, one of them down for a while.

The fixtures are the steps of one story, each on the state the one
before left: a first sync of 100,000 entries; a second sync of a changed
file with the last edge shut down; that edge booted again and the sync
run again; a third sync with two entries taken out of the file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import addresses
import fleet
import pytest

EDGES = fleet.group("sip_edges")
DOWN = EDGES[-1]
ENTRIES = 100_000
CHANGED = 1_000          # entries replaced between the first two syncs


def blocklists(edges: list[fleet.Host] = EDGES) -> dict[str, set[str]]:
    return {edge.name: edge.blocklist() for edge in edges}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sync")


@pytest.fixture(scope="module")
def first(work: Path) -> list[str]:
    lines = addresses.generate(ENTRIES, seed=1)
    fleet.run_playbook("blocklist_sync", fastpath_list_file=str(
        write(work / "1.txt", lines)))
    return lines


@pytest.fixture(scope="module")
def second(work: Path, first: list[str]
           ) -> tuple[list[str], subprocess.CompletedProcess]:
    listed = set(first)
    fresh = [line for line in addresses.generate(ENTRIES + CHANGED, seed=2)
             if line not in listed][:CHANGED]
    lines = first[CHANGED:] + fresh
    DOWN.stop()
    proc = fleet.play("blocklist_sync", fastpath_list_file=str(
        write(work / "2.txt", lines)))
    return lines, proc


@pytest.fixture(scope="module")
def rerun(work: Path, second: tuple[list[str], subprocess.CompletedProcess]
          ) -> str:
    DOWN.start()
    return fleet.run_playbook("blocklist_sync",
                              fastpath_list_file=str(work / "2.txt"))


@pytest.fixture(scope="module")
def third(work: Path, second: tuple[list[str], subprocess.CompletedProcess],
          rerun: str) -> tuple[list[str], list[str]]:
    lines, _proc = second
    v4 = next(line for line in lines if ":" not in line)
    v6 = next(line for line in lines if ":" in line)
    kept = [line for line in lines if line not in (v4, v6)]
    fleet.run_playbook("blocklist_sync", fastpath_list_file=str(
        write(work / "3.txt", kept)))
    return kept, [v4, v6]


def test_first_sync_makes_every_list_equal_to_the_file(
        first: list[str]) -> None:
    expected = addresses.canonical(first)
    assert len(expected) == ENTRIES
    assert blocklists() == {edge.name: expected for edge in EDGES}


def test_sync_with_an_edge_down_reports_it_not_synced(
        second: tuple[list[str], subprocess.CompletedProcess]) -> None:
    _lines, proc = second
    assert proc.returncode != 0
    assert "%s: NOT SYNCED" % DOWN.name in proc.stdout
    for edge in EDGES[:-1]:
        assert "%s: %d added, %d removed, %d entries" % (
            edge.name, CHANGED, CHANGED, ENTRIES) in proc.stdout


def test_the_edges_that_are_up_converge_without_it(
        second: tuple[list[str], subprocess.CompletedProcess]) -> None:
    lines, _proc = second
    expected = addresses.canonical(lines)
    assert blocklists(EDGES[:-1]) == {e.name: expected for e in EDGES[:-1]}


def test_rerun_converges_the_edge_that_was_down(
        second: tuple[list[str], subprocess.CompletedProcess],
        rerun: str) -> None:
    lines, _proc = second
    assert "%s: %d added, %d removed" % (DOWN.name, CHANGED, CHANGED) in rerun
    assert DOWN.blocklist() == addresses.canonical(lines)


def test_rerun_changes_nothing_on_the_other_edges(rerun: str) -> None:
    for edge in EDGES[:-1]:
        assert "%s: 0 added, 0 removed, %d entries" % (
            edge.name, ENTRIES) in rerun


def test_entry_removed_from_the_file_disappears_everywhere(
        third: tuple[list[str], list[str]]) -> None:
    kept, removed = third
    lists = blocklists()
    for edge in EDGES:
        assert addresses.canonical(removed).isdisjoint(lists[edge.name])
        assert lists[edge.name] == addresses.canonical(kept)
