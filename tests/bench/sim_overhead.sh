#!/bin/bash
# Benchmark (not a test): simulations per second of two_moons on one core
# through the engine, and the engine's overhead per simulation compared with
# calling the same Lua function in a bare loop.
#
#   bash tests/bench/sim_overhead.sh [N] [SBIRUN]
#
# Two measurements, side by side:
#  - wall time, best of 3 (noisy on a shared 2-core machine);
#  - instruction counts from callgrind for N/10 simulations (repeatable),
#    converted to time with the bare loop's own instructions per second.
# Target: under 1 us of overhead per simulation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${1:-1000000}
sbirun=${2:-$here/../../build/lang/sbirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

engine_seconds() { # N -> seconds of the simulate node
	rm -rf "$tmp/cache"
	"$sbirun" "$here/overhead_recipe.lua" --set simulations="$1" --jobs 1 --cache "$tmp/cache" \
		--out "$tmp/out" --quiet >/dev/null
	awk '/"kind": "simulate"/ { f = 1 } f && /"seconds"/ { gsub(/,/, "", $2); print $2; exit }' "$tmp/out/run.json"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'; }

best_engine=1e9 best_bare=1e9
for rep in 1 2 3; do
	best_engine=$(min "$best_engine" "$(engine_seconds "$n")")
	best_bare=$(min "$best_bare" "$("$sbirun" lua "$here/bare_loop.lua" "$n" | awk '{ print $1 }')")
done
awk -v n="$n" -v e="$best_engine" -v b="$best_bare" 'BEGIN {
	printf "two_moons, %d simulations, 1 core, wall time (best of 3)\n", n
	printf "  engine, simulate node (prior draws, checks, chunked cache writes): %.3f s = %.0f sims/s\n", e, n / e
	printf "  bare Lua loop calling the same simulator:                          %.3f s = %.0f sims/s\n", b, n / b
	printf "  overhead per simulation: %.3f us (target < 1 us)\n", (e - b) / n * 1e6
}'

if command -v valgrind >/dev/null; then
	m=$((n / 10))
	rm -rf "$tmp/cache"
	instr() { valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$@" >/dev/null 2>"$tmp/vg" &&
		grep -o 'refs: *[0-9,]*' "$tmp/vg" | tr -dc 0-9; }
	# Engine: the simulate node alone = a simulate-only run minus the same run fully cached.
	e_full=$(instr "$sbirun" "$here/overhead_recipe.lua" --set simulations="$m" --cache "$tmp/cache" --out "$tmp/out" --quiet)
	e_cached=$(instr "$sbirun" "$here/overhead_recipe.lua" --set simulations="$m" --cache "$tmp/cache" --out "$tmp/out" --quiet)
	rm -rf "$tmp/cache2"
	"$sbirun" "$here/overhead_recipe.lua" --set simulations="$m" --cache "$tmp/cache2" --out "$tmp/out2" --quiet >/dev/null
	b_loop=$(instr "$sbirun" lua "$here/bare_loop.lua" "$m")
	b_empty=$(instr "$sbirun" lua "$here/bare_loop.lua" 0)
	abc=$(awk '/"kind": "abc.rejection"/ { f = 1 } f && /"seconds"/ { gsub(/,/, "", $2); print $2; exit }' "$tmp/out2/run.json")
	awk -v m="$m" -v ef="$e_full" -v ec="$e_cached" -v bl="$b_loop" -v be="$b_empty" -v bw="$best_bare" -v n="$n" 'BEGIN {
		eng = (ef - ec) / m; bare = (bl - be) / m; ips = bare * n / bw
		printf "instruction counts (callgrind, %d simulations)\n", m
		printf "  engine run minus cached run (simulate + observation + ABC): %.0f instructions per simulation\n", eng
		printf "  bare loop:                                                  %.0f instructions per simulation\n", bare
		printf "  overhead: %.0f instructions per simulation = %.3f us at the bare loop'"'"'s %.2f G instr/s\n", eng - bare, (eng - bare) / ips * 1e6, ips / 1e9
		printf "  (an upper bound: it also counts the ABC step on these simulations)\n"
	}'
fi
echo "reproduce: bash tests/bench/sim_overhead.sh $n"
