-- sbibm task "gaussian_mixture" (Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 7 (the corrected simulator of sbibm
-- >= 1.1.0: the component is drawn once per simulation):
--
--   theta ~ U(-10, 10)^2                        D = 2 parameters
--   c ~ {1, 2} with probability 1/2 each (one draw shared by both coordinates)
--   x ~ N(theta, I) if c = 1, N(theta, 0.01 I) if c = 2   K = 2 data values
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/gaussian_mixture.lua
--   build/lang/sbirun recipes/sbibm/gaussian_mixture.lua --set observation=3 --set simulations=10000
--   build/lang/sbirun recipes/sbibm/gaussian_mixture.lua --set method=npe
--   build/lang/sbirun recipes/sbibm/gaussian_mixture.lua --set observation=my_x.csv
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1, theta2 (the reference
-- files' parameter_1, parameter_2).
local sbi = require "sbi"

local TASK, D, K = "gaussian_mixture", 2, 2

local prior = sbi.prior.uniform { low = { -10, -10 }, high = { 10, 10 } }

local function simulator(theta, rng)
  local sd = rng:bernoulli(0.5) == 1 and 1.0 or 0.1
  return { theta[1] + rng:normal(0, sd), theta[2] + rng:normal(0, sd) }
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = K } }
