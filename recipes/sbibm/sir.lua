-- sbibm task "sir" (epidemic model; Lueckmann et al., "Benchmarking
-- Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 9:
--
--   beta ~ LogNormal(log 0.4, 0.5), gamma ~ LogNormal(log 0.125, 0.2)   D = 2
--   dS/dt = -beta S I / N, dI/dt = beta S I / N - gamma I, dR/dt = gamma I,
--   N = 10^6, (S, I, R)(0) = (N - 1, 1, 0), t in [0, 160] days
--   x_k ~ Binomial(1000, clip(I(t_k) / N, 0, 1)), t_k = 17 k, k = 0..9    K = 10
--
-- The ODE is solved by sbi.core.ode with its built-in "sir" right-hand side
-- (Dormand-Prince 8(9), rtol = atol = 1e-8; sbibm used Tsit5 with the same
-- tolerances) through t = 160, as sbibm, and kept at the 10 times. A failed
-- solve gives NaNs, as in sbibm, and on_failure = "drop" leaves it out.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/sir.lua
--   build/lang/sbirun recipes/sbibm/sir.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns beta, gamma (the reference
-- files' $\beta$, $\gamma$).
local sbi = require "sbi"

local TASK, K = "sir", 10

local prior = sbi.prior.lognormal { mu = { math.log(0.4), math.log(0.125) }, sigma = { 0.5, 0.2 },
                                    names = { "beta", "gamma" } }

local N = 1e6
local TIMES = {}
for k = 0, K - 1 do TIMES[k + 1] = 17 * k end
TIMES[K + 1] = 160 -- the end of sbibm's grid: a solve failing after t = 153 fails here too

local ode = sbi.core.ode
local function simulator(theta, rng)
  local rows = ode { rhs = "sir", params = { theta[1], theta[2], N }, y0 = { N - 1, 1, 0 }, times = TIMES,
                     rtol = 1e-8, atol = 1e-8, max_steps = 1e5 }
  local x = {}
  for k = 1, K do
    x[k] = rows and rng:binomial(1000, math.min(math.max(rows[k][2] / N, 0), 1)) or 0 / 0
  end
  return x
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = K },
                      on_failure = "drop" }
