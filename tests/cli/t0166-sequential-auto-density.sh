#!/bin/bash
# density = "auto" in a sequential method keeps one flow per round and
# warm-starts the next round's candidate of that density from it, MAF or
# NSF: on a likelihood that is a scale mixture (x = mu + noise of sd 1 or
# 0.05, half each), which a one-transform affine MAF cannot fit (its best
# validation loss is a Gaussian's) and an NSF can, every round keeps the
# NSF, and the result must then be byte-identical to density = "nsf" (the
# NSF candidate has the same seed, data and warm start). Before the NSF
# candidate was warm-started, every round after round 0 trained it from
# scratch and the samples differed.
. "$(dirname "$0")/lib.sh"
cat > auto.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -3 }, high = { 3 }, names = { "mu" } }
sbi.output {
  post = sbi.snle { prior = prior, observation = sbi.observation { 0.4 }, rounds = 3,
    simulations_per_round = 400, num_samples = 400, warmup = 50, chains = 4, hidden = 16, transforms = 1,
    max_epochs = 60, density = sbi.param("density", "auto"),
    simulator = function(theta, rng)
      return { theta.mu + (rng:uniform() < 0.5 and 1.0 or 0.05) * rng:normal() }
    end },
}
EOF2
run auto.lua --out auto
expect_ok
expect_eq "$(grep -c "kept the nsf (lower validation loss)" "$ERR")" 3 "rounds that kept the NSF under auto"
run auto.lua --out nsf --set density=nsf
expect_ok
if ! cmp -s auto/post.csv nsf/post.csv; then
	fail "density=auto keeping the NSF every round differs from density=nsf"
fi
# The same holds for the MAF (candidate 1): auto's result is the kept
# flow's, and the MAF run is a different one.
run auto.lua --out maf --set density=maf
expect_ok
if cmp -s auto/post.csv maf/post.csv; then fail "density=maf gave the NSF's samples"; fi
finish
