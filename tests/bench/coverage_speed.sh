#!/bin/bash
# Benchmark (not a test): expected coverage of NPE and NLE on sbibm
# two_moons, 10,000 simulations, 200 test observations, 1,000 posterior
# samples each, on one thread (--jobs 1). Prints the CPU seconds of the
# coverage step (the test-set posteriors; training is cached and reported
# apart), per test point, the largest coverage deviation and, when
# ../shared/benchmarks/BASELINES.md has them, the reference package's
# `run_sbc` figures beside them (sbi 0.22, NLE: 20-chain slice sampler,
# 200 warm-up steps). NLE runs twice: with sbirun's diagnostic defaults
# (10 chains, 50 warm-up sweeps) and with the reference's (20, 200).
#
#   bash tests/bench/coverage_speed.sh
#   TESTS=20 bash tests/bench/coverage_speed.sh    # a quicker look
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
# shared/ sits beside the repository (or beside the folder of its worktrees).
baselines=$root/../shared/benchmarks/BASELINES.md
[ -f "$baselines" ] || baselines=$root/../../shared/benchmarks/BASELINES.md
tests=${TESTS:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The reference's CPU seconds per test point for NLE, from BASELINES.md
# ("= **5.46 CPU-s per test point**"), or empty.
ref_nle=""
if [ -f "$baselines" ]; then
	ref_nle=$(grep -o '\*\*[0-9.]* CPU-s per test point\*\*' "$baselines" | head -1 | grep -o '[0-9.]*' | head -1 || true)
fi

node_cpu() { # RUN_JSON KIND: cpu_seconds of the first node of KIND
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print("%.1f" % next(n["cpu_seconds"] for n in j["nodes"] if n["kind"] == sys.argv[2]))' "$1" "$2"
}

printf "| method | MCMC | tests | train CPU s | coverage CPU s | per test point s | ref run_sbc per test point s | speed-up | max deviation |\n"
printf "|---|---|---|---|---|---|---|---|---|\n"
for run in "npe - 10 50" "nle defaults 10 50" "nle reference 20 200"; do
	set -- $run
	m=$1 what=$2 chains=$3 warmup=$4
	out=$tmp/$m-$what
	"$sbirun" "$here/coverage_recipe.lua" --set method=$m --set tests="$tests" --set chains="$chains" \
		--set warmup="$warmup" --jobs 1 --cache "$tmp/cache-$m" --out "$out" >"$tmp/log" 2>"$tmp/err" || {
		echo "sbirun failed ($m $what):" >&2
		cat "$tmp/err" >&2
		exit 1
	}
	train=$(node_cpu "$out/run.json" "$m.train")
	[ "$(python3 -c 'import json, sys; print(next(n["state"] for n in json.load(open(sys.argv[1]))["nodes"] if n["kind"] == sys.argv[2]))' "$out/run.json" "$m.train")" = ran ] || train=cached
	cov=$(node_cpu "$out/run.json" diagnose.ranks)
	dev=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["diagnostics"][0]["value"])' "$out/run.json")
	per=$(awk -v c="$cov" -v n="$tests" 'BEGIN { printf "%.4f", c / n }')
	ref="-" speed="-"
	if [ "$m" = nle ] && [ -n "$ref_nle" ]; then
		ref=$ref_nle
		speed=$(awk -v r="$ref_nle" -v p="$per" 'BEGIN { printf "%.0fx", r / p }')
	fi
	mcmc=$([ "$m" = npe ] && echo "-" || echo "$chains chains, $warmup warm-up")
	printf "| %s | %s | %s | %s | %.2f | %s | %s | %s | %.3f |\n" "$m" "$mcmc" "$tests" "$train" "$cov" "$per" "$ref" \
		"$speed" "$dev"
done
