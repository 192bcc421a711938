"""The tarball `ansible-galaxy collection build` makes holds what an
installed collection runs and what Galaxy shows (docs, licences,
changelog), and nothing of the checkout's development: no caches, tests,
lab, benchmarks or set-up scripts (galaxy.yml's build_ignore)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path, PurePosixPath

from tests.packaging.collection import GALAXY, REPO

# Top-level entries of the artifact: ansible-galaxy's two metadata files,
# then the collection's own.
ALLOWED_TOP = {
    "MANIFEST.json", "FILES.json",
    "README.md", "CHANGELOG.md", "LICENSES", "changelogs",
    "meta", "plugins", "roles", "playbooks", "docs",
    # The fastpath role compiles bpf/sip_logic.bpf.c (and the headers next
    # to it) on each architecture's build host (fastpath_source_dir).
    "bpf",
}
# Trees shipped whole: every file of the checkout under them, except
# Python's bytecode caches.
SHIPPED_TREES = ("LICENSES", "bpf", "docs", "meta", "playbooks", "plugins",
                 "roles")
REQUIRED = {
    "README.md", "CHANGELOG.md",
    "changelogs/changelog.yaml", "changelogs/config.yaml",
    "meta/runtime.yml", "meta/execution-environment.yml",
    "meta/ee-requirements.txt", "meta/ee-bindep.txt",
    "LICENSES/GPL-3.0-or-later.txt", "LICENSES/GPL-2.0-only.txt",
    "LICENSES/BSD-2-Clause.txt",
    "bpf/sip_logic.bpf.c",
}
# Development only, wherever they appear.
FORBIDDEN = (
    re.compile(r"(^|/)\.[^/]"),          # .hypothesis, .ruff_cache, .venv...
    re.compile(r"(^|/)__pycache__(/|$)"),
    re.compile(r"\.py[co]$"),
    re.compile(r"^(bench|build|inventories|molecule|scripts|tests)(/|$)"),
    re.compile(r"^(Makefile|ansible\.cfg|pyproject\.toml"
               r"|requirements[^/]*\.txt|execution-environment\.yml)$"),
    re.compile(r"^changelogs/fragments(/|$)"),
    re.compile(r"\.tar\.gz$"),
)


def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def files_of(tree: str) -> set[str]:
    """The checkout's files under tree, as the artifact names them."""
    return {p.relative_to(REPO).as_posix()
            for p in (REPO / tree).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
            and not p.name.endswith(".pyc")}


def test_artifact_has_only_the_allowed_top_level_entries(built_collection):
    top = {PurePosixPath(name).parts[0] for name in members(built_collection)}
    assert top == ALLOWED_TOP, (
        "unexpected: %s; missing: %s" % (sorted(top - ALLOWED_TOP),
                                         sorted(ALLOWED_TOP - top)))


def test_artifact_holds_no_cache_or_development_file(built_collection):
    found = sorted(name for name in members(built_collection)
                   if any(p.search(name) for p in FORBIDDEN))
    assert not found, "development files in the artifact: %s" % found


def test_artifact_holds_every_file_an_installed_collection_needs(
        built_collection):
    names = {n for n, m in members(built_collection).items() if m.isfile()}
    assert REQUIRED <= names, sorted(REQUIRED - names)
    for tree in SHIPPED_TREES:
        want = files_of(tree)
        got = {n for n in names if n.startswith(tree + "/")}
        assert got == want, "%s: missing %s, extra %s" % (
            tree, sorted(want - got), sorted(got - want))


def test_artifact_holds_the_program_and_every_header_it_includes(
        built_collection):
    """What the fastpath role copies to the build host and compiles there:
    sip_logic.bpf.c and every header of its own that it includes."""
    with tarfile.open(built_collection) as tar:
        def text(name: str) -> str:
            member = tar.extractfile("bpf/" + name)
            assert member is not None, "bpf/%s is not in the artifact" % name
            return member.read().decode()

        seen, todo = set(), ["sip_logic.bpf.c"]
        while todo:
            name = todo.pop()
            seen.add(name)
            todo += [h for h in re.findall(r'^#include "([^"]+)"', text(name),
                                           re.M)
                     if h not in seen]
    assert len(seen) > 1, "sip_logic.bpf.c includes no header of its own"


def test_manifest_says_what_galaxy_yml_says(built_collection):
    with tarfile.open(built_collection) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        files = json.load(tar.extractfile("FILES.json"))
        listed = {m.name for m in tar.getmembers()} - {"MANIFEST.json",
                                                       "FILES.json"}
    info = manifest["collection_info"]
    for key in ("namespace", "name", "version", "license", "repository"):
        assert info[key] == GALAXY[key], key
    # FILES.json, which `ansible-galaxy collection verify` checks, lists
    # exactly what the tarball holds.
    assert {f["name"] for f in files["files"]} - {"."} == listed
