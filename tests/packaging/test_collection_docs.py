"""antsibull-docs lints the collection's documentation as the Ansible
docsite would build it: the plugins' and roles' docs (schema, markup, the
references between them) and any extra docs. rstcheck of the generated
pages is left out: it doubles the time and checks antsibull-docs' own
templates more than this collection's text."""

from __future__ import annotations

import os

from tests.packaging.collection import REPO, run, tool, user_env


def test_antsibull_docs_lint_is_clean(tmp_path):
    # The checkout as the only collection Ansible sees, under its name.
    collections = tmp_path / "collections"
    link = collections / "ansible_collections" / "vos" / "fastpath"
    link.parent.mkdir(parents=True)
    os.symlink(REPO, link)
    proc = run([tool("antsibull-docs"), "lint-collection-docs",
                "--plugin-docs", "--skip-rstcheck", str(link)],
               cwd=tmp_path, env=user_env(tmp_path, collections), timeout=600)
    assert proc.stdout.strip() == "", proc.stdout
