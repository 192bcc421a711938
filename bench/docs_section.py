"""Write one benchmark's section of docs/benchmarks.md, and the main()
that the benchmarks share.

Each benchmark owns the text between its two marker comments; a first run
appends the section with its heading and introduction.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.dataplane_programs import BenchError
from plugins.module_utils import _bpf

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


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)     # run the benchmark's clean-up


def run_bench(script: str, run: Callable[[], str], write_docs: bool,
              section: tuple[str, str, str],
              signals: Sequence[int] = (signal.SIGTERM,)) -> int:
    """A benchmark's main(): run() (its clean-up also runs on `signals`),
    its report printed, and written between its markers (begin, end,
    new_section) with write_docs. 1 on a BenchError or a failed bpf()."""
    for signum in signals:
        signal.signal(signum, _terminate)
    try:
        text = run()
    except (BenchError, _bpf.BpfError) as e:
        print("%s: %s" % (script, e), file=sys.stderr)
        return 1
    sys.stdout.write(text)
    if write_docs:
        begin, end, new_section = section
        write_section(begin, end, text.rstrip("\n"), new_section)
        print("[bench] written to %s" % DOCS.relative_to(DOCS.parents[1]),
              file=sys.stderr, flush=True)
    return 0
