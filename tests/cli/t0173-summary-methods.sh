#!/bin/bash
# Every method takes `summary = <compressor>`: sbi.nle, sbi.abc.smc and the
# sequential sbi.snpe, sbi.snle, sbi.snre (npe, nre and rejection ABC: t0171)
# see the simulations of every round and the observation through it, each
# application a node of its own. Model: mu ~ N(0, 1), 10 values mu + noise;
# MOPED's one summary is the (weighted) sample mean, sufficient: the exact
# posterior is N(10 xbar / 11, 1 / 11).
. "$(dirname "$0")/lib.sh"
cat > m.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 }, names = { "mu" } }
local function simulator(theta, rng)
  local x = {}
  for i = 1, 10 do x[i] = theta[1] + rng:normal() end
  return x
end
local obs = sbi.observation { 0.9, 1.4, 0.2, 1.1, 0.5, 1.6, 0.8, 1.3, 0.1, 1.1 } -- xbar = 0.9
local moped = sbi.summary.moped { prior = prior, simulator = simulator, covariance_sims = 500, derivative_sims = 20 }
local method = sbi.param("method", "nle")
local net = { max_epochs = 40, hidden = 16, transforms = 2, num_samples = 1000, summary = moped,
              warmup = 50, chains = 4, density = "maf" }
local post
if method == "nle" then
  net.sims = sbi.simulate { prior = prior, simulator = simulator, n = 1000, seed = 2 }
  net.observation = obs
  post = sbi.nle(net)
elseif method == "smc" then
  post = sbi.abc.smc { prior = prior, simulator = simulator, observation = obs, summary = moped, populations = 3,
                       sims_per_population = 4000, num_samples = 1000 }
else
  net.prior, net.simulator, net.observation, net.rounds, net.simulations = prior, simulator, obs, 2, 1000
  if method == "snre" then net.transforms, net.density, net.max_epochs = nil, nil, 200 end
  if method == "snpe" then net.warmup, net.chains = nil, nil end
  post = sbi[method](net)
end
sbi.output { posterior_samples = post }
EOF2
applications() { grep -c '"kind": "summary.apply"' "$1"; }
observations() { grep -c '"kind": "summary.obs"' "$1"; }
# Exact posterior: mean 10 * 0.9 / 11 = 0.818, sd 0.302.
for m in nle smc snpe snle snre; do
	run m.lua --quiet --set method=$m
	expect_ok
	read -r mean sd <<<"$(col_stats sbirun-out/m/posterior_samples.csv 1)"
	within "$mean" 0.818 0.15 "$m with MOPED: posterior mean"
	within "$sd" 0.302 0.12 "$m with MOPED: posterior sd"
	case $m in
	nle) n=1 ;;   # the simulations
	smc) n=3 ;;   # 3 populations' simulations
	*) n=2 ;;     # 2 rounds' simulations
	esac
	expect_eq "$(applications sbirun-out/m/run.json)" $n "$m: summary.apply nodes"
	expect_eq "$(observations sbirun-out/m/run.json)" 1 "$m: summary.obs nodes"
done
finish
