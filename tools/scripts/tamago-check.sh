#!/usr/bin/env bash
# tamago-check.sh [-tags extra] PKGS...: compile (not link) tamago-tagged
# packages with stock Go, using tools/tamagocheck/_stubs for what tamago-go
# adds to the standard library. Main packages are compiled too: the final
# link is replaced by tools/scripts/nolink.sh, since the stand-ins define the
# very hooks a board provides. See tools/tamagocheck/README.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
tags=tamago
if [ "${1:-}" = "-tags" ]; then
	tags="tamago,$2"
	shift 2
fi
[ $# -gt 0 ] || { echo "usage: $0 [-tags extra] PKGS..." >&2; exit 2; }
goroot=$(go env GOROOT)
tamago=$(cd "$top" && go list -m -f '{{.Dir}}' github.com/usbarmory/tamago)
tmp=$(mktemp -d)
mkdir -p "$tmp/out"
trap 'rm -rf "$tmp"' EXIT
stubs="$top/tools/tamagocheck/_stubs"
# tamago's goos/mem.go (RAM layout variables) exists from v1.26.1 on; with
# v1.26.0 the stand-in goos.go declares them.
mem=""
if [ -f "$tamago/goos/mem.go" ]; then
	mem="\"$goroot/src/runtime/goos/mem.go\": \"$tamago/goos/mem.go\","
fi
cat >"$tmp/overlay.json" <<JSON
{"Replace": {
  "$goroot/src/runtime/goos/goos.go": "$stubs/goos.go",
  $mem
  "$goroot/src/runtime/tamago_stub.go": "$stubs/runtime.go",
  "$goroot/src/os/signal/tamago_stub.go": "$stubs/signal.go",
  "$goroot/src/net/tamago_stub.go": "$stubs/net.go"
}}
JSON
cd "$top"
export GOOS=linux GOARCH=amd64 CGO_ENABLED=0
# go build discards its results when given several packages; for a single
# one, point the (empty, not linked) output into the temp directory.
out=()
names=$(go list -tags "$tags" -overlay "$tmp/overlay.json" -f '{{.Name}}' "$@")
[ "$names" != "main" ] || out=(-o "$tmp/out/")
go build -tags "$tags" -overlay "$tmp/overlay.json" -toolexec "$top/tools/scripts/nolink.sh" "${out[@]}" "$@"
echo "tamago-check: compiled $* with -tags $tags"
