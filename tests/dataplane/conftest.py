"""The built program loaded once per module, on a multi-queue veth so that
test runs can name an rx queue, with an AF_XDP socket on queue 1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dataplane import harness

XSK_QUEUE = 1


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def veth(root_required: None) -> Iterator[int]:
    name = "fpdp%d" % (os.getpid() % 100000)
    _ip("link", "add", name, "numrxqueues", "4", "numtxqueues", "4",
        "type", "veth", "peer", "name", name + "p", "numrxqueues", "4",
        "numtxqueues", "4")
    try:
        _ip("link", "set", name, "up")
        _ip("link", "set", name + "p", "up")
        yield int(Path("/sys/class/net/%s/ifindex" % name).read_text())
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True,
                       check=False)


@pytest.fixture(scope="module")
def dataplane(veth: int) -> Iterator[harness.Dataplane]:
    harness.build()
    pin_dir = Path("/sys/fs/bpf/vos_fastpath_test_%d" % os.getpid())
    dp = harness.Dataplane(pin_dir)
    dp.ifindex = veth
    xsk = harness.XskSocket(veth, XSK_QUEUE)
    dp.maps["xsks_map"].update(harness._abi.U32.pack(XSK_QUEUE),
                               harness._abi.U32.pack(xsk.fileno()))
    try:
        yield dp
    finally:
        xsk.close()
        dp.close()
