"""bpffs through Ansible against this host's kernel.

The module mounts a bpffs instance of the test's own on a directory of the
test, and writes a copy of fstab: /sys/fs/bpf and /etc/fstab are never
touched. The mount is undone afterwards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_module

FSTAB = "UUID=1234 / ext4 errors=remount-ro 0 1\n"


def bpffs_on(path: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1:3] == [str(path), "bpf"] for line in f)


@pytest.fixture
def mount_point(root_required: None, tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "bpf"
    point.mkdir()
    try:
        yield point
    finally:
        while os.path.ismount(point):
            subprocess.run(["umount", str(point)], check=True)


def test_mount_persist_then_nothing_changes(mount_point: Path,
                                            tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text(FSTAB)
    args = {"path": str(mount_point), "fstab_path": str(fstab)}

    checked = run_module("vos.fastpath.bpffs", args, tmp_path, check=True)
    assert checked["changed"] is True, checked
    assert (checked["mounted"], checked["fstab_changed"]) == (True, True)
    assert not bpffs_on(mount_point)
    assert fstab.read_text() == FSTAB

    result = run_module("vos.fastpath.bpffs", args, tmp_path, diff=True)
    assert result["changed"] is True, result
    assert (result["mounted"], result["fstab_changed"]) == (True, True)
    assert bpffs_on(mount_point)
    assert fstab.read_text() == (
        FSTAB + "bpffs %s bpf defaults 0 0\n" % mount_point)
    assert result["diff"][0]["after"] == "%s: bpffs\n" % mount_point

    again = run_module("vos.fastpath.bpffs", args, tmp_path)
    assert again["changed"] is False, again
    assert (again["mounted"], again["fstab_changed"]) == (False, False)
    checked = run_module("vos.fastpath.bpffs", args, tmp_path, check=True)
    assert checked["changed"] is False, checked


def test_an_existing_entry_is_kept_and_only_the_mount_is_made(
        mount_point: Path, tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    text = FSTAB + "none %s bpf rw,mode=700 0 0\n" % mount_point
    fstab.write_text(text)
    result = run_module("vos.fastpath.bpffs",
                        {"path": str(mount_point), "fstab_path": str(fstab)},
                        tmp_path)
    assert (result["mounted"], result["fstab_changed"]) == (True, False)
    assert bpffs_on(mount_point)
    assert fstab.read_text() == text


def test_a_missing_mount_point_fails_clearly(root_required: None,
                                             tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    fstab = tmp_path / "fstab"
    fstab.write_text(FSTAB)
    result = run_module("vos.fastpath.bpffs",
                        {"path": str(missing), "fstab_path": str(fstab)},
                        tmp_path)
    assert result["failed"] is True
    assert result["msg"] == ("The mount point %s is not a directory: create "
                             "it first, or use /sys/fs/bpf." % missing)
    assert fstab.read_text() == FSTAB
    assert not missing.exists()
