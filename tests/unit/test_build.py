"""The Makefile as operators use it, and the collection as Ansible sees it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(REPO), *args],
                          capture_output=True, text=True, check=False)


def test_make_builds_the_object_without_any_kernel_header(
        tmp_path: Path) -> None:
    result = make("OUT_DIR=%s" % tmp_path,
                  "SIP_PROG=%s/sip_logic.bpf.o" % tmp_path)
    assert result.returncode == 0, result.stderr
    assert "vmlinux" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sip_logic.bpf.o"]
    header = (tmp_path / "sip_logic.bpf.o").read_bytes()[:4]
    assert header == b"\x7fELF"


def test_the_same_source_makes_the_same_object(tmp_path: Path) -> None:
    """Nothing of this host's kernel goes into the object."""
    objects = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = make("OUT_DIR=%s" % out, "SIP_PROG=%s/p.o" % out)
        assert result.returncode == 0, result.stderr
        objects.append((out / "p.o").read_bytes())
    assert objects[0] == objects[1]


def test_make_clean_removes_the_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.o").write_text("x")
    result = make("OUT_DIR=%s" % out, "clean")
    assert result.returncode == 0, result.stderr
    assert not out.exists()


def test_checkout_is_the_collection_for_ansible() -> None:
    if not (REPO / ".collections").exists():
        pytest.skip("run scripts/setup.sh first: it makes the collection link")
    galaxy = REPO / ".venv" / "bin" / "ansible-galaxy"
    result = subprocess.run(
        [str(galaxy), "collection", "list", "vos.fastpath", "--format",
         "json"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # Another copy found first would also be "vos.fastpath": it must be
    # this checkout, and only it.
    (found,) = [Path(root) / "vos" / "fastpath"
                for root, names in json.loads(result.stdout).items()
                if "vos.fastpath" in names]
    assert found.resolve() == REPO.resolve()


def test_collection_builds_from_galaxy_yml(tmp_path: Path) -> None:
    galaxy = REPO / ".venv" / "bin" / "ansible-galaxy"
    if not galaxy.exists():
        pytest.skip("run scripts/setup.sh first: it creates .venv")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".collections", "build", ".git"))
    result = subprocess.run(
        [str(galaxy), "collection", "build", "--output-path", str(tmp_path)],
        cwd=src, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    with tarfile.open(tmp_path / ("vos-fastpath-%s.tar.gz" % version)) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("vos", "fastpath")
    # A build_ignore too wide would still make a tarball: the plugins must
    # be in it.
    plugins = {str(p.relative_to(REPO))
               for p in (REPO / "plugins").rglob("*.py")}
    assert sorted(plugins - names) == []
