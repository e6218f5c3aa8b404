#!/bin/bash
# Sequential NPE on the tutorial model agrees with the exact-likelihood
# posterior (method=likelihood) and is tighter than single-round NPE with
# the same budget and flow: TSNPE (sbi.snpe{ truncate = true }, the
# tutorial's method=tsnpe) in 10 rounds of 1,000 simulations against NPE
# on 10,000 prior simulations, both a MAF with the default network and
# training options, seed 1.
#
# Tolerances (measured, docs/benchmarks-sequential.md "The tutorial
# model"): z = (mean - exact mean) / exact sd. The Monte Carlo part of z
# is small (10,000 flow draws: 0.01; the test's 10,000 MCMC draws of the
# exact posterior against 100,000: at most 0.035); the rest is the
# estimator's error, which a change of seed redraws, and so does a change
# of the training's numerics: another CPU (OpenBLAS picks its kernels by
# CPU, so products round differently) takes the training down another
# path. Measured over seeds 1-5 on two CPUs (an AVX-512 Intel and an AMD
# EPYC; 10 runs, 50 z): rms 0.11, each run's rms over the five parameters
# 0.06-0.23, the largest |z| 0.46 (seed 1 on the EPYC: b). The issue's
# 0.1 sd is the typical error, not a bound that every parameter of every
# run meets. The test asserts: every |z| <= 0.6 (about 5 x the rms 0.11,
# above the largest seen), the rms of the five z <= 0.3 (the worst run
# 0.23), every sd ratio to the exact sd in 0.7-1.15 (measured 0.78-1.02:
# TSNPE is slightly narrow) and the average sd ratio TSNPE / NPE <= 0.9
# (measured 0.76): that last check, not the means, is what single-round
# NPE (rms 0.27 in this test) fails. A mean off by a broken proposal
# correction or loss is off by far more than 0.6 sd. Sequential NPE
# trained with the plain loss on untruncated posterior proposals learns
# the proposal posterior, too narrow (sd ratios 0.55-0.73, measured with 3
# rounds of 1,000 for the previous version of this test), and so does
# TSNPE without warm starts (0.68-0.73 at 5 x 1,000): the band catches both.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" tutorial.lua
common=(--set simulations=10000 --set num_samples=10000 --quiet) train=() rounds=10
# Under the sanitizers (3-4 times slower): the same steps on 1,500
# simulations (TSNPE: 3 rounds of 500), 20 epochs and 1,000 samples,
# checked for memory errors and finite output only.
sanitized && common=(--set simulations=1500 --set num_samples=1000 --quiet) train=(--set max_epochs=20) rounds=3
run tutorial.lua --out lik --set method=likelihood "${common[@]}"
expect_ok
run tutorial.lua --out tsnpe --set method=tsnpe --set rounds=$rounds "${common[@]}" "${train[@]}"
expect_ok
run tutorial.lua --out npe --set method=npe --set density=maf "${common[@]}" "${train[@]}"
expect_ok
if sanitized; then
	for f in lik tsnpe npe; do
		for c in 1 2 3 4 5; do numbers "$f column $c" $(col_stats $f/posterior_samples.csv "$c"); done
		expect_eq "$(($(wc -l <$f/posterior_samples.csv) - 1))" 1000 "$f: samples"
	done
	finish
fi

sum_ratio=0 sum_z2=0
names=(l m s a b)
for c in 1 2 3 4 5; do
	read -r ml sl <<<"$(col_stats lik/posterior_samples.csv "$c")"
	read -r ms ss <<<"$(col_stats tsnpe/posterior_samples.csv "$c")"
	read -r mn sn <<<"$(col_stats npe/posterior_samples.csv "$c")"
	numbers "posterior statistics of ${names[c - 1]}" "$ml" "$sl" "$ms" "$ss" "$mn" "$sn" || continue
	z=$(awk -v a="$ms" -v b="$ml" -v s="$sl" 'BEGIN { printf "%.3f", (a - b) / s }')
	zn=$(awk -v a="$mn" -v b="$ml" -v s="$sl" 'BEGIN { printf "%.3f", (a - b) / s }')
	in_range "$z" -0.6 0.6 "TSNPE mean of ${names[c - 1]} minus the exact mean, in exact posterior sd"
	in_range "$(awk -v a="$ss" -v b="$sl" 'BEGIN { printf "%.3f", a / b }')" 0.7 1.15 \
		"TSNPE sd of ${names[c - 1]} / the exact sd"
	sum_ratio=$(awk -v t="$sum_ratio" -v a="$ss" -v b="$sn" 'BEGIN { printf "%.4f", t + a / b }')
	sum_z2=$(awk -v t="$sum_z2" -v z="$z" 'BEGIN { printf "%.6f", t + z * z }')
	echo "${names[c - 1]}: exact $ml ($sl), TSNPE $ms ($ss, $z sd off), NPE $mn ($sn, $zn sd off)"
done
in_range "$(awk -v t="$sum_z2" 'BEGIN { printf "%.3f", sqrt(t / 5) }')" 0 0.3 \
	"rms over the parameters of TSNPE's mean minus the exact mean, in exact posterior sd"
in_range "$(awk -v t="$sum_ratio" 'BEGIN { printf "%.3f", t / 5 }')" 0 0.9 "average sd ratio TSNPE / NPE"

# --set density names the methods it applies to.
run tutorial.lua --out bad --set method=nre --set density=maf --quiet
expect_fail
expect_err "--set density=maf: applies to methods npe, nle, snpe, tsnpe and snle (got nre)"
finish
