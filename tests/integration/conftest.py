"""Kernel fixtures for module tests: a veth pair with a known state."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OBJECT = REPO / "build" / "sip_logic.bpf.o"


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True,
                          text=True)


@pytest.fixture(scope="session")
def built_object(root_required: None) -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO)], check=True)
    return OBJECT


@pytest.fixture
def maps(pin_dir: Path, built_object: Path) -> Path:
    """The program loaded with its maps pinned under pin_dir."""
    subprocess.run(["bpftool", "prog", "load", str(built_object),
                    str(pin_dir / "prog"), "type", "xdp", "pinmaps",
                    str(pin_dir)], check=True)
    return pin_dir


@contextlib.contextmanager
def veth_pair(prefix: str) -> Iterator[str]:
    """A fresh veth pair, up, removed afterwards; yields the first end (the
    peer is the same name with "p")."""
    name = "%s%d" % (prefix, os.getpid() % 100000)
    subprocess.run(["ip", "link", "del", name], capture_output=True,
                   check=False)
    ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
    try:
        ip("link", "set", name, "up")
        ip("link", "set", name + "p", "up")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True,
                       check=False)


@pytest.fixture
def veth(root_required: None) -> Iterator[str]:
    with veth_pair("fpit") as name:
        yield name


@pytest.fixture
def pin_dir(root_required: None) -> Iterator[Path]:
    path = Path("/sys/fs/bpf/vos_fastpath_it_%d" % os.getpid())
    subprocess.run(["rm", "-rf", str(path)], check=True)
    path.mkdir()
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)
