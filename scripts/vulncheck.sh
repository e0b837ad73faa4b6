#!/usr/bin/env bash
# vulncheck: govulncheck against the Go vulnerability database, offline.
#
# The database is golang.org/x/vulndb at the version pinned in tools/go.mod,
# fetched from the Go module proxy and indexed into .cache/vulndb, so the check
# needs no network beyond the proxy and gives the same answer for the same
# commit. Update it with:
#   go get -modfile=tools/go.mod -tool golang.org/x/vulndb/cmd/indexdb@master
#
# It fails when herald calls a vulnerable function of a module it requires.
# Vulnerabilities of the Go standard library are printed but do not fail the
# check: they are fixed by the Go toolchain the machine provides, not by a
# change to this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
if ! command -v jq >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null
	else
		echo "vulncheck: jq is needed (Debian package jq)" >&2
		exit 1
	fi
fi
tool() { "$GO" tool -modfile=tools/go.mod "$@"; }

version=$("$GO" list -modfile=tools/go.mod -m -f '{{.Version}}' golang.org/x/vulndb)
db=.cache/vulndb/$version
if [ ! -f "$db/index/db.json" ]; then
	src=$("$GO" mod download -modfile=tools/go.mod -json golang.org/x/vulndb | jq -r .Dir)
	rm -rf "$db.tmp"
	tool indexdb -vulns "$src/data/osv" -out "$db.tmp"
	mv "$db.tmp" "$db"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
tool govulncheck -db "file://$PWD/$db" -format json ./... >"$out"

# A finding whose first frame names a function is one herald's code reaches.
# report prints one line per vulnerability: ID, version found, fix, packages.
called='[.[] | select(.finding != null and (.finding.trace[0].function // "") != "") | .finding]'
report='group_by(.osv)[] | "\(.[0].osv) in \(.[0].trace[0].module)@\(.[0].trace[0].version), fixed in \(.[0].fixed_version // "no release"): \([.[].trace[0].package] | unique | join(", "))"'

stdlib=$(jq -rs "$called | map(select(.trace[0].module == \"stdlib\")) | $report" "$out")
modules=$(jq -rs "$called | map(select(.trace[0].module != \"stdlib\")) | $report" "$out")

echo "vulncheck: database golang.org/x/vulndb@$version, $($GO version | cut -d' ' -f3)"
if [ -n "$stdlib" ]; then
	echo "vulncheck: reached in the Go standard library (fixed by a newer Go toolchain, not by this repository):"
	echo "$stdlib" | sed 's/^/  /'
fi
if [ -n "$modules" ]; then
	echo "vulncheck: FAIL: herald reaches vulnerable code in modules it requires:"
	echo "$modules" | sed 's/^/  /'
	exit 1
fi
echo "vulncheck: ok: no vulnerable function of a required module is reached"
