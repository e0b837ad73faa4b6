#!/usr/bin/env bash
# Installs the real nats-server binary into .tools/bin/nats-server for the
# tests that run herald on a three-node NATS cluster of separate processes
# (test/durability, through test/natscluster) and for `heraldload -scenario
# scale`. Idempotent: does nothing when the binary is already there at the
# pinned version.
#
# The version is the one go.mod pins for the embedded server, so the
# cluster the tests run against is the server herald embeds. It is built
# from source through the Go module proxy (about a minute on two cores).
#
# Usage: scripts/install-nats-server.sh   (from anywhere inside the repo)
# Override the version with NATS_SERVER_VERSION=vX.Y.Z.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${NATS_SERVER_VERSION:-$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2 }' "$root/go.mod")}"
bindir="$root/.tools/bin"
bin="$bindir/nats-server"

installed_version() {
	go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/nats-io/nats-server/v2" { print $3 }'
}

if [[ -x "$bin" && "$(installed_version)" == "$version" ]]; then
	echo "nats-server $version already installed at $bin"
	exit 0
fi

mkdir -p "$bindir"
echo "installing nats-server $version into $bindir"
# A temporary GOBIN keeps a half-written binary from looking installed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$version"
mv -f "$tmp/nats-server" "$bin"
echo "installed $("$bin" --version 2>&1 | head -1)"
