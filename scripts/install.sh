#!/usr/bin/env bash
# Build xfsfree and install it under a prefix: the binary, its man pages
# (section 8) and its shell completions (bash, zsh, fish).
#
# Usage: scripts/install.sh [PREFIX]        (default /usr/local)
#        DESTDIR=/tmp/stage scripts/install.sh /usr   (staged, for packaging)
#
#   PREFIX/sbin/xfsfree
#   PREFIX/share/man/man8/xfsfree*.8
#   PREFIX/share/bash-completion/completions/xfsfree
#   PREFIX/share/zsh/site-functions/_xfsfree
#   PREFIX/share/fish/vendor_completions.d/xfsfree.fish
#
# Needs Go >= 1.26, or Go >= 1.21 with GOTOOLCHAIN=auto (the default), which
# fetches the toolchain go.mod asks for as a module. The build happens in a
# temporary directory: nothing is written into the checkout. The man pages
# and completions are the committed ones (man/, completions/), which a test
# keeps in step with the commands (regenerate: go run ./cmd/xfsfree gen-docs .).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
dest=${DESTDIR:-}
case $prefix in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, got '$prefix'" >&2; exit 2 ;;
esac

if ! command -v go >/dev/null 2>&1; then
	echo "install.sh: 'go' not found: install Go >= 1.26 (or >= 1.21, which fetches 1.26 itself)" >&2
	exit 1
fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# -buildvcs=auto: record the git revision when this is a git checkout (the
# environment may set GOFLAGS=-buildvcs=false); -trimpath: no local paths.
go build -trimpath -buildvcs=auto -o "$build/xfsfree" ./cmd/xfsfree

root=$dest$prefix
install -d "$root/sbin" "$root/share/man/man8" "$root/share/bash-completion/completions" \
	"$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
install -m 0755 "$build/xfsfree" "$root/sbin/xfsfree"
install -m 0644 man/*.8 "$root/share/man/man8/"
install -m 0644 completions/xfsfree.bash "$root/share/bash-completion/completions/xfsfree"
install -m 0644 completions/_xfsfree "$root/share/zsh/site-functions/_xfsfree"
install -m 0644 completions/xfsfree.fish "$root/share/fish/vendor_completions.d/xfsfree.fish"
echo "installed $("$root/sbin/xfsfree" --version) under $root"
