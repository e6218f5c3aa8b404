#!/bin/bash
# sbi.emulator on a linear-Gaussian model with a known posterior: theta ~
# N(0, I_2), x = A theta + b + 0.3 L eps (5 values, L lower bidiagonal: the
# noise is correlated), so the posterior is Gaussian with mean (0.712984,
# -0.561213) and sds (0.169907, 0.096221) at the observation below (the
# closed form, computed by analytic.lua here).
#
# Tolerances. With model = "linear" the emulated mean is the true one up to
# least squares on 2000 design simulations (an error of about 0.01
# posterior sd here) and the covariance comes from 1000 fiducial
# simulations (a relative error of about sqrt(2/1000) = 4.5% in the
# precision, 2.2% in the sds); the MCMC's 10000 samples (ESS about 10^4)
# add 0.01 sd to the means: means within 0.1 posterior sd, sds within 6%.
# With the MLP the fitted mean carries the network's own error, measured at
# 0.2-0.25 posterior sd with 2000 to 20000 design simulations: means within
# 0.35 sd, sds within 10%. An emulator that ignored the data, the
# correlations or the covariance's scale misses these by far (the prior sd
# is 6-10 posterior sds).
. "$(dirname "$0")/lib.sh"

cat > model.lua <<'EOF2'
local sbi = require "sbi"
local A = { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 1, -1 }, { 0.5, 2 } }
local b = { 0.1, -0.2, 0.3, 0, 0.5 }
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local function simulator(theta, rng)
  local x, prev = {}, 0
  for j = 1, 5 do
    local e = rng:normal()
    x[j] = A[j][1] * theta[1] + A[j][2] * theta[2] + b[j] + 0.3 * (e + 0.5 * prev)
    prev = e
  end
  return x
end
local obs = sbi.observation { 0.9, -0.6, 0.5, 1.4, -0.2 }
local opts = { prior = prior, simulator = simulator, observation = obs,
  design = sbi.param("design", 2000), model = sbi.param("model", "mlp"), covariance_sims = sbi.param("cov", 1000),
  num_samples = sbi.param("num_samples", 10000), seed = sbi.param("seed", 1) }
local bad = sbi.param("bad", "")
if bad == "fiducial" then opts.fiducial = { 1 } end
if bad == "option" then opts.hiden = { 8 } end
if bad == "design" then opts.design = nil end
sbi.output { posterior_samples = sbi.emulator(opts) }
EOF2

cat > analytic.lua <<'EOF2'
-- Sigma = 0.09 L L^T; u = (0.3 L)^-1 v by forward substitution.
local A = { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 1, -1 }, { 0.5, 2 } }
local b = { 0.1, -0.2, 0.3, 0, 0.5 }
local x = { 0.9, -0.6, 0.5, 1.4, -0.2 }
local function solve(v)
  local u = {}
  for j = 1, 5 do u[j] = v[j] - (j > 1 and 0.5 * u[j - 1] or 0) end
  for j = 1, 5 do u[j] = u[j] / 0.3 end
  return u
end
local function col(k) local c = {} for j = 1, 5 do c[j] = A[j][k] end return solve(c) end
local function dot(a, c) local s = 0 for j = 1, 5 do s = s + a[j] * c[j] end return s end
local c1, c2, r = col(1), col(2), solve { x[1] - b[1], x[2] - b[2], x[3] - b[3], x[4] - b[4], x[5] - b[5] }
local p11, p12, p22 = 1 + dot(c1, c1), dot(c1, c2), 1 + dot(c2, c2)
local det = p11 * p22 - p12 * p12
local v1, v2 = dot(c1, r), dot(c2, r)
print(string.format("%.6f %.6f %.6f %.6f", (p22 * v1 - p12 * v2) / det, (p11 * v2 - p12 * v1) / det,
                    math.sqrt(p22 / det), math.sqrt(p11 / det)))
EOF2
run lua analytic.lua
expect_ok
read -r am1 am2 as1 as2 < "$OUT"
expect_eq "$am1 $am2 $as1 $as2" "0.712984 -0.561213 0.169907 0.096221" "the analytic posterior"

check_posterior() { # DIR WHAT MEAN_TOL_IN_SDS SD_REL_TOL
	local m1 s1 m2 s2
	read -r m1 s1 <<<"$(col_stats "$1/posterior_samples.csv" 1)"
	read -r m2 s2 <<<"$(col_stats "$1/posterior_samples.csv" 2)"
	within "$m1" "$am1" "$(awk -v k="$3" -v s="$as1" 'BEGIN { print k * s }')" "$2 mean 1"
	within "$m2" "$am2" "$(awk -v k="$3" -v s="$as2" 'BEGIN { print k * s }')" "$2 mean 2"
	within "$s1" "$as1" "$(awk -v k="$4" -v s="$as1" 'BEGIN { print k * s }')" "$2 sd 1"
	within "$s2" "$as2" "$(awk -v k="$4" -v s="$as2" 'BEGIN { print k * s }')" "$2 sd 2"
}

run model.lua --out mlp
expect_ok
check_posterior mlp mlp 0.35 0.10
expect_err "emulator.covariance"
expect_err "Hartlap factor 0.9940"
expect_eq "$(ran_nodes mlp/run.json)" 7 "nodes of a first run (observation, 2 simulate, fiducial, fit, covariance, sample)"
run model.lua --set model=linear --out lin --quiet
expect_ok
check_posterior lin linear 0.1 0.06
expect_eq "$(ran_nodes lin/run.json)" 2 "nodes run for another model (fit, sample)"

# Sampling options re-use the fit and the covariance.
run model.lua --set num_samples=5000 --out o2 --quiet
expect_ok
expect_eq "$(state_of o2/run.json emulator.fit)" cached "emulator.fit after a sampling change"
expect_eq "$(state_of o2/run.json emulator.covariance)" cached "emulator.covariance after a sampling change"
expect_eq "$(state_of o2/run.json emulator.sample)" ran "emulator.sample after a sampling change"
# A new covariance budget re-uses the design and the fit.
run model.lua --set cov=500 --out o3 --quiet
expect_ok
expect_eq "$(ran_nodes o3/run.json)" 4 "nodes run for a covariance change (fiducial, its simulations, covariance, sample)"
expect_eq "$(state_of o3/run.json emulator.fit)" cached "emulator.fit after a covariance change"
expect_eq "$(state_of o3/run.json emulator.covariance)" ran "emulator.covariance after a covariance change"

# Same seed, same artifacts, whatever --jobs is.
run model.lua --jobs 2 --cache j2 --out j2 --quiet
expect_ok
for k in emulator.fit emulator.covariance emulator.sample; do
	expect_eq "$(artifact_of j2/run.json $k)" "$(artifact_of mlp/run.json $k)" "$k artifact with --jobs 2 vs 1"
done
cmp -s j2/posterior_samples.csv mlp/posterior_samples.csv || fail "samples differ with --jobs 2"

# Bad options name themselves.
run model.lua --set bad=fiducial --quiet
expect_fail
expect_err "'fiducial' has 1 values but the prior has 2 parameters"
run model.lua --set bad=option --quiet
expect_fail
expect_err "unknown option 'hiden'"
run model.lua --set bad=design --quiet
expect_fail
expect_err "option 'design' is required"
run model.lua --set cov=6 --quiet
expect_fail
expect_err "6 fiducial simulations for 5 values: the covariance needs at least 8"
run model.lua --set model=gp --quiet
expect_fail
expect_err "option 'model' must be one of \"linear\", \"mlp\""
finish
