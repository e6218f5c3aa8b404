#!/bin/bash
# A compressor is a cached node: changing only the downstream method re-uses
# the fitted compressor and its applications (counted from run.json);
# changing the compressor re-runs it and what follows, not the simulations;
# `sbirun sample` at a new observation applies the fitted compressor to it;
# `sbirun graph` shows the compressor and its applications; a bundle carries
# them and replays them bit for bit.
. "$(dirname "$0")/lib.sh"
cat > r.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local function simulator(theta, rng)
  local x = {}
  for i = 1, 8 do x[i] = theta[1] * i / 8 + theta[2] * (1 - i / 8) + 0.2 * rng:normal() end
  return x
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 3000, seed = 3 }
local obs = sbi.observation { simulator = simulator, theta = { sbi.param("obs_a", 0.3), -0.4 }, seed = 1 }
local kind = sbi.param("summary", "pca")
local summary = kind == "pca" and sbi.summary.pca { sims = sims, components = sbi.param("components", 2) }
  or sbi.summary.moped { prior = prior, simulator = simulator, covariance_sims = 200, derivative_sims = 20 }
local method = sbi.param("method", "rejection")
local small = { max_epochs = 3, hidden = 8, num_samples = 200, summary = summary, sims = sims, observation = obs }
local post
if method == "rejection" then
  post = sbi.abc.rejection { sims = sims, observation = obs, quantile = sbi.param("quantile", 0.02), summary = summary }
elseif method == "npe" then
  small.transforms, small.density = 1, "maf"
  post = sbi.npe(small)
else
  small.warmup, small.chains = 20, 4
  post = sbi.nre(small)
end
sbi.output { posterior_samples = post }
EOF2
run r.lua --quiet
expect_ok
# simulate, observation, summary.pca, its two applications, abc.rejection.
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 6 "first run: nodes that ran"
expect_eq "$(state_of sbirun-out/r/run.json summary.pca)" ran "the compressor ran"
run r.lua --quiet --set quantile=0.05
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 1 "quantile changed: nodes that ran"
# (The compressor is "not needed": its applications are cached.)
expect_eq "$(state_of sbirun-out/r/run.json summary.pca)" not "quantile changed: the compressor"
expect_eq "$(state_of sbirun-out/r/run.json summary.apply)" cached "quantile changed: its application"
run r.lua --quiet --set method=npe
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 2 "method npe: nodes that ran (npe.train, npe.sample)"
run r.lua --quiet --set method=nre
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 2 "method nre: nodes that ran (nre.train, nre.sample)"
# Another compressor: it and its applications re-run, not the simulations.
run r.lua --quiet --set components=3
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 4 "components changed: nodes that ran"
expect_eq "$(state_of sbirun-out/r/run.json simulate)" cached "components changed: the simulations"
# MOPED: its design, simulations (1 covariance + 2 x 2 derivative blocks) and fit, then the rest.
run r.lua --quiet --set summary=moped
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 14 "summary=moped: nodes that ran"
run r.lua --quiet --set summary=moped --set method=npe
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 2 "moped, method npe: nodes that ran"
# sbirun sample at a new observation: the observation, its summaries and the sampling.
run sample r.lua --quiet --set summary=moped --set method=npe --set obs_a=0.1
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 3 "sample at a new observation: nodes that ran"
expect_eq "$(state_of sbirun-out/r/run.json summary.obs)" ran "sample: the new observation's summaries"
run graph r.lua --set summary=moped
expect_ok
expect_out "summary.moped"
expect_out "summary.design"
expect_out "summary.apply"
expect_out "summary.obs"
expect_out "simulations"
expect_out "derivative a+"
# A bundle carries the compressor; a replay reproduces it bit for bit.
run r.lua --quiet
expect_ok
expect_eq "$(ran_nodes sbirun-out/r/run.json)" 0 "back to the first options: nodes that ran"
run bundle r.lua -o b.sbi.tar.zst
expect_ok
run replay b.sbi.tar.zst --out out2
expect_ok
expect_out "summary.pca        identical"
expect_out "summary.apply      identical"
cmp -s sbirun-out/r/posterior_samples.csv out2/posterior_samples.csv || fail "replay gives other samples"
finish
