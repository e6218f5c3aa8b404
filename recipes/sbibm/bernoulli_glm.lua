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
-- data/bernoulli_glm/simulator_data (beside this file) when the recipe
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

local model = require "bernoulli_glm_model"
local X, prior = model.X, model.prior

local spikes = model.spikes

local function simulator(theta, rng)
  local y, x = spikes(theta, rng), {}
  for j = 1, D do x[j] = 0 end
  for t = 1, T do
    if y[t] == 1 then -- add row t of X to X^T y
      for j = 1, D do x[j] = x[j] + X[t][j] end
    end
  end
  return x
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = D } }
