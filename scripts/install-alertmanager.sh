#!/usr/bin/env bash
# Installs the real Prometheus Alertmanager binary into .tools/bin/alertmanager
# for the integration test in test/alertmanager, and amtool beside it for the
# compose stack's config check (deploy/compose). Idempotent: does nothing when
# both are already there at the pinned version.
#
# The binary is built from source through the Go module proxy (about a minute
# on two cores); Debian's prometheus-alertmanager is too old (0.25: no
# traceparent, no notification_reason).
#
# Usage: scripts/install-alertmanager.sh   (from anywhere inside the repo)
# Override the version with ALERTMANAGER_VERSION=vX.Y.Z.
set -euo pipefail

version="${ALERTMANAGER_VERSION:-v0.31.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$root/.tools/bin"
bin="$bindir/alertmanager"

installed_version() {
	# go version -m reads the module version embedded at build time; it works
	# whatever the binary's own --version flag prints.
	go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/prometheus/alertmanager" { print $3 }'
}

if [[ -x "$bin" && -x "$bindir/amtool" && "$(installed_version)" == "$version" ]]; then
	echo "alertmanager $version already installed at $bin"
	exit 0
fi

mkdir -p "$bindir"
echo "installing alertmanager $version into $bindir (takes a minute or more)"
# A temporary GOBIN path keeps a half-written binary from looking installed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS=-mod=mod go install \
	"github.com/prometheus/alertmanager/cmd/alertmanager@$version" \
	"github.com/prometheus/alertmanager/cmd/amtool@$version"
mv -f "$tmp/amtool" "$bindir/amtool"
mv -f "$tmp/alertmanager" "$bin"
echo "installed $("$bin" --version 2>&1 | head -1)"
