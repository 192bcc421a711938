"""Release notes with antsibull-changelog: the fragments and
changelogs/changelog.yaml lint clean, CHANGELOG.md is what `antsibull-
changelog generate` makes of changelog.yaml, and a rehearsal of the next
release in a copy of the collection takes every fragment and names every
module, filter, role and playbook that no earlier release has."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.packaging.collection import REPO, run, tool, user_env

CHANGELOGS = REPO / "changelogs"
# The version the new plugins' version_added and the deprecations name.
NEXT = "0.2.0"


def copy_collection(dest: Path) -> Path:
    """What antsibull-changelog reads, in a collection tree of its own."""
    root = dest / "ansible_collections" / "vos" / "fastpath"
    root.mkdir(parents=True)
    for name in ("galaxy.yml", "CHANGELOG.md"):
        shutil.copy(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc",
                                    ".plugin-cache.yaml")
    for tree in ("changelogs", "meta", "plugins", "playbooks", "roles"):
        shutil.copytree(REPO / tree, root / tree, ignore=ignore)
    return root


def released(kind: str, changelog: dict) -> set[str]:
    """Names of the modules, plugins of a type, or objects of a type that
    a release of changelog.yaml already brought."""
    names = set()
    for release in changelog["releases"].values():
        if kind == "module":
            names |= {m["name"] for m in release.get("modules", [])}
        for group in ("plugins", "objects"):
            names |= {p["name"] for p in release.get(group, {}).get(kind, [])}
    return names


def test_fragments_and_changelog_yaml_lint_clean():
    antsibull = tool("antsibull-changelog")
    run([antsibull, "lint"], cwd=REPO)
    run([antsibull, "lint-changelog-yaml",
         str(CHANGELOGS / "changelog.yaml")], cwd=REPO)


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path):
    root = copy_collection(tmp_path)
    (root / "CHANGELOG.md").unlink()
    run([tool("antsibull-changelog"), "generate"], cwd=root)
    assert (root / "CHANGELOG.md").read_text() == \
        (REPO / "CHANGELOG.md").read_text(), (
            "CHANGELOG.md differs from what antsibull-changelog generates: "
            "add a fragment under changelogs/fragments/ instead of editing "
            "it, then run `antsibull-changelog generate`")


def test_next_release_takes_every_fragment_and_names_what_is_new(tmp_path):
    root = copy_collection(tmp_path)
    before = yaml.safe_load((root / "changelogs" / "changelog.yaml")
                            .read_text())
    fragments = sorted(p.name for p in (CHANGELOGS / "fragments").iterdir()
                       if p.suffix in (".yml", ".yaml"))
    assert fragments, "no fragment: nothing changed since the last release?"
    env = user_env(tmp_path, tmp_path)
    run([tool("antsibull-changelog"), "release", "--version", NEXT,
         "--date", "2099-01-01", "--ansible-doc-bin", tool("ansible-doc")],
        cwd=root, env=env, timeout=600)

    after = yaml.safe_load((root / "changelogs" / "changelog.yaml")
                           .read_text())
    release = after["releases"][NEXT]
    assert sorted(release["fragments"]) == fragments
    assert not list((root / "changelogs" / "fragments").iterdir())

    def new(kind: str) -> set[str]:
        if kind == "module":
            return {m["name"] for m in release.get("modules", [])}
        return {p["name"] for group in ("plugins", "objects")
                for p in release.get(group, {}).get(kind, [])}

    modules = {p.stem for p in (REPO / "plugins" / "modules").glob("*.py")}
    filters = {p.stem for p in (REPO / "plugins" / "filter").glob("*.yml")}
    roles = {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    playbooks = {p.stem for p in (REPO / "playbooks").glob("*.yml")}
    for kind, present in (("module", modules), ("filter", filters),
                          ("role", roles), ("playbook", playbooks)):
        assert new(kind) == present - released(kind, before), (
            "%ss new in %s: a new one needs version_added: %s (modules, "
            "filters) or an `add object.playbook` fragment (playbooks)"
            % (kind, NEXT, NEXT))
    generated = (root / "CHANGELOG.md").read_text()
    assert "v%s" % NEXT.replace(".", "\\.") in generated
