#!/usr/bin/env bash
# bench-compare: run heraldload against herald built at REV and at the
# working tree, alternating, ROUNDS times each, so both face the same
# machine in one run. The load generator is the working tree's for both.
#
#   scripts/bench-compare.sh REV [ROUNDS] [heraldload flags...]
#
# Writes OUT (default /tmp/bench-compare)/{before,after}-N.{txt,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: $0 REV [ROUNDS] [heraldload flags...]}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
out=${OUT:-/tmp/bench-compare}
mkdir -p "$out"

tree=$(mktemp -d)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$tree" "$rev"
(cd "$tree" && go build -o "$out/herald-before" ./cmd/herald)
go build -o "$out/herald-after" ./cmd/herald
go build -o "$out/heraldload" ./cmd/heraldload

for i in $(seq 1 "$rounds"); do
	for which in before after; do
		echo "== $which ($([ $which = before ] && echo "$rev" || git rev-parse --short HEAD)+tree), round $i"
		"$out/heraldload" -herald "$out/herald-$which" -json "$out/$which-$i.json" "$@" 2>&1 | tee "$out/$which-$i.txt"
	done
done
