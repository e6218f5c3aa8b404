-- sbibm task "two_moons" (Lueckmann et al., "Benchmarking Simulation-Based
-- Inference", AISTATS 2021), exactly as shared/benchmarks/TASKS.md section 8:
--
--   theta ~ U(-1, 1)^2                      D = 2 parameters
--   a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2)  (a noisy half circle)
--   p = (r cos a + 0.25, r sin a)
--   z0 = (theta1 + theta2)/sqrt(2), z1 = (theta2 - theta1)/sqrt(2)
--   x = (p1 - |z0|, p2 + z1)                K = 2 data values
--   The posterior is a crescent, bimodal because of |z0|.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/two_moons.lua
--   build/lang/sbirun recipes/sbibm/two_moons.lua --set observation=3 --set simulations=10000
--   build/lang/sbirun recipes/sbibm/two_moons.lua --set method=npe
--   build/lang/sbirun recipes/sbibm/two_moons.lua --set observation=my_x.csv
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1, theta2 (the reference
-- files' parameter_1, parameter_2).
local sbi = require "sbi"

local TASK, D, K = "two_moons", 2, 2

local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }

local HALF_PI, SQRT2 = math.pi / 2, math.sqrt(2)
local function simulator(theta, rng)
  local a = rng:uniform(-HALF_PI, HALF_PI)
  local r = rng:normal(0.1, 0.01)
  local p1, p2 = r * math.cos(a) + 0.25, r * math.sin(a)
  local z0 = (theta[1] + theta[2]) / SQRT2
  local z1 = (theta[2] - theta[1]) / SQRT2
  return { p1 - math.abs(z0), p2 + z1 }
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = K } }
