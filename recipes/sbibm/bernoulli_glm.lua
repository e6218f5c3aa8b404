-- sbibm task "bernoulli_glm" (Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 5:
--
--   theta = (beta0, h1..h9) ~ N(0, P^-1)     D = 10 parameters
--   psi = X theta, y_t ~ Bernoulli(1 / (1 + exp(-psi_t))), t = 0..99
--   x = X^T y (spike count, then 9 spike-triggered sums)   K = 10 data values
--
-- X (100 x 10: a column of ones, then the fixed white-noise stimulus delayed
-- by 0..8 bins) and the smoothness precision P are read from
-- shared/benchmarks/sbibm/bernoulli_glm/simulator_data when the recipe
-- loads; the simulator captures X, so it is part of the cache key.
-- bernoulli_glm_raw.lua is the same model observed through the raw spikes.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/bernoulli_glm.lua
--   build/lang/sbirun recipes/sbibm/bernoulli_glm.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta10 (the reference
-- files' parameter_1..parameter_10).
local sbi = require "sbi"

local TASK, D, T = "bernoulli_glm", 10, 100

local function read(file)
  local dir = require("sbi.observation").recipe_dir or "."
  local path = dir .. "/../../../shared/benchmarks/sbibm/bernoulli_glm/simulator_data/" .. file
  local m, err = sbi.core.read_matrix(path)
  if not m then error(TASK .. ": cannot read the simulator's constants: " .. err, 0) end
  return m
end

-- The inverse of a small matrix (rows of numbers) by Gauss-Jordan
-- elimination with partial pivoting.
local function inverse(a)
  local n, m = #a, {}
  for i = 1, n do
    m[i] = {}
    for j = 1, n do m[i][j], m[i][n + j] = a[i][j], i == j and 1 or 0 end
  end
  for c = 1, n do
    local p = c
    for r = c + 1, n do if math.abs(m[r][c]) > math.abs(m[p][c]) then p = r end end
    m[c], m[p] = m[p], m[c]
    local pivot = m[c][c]
    assert(pivot ~= 0, "singular prior precision")
    for j = 1, 2 * n do m[c][j] = m[c][j] / pivot end
    for r = 1, n do
      local f = m[r][c]
      if r ~= c and f ~= 0 then
        for j = 1, 2 * n do m[r][j] = m[r][j] - f * m[c][j] end
      end
    end
  end
  local inv = {}
  for i = 1, n do
    inv[i] = {}
    for j = 1, n do inv[i][j] = m[i][n + j] end
  end
  return inv
end

local X = read("design_matrix.csv"):totable()
local precision = read("prior_precision.csv"):totable()
assert(#X == T and #X[1] == D and #precision == D, "simulator_data: expected a 100 x 10 X and a 10 x 10 P")

-- Prior N(0, P^-1); the covariance is symmetrised against rounding.
local inv, mean, cov = inverse(precision), {}, {}
for i = 1, D do
  mean[i], cov[i] = 0, {}
  for j = 1, D do cov[i][j] = (inv[i][j] + inv[j][i]) / 2 end
end
local prior = sbi.prior.mvn { mean = mean, cov = cov }

local function simulator(theta, rng)
  local x = {}
  for j = 1, D do x[j] = 0 end
  for t = 1, T do
    local row, psi = X[t], 0
    for j = 1, D do psi = psi + row[j] * theta[j] end
    if rng:uniform() < 1 / (1 + math.exp(-psi)) then -- y_t = 1: add row t of X to X^T y
      for j = 1, D do x[j] = x[j] + row[j] end
    end
  end
  return x
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = D } }
