#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine (run as root):
# Debian packages, the pinned Python virtual environment, bpffs, the
# collection link that lets playbooks and ansible-doc use this checkout,
# and podman with the images of the molecule hosts (Debian 11, 12, 13).
# A second run only checks and takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"

DEBIAN_PACKAGES=(
	clang llvm libbpf-dev bpftool iproute2 make gcc libc6-dev
	python3 python3-venv
	xdp-tools ipset nftables iptables
	tcpreplay hping3 netsniff-ng
	podman runc debootstrap
	prometheus
)

say() { printf '[setup] %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "setup: run as root (XDP, bpffs and packages need it): sudo $0" >&2
	exit 1
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$pkg")
done
if ((${#missing[@]})); then
	say "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
	# Only its promtool is wanted (the alert rules' tests), not a
	# Prometheus server running on this machine.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
		systemctl disable --now prometheus.service >/dev/null 2>&1 || true
	fi
fi

# The venv is rebuilt only when requirements-dev.txt changes. It holds the
# development and test tools; the collection itself needs no Python package
# (meta/execution-environment.yml).
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$ROOT/requirements-dev.txt" | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
	say "creating the Python environment in .venv"
	python3 -m venv "$VENV"
	if ! "$VENV/bin/pip" install -q --disable-pip-version-check \
		-r "$ROOT/requirements-dev.txt" >"$VENV/pip.log" 2>&1; then
		tail -20 "$VENV/pip.log" >&2
		echo "setup: pip could not install requirements-dev.txt (log: $VENV/pip.log)" >&2
		exit 1
	fi
	echo "$want" >"$stamp"
fi

if ! mountpoint -q /sys/fs/bpf; then
	say "mounting bpffs on /sys/fs/bpf"
	mount -t bpf bpf /sys/fs/bpf
fi

# ansible.cfg points collections_path at .collections; this link makes the
# checkout itself the collection vos.fastpath.
link="$ROOT/.collections/ansible_collections/vos/fastpath"
if [[ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]]; then
	mkdir -p "$(dirname "$link")"
	ln -sfn "$ROOT" "$link"
fi

# ansible-test fetches a pip bootstrap script from a host outside the package
# registries; its stand-in installs pip from Python's own wheel instead
# (24_2: the pip version of the host's ansible-core).
cache="$HOME/.ansible/test/cache/get_pip_24_2.py"
if ! cmp -s "$ROOT/scripts/get_pip_offline.py" "$cache"; then
	mkdir -p "$(dirname "$cache")"
	cp "$ROOT/scripts/get_pip_offline.py" "$cache"
fi

# podman for the molecule scenarios: runc (crun refuses this kind of
# host's hybrid cgroups) and ulimits under the host's hard limits.
containers_conf=/etc/containers/containers.conf
want_conf='# Written by the vos.fastpath set-up (scripts/setup.sh).
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"'
if [[ "$(cat "$containers_conf" 2>/dev/null)" != "$want_conf" ]]; then
	say "configuring podman ($containers_conf)"
	mkdir -p "$(dirname "$containers_conf")"
	printf '%s\n' "$want_conf" >"$containers_conf"
fi

# The images of the molecule hosts, built from Debian's packages here (no
# registry is needed), one per Debian release, side by side; each is
# rebuilt only when its package list changes.
pids=()
for suite in bookworm bullseye trixie; do
	"$ROOT/molecule/image/build.sh" "$suite" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid"
done

say "ready"
