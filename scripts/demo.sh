#!/usr/bin/env bash
# The demo: set up the machine, build the program, then run it in a lab of
# its own (a namespace and a veth pair, removed at the end) with the default
# settings, and show what it dropped and what it let through.
# Usage: sudo ./scripts/demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

"$ROOT/scripts/setup.sh"
make -s -C "$ROOT"
PYTHONPATH="$ROOT" exec "$ROOT/.venv/bin/python" "$ROOT/scripts/lab.py"
