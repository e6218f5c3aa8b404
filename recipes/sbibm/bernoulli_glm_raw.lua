-- sbibm task "bernoulli_glm_raw" (Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 6: bernoulli_glm's model (see
-- bernoulli_glm.lua) observed through the raw spike train.
--
--   theta = (beta0, h1..h9) ~ N(0, P^-1)     D = 10 parameters
--   psi = X theta, y_t ~ Bernoulli(1 / (1 + exp(-psi_t))), t = 0..99
--   x = (y_0, ..., y_99)                      K = 100 values in {0, 1}
--   The posterior equals bernoulli_glm's (X^T y is sufficient).
--
-- X and P are read from data/bernoulli_glm/simulator_data (beside this file)
-- when the recipe loads; the simulator captures X, so it is part of the
-- cache key.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/bernoulli_glm_raw.lua
--   build/lang/sbirun recipes/sbibm/bernoulli_glm_raw.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta10 (the reference
-- files' parameter_1..parameter_10).
local sbi = require "sbi"

local TASK, T = "bernoulli_glm_raw", 100

local model = require "bernoulli_glm_model"
require("task").run { name = TASK, prior = model.prior, simulator = sbi.simulator { fn = model.spikes, dim = T } }
