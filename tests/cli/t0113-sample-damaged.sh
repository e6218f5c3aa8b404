#!/bin/bash
# `sbirun sample` never trains or simulates: when the trained estimator's
# cached artifact is damaged it fails (exit 1) and says how to recompute,
# instead of retraining; the observation and sampling steps still may run.
. "$(dirname "$0")/lib.sh"

cat > model.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sims = sbi.simulate { prior = prior, n = 500, seed = 3,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal() } end }
local obs = sbi.observation { sbi.param("x1", 1.0) }
sbi.output { posterior_samples = sbi.npe { sims = sims, observation = obs, num_samples = 200,
  max_epochs = 5, density = "maf" } }
EOF2

run model.lua --out ref --quiet
expect_ok
train=$(artifact_of ref/run.json npe.train)
f=".sbirun/objects/${train:0:2}/${train:2}"

# A sample for a new observation works from the cache.
run sample model.lua --set x1=0.5 --out s1
expect_ok
expect_eq "$(state_of s1/run.json npe.train)" cached "npe.train when sampling"

# Damage the trained estimator: sample refuses to retrain.
printf 'X' | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") / 2 )) conv=notrunc status=none
run sample model.lua --set x1=0.25 --out s2
expect_fail 1
expect_err "corrupt"
expect_err "run \`sbirun model.lua\` first"
if grep -q "recomputing\|running npe.train\|running simulate" "$ERR"; then fail "sample recomputed: $(cat "$ERR")"; fi
expect_eq "$(state_of s2/run.json npe.train)" failed "npe.train state"
expect_eq "$(state_of s2/run.json simulate)" not "simulate state (not needed)"

# A run recomputes it; then sample works again.
run model.lua --set x1=0.25 --out r2 --quiet
expect_ok
expect_eq "$(state_of r2/run.json npe.train)" ran "npe.train after the damage"
expect_eq "$(artifact_of r2/run.json npe.train)" "$train" "npe.train recomputed"
run sample model.lua --set x1=0.75 --out s3
expect_ok
finish
