#!/bin/bash
# SNPE on the tutorial model, 5 rounds of 1,000 simulations: its posterior
# is tighter than single-round NPE's with the same 5,000 simulations and
# agrees with the exact-likelihood posterior (method=likelihood).
#
# Tolerances (measured, docs/benchmarks-sequential.md "The tutorial
# model"): the Monte Carlo error of the compared means is small (10,000
# independent SNPE draws: 0.01 exact sd; two MCMC runs of the exact
# posterior differ by at most 0.03 sd), so what the bound must hold is the
# estimator's own error at 5,000 simulations, which varies with the seed:
# seed 1 gives means 0.06-0.54 exact sd from the exact means (sd ratios
# 0.82-1.04), seed 2 0.36-0.49 (1.07-1.16); 10 rounds of 1,000 bring it to
# 0.21, 5 rounds of 2,000 do not (0.49). The issue's 0.1 sd is not
# reachable at a CI budget. Single-round NPE's mean of s is 1.07 sd off and
# its sd of m 1.25 times the exact. The bounds (means within 0.6 sd, sd
# ratios 0.75-1.25, the average sd ratio SNPE/NPE at most 0.95) hold for
# SNPE and NPE fails the first, as would SNPE trained without the atomic
# loss (it learns the proposal posterior, too narrow: sd ratios 0.55-0.73
# measured with 3 rounds of 1,000).
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" tutorial.lua
common=(--set simulations=5000 --set num_samples=10000 --quiet)
run tutorial.lua --out lik --set method=likelihood "${common[@]}"
expect_ok
run tutorial.lua --out snpe --set method=snpe --set rounds=5 "${common[@]}"
expect_ok
run tutorial.lua --out npe --set method=npe "${common[@]}"
expect_ok

sum_ratio=0
names=(l m s a b)
for c in 1 2 3 4 5; do
	read -r ml sl <<<"$(col_stats lik/posterior_samples.csv "$c")"
	read -r ms ss <<<"$(col_stats snpe/posterior_samples.csv "$c")"
	read -r mn sn <<<"$(col_stats npe/posterior_samples.csv "$c")"
	numbers "posterior statistics of ${names[c - 1]}" "$ml" "$sl" "$ms" "$ss" "$mn" "$sn" || continue
	z=$(awk -v a="$ms" -v b="$ml" -v s="$sl" 'BEGIN { printf "%.3f", (a - b) / s }')
	in_range "$z" -0.6 0.6 "SNPE mean of ${names[c - 1]} minus the exact mean, in exact posterior sd"
	in_range "$(awk -v a="$ss" -v b="$sl" 'BEGIN { printf "%.3f", a / b }')" 0.75 1.25 \
		"SNPE sd of ${names[c - 1]} / the exact sd"
	sum_ratio=$(awk -v t="$sum_ratio" -v a="$ss" -v b="$sn" 'BEGIN { printf "%.4f", t + a / b }')
	echo "${names[c - 1]}: exact $ml ($sl), SNPE $ms ($ss, $z sd off), NPE $mn ($sn)"
done
in_range "$(awk -v t="$sum_ratio" 'BEGIN { printf "%.3f", t / 5 }')" 0 0.95 "average sd ratio SNPE / NPE"
finish
