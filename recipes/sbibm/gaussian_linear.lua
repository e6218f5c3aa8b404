-- sbibm task "gaussian_linear" (Lueckmann et al., "Benchmarking Simulation-Based
-- Inference", AISTATS 2021), exactly as shared/benchmarks/TASKS.md section 1:
--
--   theta ~ N(0, 0.1 I)     D = 10 parameters (variance 0.1, std sqrt(0.1))
--   x = theta + eps,        eps ~ N(0, 0.1 I), K = 10 data values
--   exact posterior: N(x/2, 0.05 I)
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/gaussian_linear.lua
--   build/lang/sbirun recipes/sbibm/gaussian_linear.lua --set observation=3 --set simulations=10000
--   build/lang/sbirun recipes/sbibm/gaussian_linear.lua --set method=npe
--   build/lang/sbirun recipes/sbibm/gaussian_linear.lua --set observation=my_x.csv
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta10 (the reference
-- files' parameter_1..parameter_10).
local sbi = require "sbi"

local model = require "gaussian_linear_model"
local TASK, D = "gaussian_linear", model.D

local mean, std = {}, {}
for i = 1, D do mean[i], std[i] = 0, math.sqrt(0.1) end
local prior = sbi.prior.normal { mean = mean, std = std }

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = model.simulator, dim = D } }
