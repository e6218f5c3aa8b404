#!/bin/bash
# NPE, NLE and NRE on a conjugate Gaussian model recover the analytic
# posterior; the exact-likelihood MCMC does too. Changing only sampling
# options re-uses the trained estimator; changing training options re-uses
# the simulations; a new observation only re-runs sampling (amortized NPE).
. "$(dirname "$0")/lib.sh"


# theta ~ N(0, I_2), x ~ N(theta, 0.5^2 I): posterior N(0.8 x_obs, 0.2 I), sd 0.4472.
cat > model.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local sims = sbi.simulate { prior = prior, n = 2000, seed = 3,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() } end }
local obs = sbi.observation { sbi.param("x1", 1.0), -0.5 }
local method = sbi.param("method", "npe")
local common = { sims = sims, observation = obs, num_samples = sbi.param("num_samples", 4000),
                 seed = sbi.param("seed", 1) }
local post
if method == "npe" then
  common.learning_rate = sbi.param("lr", 5e-4)
  post = sbi.npe(common)
elseif method == "nle" then post = sbi.nle(common)
elseif method == "nre" then post = sbi.nre(common)
else
  post = sbi.likelihood { prior = prior, observation = obs, num_samples = 4000,
    loglik = function(theta, x)
      local a, b = (x[1] - theta[1]) / 0.5, (x[2] - theta[2]) / 0.5
      return -0.5 * (a * a + b * b)
    end }
end
sbi.output { posterior_samples = post }
EOF2

# Under the sanitizers: 500 simulations instead of 2,000, and finite
# posteriors instead of the accuracy checks (the normal build's).
if sanitized; then
	sed -i 's/n = 2000,/n = 500,/' model.lua
	grep -q 'n = 500,' model.lua || fail "model.lua: no n = 2000 to lower"
fi

check_posterior() { # METHOD TOL_MEAN TOL_SD
	read -r m1 s1 <<<"$(col_stats "sbirun-out/model/posterior_samples.csv" 1)"
	read -r m2 s2 <<<"$(col_stats "sbirun-out/model/posterior_samples.csv" 2)"
	if sanitized; then
		numbers "$1 posterior statistics" "$m1" "$s1" "$m2" "$s2"
		return
	fi
	within "$m1" 0.8 "$2" "$1 mean 1"
	within "$m2" -0.4 "$2" "$1 mean 2"
	within "$s1" 0.4472 "$3" "$1 sd 1"
	within "$s2" 0.4472 "$3" "$1 sd 2"
}

for m in npe nle nre likelihood; do
	run model.lua --set method=$m --quiet
	expect_ok
	check_posterior $m 0.08 0.06
done

# Sampling options only: the trained NPE is re-used.
run model.lua --set method=npe --set num_samples=3000 --out o2
expect_ok
expect_eq "$(state_of o2/run.json npe.train)" cached "npe.train after a sampling change"
expect_eq "$(state_of o2/run.json npe.sample)" ran "npe.sample after a sampling change"
# A new observation: amortized, only sampling runs; the posterior moves with it.
run model.lua --set method=npe --set x1=0.0 --out o3
expect_ok
expect_eq "$(state_of o3/run.json npe.train)" cached "npe.train after a new observation"
read -r m1 s1 <<<"$(col_stats o3/posterior_samples.csv 1)"
sanitized || within "$m1" 0.0 0.08 "npe mean for the new observation"
# The sample command does the same and refuses to train.
run sample model.lua --set method=npe --set x1=0.5 --out o4
expect_ok
expect_eq "$(ran_nodes o4/run.json)" 2 "sample command: nodes ran (observation and sampling)"
run sample model.lua --set method=npe --set lr=0.001 --out o5
expect_fail 1
expect_err "not trained"
# Training options: the simulations are re-used.
run model.lua --set method=npe --set lr=0.001 --out o6
expect_ok
expect_eq "$(state_of o6/run.json simulate)" cached "simulate after a training change"
expect_eq "$(state_of o6/run.json npe.train)" ran "npe.train after a training change"
# Bit-identical trained models and samples whatever --jobs is (BLAS is pinned).
artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }
# (Under the sanitizers NRE only, to save time; the normal build checks both.)
jobs_methods="npe nre"
sanitized && jobs_methods=nre
for m in $jobs_methods; do
	run model.lua --set method=$m --jobs 1 --cache j1 --out j1-$m --quiet
	expect_ok
	run model.lua --set method=$m --jobs 2 --cache j2 --out j2-$m --quiet
	expect_ok
	expect_eq "$(artifacts j2-$m/run.json)" "$(artifacts j1-$m/run.json)" "$m artifacts with --jobs 2 vs 1"
done
finish
