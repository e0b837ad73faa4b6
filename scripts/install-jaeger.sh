#!/usr/bin/env bash
# Builds the real Jaeger v2 (an OpenTelemetry Collector distribution with
# Jaeger's storage and query UI) into .tools/bin/jaeger for the end-to-end
# tracing test in test/jaeger. Idempotent: does nothing when the binary is
# already there at the pinned version.
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` refuses the
# module because its go.mod has replace directives, so this script downloads
# the module source through the Go module proxy, copies it to a writable temp
# dir and builds cmd/jaeger inside it (several minutes on two cores).
#
# Usage: scripts/install-jaeger.sh   (from anywhere inside the repo)
# Override the version with JAEGER_VERSION=vX.Y.Z.
set -euo pipefail

version="${JAEGER_VERSION:-v1.76.0}"
module="github.com/jaegertracing/jaeger"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$root/.tools/bin"
bin="$bindir/jaeger"

installed_version() {
	# A binary built inside the module reports it as the main module; the
	# version is stamped as "(devel)" then, so a marker file records what
	# was built.
	[[ -x "$bin" && -f "$bin.version" ]] && cat "$bin.version"
}

if [[ "$(installed_version || true)" == "$version" ]]; then
	echo "jaeger $version already installed at $bin"
	exit 0
fi

mkdir -p "$bindir"
echo "building jaeger $version into $bindir (takes several minutes)"
tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT

# Run outside the herald module so its go.mod is not consulted or changed.
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$module@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$dir" || ! -d "$dir" ]]; then
	echo "could not download $module@$version" >&2
	exit 1
fi

# The module cache is read-only; the build needs a writable copy.
cp -R "$dir" "$tmp/src"
chmod -R u+w "$tmp/src"
(cd "$tmp/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$tmp/jaeger" ./cmd/jaeger)
# Move into place only when complete, so a half-written binary never looks installed.
mv -f "$tmp/jaeger" "$bin"
echo "$version" >"$bin.version"
echo "installed jaeger $version at $bin"
