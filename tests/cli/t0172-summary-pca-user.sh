#!/bin/bash
# sbi.summary.user and sbi.summary.pca: a hand-written summary is a node
# whose key holds the function (editing it, here an upvalue, re-runs the
# summary and what follows, not the simulations); PCA reports the variance
# it keeps; bad options and bad summaries are errors naming them.
. "$(dirname "$0")/lib.sh"
cat > u.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 }, names = { "mu" } }
local function simulator(theta, rng)
  local x = {}
  for i = 1, 20 do x[i] = theta[1] + rng:normal() end
  return x
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 50000, seed = 4 }
local obs = sbi.observation { simulator = simulator, theta = { 0.7 }, seed = 9 }
local scale = sbi.param("scale", 1)
-- The sample mean is sufficient: ABC on it is exact up to epsilon.
local mean = sbi.summary.user { fn = function(x)
  local s = 0
  for i = 1, #x do s = s + x[i] end
  return { scale * s / #x }
end }
local pca = sbi.summary.pca { sims = sims, components = 1, whiten = sbi.param("whiten", true) }
local which = sbi.param("which", "user")
sbi.output { posterior_samples = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.01,
  summary = which == "user" and mean or pca } }
EOF2
run u.lua --quiet
expect_ok
expect_eq "$(ran_nodes sbirun-out/u/run.json)" 6 "first run: nodes that ran"
# The exact posterior: N(20 xbar / 21, 1 / 21); the observation's mean
# xbar is the summary itself, so compare with the analytic posterior at
# it: sd 0.218; 500 accepted, standard error 0.0098.
read -r m s <<<"$(col_stats sbirun-out/u/posterior_samples.csv 1)"
in_range "$s" 0.19 0.25 "user summary: posterior sd"
run u.lua --quiet --set scale=2
expect_ok
expect_eq "$(ran_nodes sbirun-out/u/run.json)" 4 "an edited summary function: nodes that ran"
expect_eq "$(state_of sbirun-out/u/run.json simulate)" cached "an edited summary function: the simulations"
read -r m2 s2 <<<"$(col_stats sbirun-out/u/posterior_samples.csv 1)"
within "$m2" "$m" 0 "a scaled summary accepts the same simulations"
run u.lua --set which=pca
expect_ok
# The columns are mu + noise with var(mu) = var(noise) = 1: correlation 1/2
# between columns, so the first eigenvalue of the correlation matrix is
# 1 + 19 / 2 = 10.5 of 20: 52.5% of the standardized variance.
grep -o "1 of 20 components, [0-9.]*%" "$ERR" >/dev/null || fail "PCA reports the variance kept: $(cat "$ERR")"
pct=$(grep -o "1 of 20 components, [0-9.]*%" "$ERR" | grep -o "[0-9.]*%$" | tr -d %)
within "$pct" 52.5 1.5 "PCA: percentage of the standardized variance in one component"
read -r m3 s3 <<<"$(col_stats sbirun-out/u/posterior_samples.csv 1)"
within "$m3" "$m" 0.05 "PCA's first component (the mean, up to scale): posterior mean"

# MOPED's fiducial point from a pilot posterior: its samples' mean; the
# derivative blocks sit at it +- 0.05 prior sd (uniform on [0, 2]: sd 0.577).
cat > pilot.lua <<'EOF2'
local sbi = require "sbi"
local graph = require "sbi.graph"
local prior = sbi.prior.uniform { low = { 0 }, high = { 2 }, names = { "k" } }
local function simulator(theta, rng)
  local x = {}
  for i = 1, 5 do x[i] = math.exp(-theta[1] * i / 5) + 0.05 * rng:normal() end
  return x
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 5000 }
local obs = sbi.observation { simulator = simulator, theta = { 1.3 } }
local pilot = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.02 }
local moped = sbi.summary.moped { prior = prior, simulator = simulator, fiducial = pilot, covariance_sims = 50,
                                  derivative_sims = 5 }
local check = graph.node("check", graph.where(1), {}, { moped, pilot }, function(_, inp)
  local s, m = inp[2].samples, 0
  for i = 1, s:rows() do m = m + s:get(i, 1) end
  return { samples = sbi.core.mat { { inp[1].fiducial:get(1, 1), m / s:rows() } }, names = { "fiducial", "pilot" } }
end)
sbi.output { check = check }
EOF2
run pilot.lua --quiet
expect_ok
read -r f _ <<<"$(col_stats sbirun-out/pilot/check.csv 1)"
read -r p _ <<<"$(col_stats sbirun-out/pilot/check.csv 2)"
within "$f" "$p" 1e-9 "MOPED's fiducial point: the pilot's mean"
in_range "$f" 1.0 1.8 "the pilot's mean (true k = 1.3, a broad posterior)"
run graph pilot.lua
expect_ok
expect_out "summary.design (pilot.lua:12, derivative k+)"

# Errors name the option.
bad() {
	cat > bad.lua <<EOF2
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 } }
local function sim(theta, rng) return { theta[1] + 0.1 * rng:normal(), theta[2] + 0.1 * rng:normal(), rng:normal() } end
local sims = sbi.simulate { prior = prior, simulator = sim, n = 100 }
local obs = sbi.observation { 0.5, 0.5, 0 }
$1
EOF2
	run bad.lua --quiet
	expect_fail
	expect_err "$2"
}
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sims } }' \
	"sbi.abc.rejection: 'summary' must be a compressor (sbi.summary.pca, sbi.summary.moped, sbi.summary.user), got simulate (bad.lua:4)"
bad 'sbi.output { p = sbi.npe { sims = sims, observation = obs, summary = 3 } }' \
	"sbi.npe: option 'summary' must be a compressor"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.pca { sims = sims, components = 4 } } }' \
	"components = 4 but the data have 3 values"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.pca { sims = obs, components = 1 } } }' \
	"sbi.summary.pca: 'sims' must come from sbi.simulate"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.user { fn = function(x) return x[1] end } } }' \
	"the summary function must return a non-empty list of numbers, got -0.21299370112822 on row 1"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.user { fn = function(x) return x[1] > 0.5 and { 1 } or { 1, 2 } end } } }' \
	"the summary function returned 1 numbers on row 2 but 2 on row 1"
bad 'sbi.summary.moped { prior = prior, simulator = sim, fiducial = { 0.5 } }' \
	"sbi.summary.moped: 'fiducial' has 1 values but the prior has 2 parameters"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.moped { prior = prior, simulator = sim, fiducial = { 0.5, 0.99 } } } }' \
	"lies outside the prior's support; choose a smaller 'step' or another 'fiducial'"
bad 'sbi.output { p = sbi.abc.rejection { sims = sims, observation = obs, summary = sbi.summary.moped { prior = prior, simulator = sim, covariance_sims = 3 } } }' \
	"covariance_sims must exceed the data's 3 values"
bad 'sbi.summary.moped { prior = prior, simulator = sim, form = "fisher" }' \
	"option 'form' must be one of"
finish
