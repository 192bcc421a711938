"""_files.write_atomically: the bytes reach the disk before the rename, and
the rename before it returns."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from plugins.module_utils import _files


def test_write_atomically_syncs_the_file_then_its_directory(
        tmp_path: Path) -> None:
    dest = tmp_path / "boot.json"
    dest.write_bytes(b"old")
    events: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink("/proc/self/fd/%d" % fd)))
        real_fsync(fd)

    def move(src: str, dst: str) -> None:
        events.append(("move", dst))
        assert Path(src).read_bytes() == b"new"
        os.rename(src, dst)

    with mock.patch.object(_files.os, "fsync", side_effect=fsync) as synced:
        _files.write_atomically(str(dest), b"new", move)
    assert dest.read_bytes() == b"new"
    assert synced.call_count == 2
    (first, tmp), second, third = events
    assert first == "fsync" and os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp).startswith(".boot.json.")
    assert second == ("move", str(dest))
    assert third == ("fsync", str(tmp_path))
    assert os.listdir(tmp_path) == ["boot.json"]


def test_a_failed_fsync_leaves_the_old_file_and_no_temporary(
        tmp_path: Path) -> None:
    dest = tmp_path / "list"
    dest.write_bytes(b"old")
    move = mock.Mock()
    with mock.patch.object(_files.os, "fsync",
                           side_effect=OSError(5, "Input/output error")), \
            pytest.raises(OSError):
        _files.write_atomically(str(dest), b"new", move)
    move.assert_not_called()
    assert dest.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["list"]


def test_a_file_in_the_working_directory_syncs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with mock.patch.object(_files.os, "fsync") as synced:
        _files.write_atomically("here", b"x")
    assert (tmp_path / "here").read_bytes() == b"x"
    assert synced.call_count == 2
