"""The edges are one of each Debian userland the collection claims (11, 12
and 13), each with its own Python, bpftool, iproute2, clang and Kamailio,
and all run the one object built on the Debian 12 edge."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import fleet
import pytest

EDGES = fleet.group("sip_edges")
RELEASES = {"fp-default-edge1": "11", "fp-default-edge2": "12",
            "fp-default-edge3": "13"}
BUILD_HOST = "fp-default-edge2"
OLDEST = "fp-default-edge1"


def tools(edge: fleet.Host) -> dict[str, str]:
    """The versions of what the collection runs on an edge."""
    first = {
        "debian": "cat /etc/debian_version",
        "python": "python3 --version",
        "bpftool": "bpftool version",
        "iproute2": "ip -V",
        "clang": "clang --version",
        "kamailio": "kamailio -v",
    }
    return {name: edge.run(command).splitlines()[0].strip()
            for name, command in first.items()}


def test_each_edge_runs_its_own_debian_release() -> None:
    found = {edge.name: tools(edge) for edge in EDGES}
    for name, versions in sorted(found.items()):
        print(name, versions)
    assert {name: versions["debian"].split(".")[0]
            for name, versions in found.items()} == RELEASES
    assert len({versions["python"] for versions in found.values()}) == 3
    assert len({versions["bpftool"] for versions in found.values()}) == 3


def test_every_edge_runs_the_object_of_the_one_build_host() -> None:
    digests = {edge.name: edge.run("sha256sum %s", fleet.OBJECT).split()[0]
               for edge in EDGES}
    assert len(set(digests.values())) == 1, digests
    tags = {edge.name: edge.xdp()["tag"] for edge in EDGES}
    assert len(set(tags.values())) == 1, tags
    built = [edge.name for edge in EDGES
             if edge.run("test -d %s/build && echo yes || echo no",
                         fleet.STATE_DIR).strip() == "yes"]
    assert built == [BUILD_HOST]


@pytest.fixture
def source_on_the_oldest() -> Iterator[str]:
    """The program's source copied to the Debian 11 edge."""
    subprocess.run(["podman", "cp", str(fleet.REPO / "bpf"),
                    "%s:/tmp/fp-bpf" % OLDEST], check=True, timeout=60)
    yield "/tmp/fp-bpf"
    subprocess.run(["podman", "exec", OLDEST, "rm", "-rf", "/tmp/fp-bpf"],
                   check=True, timeout=60)


def test_the_debian_11_clang_is_refused_as_a_build_host_in_one_sentence(
        source_on_the_oldest: str) -> None:
    oldest = next(edge for edge in EDGES if edge.name == OLDEST)
    # Its clang really cannot compile the program...
    compiled = subprocess.run(
        ["podman", "exec", OLDEST, "clang", "-target", "bpf", "-O2",
         "-mcpu=v3", "-I", source_on_the_oldest, "-c",
         source_on_the_oldest + "/sip_logic.bpf.c", "-o", "/tmp/fp.o"],
        capture_output=True, text=True, timeout=300, check=False)
    assert compiled.returncode != 0
    # ...and bpf_build says so before trying, and writes nothing.
    proc, results = fleet.try_module(OLDEST, "vos.fastpath.bpf_build", {
        "src": source_on_the_oldest + "/sip_logic.bpf.c",
        "dest": "/tmp/fp-bpf/sip_logic.bpf.o"})
    assert proc.returncode != 0
    msg = results[OLDEST]["msg"]
    assert re.fullmatch(
        r"\S+clang is clang 11\.\d+\.\d+, and the program needs clang 12 or "
        r"later \(for its atomic compare-and-exchange\): build on a host "
        r"with a newer clang \(fastpath_build_host\), or set clang\.", msg)
    assert "sip_logic.bpf.o" not in oldest.run("ls %s", source_on_the_oldest)
