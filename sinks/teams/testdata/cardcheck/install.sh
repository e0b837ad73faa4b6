#!/usr/bin/env bash
# Installs what the Teams sink's card checks run: Microsoft's Adaptive
# Cards parser, the npm package adaptivecards, at the version
# package-lock.json beside this script pins, into node_modules beside it
# with npm ci. Needs node and npm (scripts/install-mdparser.sh installs
# them). Idempotent: does nothing when node_modules was installed from the
# same lock file.
#
# Without it the tests fail under CI=true and are skipped elsewhere; so
# does this script fail under CI=true, and only warn elsewhere.
#
# Usage: sinks/teams/testdata/cardcheck/install.sh   (from anywhere)
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$dir/node_modules/.herald-package-lock.json"

fail() {
	echo "install-cardcheck: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		exit 1
	fi
	echo "install-cardcheck: the Teams card checks will skip" >&2
	exit 0
}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	fail "node or npm not found: install Node.js 18 or later with npm (scripts/install-mdparser.sh does)"
if cmp -s "$dir/package-lock.json" "$stamp"; then
	echo "adaptivecards already installed in $dir/node_modules"
	exit 0
fi
echo "installing adaptivecards into $dir/node_modules (node $(node --version), npm $(npm --version))"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || fail "npm ci failed in $dir"
cp "$dir/package-lock.json" "$stamp"
echo "installed adaptivecards $(node -p "require('$dir/node_modules/adaptivecards/package.json').version")"
