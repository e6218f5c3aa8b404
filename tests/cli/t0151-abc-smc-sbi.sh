#!/bin/bash
# sbi.abc.smc{ scheme = "sbi" } (the reference package's SMC-ABC) on a
# conjugate normal model: the analytic posterior within 5 standard errors,
# a fixed population, a strictly shrinking epsilon, the budget spent
# exactly, determinism for any --jobs; each option has its effect, and the
# options of the other scheme are refused.
. "$(dirname "$0")/lib.sh"

# theta ~ N(0, 1), x ~ N(theta, 0.5^2), x_obs = 1: posterior N(0.8, 0.2), sd 0.4472.
cat > smc.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local post = sbi.abc.smc { prior = prior, observation = sbi.observation { 1.0 }, seed = 11,
  scheme = "sbi", simulations = sbi.param("budget", 20000), particles = 1000, populations = sbi.param("pops", 8),
  num_samples = 4000, kde = sbi.param("kde", false), weighted = ({ ["true"] = true, ["false"] = false })[sbi.param("weighted", "default")],
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal() } end }
sbi.output { posterior_samples = post }
EOF2
run smc.lua --quiet --jobs 2
expect_ok
expect_out "4000 samples (SMC-ABC (sbi scheme)"
# The budget is spent exactly: population 0 takes 5 x 1000 prior
# simulations, the last population ends with the 20,000th.
expect_out "1000 of 20000 simulations accepted"
pops=$(grep -c 'population [0-9]*: epsilon = [0-9.e+-]*, 1000 particles' "$ERR")
in_range "$pops" 3 8 "populations of 1000 particles"
grep -qF 'population 0: epsilon = ' "$ERR" && grep -qF '5000 simulations (5000 of the budget used, 5000 run)' "$ERR" ||
	fail "population 0 is not 5 x 1000 prior simulations: $(grep 'population 0' "$ERR")"
eps=$(grep -o 'population [0-9]*: epsilon = [0-9.e+-]*' "$ERR" | awk '{ print $5 }')
echo "$eps" | awk 'NR > 1 && !($1 < prev) { bad = 1 } { prev = $1 } END { exit bad }' ||
	fail "epsilon does not decrease across populations: $eps"
# The last populations' epsilon (about 0.08-0.19 in x) inflates the
# posterior variance by at most 0.8^2 x 0.19^2 / 3 (sd 0.4472 -> 0.456).
# The draws are by weight from 1000 particles of ESS about 800: standard
# errors 0.016 (mean) and 0.012 (sd); the tolerances are 5 of them.
read -r m s <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
within "$m" 0.8 0.08 "posterior mean"
within "$s" 0.452 0.06 "posterior sd"
cp sbirun-out/smc/posterior_samples.csv first.csv

# Deterministic: a fresh cache with one job gives the same bytes.
rm -rf .sbirun
run smc.lua --quiet --jobs 1
expect_ok
cmp -s first.csv sbirun-out/smc/posterior_samples.csv || fail "--jobs 1 and --jobs 2 differ"

# kde = true (sbibm's KDE: a cross-validated bandwidth h): only the final
# step runs. With the weights (weighted = true), the posterior, its sd
# widened by h (about 0.1 here: sqrt(0.456^2 + 0.1^2) = 0.467).
run smc.lua --quiet --set kde=true --set weighted=true
expect_ok
expect_eq "$(ran_nodes sbirun-out/smc/run.json)" 1 "kde = true: steps that ran"
h=$(grep -o 'KDE bandwidth [0-9.e+-]*' "$ERR" | awk '{ print $3 }')
in_range "$h" 0.03 0.25 "the cross-validated bandwidth"
read -r mk sk <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
within "$mk" 0.8 0.08 "posterior mean with kde"
within "$sk" 0.467 0.07 "posterior sd with kde"
cmp -s sbirun-out/smc/posterior_samples.csv first.csv && fail "kde = true gave the same samples as without"
# Without them (kde's default, as sbibm), the particles as they are: drawn
# from the proposal, their mean leans toward x_obs = 1 (about 0.9: the
# proposal N(0.8, 1.5 x 0.2) times the likelihood) and their sd is smaller.
run smc.lua --quiet --set kde=true
expect_ok
read -r mu su <<<"$(col_stats sbirun-out/smc/posterior_samples.csv 1)"
awk -v a="$mu" 'BEGIN { exit !(a > 0.86) }' || fail "unweighted KDE mean $mu is not above 0.86"

# Each option: a recipe with one more option.
with() { # NAME 'OPTIONS': writes NAME.lua
	sed -e "s/scheme = \"sbi\",/scheme = \"sbi\", $2,/" smc.lua > "$1.lua"
}
eps1() { grep -o 'population 1: epsilon = [0-9.e+-]*' "$ERR" | awk '{ print $5 }'; }
eps0() { grep -o 'population 0: epsilon = [0-9.e+-]*' "$ERR" | awk '{ print $5 }'; }
run smc.lua --quiet --set budget=8000
expect_ok
e1=$(eps1)
# epsilon_decay = 0.5: a larger epsilon_1 (half the distances' sum, not a fifth).
with dec 'epsilon_decay = 0.5'
run dec.lua --quiet --set budget=8000
expect_ok
awk -v a="$(eps1)" -v b="$e1" 'BEGIN { exit !(a > 1.3 * b) }' || fail "epsilon_decay = 0.5: epsilon_1 $(eps1) against $e1"
# distance_based_decay = false: epsilon_1 = epsilon_decay x epsilon_0.
with fixed 'distance_based_decay = false, epsilon_decay = 0.8'
run fixed.lua --quiet --set budget=8000
expect_ok
awk -v a="$(eps1)" -v b="$(eps0)" 'BEGIN { r = a / b; exit !(r > 0.799 && r < 0.801) }' ||
	fail "distance_based_decay = false: epsilon_1 $(eps1), epsilon_0 $(eps0)"
# initial_round_factor = 2: population 0 is 2,000 prior simulations.
with init 'initial_round_factor = 2'
run init.lua --quiet --set budget=8000
expect_ok
expect_err "2000 simulations (2000 of the budget used, 2000 run)"
# ess_min = 1: every population after the first is resampled to equal weights.
with ess 'ess_min = 1'
run ess.lua --quiet --set budget=8000
expect_ok
expect_err "below ess_min: resampled"
# use_last_pop_samples = false: the budget ends inside a population, and
# the previous population is the result.
with last 'use_last_pop_samples = false'
run last.lua --quiet --set budget=8000
expect_ok
expect_err "the previous population is the result"
# kernel_scale, weighted: other samples.
with opt 'kernel_scale = 2'
run opt.lua --quiet
expect_ok
cmp -s sbirun-out/opt/posterior_samples.csv first.csv && fail "kernel_scale = 2 gave the default's samples"
run smc.lua --quiet --set weighted=false
expect_ok
cmp -s sbirun-out/smc/posterior_samples.csv first.csv && fail "weighted = false gave the default's samples"
# scale = "std": with two data values of different spread the distances
# (unscaled by default, as sbi's "l2") change, and so does the result.
sed -e 's/return { theta\[1\] + 0.5 \* rng:normal() }/return { theta[1] + 0.5 * rng:normal(), 10 * rng:normal() }/' \
	-e 's/sbi.observation { 1.0 }/sbi.observation { 1.0, 0 }/' -e 's/scheme = "sbi",/scheme = "sbi", scale = sbi.param("scale", "none"),/' \
	smc.lua > two.lua
run two.lua --quiet --set budget=8000
expect_ok
cp sbirun-out/two/posterior_samples.csv none.csv
run two.lua --quiet --set budget=8000 --set scale=std
expect_ok
cmp -s sbirun-out/two/posterior_samples.csv none.csv && fail "scale = \"std\" gave the unscaled samples"
# populations = 2: populations 0 and 1 only.
run smc.lua --set pops=2
expect_ok
expect_eq "$(grep -c 'population [0-9]*: epsilon' "$ERR")" 2 "populations = 2"
expect_err "2 populations, stopped by 'populations'"
# Errors that name the option.
sed -e 's/simulations = sbi.param("budget", 20000),//' smc.lua > nobudget.lua
run nobudget.lua --quiet
expect_fail
expect_err "scheme = \"sbi\" needs 'simulations'"
with spp 'sims_per_population = 1000'
run spp.lua --quiet
expect_fail
expect_err "'sims_per_population' does not apply with scheme = \"sbi\""
with big 'epsilon_decay = 1.5'
run big.lua --quiet
expect_fail
expect_err "'epsilon_decay' (1.5)"
sed -e 's/scheme = "sbi", simulations = sbi.param("budget", 20000), particles = 1000,/sims_per_population = 1000, initial_round_factor = 3,/' \
	smc.lua > apmc.lua
run apmc.lua --quiet
expect_fail
expect_err "'initial_round_factor' only applies with scheme = \"sbi\""
sed -e 's/scheme = "sbi",/scheme = "pmc",/' smc.lua > sch.lua
run sch.lua --quiet
expect_fail
expect_err "scheme"
finish
