"""The commits of released versions, for the tests and benchmarks that
build or deploy an old release next to this checkout.

A commit, not a tag: a clone of main alone carries every release's commit
in its history but not necessarily the tags."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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
