#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 3s).
# Usage: tools/scripts/fuzz.sh [packages...]   (default ./...)
set -euo pipefail
fuzztime=${FUZZTIME:-3s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
count=0
failed=0
for pkg in $(go list "${pkgs[@]}"); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		count=$((count + 1))
		echo "fuzz: $pkg $t ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/gohv-fuzz.$$.log 2>&1; then
			cat /tmp/gohv-fuzz.$$.log
			failed=$((failed + 1))
		fi
	done
done
rm -f /tmp/gohv-fuzz.$$.log
echo "fuzz: $((count - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
