#!/bin/bash
# Benchmark (not a test): the MPI backend (docs/cluster.md). Simulations per
# second against the number of ranks (plain, 1, 2) for a cheap simulator and
# a slow one (a busy loop calibrated to about 1 ms a call), the per-chunk
# costs, and the efficiency at 100 and 1,000 ranks projected from them.
#
#   bash tests/bench/mpi_scaling.sh [SBIRUN]
#
# Seconds are the simulate step's, from run.json, best of 3 (the machine
# may be shared). Every run has --jobs 1 (one process per rank), so the
# ranks are what scales. Needs an sbirun built with MPI and mpirun.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sbirun=${1:-$here/../../build/lang/sbirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# once RANKS ARGS...: runs the recipe (RANKS 0: without mpirun) with a fresh
# cache; prints the simulate step's seconds, rank 0's serve seconds and the
# results it received.
once() {
	local n=$1
	shift
	rm -rf "$tmp/cache" "$tmp/out"
	local cmd=("$sbirun" "$here/mpi_recipe.lua" --cache "$tmp/cache" --out "$tmp/out" --quiet --jobs 1 "$@")
	if [ "$n" -eq 0 ]; then "${cmd[@]}" >/dev/null; else
		mpirun --oversubscribe --bind-to none -n "$n" "${cmd[@]}" >/dev/null; fi
	awk '/"kind": "simulate"/ { f = 1 } f && /"seconds"/ && !s { gsub(/,/, "", $2); s = $2 }
	     /"results_received"/ { gsub(/,/, "", $2); r = $2 } /"serve_seconds"/ { gsub(/,/, "", $2); v = $2 }
	     /"message_seconds"/ { m = $2 } END { print s, v + 0, r + 0, m + 0 }' "$tmp/out/run.json"
}
# best RANKS ARGS...: the run of the fastest simulate step of 3.
best() {
	local b="" line
	for _ in 1 2 3; do
		line=$(once "$@")
		if [ -z "$b" ] || awk -v a="${line%% *}" -v c="${b%% *}" 'BEGIN { exit !(a < c) }'; then b=$line; fi
	done
	echo "$b"
}

# Calibrate the slow simulator: work iterations for about 1 ms a call.
probe=$(once 0 --set work=20000 --set simulations=200 --set chunk=200)
work=$(awk -v s="${probe%% *}" 'BEGIN { printf "%d", 20000 * 0.001 / (s / 200) }')
echo "slow simulator: work = $work iterations = about 1 ms a call on this machine"
echo

report() { # NAME N ARGS...
	local name=$1 n=$2
	shift 2
	local p r1 r2
	p=$(best 0 "$@")
	r1=$(best 1 "$@")
	r2=$(best 2 "$@")
	awk -v name="$name" -v n="$n" -v p="$p" -v a="$r1" -v b="$r2" 'BEGIN {
		split(p, P, " "); split(a, A, " "); split(b, B, " ")
		printf "%s, %d simulations:\n", name, n
		printf "  plain (no mpirun)  %8.3f s  %10.0f sims/s\n", P[1], n / P[1]
		printf "  mpirun -n 1        %8.3f s  %10.0f sims/s\n", A[1], n / A[1]
		printf "  mpirun -n 2        %8.3f s  %10.0f sims/s  (%.2fx the plain run)\n", B[1], n / B[1], P[1] / B[1]
	}'
}
report "cheap simulator (chunks of 10000)" 1000000 --set simulations=1000000 --set chunk=10000
report "slow simulator, 1 ms a call (chunks of 50)" 2000 --set simulations=2000 --set chunk=50 --set work="$work"
echo

# Per-chunk costs, with chunks of 10 cheap simulations (so the chunks'
# own work is small): a plain run's cost per chunk (mostly storing it in
# the cache), and rank 0's serve time per chunk another rank returned
# (receive its rows, store them, send the next chunk index), measured
# inside sbirun (run.json's mpi.serve_seconds / results_received).
n=20000
plain_small=$(best 0 --set simulations=$n --set chunk=10)
plain_big=$(best 0 --set simulations=$n --set chunk=$n)
mpi_small=$(best 2 --set simulations=$n --set chunk=10)
read -r ps _ <<<"$plain_small"
read -r pb _ <<<"$plain_big"
read -r _ serve recv msg <<<"$mpi_small"
store_us=$(awk -v a="$ps" -v b="$pb" -v c=$((n / 10)) 'BEGIN { printf "%.1f", (a - b) / c * 1e6 }')
serve_us=$(awk -v s="$serve" -v r="$recv" 'BEGIN { printf "%.1f", s / r * 1e6 }')
msg_us=$(awk -v s="$msg" -v r="$recv" 'BEGIN { printf "%.1f", s / r * 1e6 }')
echo "per chunk (chunks of 10 simulations, $((n / 10)) chunks):"
echo "  plain run, cost of a chunk beyond its simulations (storing it): $store_us us"
echo "  rank 0, serving a chunk another rank ran (receive, store, send): $serve_us us"
echo "  of which MPI calls (receive the result, send the next index):  $msg_us us (the messaging overhead)"
echo

# Projection (on paper): rank 0 serves chunks one at a time, so P ranks
# each finishing a chunk every Tc seconds need (P - 1) / Tc services per
# second, and rank 0 gives 1 / serve. Efficiency = min(1, Tc / ((P - 1) *
# serve)), with rank 0 not computing beyond 16 ranks; the workers' own
# per-chunk cost is hidden by the three chunks queued per rank.
echo "projected efficiency (a projection from the figures above, not a measurement):"
for tc_name in "1 ms simulator, chunks of 50 (Tc = 0.05 s):0.05" \
	"1 ms simulator, chunks of 10000 (the default; Tc = 10 s):10" \
	"cheap simulator (1 us), chunks of 10000 (Tc = 0.01 s):0.01"; do
	name=${tc_name%:*} tc=${tc_name##*:}
	awk -v name="$name" -v tc="$tc" -v s="$serve_us" 'BEGIN {
		serve = s / 1e6
		e1 = tc / (99 * serve); if (e1 > 1) e1 = 1
		e2 = tc / (999 * serve); if (e2 > 1) e2 = 1
		printf "  %-58s 100 ranks: %5.1f%%   1000 ranks: %5.1f%%\n", name, 100 * e1, 100 * e2
	}'
done
