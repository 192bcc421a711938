"""execution-environment.yml builds an execution environment with the
collection, and meta/execution-environment.yml gives ansible-builder the
collection's controller-side needs: none. `ansible-builder create` makes
the build context (no container is built here); then the two stages that
matter are replayed on this machine: the galaxy stage installs the
collection from the context, and the builder stage's introspect.py
collects the requirements the image would get."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import yaml

from tests.packaging.collection import REPO, TARBALL_NAME, run, tool

EE_FILE = REPO / "execution-environment.yml"
DEV_PINS = [re.split(r"[=<>\[ ]", line, maxsplit=1)[0]
            for line in (REPO / "requirements-dev.txt").read_text()
            .splitlines() if line.strip() and not line.startswith("#")]


def pip_installs(containerfile: str) -> set[str]:
    """The names of the Python packages the Containerfile installs by name:
    ANSIBLE_INSTALL_REFS and every `pip install` argument."""
    specs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile,
                      re.M).group(1).split()
    for line in re.findall(r"pip install (.*)$", containerfile, re.M):
        specs += [a.strip("'\"") for a in line.split()
                  if not a.startswith(("-", "$"))]
    return {re.split(r"[=<>!~\[]", spec, maxsplit=1)[0].lower()
            for spec in specs}


def load_introspect(context: Path):
    """The introspect script as the builder stage runs it."""
    path = context / "_build" / "scripts" / "introspect.py"
    spec = importlib.util.spec_from_file_location("ee_introspect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ee_file_installs_the_tarball_galaxy_yml_builds():
    ee = yaml.safe_load(EE_FILE.read_text())
    assert ee["version"] == 3
    src = [f["src"] for f in ee["additional_build_files"]]
    names = [c["name"] for c in ee["dependencies"]["galaxy"]["collections"]]
    assert [Path(s).name for s in src] == [TARBALL_NAME], (
        "execution-environment.yml copies %s, but galaxy.yml's version "
        "builds %s: update it" % (src, TARBALL_NAME))
    assert [Path(n).name for n in names] == [TARBALL_NAME], names


def test_ansible_builder_context_installs_the_collection_without_dev_pins(
        built_collection, tmp_path):
    ee = yaml.safe_load(EE_FILE.read_text())
    # The user's steps: the tarball where execution-environment.yml looks
    # for it, then `ansible-builder create`.
    user = tmp_path / "checkout"
    tarball = user / ee["additional_build_files"][0]["src"]
    tarball.parent.mkdir(parents=True)
    shutil.copy(built_collection, tarball)
    shutil.copy(EE_FILE, user / EE_FILE.name)
    context = tmp_path / "context"
    run([tool("ansible-builder"), "create", "-f", EE_FILE.name,
         "--context", str(context)], cwd=user)

    containerfile = (context / "Containerfile").read_text()
    build = context / "_build"
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert (build / "collections" / TARBALL_NAME).read_bytes() == \
        built_collection.read_bytes()
    # No Python or system package of the user's or of ours.
    assert not (build / "requirements.txt").exists()
    assert not (build / "bindep.txt").exists()
    installs = pip_installs(containerfile)
    assert {"ansible-core", "ansible-runner"} <= installs, installs
    # ansible-core is the one tool the image and the development share.
    assert not installs & (set(DEV_PINS) - {"ansible-core"}), installs
    galaxy_reqs = yaml.safe_load((build / "requirements.yml").read_text())
    assert galaxy_reqs == {"collections": [
        {"name": "collections/" + TARBALL_NAME, "type": "file"}]}

    # The galaxy stage: ansible-galaxy in /build (here: the context's
    # _build) installs requirements.yml.
    collections = tmp_path / "usr-share-ansible-collections"
    run([tool("ansible-galaxy"), "collection", "install", "-r",
         "requirements.yml", "--collections-path", str(collections)],
        cwd=build)
    installed = collections / "ansible_collections" / "vos" / "fastpath"
    assert (installed / "MANIFEST.json").is_file()

    # The builder stage: introspect.py finds the collection's metadata and
    # no requirement in it.
    introspect = load_introspect(context)
    definition = introspect.CollectionDefinition(str(installed))
    assert definition.raw["dependencies"] == {
        "python": "meta/ee-requirements.txt",
        "system": "meta/ee-bindep.txt"}
    assert introspect.process_collection(str(installed)) == ([], [])
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    out = run([sys.executable, str(build / "scripts" / "introspect.py"),
               "introspect", str(collections), "--write-pip", str(pip_out),
               "--write-bindep", str(bindep_out)], cwd=tmp_path).stdout
    assert yaml.safe_load(out) == {"python": [], "system": []}, out
    assert not pip_out.exists() and not bindep_out.exists()
