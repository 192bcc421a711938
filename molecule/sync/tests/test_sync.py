"""blocklist_sync.yml across five edges, one of them down for a while.

The fixtures are the steps of one story, each on the state the one
before left: a first sync of 100,000 entries; a second sync of a changed
file with the last edge shut down; that edge booted again and the sync
run again; a third sync with two entries taken out of the file; then a
scheduled sync of a changed file and a block.yml of another address
started at the same moment.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import addresses
import fleet
import pytest

EDGES = fleet.group("sip_edges")
DOWN = EDGES[-1]
ENTRIES = 100_000
CHANGED = 1_000          # entries replaced between the first two syncs
MANUAL = "192.0.2.77"    # blocked by hand while the scheduled sync runs
SAVED_BLOCKLIST = fleet.STATE_DIR + "/lists/blocklist.list"
REPO = Path(__file__).resolve().parents[3]


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


@pytest.fixture(scope="module")
def overlap(work: Path, third: tuple[list[str], list[str]]
            ) -> tuple[list[str], dict[str, subprocess.CompletedProcess]]:
    """A scheduled sync of a changed feed and a block.yml of another
    address, two ansible-playbook processes started together on every
    edge: each edge's runs on the blocklist take turns."""
    kept, _removed = third
    listed = set(kept)
    fresh = [line for line in addresses.generate(ENTRIES + CHANGED, seed=3)
             if line not in listed][:CHANGED]
    lines = kept[CHANGED:] + fresh
    assert MANUAL not in lines
    feed = write(work / "4.txt", lines)
    with ThreadPoolExecutor(2) as pool:
        sync = pool.submit(fleet.play, "blocklist_sync",
                           fastpath_list_file=str(feed))
        block = pool.submit(fleet.play, "block", fastpath_address=MANUAL)
        return lines, {"blocklist_sync": sync.result(),
                       "block": block.result()}


def trie_rows(edge: fleet.Host, name: str) -> dict[bytes, bytes]:
    """{key: raw fp_entry} of a list family (its trie and its hash),
    read with bpftool."""
    return edge.list_rows(name)


def saved_rows(edge: fleet.Host) -> list[dict[bytes, bytes]]:
    """Per trie (v4, v6), what the edge's saved blocklist says it must
    hold, read by the collection's own reader (_snapshot)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from plugins.module_utils import _snapshot

    data = subprocess.run(["podman", "exec", edge.name, "cat",
                           SAVED_BLOCKLIST], check=True,
                          capture_output=True, timeout=60).stdout
    ledger = _snapshot.parse(SAVED_BLOCKLIST, data, "blocklist",
                             fleet.PIN_DIR)
    return [dict(zip(*ledger.target(family).rows(), strict=True))
            for family in (0, 1)]


@pytest.fixture(scope="module")
def after_overlap(overlap: tuple[list[str], dict]
                  ) -> dict[str, tuple[list[dict], list[dict]]]:
    """Per edge: the blocklist tries' rows, and the saved file's."""
    return {edge.name: ([trie_rows(edge, "block_v4"),
                         trie_rows(edge, "block_v6")], saved_rows(edge))
            for edge in EDGES}


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


def test_a_sync_and_a_block_started_together_both_succeed(
        overlap: tuple[list[str], dict[str, subprocess.CompletedProcess]]
) -> None:
    _lines, procs = overlap
    for name, proc in procs.items():
        assert proc.returncode == 0, "%s.yml failed:\n%s%s" % (
            name, proc.stdout[-4000:], proc.stderr[-2000:])
    for edge in EDGES:
        assert "%s: %d added, %d removed" % (
            edge.name, CHANGED, CHANGED) in procs["blocklist_sync"].stdout
    assert procs["block"].stdout.count(
        "blocklist (manual): 1 added, 0 removed") == len(EDGES)


def test_the_overlap_loses_neither_the_synced_list_nor_the_block(
        overlap: tuple[list[str], dict],
        after_overlap: dict[str, tuple[list[dict], list[dict]]]) -> None:
    lines, _procs = overlap
    expected = addresses.canonical(lines) | {MANUAL + "/32"}
    for edge in EDGES:
        tries, _saved = after_overlap[edge.name]
        assert {addresses.from_trie_key(key) for rows in tries
                for key in rows} == expected, edge.name


def test_after_the_overlap_the_saved_list_equals_the_maps(
        after_overlap: dict[str, tuple[list[dict], list[dict]]]) -> None:
    for edge in EDGES:
        tries, saved = after_overlap[edge.name]
        assert saved == tries, edge.name
