#!/usr/bin/env bash
# Installs what the Rocket.Chat sink's escaping tests run: node and npm
# (Debian's nodejs and npm packages, when they are missing and apt-get is
# usable), then Rocket.Chat's own message parser, @rocket.chat/message-parser,
# at the version sinks/rocketchat/testdata/mdparser/package-lock.json pins,
# into that folder's node_modules with npm ci. Idempotent: does nothing when
# node_modules was installed from the same lock file.
#
# Without node the tests fail under CI=true and are skipped elsewhere; so
# does this script fail under CI=true, and only warn elsewhere.
#
# Usage: scripts/install-mdparser.sh   (from anywhere inside the repo)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/sinks/rocketchat/testdata/mdparser"
stamp="$dir/node_modules/.herald-package-lock.json"

fail() {
	echo "install-mdparser: $*" >&2
	if [[ "${CI:-}" == true ]]; then
		exit 1
	fi
	echo "install-mdparser: the Rocket.Chat escaping tests will skip" >&2
	exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
		echo "installing node and npm (Debian packages nodejs and npm)"
		apt-get update -qq || fail "apt-get update failed"
		# Only what is missing: a node from elsewhere may bring its own npm.
		pkgs=()
		command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
		command -v npm >/dev/null 2>&1 || pkgs+=(npm)
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
			fail "could not install ${pkgs[*]}"
	else
		fail "node or npm not found, and apt-get is not usable (not root?): install Node.js 18 or later with npm"
	fi
fi

if cmp -s "$dir/package-lock.json" "$stamp"; then
	echo "@rocket.chat/message-parser already installed in $dir/node_modules"
	exit 0
fi
echo "installing @rocket.chat/message-parser into $dir/node_modules (node $(node --version), npm $(npm --version))"
# npm ci installs exactly the lock file, or fails; no package here has an
# install script to run.
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
	fail "npm ci failed in $dir"
cp "$dir/package-lock.json" "$stamp"
echo "installed @rocket.chat/message-parser $(cd "$dir" && node -p 'require("./node_modules/@rocket.chat/message-parser/package.json").version' 2>/dev/null || echo '(version unknown)')"
