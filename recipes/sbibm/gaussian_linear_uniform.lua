-- sbibm task "gaussian_linear_uniform" (Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 2:
--
--   theta ~ U(-1, 1)^10     D = 10 parameters
--   x = theta + eps,        eps ~ N(0, 0.1 I) (variance 0.1), K = 10 data values
--   exact posterior: N(x, 0.1 I) truncated to [-1, 1]^10
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/gaussian_linear_uniform.lua
--   build/lang/sbirun recipes/sbibm/gaussian_linear_uniform.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta10 (the reference
-- files' parameter_1..parameter_10).
local sbi = require "sbi"

local model = require "gaussian_linear_model"
local TASK, D = "gaussian_linear_uniform", model.D

local low, high = {}, {}
for i = 1, D do low[i], high[i] = -1, 1 end
local prior = sbi.prior.uniform { low = low, high = high }

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = model.simulator, dim = D } }
