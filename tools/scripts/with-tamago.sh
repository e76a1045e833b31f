#!/usr/bin/env bash
# with-tamago.sh CMD...: runs CMD with TAMAGO exported when the TamaGo
# compiler is present; otherwise prints one line and exits 0 (skip).
set -u
here=$(cd "$(dirname "$0")" && pwd)
if ! tamago=$("$here/tamago.sh" 2>/tmp/gohv-tamago.$$); then
	echo "skipped: $(cat /tmp/gohv-tamago.$$)"
	rm -f /tmp/gohv-tamago.$$
	exit 0
fi
rm -f /tmp/gohv-tamago.$$
export TAMAGO="$tamago"
exec "$@"
