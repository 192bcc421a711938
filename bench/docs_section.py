"""Write one benchmark's section of docs/benchmarks.md.

Each benchmark owns the text between its two marker comments; a first run
appends the section with its heading and introduction.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(begin: str, end: str, text: str, new_section: str) -> None:
    """Replace the text between begin and end, or append new_section (a
    heading and an introduction) followed by the markers and the text."""
    doc = DOCS.read_text()
    block = "%s\n%s\n%s" % (begin, text, end)
    if begin in doc:
        head, rest = doc.split(begin, 1)
        doc = head + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + new_section + block + "\n"
    DOCS.write_text(doc)
