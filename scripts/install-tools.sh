#!/usr/bin/env bash
# Installs everything the test suite needs beyond Go itself, idempotently:
#   - the real Alertmanager (built from the Go module proxy) for test/alertmanager
#   - nats-server (built from the Go module proxy, the version go.mod pins)
#     for test/durability (through test/natscluster) and heraldload -scenario scale
#   - mailpit (built from the Go module proxy), the SMTP server the email
#     sink's tests send through (scripts/install-mailpit.sh)
#   - promtool (Debian's prometheus package) to check deploy/ alerting rules,
#     and systemd-analyze (Debian's systemd package) to audit the systemd
#     unit, when apt-get is usable; their tests skip without them (and fail
#     under HERALD_TEST_REQUIRE_BINARIES=1, as in CI).
#   - node and npm (Debian's nodejs and npm packages when missing) and
#     Rocket.Chat's message parser, pinned by a lock file, for the Rocket.Chat
#     sink's escaping tests (scripts/install-mdparser.sh).
#   - Microsoft's Adaptive Cards parser and markdown-it, pinned by a lock
#     file, for the Teams sink's card checks
#     (sinks/teams/testdata/cardcheck/install.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$root/scripts/install-alertmanager.sh"
"$root/scripts/install-nats-server.sh"
"$root/scripts/install-mailpit.sh"
"$root/scripts/install-mdparser.sh"
"$root/sinks/teams/testdata/cardcheck/install.sh"

if ! command -v promtool >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
		echo "installing promtool (Debian package prometheus)"
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
			echo "warning: could not install promtool; the alerting-rules test will skip" >&2
		fi
	else
		echo "promtool not found and apt-get not usable; the alerting-rules test will skip" >&2
	fi
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
		echo "installing systemd-analyze (Debian package systemd)"
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; }; then
			echo "warning: could not install systemd-analyze; the unit audit will skip" >&2
		fi
	else
		echo "systemd-analyze not found and apt-get not usable; the unit audit will skip" >&2
	fi
fi
