"""The built tarball and its install, made once for all packaging tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.collection import build, run, tool

# The lab fleet of the playbook tests: veth "hosts" on this kernel.
from tests.playbooks.conftest import (  # noqa: F401 # pylint: disable=unused-import
    fleet_factory,
)


@pytest.fixture(scope="session")
def built_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tarball `ansible-galaxy collection build` makes of the checkout."""
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_collection(built_collection: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path that holds only vos.fastpath, installed from the
    tarball as `ansible-galaxy collection install -p` does."""
    path = tmp_path_factory.mktemp("collections")
    run([tool("ansible-galaxy"), "collection", "install", "-p", str(path),
         str(built_collection)], cwd=path)
    assert (path / "ansible_collections" / "vos" / "fastpath"
            / "MANIFEST.json").is_file()
    return path
