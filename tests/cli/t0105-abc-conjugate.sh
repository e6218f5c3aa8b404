#!/bin/bash
# Rejection ABC on conjugate normal models recovers the analytic posterior.
. "$(dirname "$0")/lib.sh"


# 1-D: theta ~ N(0, 1), x ~ N(theta, 0.5^2), x_obs = 1:
# posterior N(0.8, 0.2), sd 0.4472. 1000 accepted: standard errors 0.014 (mean), 0.010 (sd).
cat > normal.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sims = sbi.simulate { prior = prior, n = 200000, seed = 11,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal() } end }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 1.0 }, quantile = 0.005 }
sbi.output { posterior_samples = post }
EOF2
run normal.lua --quiet
expect_ok
expect_out "1000 samples"
read -r m s <<<"$(col_stats sbirun-out/normal/posterior_samples.csv 1)"
within "$m" 0.8 0.05 "1-D posterior mean"
within "$s" 0.4472 0.04 "1-D posterior sd"

# 2-D with a correlated multivariate normal prior Sigma = [[1, 0.6], [0.6, 1]],
# x ~ N(theta, 0.25 I), x_obs = (0.5, -0.5): posterior mean Sigma (Sigma + 0.25 I)^-1 x_obs
# = (0.2632, -0.2632), sd sqrt(diag(Sigma - Sigma (Sigma + 0.25 I)^-1 Sigma)) = 0.4020 each.
cat > mvn.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.mvn { mean = { 0, 0 }, cov = { { 1, 0.6 }, { 0.6, 1 } } }
local sims = sbi.simulate { prior = prior, n = 400000, seed = 5,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() } end }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5, -0.5 }, quantile = 0.003 }
sbi.output { posterior_samples = post }
EOF2
run mvn.lua --quiet --jobs 2
expect_ok
read -r m1 s1 <<<"$(col_stats sbirun-out/mvn/posterior_samples.csv 1)"
read -r m2 s2 <<<"$(col_stats sbirun-out/mvn/posterior_samples.csv 2)"
within "$m1" 0.2632 0.06 "2-D posterior mean 1"
within "$m2" -0.2632 0.06 "2-D posterior mean 2"
within "$s1" 0.4020 0.045 "2-D posterior sd 1"
within "$s2" 0.4020 0.045 "2-D posterior sd 2"
finish
