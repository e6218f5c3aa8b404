#!/bin/bash
# What re-runs when a sequential method's options change: the final number
# of samples only re-runs the final sampling (not the rounds' MCMC
# proposals); an MCMC option re-runs the proposals, their simulations and
# the later trainings; raising simulations_per_round re-runs everything.
. "$(dirname "$0")/lib.sh"
cat > snle.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -2 }, high = { 2 }, names = { "mu" } }
sbi.output {
  post = sbi.snle { prior = prior, observation = sbi.observation { 0.5 }, rounds = 3,
    simulations_per_round = sbi.param("n", 200), num_samples = sbi.param("num_samples", 500),
    warmup = sbi.param("warmup", 50), chains = 4, hidden = 10, transforms = 1, max_epochs = 30,
    simulator = function(theta, rng) return { theta.mu + 0.3 * rng:normal() } end },
}
EOF2
run snle.lua --quiet
expect_ok
# 3 simulate, 3 train, 2 propose, the observation and the final sampling.
expect_eq "$(ran_nodes sbirun-out/snle/run.json)" 10 "first run: steps that ran"
run snle.lua --quiet --set num_samples=700
expect_ok
expect_eq "$(ran_nodes sbirun-out/snle/run.json)" 1 "num_samples changed: steps that ran"
run snle.lua --quiet --set num_samples=700 --set warmup=60
expect_ok
# Round 0's simulate and train stay; 2 propose, 2 simulate, 2 train, the sampling.
expect_eq "$(ran_nodes sbirun-out/snle/run.json)" 7 "warmup changed: steps that ran"
run snle.lua --quiet --set num_samples=700 --set warmup=60 --set n=250
expect_ok
expect_eq "$(ran_nodes sbirun-out/snle/run.json)" 9 "simulations_per_round changed: steps that ran"
finish
