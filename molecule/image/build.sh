#!/usr/bin/env bash
# Build the image of the molecule hosts of one Debian release (the
# argument, bookworm by default): debootstrap with the packages of
# packages.txt, imported into podman with systemd as its command.
#   bookworm (Debian 12): localhost/vos-fastpath-base, every scenario's
#   bullseye (Debian 11), trixie (Debian 13): localhost/vos-fastpath-base-
#     <release>, the other userlands of the default scenario's fleet
# Rebuilt only when packages.txt, this script or the release changes
# (their sha256 is the image's label).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${1:-bookworm}
case "$SUITE" in
bookworm) IMAGE=localhost/vos-fastpath-base ;;
bullseye | trixie) IMAGE=localhost/vos-fastpath-base-$SUITE ;;
*)
	echo "image: unknown release $SUITE: use bookworm, bullseye or trixie" >&2
	exit 2
	;;
esac
MIRROR=http://deb.debian.org/debian
LABEL=vos.fastpath.inputs

say() { printf '[image] %s\n' "$*"; }

want=$( (cat "$HERE/packages.txt" "$0" && echo "$SUITE") | sha256sum | cut -d' ' -f1)
have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" \
	"$IMAGE" 2>/dev/null || true)
if [[ "$have" == "$want" ]]; then
	exit 0
fi

packages=$(grep -v -e '^#' -e '^\s*$' "$HERE/packages.txt" | paste -sd, -)
root=$(mktemp -d "/var/tmp/vos-fastpath-$SUITE.XXXXXX")
trap 'rm -rf "$root"' EXIT

say "building $IMAGE (debootstrap $SUITE: $packages)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" \
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
