#!/usr/bin/env bash
# ansible-test sanity on the committed files, with no ignore file.
# ansible-test wants the collection under ansible_collections/vos/fastpath,
# so the tracked files are copied there first.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

DEST="$WORK/ansible_collections/vos/fastpath"
mkdir -p "$DEST"
git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) |
	tar -C "$DEST" -xf -
cd "$DEST"
"$ROOT/.venv/bin/ansible-test" sanity --python 3.11 --requirements \
	>"$WORK/sanity.log" 2>&1 || {
	grep -E "^(ERROR|FATAL)" "$WORK/sanity.log" >&2 ||
		tail -40 "$WORK/sanity.log" >&2
	exit 1
}
printf '[sanity] %s sanity tests passed\n' \
	"$(grep -c -E "^Running sanity test" "$WORK/sanity.log")"
