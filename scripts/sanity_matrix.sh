#!/usr/bin/env bash
# ansible-test sanity over the support matrix: the lowest and the highest
# ansible-core the collection supports, each with the lowest and the highest
# target Python (Debian 11's 3.9 and Debian 13's 3.13), four runs in all.
#
# Every run is in localhost/vos-fastpath-sanity-python: Debian 13 (its
# Python 3.13 is the controller) with Debian 11's python3.9 beside it,
# installed by apt from both suites, Debian 11's pinned low so that it only
# brings what Debian 13 lacks. The image is rebuilt only when its recipe
# below changes (the recipe's sha256 is the image's label). ansible-core,
# its test requirements and pip's downloads are kept under CACHE between
# runs; a run with an empty CACHE fetches them again from PyPI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=localhost/vos-fastpath-sanity-python
LABEL=vos.fastpath.inputs
MIRROR=http://deb.debian.org/debian
CACHE=${VOS_FASTPATH_SANITY_CACHE:-/var/cache/vos-fastpath-sanity}
CORES=(2.18.19 2.21.5)
PYTHONS=(3.9 3.13)
# pip at the host's trust store, so that a TLS-inspecting proxy trusted
# there is trusted in the container too.
CA_BUNDLE=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}

say() { printf '[sanity-matrix] %s\n' "$*"; }

# The image's recipe: everything in it comes from Debian's archive.
build_root() {
	local root=$1
	debootstrap --variant=minbase \
		--include=python3,python3-venv,python3-pip-whl,shellcheck,locales,ca-certificates \
		trixie "$root" "$MIRROR"
	cat >"$root/etc/apt/sources.list" <<-EOF
		deb $MIRROR trixie main
		deb $MIRROR bullseye main
		deb ${MIRROR}-security bullseye-security main
	EOF
	# Debian 11 only for what Debian 13 does not have (python3.9 and its
	# libraries); Debian 13's own packages are never replaced.
	cat >"$root/etc/apt/preferences.d/bullseye" <<-EOF
		Package: *
		Pin: release n=bullseye
		Pin-Priority: 100

		Package: *
		Pin: release n=bullseye-security
		Pin-Priority: 100
	EOF
	chroot "$root" apt-get update -q
	chroot "$root" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends python3.9
	echo 'en_US.UTF-8 UTF-8' >"$root/etc/locale.gen"
	chroot "$root" locale-gen
	# ansible-test bootstraps pip in its test environments with get-pip.py
	# from a host outside the package registries; this stand-in runs pip from
	# Debian's pip wheel instead (Debian's python3.9 has no ensurepip).
	mkdir -p "$root/usr/local/lib/vos-fastpath-sanity"
	cat >"$root/usr/local/lib/vos-fastpath-sanity/get_pip.py" <<-'EOF'
		"""Stand-in for get-pip.py: pip from Debian's wheel installs pip."""
		import glob
		import subprocess
		import sys

		wheel = glob.glob("/usr/share/python-wheels/pip-*.whl")[0]
		args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
		subprocess.check_call([sys.executable, wheel + "/pip", "install"] + args)
	EOF
	chroot "$root" apt-get clean
	rm -rf "$root"/var/lib/apt/lists/* "$root"/debootstrap
}

build_image() {
	local want have root start
	want=$(declare -f build_root | sha256sum | cut -d' ' -f1)
	have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" \
		"$IMAGE" 2>/dev/null || true)
	IMAGE_SUM=$want
	if [[ "$have" == "$want" ]]; then
		return
	fi
	root=$(mktemp -d /var/tmp/vos-fastpath-sanity.XXXXXX)
	say "building $IMAGE (debootstrap trixie + bullseye's python3.9)"
	start=$SECONDS
	if ! build_root "$root" >"$root.log" 2>&1; then
		tail -20 "$root.log" >&2
		echo "sanity-matrix: image build failed (log: $root.log)" >&2
		rm -rf "$root"
		exit 1
	fi
	local old
	old=$(podman image inspect --format '{{ .Id }}' "$IMAGE" 2>/dev/null || true)
	tar -C "$root" -c . | podman import --quiet \
		--change "LABEL $LABEL=$want" \
		--change 'ENV LANG=en_US.UTF-8' - "$IMAGE" >/dev/null
	rm -rf "$root" "$root.log"
	if [[ -n "$old" ]]; then
		podman rmi "$old" >/dev/null 2>&1 || true
	fi
	say "built $IMAGE in $((SECONDS - start)) s"
}

# One container run with the caches mounted; the collection copy at /work.
in_image() {
	podman run --rm --network host \
		--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
		-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
		-e PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
		-e PIP_DISABLE_PIP_VERSION_CHECK=1 \
		-v "$CACHE/pip:/root/.cache/pip" \
		-v "$STATE:/state" \
		"$@"
}

# Each ansible-core in its own venv on the image's Python 3.13, made once.
install_cores() {
	local core missing=()
	for core in "${CORES[@]}"; do
		[[ -e "$STATE/core-$core/done" ]] || missing+=("$core")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	say "installing ansible-core ${missing[*]}"
	in_image "$IMAGE" bash -euo pipefail \
		-c "$(declare -f install_in_image); install_in_image \"\$@\"" \
		- "${missing[@]}"
}

# In the container (handed over by declare -f): a venv per ansible-core
# under /state.
# shellcheck disable=SC2317
install_in_image() {
	local core venv
	for core in "$@"; do
		venv=/state/core-$core
		rm -rf "$venv"
		python3.13 -m venv "$venv"
		"$venv/bin/pip" install -q "ansible-core==$core"
		touch "$venv/done"
	done
}

# In the container (handed over by declare -f): ansible-test sanity with
# ansible-core $1 on the target Python $2, over the collection copy in /work.
# shellcheck disable=SC2317
sanity_in_image() {
	local core=$1 python=$2 venv pip target
	venv=/state/core-$core
	# The stand-in under the name ansible-test looks for (its pinned pip).
	pip=$(grep -o "pip=.[0-9.]*" \
		"$venv"/lib/python3.*/site-packages/ansible_test/_internal/python_requirements.py |
		head -1 | grep -o "[0-9.]*$")
	mkdir -p ~/.ansible/test/cache
	cp /usr/local/lib/vos-fastpath-sanity/get_pip.py \
		~/.ansible/test/cache/"get_pip_${pip//./_}.py"
	"/usr/bin/python$python" -c 'import platform; print(platform.python_version())' \
		>"/work/python$python.version"
	target=$venv/bin/python
	[[ $python == 3.13 ]] || target=/usr/bin/python$python
	cd /work/ansible_collections/vos/fastpath
	"$venv/bin/ansible-test" sanity --requirements \
		--controller "origin:python=3.13@$venv/bin/python" \
		--target-python "$python@$target"
}

# One cell, in the background: its log, exit status and seconds go to
# files beside its collection copy.
run_cell() {
	local core=$1 python=$2 cell dest start rc=0
	cell="$WORK/$core-$python"
	dest="$cell/ansible_collections/vos/fastpath"
	mkdir -p "$dest" "$STATE/ansible-test-$core-$python"
	git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) |
		tar -C "$dest" -xf -
	start=$SECONDS
	in_image -v "$cell:/work" \
		-v "$STATE/ansible-test-$core-$python:/root/.ansible/test/venv" \
		"$IMAGE" bash -euo pipefail \
		-c "$(declare -f sanity_in_image); sanity_in_image \"\$@\"" \
		- "$core" "$python" \
		>"$cell.log" 2>&1 || rc=$?
	echo "$rc $((SECONDS - start))" >"$cell.result"
}

# A cell passes when ansible-test passed and skipped nothing (it skips a
# test with a warning when the test's program or Python is missing).
SKIPPED='^WARNING: (Skipping|Required program)'
report_cell() {
	local core=$1 python=$2 cell version count rc seconds
	cell="$WORK/$core-$python"
	read -r rc seconds <"$cell.result" 2>/dev/null || { rc=1 seconds=0; }
	version=$(cat "$cell/python$python.version" 2>/dev/null || echo "$python")
	count=$(grep -c '^Running sanity test' "$cell.log" || true)
	if [[ $rc -eq 0 ]] && ! grep -q -E "$SKIPPED" "$cell.log"; then
		say "ansible-core $core, Python $version: $count tests passed ($seconds s)"
		return 0
	fi
	say "ansible-core $core, Python $version: FAILED ($seconds s)" >&2
	grep -E "^(ERROR|FATAL)|$SKIPPED" "$cell.log" >&2 ||
		tail -40 "$cell.log" >&2
	return 1
}

build_image
# The venvs are kept per image and set of cores; older ones go.
state_key=$(echo "$IMAGE_SUM ${CORES[*]}" | sha256sum | cut -c1-12)
STATE="$CACHE/$state_key"
mkdir -p "$CACHE/pip" "$STATE"
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name pip ! -name "$state_key" \
	-exec rm -rf {} +
install_cores

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The cells of one Python run side by side, one per core: they share
# nothing that they write (each ansible-core has its own venv).
for python in "${PYTHONS[@]}"; do
	for core in "${CORES[@]}"; do
		run_cell "$core" "$python" &
	done
	wait
done
failed=0
for core in "${CORES[@]}"; do
	for python in "${PYTHONS[@]}"; do
		report_cell "$core" "$python" || failed=1
	done
done
exit "$failed"
