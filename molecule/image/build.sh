#!/usr/bin/env bash
# Build localhost/vos-fastpath-base, the image of every molecule host:
# Debian 12 from debootstrap with the packages of packages.txt, imported
# into podman with systemd as its command. Rebuilt only when packages.txt
# or this script changes (their sha256 is the image's label).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
IMAGE=localhost/vos-fastpath-base
MIRROR=http://deb.debian.org/debian
LABEL=vos.fastpath.inputs

say() { printf '[image] %s\n' "$*"; }

want=$(cat "$HERE/packages.txt" "$0" | sha256sum | cut -d' ' -f1)
have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" \
	"$IMAGE" 2>/dev/null || true)
if [[ "$have" == "$want" ]]; then
	exit 0
fi

packages=$(grep -v -e '^#' -e '^\s*$' "$HERE/packages.txt" | paste -sd, -)
root=$(mktemp -d /var/tmp/vos-fastpath-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

say "building $IMAGE (debootstrap bookworm: $packages)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$packages" bookworm "$root" \
	"$MIRROR" >"$root.log" 2>&1; then
	tail -20 "$root.log" >&2
	echo "image: debootstrap failed (log: $root.log)" >&2
	exit 1
fi
rm -f "$root.log"

# A container is not a machine: no consoles, no hardware, no clock to set.
for unit in getty.target console-getty.service systemd-timesyncd.service \
	systemd-udevd.service systemd-udev-trigger.service \
	systemd-modules-load.service systemd-remount-fs.service \
	sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount; do
	ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
# Debian names sipvicious's tools svmap, svwar...; upstream's names too.
for tool in svmap svwar svcrack svreport; do
	ln -sfn "/usr/bin/$tool" "$root/usr/local/bin/sipvicious_$tool"
done
# The scenarios install their own SIP server configuration; until then
# Kamailio waits.
chroot "$root" systemctl disable kamailio.service >/dev/null 2>&1 || true
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/debootstrap

old=$(podman image inspect --format '{{ .Id }}' "$IMAGE" 2>/dev/null || true)
tar -C "$root" -c . | podman import --quiet \
	--change 'CMD ["/lib/systemd/systemd"]' \
	--change "LABEL $LABEL=$want" \
	--change 'STOPSIGNAL SIGRTMIN+3' - "$IMAGE" >/dev/null
# The previous build goes unless a container still uses it.
if [[ -n "$old" ]]; then
	podman rmi "$old" >/dev/null 2>&1 || true
fi
say "built $IMAGE in $((SECONDS - start)) s"
