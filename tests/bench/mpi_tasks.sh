#!/bin/bash
# Benchmark (not a test): the tasks the MPI backend spreads besides chunks
# (docs/cluster.md): the diagnostics' test points (NLE's expected coverage,
# a slice sampler per test point) and the members of an SNPE ensemble,
# without mpirun and on 1 and 2 ranks (mpi_tasks_recipe.lua).
#
#   bash tests/bench/mpi_tasks.sh [SBIRUN]
#
# Seconds are the steps' (run.json): the test-point step, and SNPE's two
# training steps summed; best of 3 (the machine may be shared). Every run
# has --jobs 1 (one thread per rank), so the ranks are what scales. Needs
# an sbirun built with MPI and mpirun.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sbirun=${1:-$here/../../build/lang/sbirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# once RANKS: runs the recipe (RANKS 0: without mpirun) with a fresh cache;
# prints the test-point step's seconds, SNPE's training steps' seconds and
# the run's wall seconds.
once() {
	rm -rf "$tmp/cache" "$tmp/out"
	local cmd=("$sbirun" "$here/mpi_tasks_recipe.lua" --cache "$tmp/cache" --out "$tmp/out" --quiet --jobs 1)
	local t0 t1
	t0=$(date +%s.%N)
	if [ "$1" -eq 0 ]; then "${cmd[@]}" >/dev/null 2>&1; else
		mpirun --oversubscribe --bind-to none -n "$1" "${cmd[@]}" >/dev/null 2>&1; fi
	t1=$(date +%s.%N)
	awk -v wall="$(echo "$t1 - $t0" | bc)" '/"kind": / { k = $2 } /"seconds"/ && k != "" {
		gsub(/,/, "", $2); if (k ~ /diagnose.ranks/) d += $2; if (k ~ /snpe.train/) t += $2; k = "" }
		END { printf "%.2f %.2f %.2f\n", d, t, wall }' "$tmp/out/run.json"
}
# best RANKS: the fastest of 3 runs, field by field.
best() {
	local runs
	runs=$(for _ in 1 2 3; do once "$1"; done)
	echo "$runs" | awk 'NR == 1 || $1 < d { d = $1 } NR == 1 || $2 < t { t = $2 } NR == 1 || $3 < w { w = $3 }
		END { printf "%.2f %.2f %.2f\n", d, t, w }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; bash tests/bench/mpi_tasks.sh"
printf "%-14s %22s %22s %10s\n" "" "coverage test points" "SNPE ensemble training" "wall"
for n in 0 1 2; do
	read -r d t w <<<"$(best "$n")"
	[ "$n" -ne 0 ] || { d0=$d; t0=$t; }
	label=$([ "$n" -eq 0 ] && echo "plain" || echo "mpirun -n $n")
	printf "%-14s %14s s %5.2fx %14s s %5.2fx %8s s\n" "$label" "$d" "$(echo "$d0 / $d" | bc -l)" "$t" \
		"$(echo "$t0 / $t" | bc -l)" "$w"
done
