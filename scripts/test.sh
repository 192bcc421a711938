#!/usr/bin/env bash
# Every test: set-up, build, lint (ruff, ansible-lint, ansible-test sanity), then the whole pytest suite (unit tests,
# the data plane against its model through BPF_PROG_TEST_RUN, kernel tests, playbooks, molecule scenarios).
# Fails when any test fails or when no test ran.
#
# With no argument, the sanity matrix (scripts/sanity_matrix.sh: ansible-test sanity on the lowest and highest
# ansible-core, each with the lowest and highest target Python) and then the molecule scenarios (tests/molecule) run
# in a second process next to the lints and the rest of the suite: the scenarios spend most of their time waiting on
# containers, so the two share the CPUs well. Their output follows the rest's. With arguments, pytest runs once with
# them, after the lints.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

./scripts/setup.sh
make -s

pytest_run() {
	PYTHONPATH="$ROOT" .venv/bin/python -m pytest "$@"
}

# The exit status of pytest as this script reports it: "no test ran" (5) is a failure.
judged() {
	if [[ $1 -eq 5 ]]; then
		echo "[test] no test ran: that is a failure" >&2
		return 1
	fi
	return "$1"
}

molecule_pid=""
molecule_log="$ROOT/build/pytest-molecule.log"
if [[ $# -eq 0 ]]; then
	echo "[test] sanity matrix, then pytest tests/molecule, in the background (output at the end)"
	# Its own process group (setsid), so that stopping it stops molecule too. Both run whatever the other's
	# outcome; the exit status fails when either failed.
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash
	setsid bash -c '"$1/scripts/sanity_matrix.sh"; matrix=$?
		PYTHONPATH="$1" "$1/.venv/bin/python" -m pytest tests/molecule; scenarios=$?
		if [[ $scenarios -ne 0 ]]; then exit "$scenarios"; fi
		exit "$matrix"' _ "$ROOT" >"$molecule_log" 2>&1 &
	molecule_pid=$!
	# Never leave the scenarios running when this script stops early.
	trap '[[ -n "$molecule_pid" ]] && kill -TERM -- "-$molecule_pid" 2>/dev/null || true' EXIT
fi

echo "[test] ruff"
.venv/bin/ruff check .

echo "[test] ansible-lint (production profile)"
.venv/bin/ansible-lint --offline -q

echo "[test] ansible-test sanity"
./scripts/sanity.sh

set +e
if [[ -z "$molecule_pid" ]]; then
	echo "[test] pytest"
	pytest_run "$@"
	judged $?
	exit $?
fi

echo "[test] pytest (all but tests/molecule)"
pytest_run --ignore=tests/molecule
rest=$?
wait "$molecule_pid"
scenarios=$?
molecule_pid=""
echo "[test] sanity matrix, pytest tests/molecule"
cat "$molecule_log"
judged $rest
rest=$?
judged $scenarios
scenarios=$?
if [[ $rest -ne 0 ]]; then
	exit $rest
fi
exit $scenarios
