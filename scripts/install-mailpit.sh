#!/usr/bin/env bash
# Installs the real mailpit SMTP server (github.com/axllent/mailpit) into
# .tools/bin/mailpit for the email sink's tests (sinks/email), which send
# through it and read back what arrived through its HTTP API. Idempotent:
# does nothing when the binary is already there at the pinned version.
#
# Built from source through the Go module proxy (the module carries its web
# UI assets, so nothing else is downloaded).
#
# Usage: scripts/install-mailpit.sh   (from anywhere inside the repo)
# Override the version with MAILPIT_VERSION=vX.Y.Z.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${MAILPIT_VERSION:-v1.33.1}"
bindir="$root/.tools/bin"
bin="$bindir/mailpit"

installed_version() {
	go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/axllent/mailpit" { print $3 }'
}

if [[ -x "$bin" && "$(installed_version)" == "$version" ]]; then
	echo "mailpit $version already installed at $bin"
	exit 0
fi

mkdir -p "$bindir"
echo "installing mailpit $version into $bindir"
# A temporary GOBIN keeps a half-written binary from looking installed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/axllent/mailpit@$version"
mv -f "$tmp/mailpit" "$bin"
echo "installed mailpit $(installed_version) at $bin"
