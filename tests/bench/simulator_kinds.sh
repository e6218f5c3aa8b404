#!/bin/bash
# Benchmark (not a test): throughput of one model's simulator as a Lua
# function, a C plugin and an external program (docs/simulators.md#cost),
# side by side: the conjugate Gaussian of recipes/examples/gauss_native.lua
# (2 parameters, 2 values, two normal draws a simulation).
#
#   bash tests/bench/simulator_kinds.sh [BUILD_DIR] [N] [JOBS]
#
# BUILD_DIR defaults to build/ (it needs build/recipes/examples/), N to
# 1,000,000 simulations, JOBS to 1. Prints, per kind, the simulate step's
# wall time (run.json's "seconds": what counts for a program, whose CPU time
# is its own process's) and sbirun's CPU time ("cpu_seconds": steadier on a
# shared machine, and free of the cache's fsyncs), simulations per second
# and microseconds per simulation (by wall time), and the command. The program is timed with
# batches of 1 and of 256 request lines (a round trip per simulation
# against one per batch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
n=${2:-1000000}
jobs=${3:-1}
sbirun=$build/lang/sbirun
ex=$build/recipes/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$ex"/gauss_native.lua "$ex"/gauss_plugin.c "$ex"/gauss_program.c "$ex"/libgauss_plugin.so "$ex"/gauss_program "$tmp"/
# A variant with the program in batches of 1.
sed 's/batch = 256,/batch = 1,/' "$tmp/gauss_native.lua" >"$tmp/gauss_native_b1.lua"
printf '%-12s %8s %8s %10s %8s   %s\n' kind wall_s cpu_s "sims/s" "us/sim" command
for kind in lua plugin command command_b1; do
	recipe=$tmp/gauss_native.lua
	sim=$kind
	if [ "$kind" = command_b1 ]; then
		recipe=$tmp/gauss_native_b1.lua
		sim=command
	fi
	cmd="$sbirun $recipe --set simulator=$sim --set simulations=$n --jobs $jobs --cache $tmp/cache-$kind --out $tmp/out-$kind --quiet"
	$cmd >/dev/null
	field() { awk -v k="\"$1\":" '/"kind": "simulate"/ { f = 1 } f && $1 == k { gsub(/,/, "", $2); print $2; exit }' "$tmp/out-$kind/run.json"; }
	awk -v k="$kind" -v s="$(field seconds)" -v cpu="$(field cpu_seconds)" -v n="$n" -v c="$cmd" \
		'BEGIN { printf "%-12s %8.3f %8.3f %10.0f %8.3f   %s\n", k, s, cpu, n / s, 1e6 * s / n, c }'
done
