#!/usr/bin/env bash
# Requests per second of net/http in the guest over the TAP path, next to
# the same handler served by Linux's own stack on loopback, measured with
# wrk in the same run.
#
# Both run inside a network namespace this script creates (and deletes):
#   - guest: gohv-sim -tap plugs the guest's synthetic NIC (netvsc, the
#     simulated NetVSP) into a TAP device in the namespace; dnsmasq on the
#     TAP side gives the guest its address; wrk runs in the namespace
#     against the guest's HTTP server (gohv-sim's handler);
#   - baseline: gohv-sim -linux-http serves the same handler with Go's net
#     package on the namespace's loopback; wrk runs against it.
# The namespace has only lo and the TAP device and no routes out of it, so
# no packet leaves it (checked before measuring).
#
# Usage: tools/scripts/bench-http.sh        (make bench-http)
# Environment: DURATION (wrk seconds, default 10), CONNS (wrk connections,
# default 32), THREADS (wrk threads, default 2).
# Needs root (network namespace, TAP device), ip, dnsmasq and wrk
# (Debian: apt-get install -y wrk dnsmasq-base iproute2).
set -euo pipefail
duration=${DURATION:-10}
conns=${CONNS:-32}
threads=${THREADS:-2}

if [ "$(id -u)" != 0 ]; then
	echo "bench-http: needs root (network namespace and TAP device)" >&2
	exit 1
fi
for t in ip dnsmasq wrk go; do
	command -v "$t" >/dev/null || { echo "bench-http: $t not found" >&2; exit 1; }
done

dir=$(mktemp -d)
ns=gohvbench$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

go build -o "$dir/gohv-sim" ./tools/cmd/gohv-sim

nsx() { ip netns exec "$ns" "$@"; }
ip netns add "$ns"
nsx ip link set lo up
nsx ip tuntap add dev gtap0 mode tap
nsx ip addr add 10.199.1.1/24 dev gtap0
nsx ip link set gtap0 up

# Traffic stays inside: the namespace has lo and gtap0 only, and no route
# beyond the TAP's own subnet.
links=$(nsx ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
if [ "$links" != "gtap0 lo " ]; then
	echo "bench-http: unexpected links in $ns: $links" >&2
	exit 1
fi
if nsx ip route show | grep -qv '^10\.199\.1\.0/24 '; then
	echo "bench-http: unexpected routes in $ns:" >&2
	nsx ip route show >&2
	exit 1
fi

guest=10.199.1.50
nsx dnsmasq --no-daemon --interface=gtap0 --bind-interfaces --port=0 --no-resolv --no-hosts \
	--dhcp-range=$guest,$guest,255.255.255.0,1h \
	--dhcp-leasefile="$dir/leases" --pid-file="$dir/dnsmasq.pid" >"$dir/dnsmasq.log" 2>&1 &
pids+=($!)

# wait_for FILE TEXT: until FILE contains TEXT (60 s at most).
wait_for() {
	for _ in $(seq 600); do
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
	echo "bench-http: gave up waiting for \"$2\"; log:" >&2
	cat "$1" >&2
	return 1
}

# rps LOG: wrk's requests per second.
rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

hold=$((duration * 2 + 60))
nsx "$dir/gohv-sim" -tap gtap0 -hold "${hold}s" -heartbeats 1 -timeout "$((hold + 60))s" >"$dir/guest.log" 2>&1 &
pids+=($!)
wait_for "$dir/guest.log" "guest: serving HTTP on $guest:80"
nsx wrk -t"$threads" -c"$conns" -d"${duration}s" "http://$guest/" >"$dir/wrk-guest.txt"
if command -v curl >/dev/null && ! nsx curl -s --max-time 5 "http://$guest/" | grep -q "hello from the gohv guest"; then
	echo "bench-http: the guest's answer is not its handler's" >&2
	exit 1
fi

nsx "$dir/gohv-sim" -linux-http 127.0.0.1:8080 -hold "$((duration + 30))s" >"$dir/linux.log" 2>&1 &
pids+=($!)
wait_for "$dir/linux.log" "linux: serving HTTP on 127.0.0.1:8080"
nsx wrk -t"$threads" -c"$conns" -d"${duration}s" "http://127.0.0.1:8080/" >"$dir/wrk-linux.txt"

g=$(rps "$dir/wrk-guest.txt")
l=$(rps "$dir/wrk-linux.txt")
errs() { grep -E 'Socket errors|Non-2xx' "$1" | sed 's/^/  /' || true; }
total() { awk '/requests in/ {print $1, "requests in", $4}' "$1" | tr -d ,; }
echo "bench-http: wrk -t$threads -c$conns -d${duration}s, $(nproc) CPUs"
printf '  %-54s %10s req/s (%s)\n' "guest net/http over TAP (netvsc, simulated NetVSP)" "$g" "$(total "$dir/wrk-guest.txt")"
printf '  %-54s %10s req/s (%s)\n' "baseline: same handler, Linux Go process, loopback" "$l" "$(total "$dir/wrk-linux.txt")"
awk -v g="$g" -v l="$l" 'BEGIN { if (l > 0) printf "  guest/baseline %.1f%%\n", 100 * g / l }'
errs "$dir/wrk-guest.txt"
errs "$dir/wrk-linux.txt"
