-- sbibm task "slcp" (simple likelihood, complex posterior; Lueckmann et al.,
-- "Benchmarking Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 3:
--
--   theta ~ U(-3, 3)^5                       D = 5 parameters
--   m = (theta1, theta2), s1 = theta3^2, s2 = theta4^2, rho = tanh(theta5)
--   S = [[s1^2 + 1e-6, rho s1 s2], [rho s1 s2, s2^2 + 1e-6]]
--   v1..v4 ~ N(m, S) iid, x = (v1, v2, v3, v4)  K = 8 data values
--   The posterior has four symmetric modes (the signs of theta3, theta4).
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/slcp.lua
--   build/lang/sbirun recipes/sbibm/slcp.lua --set observation=3 --set simulations=10000
--   build/lang/sbirun recipes/sbibm/slcp.lua --set method=npe
--   build/lang/sbirun recipes/sbibm/slcp.lua --set observation=my_x.csv
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns theta1..theta5 (the reference
-- files' parameter_1..parameter_5).
local sbi = require "sbi"

local TASK, D, K = "slcp", 5, 8

local prior = sbi.prior.uniform { low = { -3, -3, -3, -3, -3 }, high = { 3, 3, 3, 3, 3 } }

-- Four draws from the 2-D Gaussian N(m, S) through the Cholesky factor of S:
-- L11 = sqrt(S11), L21 = S12 / L11, L22 = sqrt(S22 - L21^2); v = m + L z.
local JITTER = 1e-6
local function simulator(theta, rng)
  local m1, m2 = theta[1], theta[2]
  local s1, s2 = theta[3] ^ 2, theta[4] ^ 2
  local rho = 1 - 2 / (math.exp(2 * theta[5]) + 1) -- tanh(theta5); Lua has no math.tanh
  local c11, c22, c12 = s1 * s1 + JITTER, s2 * s2 + JITTER, rho * s1 * s2
  local l11 = math.sqrt(c11)
  local l21 = c12 / l11
  local l22 = math.sqrt(math.max(c22 - l21 * l21, 0))
  local x = {}
  for j = 0, 3 do
    local z1, z2 = rng:normal(), rng:normal()
    x[2 * j + 1] = m1 + l11 * z1
    x[2 * j + 2] = m2 + l21 * z1 + l22 * z2
  end
  return x
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = K } }
