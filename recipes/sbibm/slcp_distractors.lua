-- sbibm task "slcp_distractors" (Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 4: slcp plus 92 uninformative values.
--
--   theta ~ U(-3, 3)^5                        D = 5 parameters
--   c = the 8 values of slcp's simulator (see slcp.lua)
--   n = mu_k + L_k z sqrt(2 / w): k ~ U{1..20}, z ~ N(0, I_92), w ~ chi2(2)
--       (a 20-component mixture of 92-D Student-t with 2 degrees of freedom)
--   v = (c, n); x[p] = v[pi(p)] for a fixed permutation pi   K = 100 values
--   The posterior is slcp's: the distractors carry no information on theta.
--
-- mu_k, L_k (used exactly as given, negative diagonal entries included) and
-- pi are read from data/slcp_distractors/simulator_data (beside this file)
-- when the recipe loads; the simulator captures them, so they are part of
-- the simulations' cache key.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/slcp_distractors.lua
--   build/lang/sbirun recipes/sbibm/slcp_distractors.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta5 (the reference
-- files' parameter_1..parameter_5).
local sbi = require "sbi"

local TASK, D, K = "slcp_distractors", 5, 100
local NCOMP, NDIST = 20, 92

-- simulator_data files, found beside the recipe like the observations.
local task = require "task"
local function read(file) return task.read_data(TASK, file) end

-- gmm_loc.csv: row k = mu_k. gmm_scale_tril.csv: row (k, i), both 1-based,
-- holds row i of L_k; LTRI[k] keeps rows 1..i of its lower triangle, flat.
-- permutation_idx.csv: 0-based (position, source_index), x[position] = v[source].
local loc_m, tril_m, perm_m = read("gmm_loc.csv"), read("gmm_scale_tril.csv"), read("permutation_idx.csv")
assert(loc_m:rows() == NCOMP and loc_m:cols() == NDIST, "gmm_loc.csv: expected 20 x 92")
assert(tril_m:rows() == NCOMP * NDIST and tril_m:cols() == 2 + NDIST, "gmm_scale_tril.csv: expected 1840 x 94")
assert(perm_m:rows() == K and perm_m:cols() == 2, "permutation_idx.csv: expected 100 x 2")
local MU, LTRI, PERM = {}, {}, {}
for k = 1, NCOMP do
  MU[k] = loc_m:row(k)
  local l = {}
  for i = 1, NDIST do
    local r = tril_m:row((k - 1) * NDIST + i)
    assert(r[1] == k and r[2] == i, "gmm_scale_tril.csv: rows must be ordered by (component, row)")
    for j = 1, i do l[#l + 1] = r[2 + j] end
  end
  LTRI[k] = l
end
for p = 1, K do
  local r = perm_m:row(p)
  PERM[math.tointeger(r[1]) + 1] = math.tointeger(r[2]) + 1
end

local prior = sbi.prior.uniform { low = { -3, -3, -3, -3, -3 }, high = { 3, 3, 3, 3, 3 } }

local JITTER = 1e-6
local function simulator(theta, rng)
  -- slcp (as slcp.lua): four draws from N(m, S) via the Cholesky factor of S.
  local v = {}
  local s1, s2 = theta[3] ^ 2, theta[4] ^ 2
  local rho = 1 - 2 / (math.exp(2 * theta[5]) + 1) -- tanh(theta5)
  local l11 = math.sqrt(s1 * s1 + JITTER)
  local l21 = rho * s1 * s2 / l11
  local l22 = math.sqrt(math.max(s2 * s2 + JITTER - l21 * l21, 0))
  for j = 0, 3 do
    local z1, z2 = rng:normal(), rng:normal()
    v[2 * j + 1] = theta[1] + l11 * z1
    v[2 * j + 2] = theta[2] + l21 * z1 + l22 * z2
  end
  -- The distractors: n = mu_k + L_k z sqrt(2 / w).
  local k = rng:integer(NCOMP)
  local mu, l = MU[k], LTRI[k]
  local z = {}
  for j = 1, NDIST do z[j] = rng:normal() end
  local scale = math.sqrt(2 / rng:chisq(2))
  local at = 0
  for i = 1, NDIST do
    local acc = 0
    for j = 1, i do acc = acc + l[at + j] * z[j] end
    at = at + i
    v[8 + i] = mu[i] + scale * acc
  end
  local x = {}
  for p = 1, K do x[p] = v[PERM[p]] end
  return x
end

task.run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = K } }
