#!/usr/bin/env bash
# The demo: set up the machine, then run the collection's main job on a lab
# that lives for a minute. `scripts/lab.py up` makes a network namespace of
# SIP clients joined by a veth pair to fp-lab0, this machine's "SIP edge";
# the playbooks deploy the XDP shield there (inventories/lab.yml) with the
# fastpath role's default rate limits and scanner signatures, block an
# attacker, trust a monitor; a bounded burst of traffic crosses the link
# (300 REGISTERs from one client in well under a second, a request with a
# scanner's User-Agent, then more from that scanner); stats.yml shows the
# counters (RATE_LIMITED, SCANNER, BANNED among them); teardown.yml and
# `lab.py down` remove it all.
# Usage (as root): ./scripts/demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh"

export ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_NOCOLOR=1

lab() { PYTHONPATH="$ROOT" "$ROOT/.venv/bin/python" "$ROOT/scripts/lab.py" "$@"; }
play() {
    local book=$1; shift
    echo
    echo "=== ansible-playbook -i inventories/lab.yml playbooks/$book $*"
    "$ROOT/.venv/bin/ansible-playbook" -i "$ROOT/inventories/lab.yml" \
        "$ROOT/playbooks/$book" "$@"
}
cleanup() {
    "$ROOT/.venv/bin/ansible-playbook" -i "$ROOT/inventories/lab.yml" \
        "$ROOT/playbooks/teardown.yml" -e fastpath_remove_state=true \
        >/dev/null 2>&1 || true
    lab down
}
trap cleanup EXIT

# Show only what changed or failed: ok and skipped tasks stay quiet.
quiet() { ANSIBLE_DISPLAY_OK_HOSTS=false ANSIBLE_DISPLAY_SKIPPED_HOSTS=false "$@"; }

lab up
quiet play deploy.yml
quiet play block.yml -e fastpath_address=198.51.100.66
quiet play allow.yml -e fastpath_address=198.51.100.20
echo
lab burst
ANSIBLE_CALLBACK_RESULT_FORMAT=yaml play stats.yml
quiet play teardown.yml -e fastpath_remove_state=true
