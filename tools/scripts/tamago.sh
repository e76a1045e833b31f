#!/usr/bin/env bash
# Prints the path of a usable TamaGo compiler and exits 0, or prints one line
# saying why there is none and exits 1. Nothing here downloads anything.
#
# The toolchain counts as present when TAMAGO names an executable tamago-go
# bin/go (or a wrapper the user vouches for), or when tamago's own wrapper
# (go tool -n github.com/usbarmory/tamago/cmd/tamago) would find its cached
# toolchain under the user cache directory. The wrapper would otherwise try
# to clone tamago-go from GitHub, which must never happen from `make test`.
set -u
if [ -n "${TAMAGO:-}" ]; then
	if [ -x "$TAMAGO" ]; then
		echo "$TAMAGO"
		exit 0
	fi
	echo "TAMAGO=$TAMAGO is not an executable file; point it at a tamago-go bin/go" >&2
	exit 1
fi
version=$(go list -m -f '{{.Version}}' github.com/usbarmory/tamago 2>/dev/null) || version=""
case "$version" in
v1.*) ;;
*)
	echo "cannot read the tamago module version from go.mod" >&2
	exit 1
	;;
esac
version=${version#v}
case "$(go env GOOS)" in
darwin) cache="$HOME/Library/Caches" ;;
*) cache="${XDG_CACHE_HOME:-$HOME/.cache}" ;;
esac
gobin="$cache/tamago-go/tamago-go$version/bin/go"
if [ ! -x "$gobin" ]; then
	echo "TamaGo compiler not found ($gobin missing; install tamago-go $version there or set TAMAGO=/path/to/tamago-go/bin/go)" >&2
	exit 1
fi
wrapper=$(go tool -n github.com/usbarmory/tamago/cmd/tamago 2>/dev/null) || wrapper=""
if [ -n "$wrapper" ] && [ -x "$wrapper" ]; then
	echo "$wrapper"
else
	echo "$gobin"
fi
