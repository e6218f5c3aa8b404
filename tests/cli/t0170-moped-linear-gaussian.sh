#!/bin/bash
# MOPED on a linear-Gaussian model x = A theta + L z (D = 10 values, P = 2
# parameters, C = L L^T not diagonal): the weights estimated from
# simulations match the closed form over the true C and mu_,i = A e_i, and
# rejection ABC on the two MOPED summaries reaches the exact posterior.
#
# Tolerance of the weights: the derivatives are exact here (common random
# numbers: x(theta + h) - x(theta - h) = 2 h A e_i, the noise cancels), so
# the error comes from the covariance estimated from N = 20000 simulations.
# The relative error of C^-1 mu along each vector is about sqrt(D / N) =
# 0.022 in the C-norm (||b_i||_C = 1); 0.1 is 4.5 times that, and a missing
# Gram-Schmidt step, a wrong sign or a wrong step size is off by O(1).
# ABC: 400 accepted of 200000 (quantile 0.002); the posterior means must lie
# within 5 standard errors (sd / sqrt(400)) of the exact ones, the sds within
# 15% (ABC's tolerance widens them by a few percent).
. "$(dirname "$0")/lib.sh"

cat > lg.lua <<'EOF2'
local sbi = require "sbi"
local graph = require "sbi.graph"
local core = sbi.core
local D, P = 10, 2
local A, L = {}, {}
for j = 1, D do
  A[j] = { math.cos(j), j / 10 }
  L[j] = {}
  for k = 1, D do L[j][k] = (k == j and 0.5 + 0.05 * j) or (k == j - 1 and 0.3) or 0 end
end
local C = {}
for a = 1, D do
  C[a] = {}
  for b = 1, D do
    local s = 0
    for k = 1, D do s = s + L[a][k] * L[b][k] end
    C[a][b] = s
  end
end
local function simulator(theta, rng)
  local z, x = {}, {}
  for k = 1, D do z[k] = rng:normal() end
  for j = 1, D do
    local v = A[j][1] * theta[1] + A[j][2] * theta[2]
    for k = 1, j do v = v + L[j][k] * z[k] end
    x[j] = v
  end
  return x
end
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "t1", "t2" } }
local obs = sbi.observation { simulator = simulator, theta = { 0.4, -0.7 }, seed = 3 }
local moped = sbi.summary.moped { prior = prior, simulator = simulator,
  covariance_sims = sbi.param("cov_sims", 20000), derivative_sims = 10 }
local sims = sbi.simulate { prior = prior, simulator = simulator, n = sbi.param("n", 200000), seed = 7 }
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = sbi.param("q", 0.002), summary = moped }
local raw = sbi.abc.rejection { sims = sims, observation = obs, quantile = sbi.param("q", 0.002) }
-- The analytic weights (closed form over the true C and mu_,i = A[:, i]) and
-- the exact posterior N(m, S), S = (I + A^T C^-1 A)^-1, m = S A^T C^-1 x_obs.
local check = graph.node("check", graph.where(1), {}, { moped, obs }, function(_, inp)
  local m, x = inp[1], inp[2].x:row(1)
  local dmu = {}
  for i = 1, P do dmu[i] = {} for j = 1, D do dmu[i][j] = A[j][i] end end
  local b = core.moped_weights(core.mat(C), core.mat(dmu))
  local u = core.moped_weights(core.mat(C), core.mat(dmu), false) -- C^-1 A
  local row = {}
  for i = 1, P do -- ||b_hat_i - b_i||_C (||b_i||_C = 1)
    local e = 0
    for a = 1, D do for c = 1, D do
      e = e + (m.w:get(a, i) - b:get(a, i)) * C[a][c] * (m.w:get(c, i) - b:get(c, i))
    end end
    row[i] = math.sqrt(e)
  end
  local F, r = { { 1, 0 }, { 0, 1 } }, { 0, 0 }
  for i = 1, P do
    for k = 1, P do for j = 1, D do F[i][k] = F[i][k] + A[j][i] * u:get(j, k) end end
    for j = 1, D do r[i] = r[i] + u:get(j, i) * x[j] end
  end
  local det = F[1][1] * F[2][2] - F[1][2] * F[2][1]
  local S = { { F[2][2] / det, -F[1][2] / det }, { -F[2][1] / det, F[1][1] / det } }
  row[3] = S[1][1] * r[1] + S[1][2] * r[2]
  row[4] = S[2][1] * r[1] + S[2][2] * r[2]
  row[5], row[6] = math.sqrt(S[1][1]), math.sqrt(S[2][2])
  row[7] = m.n_simulations
  return { samples = core.mat { row }, names = { "err_b1", "err_b2", "mean1", "mean2", "sd1", "sd2", "spent" } }
end)
sbi.output { posterior_samples = post, raw = raw, check = check }
EOF2
run lg.lua --quiet --jobs 2
expect_ok
expect_err "MOPED compression of 10 values to 2; 20040 simulations (20000 at the fiducial point, 2 x 2 x 10 for the derivatives)"
read -r e1 _ <<<"$(col_stats sbirun-out/lg/check.csv 1)"
read -r e2 _ <<<"$(col_stats sbirun-out/lg/check.csv 2)"
in_range "$e1" 0 0.1 "||b1_hat - b1||_C"
in_range "$e2" 0 0.1 "||b2_hat - b2||_C"
read -r spent _ <<<"$(col_stats sbirun-out/lg/check.csv 7)"
within "$spent" 20040 0 "simulations spent (artifact field n_simulations)"
for i in 1 2; do
	read -r mean _ <<<"$(col_stats sbirun-out/lg/check.csv $((i + 2)))"
	read -r sd _ <<<"$(col_stats sbirun-out/lg/check.csv $((i + 4)))"
	read -r m s <<<"$(col_stats sbirun-out/lg/posterior_samples.csv $i)"
	within "$m" "$mean" "$(awk -v s="$sd" 'BEGIN { print 5 * s / sqrt(400) }')" "ABC posterior mean $i (5 standard errors)"
	within "$s" "$sd" "$(awk -v s="$sd" 'BEGIN { print 0.15 * s }')" "ABC posterior sd $i"
done
# The raw data (10 values), same simulations and quantile: the curse of
# dimensionality widens the posterior (here by 12-15%; MOPED: within 2%).
for i in 1 2; do
	read -r sd _ <<<"$(col_stats sbirun-out/lg/check.csv $((i + 4)))"
	read -r _ s <<<"$(col_stats sbirun-out/lg/raw.csv $i)"
	in_range "$s" "$(awk -v s="$sd" 'BEGIN { print 1.07 * s }')" 10 "raw-data ABC posterior sd $i"
done
finish
