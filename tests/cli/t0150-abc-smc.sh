#!/bin/bash
# SMC-ABC (sbi.abc.smc, adaptive population Monte Carlo ABC) on a conjugate
# normal model recovers the analytic posterior, keeps a fixed population,
# shrinks epsilon population by population, respects the simulation budget
# and is deterministic.
. "$(dirname "$0")/lib.sh"

# theta ~ N(0, 1), x ~ N(theta, 0.5^2), x_obs = 1: posterior N(0.8, 0.2), sd 0.4472.
cat > smc.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local post = sbi.abc.smc { prior = prior, observation = sbi.observation { 1.0 }, seed = 11,
  sims_per_population = sbi.param("n", 8000), populations = sbi.param("T", 5),
  simulations = sbi.param("budget", 1000000000), kde = sbi.param("kde", false) or nil,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal() } end }
sbi.output { posterior_samples = post }
EOF2
run smc.lua --quiet --jobs 2
expect_ok
expect_out "1000 samples (SMC-ABC"
# The final population holds exactly particles = 0.5 x 8000 = 4000 rows.
expect_out "4000 of 40000 simulations accepted"
# Every population holds 4000 particles (the population never shrinks).
[ "$(grep -c 'population [0-9]*): epsilon = [0-9.e+-]*, 4000 particles,' "$ERR")" -eq 5 ] ||
	fail "not every population holds 4000 particles: $(grep 'epsilon =' "$ERR")"
# The last population has 4000 particles (ESS about 3500) at epsilon about
# 0.126 scaled units (0.141 in x): the epsilon inflates the posterior
# variance by about 0.8^2 x 0.141^2 / 3 (sd 0.4472 -> 0.452). Standard
# errors of the 1000 resampled draws plus ESS >= 3000: mean 0.016, sd 0.012;
# the tolerances are 5 of them.
read -r m s <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
within "$m" 0.8 0.08 "SMC-ABC posterior mean"
within "$s" 0.452 0.06 "SMC-ABC posterior sd"
# epsilon decreases strictly population by population (here from about 0.97 to 0.13)
eps=$(grep -o 'population [0-9]*): epsilon = [0-9.e+-]*' "$ERR" | awk '{ print $5 }')
[ "$(echo "$eps" | wc -l)" -eq 5 ] || fail "expected 5 populations, got: $eps"
echo "$eps" | awk 'NR > 1 && !($1 < prev) { bad = 1 } { prev = $1 } END { exit bad }' ||
	fail "epsilon does not decrease across populations: $eps"
in_range "$(echo "$eps" | tail -1)" 0.08 0.2 "the last population's epsilon"
cp sbirun-out/smc/posterior_samples.csv first.csv

# kde = true: the same populations (only the final resampling re-runs),
# draws smoothed by a Gaussian KDE with a cross-validated bandwidth; its sd
# widens by at most a few percent (bandwidth factor below 0.3).
run smc.lua --quiet --jobs 2 --set kde=true
expect_ok
expect_eq "$(ran_nodes sbirun-out/smc/run.json)" 1 "kde = true: steps that ran"
read -r mk sk <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
within "$mk" 0.8 0.08 "SMC-ABC posterior mean with kde"
within "$sk" 0.452 0.07 "SMC-ABC posterior sd with kde"
cmp -s sbirun-out/smc/posterior_samples.csv first.csv && fail "kde = true gave the same samples as without"

# Population 0 alone (rejection ABC keeping half the prior simulations) is
# much broader: its sd is about 0.64.
run smc.lua --quiet --set T=1
expect_ok
read -r m0 s0 <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
in_range "$s0" 0.58 0.72 "population 0 sd (broader than the final population's)"
awk -v a="$s" -v b="$s0" 'BEGIN { exit !(a + 0.12 < b) }' || fail "SMC-ABC sd $s is not tighter than population 0's $s0"

# Deterministic: a fresh cache with one job gives the same bytes.
rm -rf .sbirun
run smc.lua --quiet --jobs 1
expect_ok
cmp -s first.csv sbirun-out/smc/posterior_samples.csv || fail "two SMC-ABC runs differ"

# The budget: 8000 per population and 20000 in all stops after 2 populations
# (a third would need 24000); the later populations pass through and simulate nothing.
run smc.lua --set budget=20000 --set n=8000
expect_ok
expect_out "of 16000 simulations accepted"
[ "$(grep -c 'population [0-9]*): epsilon' "$ERR")" -eq 2 ] || fail "the budget did not stop after 2 populations"
# raising the number of populations reuses the ones already run
run smc.lua --quiet --set T=6
expect_ok
[ "$(grep -c 'population [0-9]*): epsilon' "$ERR")" -eq 1 ] || fail "T=6 after T=5 should run only population 5"

# epsilon: population 2's epsilon (about 0.25) is above 0.2, population 3's
# (about 0.17) below: population 3 is the last.
sed -e 's/seed = 11,/seed = 11, epsilon = 0.2,/' smc.lua > eps.lua
run eps.lua --quiet
expect_ok
[ "$(grep -c 'population [0-9]*): epsilon' "$ERR")" -eq 4 ] || fail "epsilon = 0.2 did not stop after 4 populations"
e3=$(grep -o 'epsilon = [0-9.e+-]*)' "$OUT" | tr -d ')' | awk '{ print $3 }')
in_range "$e3" 0.1 0.2 "the epsilon that stopped the run"
# min_acceptance: the acceptance rates (new particles kept / new
# simulations) are about 0.5, 0.28, 0.21: 0.25 stops after population 2.
sed -e 's/seed = 11,/seed = 11, min_acceptance = 0.25,/' smc.lua > acc.lua
run acc.lua --quiet
expect_ok
[ "$(grep -c 'population [0-9]*): epsilon' "$ERR")" -eq 3 ] || fail "min_acceptance = 0.25 did not stop after 3 populations"

# particles: the population size, whatever the quantile; every population holds it.
sed -e 's/seed = 11,/seed = 11, particles = 3000,/' smc.lua > part.lua
run part.lua --quiet --jobs 2
expect_ok
expect_out "3000 of 40000 simulations accepted"
[ "$(grep -c 'epsilon = [0-9.e+-]*, 3000 particles,' "$ERR")" -eq 5 ] || fail "particles = 3000: $(grep 'epsilon =' "$ERR")"
read -r mp sp <<<"$(col_stats sbirun-out/part/posterior_samples.csv 1)"
within "$mp" 0.8 0.08 "SMC-ABC posterior mean with particles = 3000"
sed -e 's/seed = 11,/seed = 11, particles = 9000,/' smc.lua > big.lua
run big.lua --quiet
expect_fail
expect_err "'particles' (9000) must be between 2 and 'sims_per_population' (8000)"
sed -e 's/seed = 11,/seed = 11, particles = 100, quantile = 0.1,/' smc.lua > both.lua
run both.lua --quiet
expect_fail
expect_err "give either 'quantile' or 'particles', not both"

# adjust = "linear": theta | x is N(0.8 x, 0.2) here, so the weighted
# regression adjustment of population 0 alone (sd about 0.64 unadjusted)
# recovers the posterior N(0.8, 0.4472^2) whatever epsilon; a broken or
# absent adjustment leaves the sd near 0.64. Tolerances: 5 standard errors
# of 1000 draws from 4000 particles.
sed -e 's/seed = 11,/seed = 11, adjust = sbi.param("adjust", "none"), weighted = sbi.param("weighted", true),/' \
	smc.lua > adj.lua
run adj.lua --quiet --set T=1 --set adjust=linear
expect_ok
expect_out "SMC-ABC, linear adjustment"
read -r ma sa <<<"$(col_stats sbirun-out/adj/posterior_samples.csv 1)"
within "$ma" 0.8 0.08 "adjusted population 0's mean"
within "$sa" 0.447 0.06 "adjusted population 0's sd"
cp sbirun-out/adj/posterior_samples.csv adj1.csv
# weighted = false: population 0's weights are already equal (same bytes);
# after 5 populations the particles are drawn without their importance
# weights, which moves the result (here the mean to about 0.94: the
# proposal's bias that the weights correct).
run adj.lua --quiet --set T=1 --set adjust=linear --set weighted=false
expect_ok
cmp -s sbirun-out/adj/posterior_samples.csv adj1.csv || fail "weighted = false changed population 0's result"
run adj.lua --quiet --set adjust=linear
expect_ok
read -r mw sw <<<"$(col_stats sbirun-out/adj/posterior_samples.csv 1)"
within "$mw" 0.8 0.08 "adjusted mean after 5 populations"
within "$sw" 0.447 0.06 "adjusted sd after 5 populations"
run adj.lua --quiet --set adjust=linear --set weighted=false
expect_ok
read -r mu su <<<"$(col_stats sbirun-out/adj/posterior_samples.csv 1)"
awk -v a="$mw" -v b="$mu" 'BEGIN { d = a - b; exit !(d > 0.03 || d < -0.03) }' ||
	fail "weighted = false did not change the result ($mw against $mu)"
# A data column constant in every simulation is left out of the regression
# (without that, the fit is singular and the run fails).
cat > const.lua <<'EOF2'
local sbi = require "sbi"
local post = sbi.abc.smc { prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }, seed = 11,
  observation = sbi.observation { 1.0, 0 }, sims_per_population = 8000, populations = 1, adjust = "linear",
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal(), 0 } end }
sbi.output { posterior_samples = post }
EOF2
run const.lua --quiet
expect_ok
read -r mc sc <<<"$(col_stats sbirun-out/const/posterior_samples.csv 1)"
within "$sc" 0.447 0.06 "adjusted sd with a constant data column"
run adj.lua --quiet --set adjust=quadratic
expect_fail
expect_err "adjust"
# kernel_scale: a step of 0.5 x the population's covariance instead of 2 x
# still finds the posterior.
sed -e 's/seed = 11,/seed = 11, kernel_scale = 0.5,/' smc.lua > ks.lua
run ks.lua --quiet
expect_ok
read -r mk sk <<<"$(col_stats sbirun-out/ks/posterior_samples.csv 1)"
within "$mk" 0.8 0.08 "kernel_scale = 0.5 mean"
within "$sk" 0.452 0.06 "kernel_scale = 0.5 sd"
cmp -s sbirun-out/ks/posterior_samples.csv first.csv && fail "kernel_scale = 0.5 gave the default's samples"

run smc.lua --set budget=100
expect_fail
expect_err "'simulations' (100) is less than one population's 8000 simulations"
finish
