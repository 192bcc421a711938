"""docs/dataplane.md is the data plane contract: the code cites its steps,
and its tables agree with the Python mirror of the ABI.

- Every `[step N]` cited in bpf/, tests/dataplane/ and plugins/ (and in the
  document itself) names a numbered decision step of the document, and
  citations use that one form.
- The map (in use and retired), structure, settings, request class and
  counter tables match plugins/module_utils/_abi.py, which
  tests/dataplane/test_abi_mirror.py checks against the built object: the
  document cannot drift from the program unnoticed.
- No tracked file points to the retired outside specification.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from plugins.module_utils import _abi

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "dataplane.md"
DOC_NAME = "docs/dataplane.md"
CITING_DIRS = ("bpf", "tests/dataplane", "plugins")

CITATION = re.compile(r"\[step (\d+)\]")
# Anything that looks like a step reference; what is left of a line once
# its [step N] citations are removed must not match.
LOOSE_CITATION = re.compile(r"\bsteps?\s*\d+", re.IGNORECASE)
STEP_ITEM = re.compile(r"^(\d+)\. ")
# Split so that this file does not mention the name it looks for.
RETIRED_SPEC = "SPEC-" + "DATAPLANE"

C_SIZES = {"__u8": 1, "__u32": 4, "__u64": 8}


# The document.


def doc_lines() -> list[str]:
    return DOC.read_text(encoding="utf-8").splitlines()


def section(heading: str) -> list[str]:
    """The lines under a heading, up to the next heading of any level."""
    lines = doc_lines()
    assert heading in lines, "%s has no heading %r" % (DOC_NAME, heading)
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines))
                if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def table(heading: str) -> list[dict[str, str]]:
    """The first Markdown table under a heading, as one dict per row keyed
    by the header cells; backticks are stripped from every cell."""
    rows = [line for line in section(heading) if line.startswith("|")]
    assert len(rows) > 2, "no table under %r in %s" % (heading, DOC_NAME)

    def cells(line: str) -> list[str]:
        return [c.strip().replace("`", "") for c in line.strip("|").split("|")]

    header = cells(rows[0])
    return [dict(zip(header, cells(row), strict=True)) for row in rows[2:]]


def documented_steps() -> list[int]:
    return [int(m.group(1)) for line in section("## Decision steps")
            if (m := STEP_ITEM.match(line))]


# The citations.


def citing_files() -> list[Path]:
    files = [DOC]
    for top in CITING_DIRS:
        files += sorted(p for p in (REPO / top).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    return files


def citations() -> list[tuple[str, int, str]]:
    """(file:line, step number, the line) of every [step N] in the citing
    files, and (file:line, -1, the line) of every other step reference."""
    found = []
    for path in citing_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            where = "%s:%d" % (path.relative_to(REPO), number)
            found += [(where, int(n), line)
                      for n in CITATION.findall(line)]
            if LOOSE_CITATION.search(CITATION.sub("", line)):
                found.append((where, -1, line))
    return found


def test_steps_are_numbered_from_1_without_gaps() -> None:
    steps = documented_steps()
    assert steps, "no numbered steps under '## Decision steps'"
    assert steps == list(range(1, len(steps) + 1)), steps


def test_every_cited_step_exists() -> None:
    steps = set(documented_steps())
    missing = ["%s: [step %d] is not a step of %s" % (where, n, DOC_NAME)
               for where, n, _line in citations() if n >= 0
               and n not in steps]
    assert not missing, "\n".join(missing)


def test_citations_use_one_form() -> None:
    loose = ["%s: cite a step as [step N]: %s" % (where, line.strip())
             for where, n, line in citations() if n < 0]
    assert not loose, "\n".join(loose)


def test_the_code_cites_the_steps() -> None:
    """Without citations the checks above would pass vacuously."""
    cited = {n for where, n, _line in citations()
             if n >= 0 and not where.startswith(DOC_NAME)}
    assert cited, "no [step N] citation in %s" % ", ".join(CITING_DIRS)
    for top in ("bpf", "tests/dataplane"):
        assert any(where.startswith(top + "/") and n >= 0
                   for where, n, _line in citations()), \
            "no [step N] citation under %s/" % top


def test_no_tracked_file_names_the_retired_spec() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout
    needle = RETIRED_SPEC.encode()
    hits = []
    for name in filter(None, listed.decode().split("\0")):
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the work tree
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if needle in line:
                hits.append("%s:%d" % (name, number))
    assert not hits, "%s is gone; cite %s instead:\n%s" % (
        RETIRED_SPEC, DOC_NAME, "\n".join(hits))


# The tables against _abi.


def c_size(c_type: str) -> int:
    if c_type.startswith("struct "):
        return _abi.STRUCTS[c_type.split()[1]][1]
    return C_SIZES[c_type]


@pytest.mark.parametrize("heading, maps", [
    ("## Maps", _abi.MAPS),
    ("### Retired maps", _abi.RETIRED_MAPS),
])
def test_map_table_matches_abi(heading: str,
                               maps: dict[str, _abi.MapSpec]) -> None:
    rows = table(heading)
    assert [r["map"] for r in rows] == list(maps)
    for row in rows:
        spec = maps[row["map"]]
        flags = 0
        if row["flags"] != "none":
            for name in row["flags"].split(","):
                flags |= getattr(_abi, name.strip())
        assert (getattr(_abi, row["type"]), int(row["key size"]),
                int(row["value size"]), int(row["max_entries"]),
                flags) == (spec.map_type, spec.key_size, spec.value_size,
                           spec.max_entries, spec.flags), row
        assert c_size(row["key"]) == spec.key_size, row
        assert c_size(row["value"]) == spec.value_size, row


def test_retired_maps_are_not_in_use() -> None:
    assert set(_abi.RETIRED_MAPS).isdisjoint(_abi.MAPS)
    assert _abi.KNOWN_MAPS == {**_abi.MAPS, **_abi.RETIRED_MAPS}


def test_structure_table_matches_abi() -> None:
    documented: dict[str, list[tuple[str, int, int]]] = {}
    for row in table("### Structures"):
        documented.setdefault(row["struct"], []).append(
            (row["field"], int(row["offset"]), int(row["size"])))
    assert documented == {name: fields for name, (fields, _size)
                          in _abi.STRUCTS.items()}


def test_settings_table_matches_abi() -> None:
    rows = table("## Settings")
    by_flag = {}
    for row in rows:
        value = int(row["value"])
        assert value == 1 << int(row["bit"]), row
        assert getattr(_abi, row["flag"]) == value, row
        by_flag[row["_abi.SETTINGS_FLAGS"]] = value
    assert by_flag == _abi.SETTINGS_FLAGS


def test_request_class_table_matches_abi() -> None:
    rows = table("## Rate limits and bans")
    assert [(int(r["index"]), r["class"]) for r in rows] == \
        list(enumerate(_abi.CLASSES))
    assert _abi.MAPS["rate_limited"].max_entries == _abi.CLASS_SLOTS


@pytest.mark.parametrize("heading, names", [
    ("### `stats` reasons", _abi.REASONS),
    ("### `proto_stats` classes", _abi.PROTOS),
])
def test_counter_tables_match_abi(heading: str,
                                  names: tuple[str, ...]) -> None:
    rows = table(heading)
    assert [(int(r["index"]), r["name"]) for r in rows] == \
        list(enumerate(names))
