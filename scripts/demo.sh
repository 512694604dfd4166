#!/usr/bin/env bash
# Install what xfsfree needs, install xfsfree (scripts/install.sh) into a
# temporary prefix, and run it on a sample image: a frozen snapshot of a live
# filesystem with deleted-but-open files (orphans on the AGI unlinked lists, a
# dirty log). Run as root on a fresh Debian machine with Go (README: Set up).
# Nothing is written into the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v mkfs.xfs >/dev/null 2>&1 || ! command -v zstd >/dev/null 2>&1; then
	apt-get update -qq && apt-get install -y -qq xfsprogs zstd >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/install.sh "$work/prefix"
export PATH="$work/prefix/sbin:$PATH" MANPATH="$work/prefix/share/man:"
img="$work/orphans.img"
zstd -q -d -o "$img" testdata/images/orphans.img.zst
set -x
xfsfree --version
xfsfree info "$img"
xfsfree scan "$img"
xfsfree clean --dry-run "$img"
xfsfree clean --stats "$img"
xfsfree info "$img"
xfsfree check "$img"
xfs_repair -n "$img"
