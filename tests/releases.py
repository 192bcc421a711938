"""The commits of released versions, for the tests and benchmarks that
build or deploy an old release next to this checkout.

A commit, not a tag: a clone of main alone carries every release's commit
in its history but not necessarily the tags."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from plugins.module_utils import _build

REPO = Path(__file__).resolve().parents[1]
KERNEL_BTF = "/sys/kernel/btf/vmlinux"

RELEASES = {"0.1.0": "5f2d40747284eb25555fbc2a792063a9832c0bdb"}


class ReleaseError(RuntimeError):
    pass


def release_commit(version: str) -> str:
    """The commit of `version`, checked to be in this clone and to carry
    that version in its galaxy.yml."""
    commit = RELEASES[version]
    shown = subprocess.run(
        ["git", "-C", str(REPO), "show", "%s:galaxy.yml" % commit],
        capture_output=True, text=True, check=False)
    if shown.returncode:
        raise ReleaseError(
            "Release %s's commit %s is not in %s (a shallow clone?): fetch "
            "the full history of main (git fetch --unshallow)."
            % (version, commit, REPO))
    found = re.search(r"^version:\s*(\S+)", shown.stdout, re.M)
    if not found or found.group(1) != version:
        raise ReleaseError("Commit %s's galaxy.yml says version %s, not %s."
                           % (commit, found.group(1) if found else "nothing",
                              version))
    return commit


def build_release_object(version: str, out: Path) -> Path:
    """Compile `version`'s bpf/ into out with today's flags. Releases up
    to 0.1.0 include a vmlinux.h, dumped here from this kernel's BTF as
    their bpf_build did."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", release_commit(version), "bpf"],
        capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="fp-release-") as tmp:
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        src = Path(tmp, "bpf")
        with open(Path(tmp, "vmlinux.h"), "wb") as header:
            subprocess.run(["bpftool", "btf", "dump", "file", KERNEL_BTF,
                            "format", "c"], stdout=header, check=True)
        flags = _build.compile_flags([tmp, str(src)], [])
        subprocess.run(_build.compile_argv(
            "clang", flags, str(src / "sip_logic.bpf.c"), str(out)),
            check=True)
    return out
