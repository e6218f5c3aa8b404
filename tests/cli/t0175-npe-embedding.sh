#!/bin/bash
# NPE with a learned embedding network (docs/neural.md#learned-embeddings)
# on a linear-Gaussian model whose x has 2 informative columns and 18
# distractors: the posterior is the analytic one; the trained model is
# bit-identical across caches and --jobs; a changed
# embedding retrains on the same simulations; sampling re-uses training.
. "$(dirname "$0")/lib.sh"

# theta ~ N(0, I_2), x[1:2] ~ N(theta, 0.5^2 I), x[3:20] ~ N(0, 1):
# posterior N(0.8 x_obs[1:2], 0.2 I) = mean (0.8, -0.4), sd 0.4472.
cat > lg.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local function simulator(theta, rng)
  local x = { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() }
  for j = 3, 20 do x[j] = rng:normal() end
  return x
end
local sims = sbi.simulate { prior = prior, n = sbi.param("n", 5000), seed = 3, simulator = simulator }
local xo = { 1.0, -0.5 }
for j = 3, 20 do xo[j] = 0.4 * ((j % 5) - 2) end
local obs = sbi.observation(xo)
local method = sbi.param("method", "npe")
local common = { sims = sims, observation = obs, num_samples = sbi.param("num_samples", 4000), seed = 1,
                 embedding = { hidden = { 32, 32 }, out = sbi.param("out", 4) } }
if method == "npe" then common.density = "maf" end
sbi.output { posterior_samples = method == "npe" and sbi.npe(common) or sbi.nre(common) }
EOF2

# Tolerances: over training seeds 1-4 this NPE's worst errors were 0.14
# (a mean) and 0.045 (an sd); Monte Carlo error of 4000 draws is 0.007.
# With the embedding's weights left untrained (a frozen random e(x), the
# bug this guards against) the sds were 0.75-1.1 and the means off by 0.4+.
run lg.lua --quiet
expect_ok
csv=sbirun-out/lg/posterior_samples.csv
read -r m1 s1 <<<"$(col_stats $csv 1)"
read -r m2 s2 <<<"$(col_stats $csv 2)"
within "$m1" 0.8 0.15 "npe+embedding mean 1"
within "$m2" -0.4 0.15 "npe+embedding mean 2"
within "$s1" 0.4472 0.08 "npe+embedding sd 1"
within "$s2" 0.4472 0.08 "npe+embedding sd 2"

# Bit-identical artifacts with another cache and --jobs 2.
artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }
run lg.lua --jobs 2 --cache c2 --out o2 --quiet
expect_ok
expect_eq "$(artifacts o2/run.json)" "$(artifacts sbirun-out/lg/run.json)" "artifacts with --jobs 2 and a new cache"

# Sampling options only: training is re-used; a new embedding size retrains
# on the same simulations.
run lg.lua --set num_samples=1000 --out o3
expect_ok
expect_eq "$(state_of o3/run.json npe.train)" cached "npe.train after a sampling change"
run lg.lua --set out=6 --set num_samples=1000 --out o4
expect_ok
expect_eq "$(state_of o4/run.json simulate)" cached "simulate after an embedding change"
expect_eq "$(state_of o4/run.json npe.train)" ran "npe.train after an embedding change"
finish
