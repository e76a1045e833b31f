#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 3s).
# Usage: tools/scripts/fuzz.sh [packages...]   (default ./...)
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime expires while a worker is mid-call
# (golang/go#75804, fixed in Go 1.27). Such a run wrote no failing input and
# reports no panic or test error; it is retried (twice at most). Any run that
# wrote a reproducer, panicked or failed otherwise fails at once.
set -euo pipefail
fuzztime=${FUZZTIME:-3s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# coordinator_race LOG: true if the failure is only the #75804 signature.
coordinator_race() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]*:' "$1"
}

count=0
failed=0
retried=0
for pkg in $(go list "${pkgs[@]}"); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		count=$((count + 1))
		echo "fuzz: $pkg $t ($fuzztime)"
		ok=false
		for attempt in 1 2 3; do
			if go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
				ok=true
				break
			fi
			if ! coordinator_race "$log" || [ "$attempt" -eq 3 ]; then
				break
			fi
			retried=$((retried + 1))
			echo "fuzz: $t: fuzzing engine deadline race (golang/go#75804), no failing input: retrying"
		done
		if ! $ok; then
			cat "$log"
			failed=$((failed + 1))
		fi
	done
done
[ "$retried" -eq 0 ] || echo "fuzz: $retried run(s) retried after the fuzzing engine's deadline race"
echo "fuzz: $((count - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
