#!/usr/bin/env bash
# Every test: set-up, build, lint (ruff, ansible-lint, ansible-test sanity), then the whole pytest suite (unit tests,
# the data plane against its model through BPF_PROG_TEST_RUN, kernel tests).
# Fails when any test fails or when no test ran.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

./scripts/setup.sh
make -s

echo "[test] ruff"
.venv/bin/ruff check .

echo "[test] ansible-lint (production profile)"
.venv/bin/ansible-lint --offline -q

echo "[test] ansible-test sanity"
./scripts/sanity.sh

echo "[test] pytest"
set +e
PYTHONPATH="$ROOT" .venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
	echo "[test] no test ran: that is a failure" >&2
	exit 1
fi
exit $rc
