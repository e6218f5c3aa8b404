-- sbibm task "lotka_volterra" (predator-prey; Lueckmann et al.,
-- "Benchmarking Simulation-Based Inference", AISTATS 2021), exactly as
-- shared/benchmarks/TASKS.md section 10:
--
--   alpha, gamma ~ LogNormal(-0.125, 0.5), beta, delta ~ LogNormal(-3, 0.5)   D = 4
--   dX/dt = alpha X - beta X Y, dY/dt = -gamma Y + delta X Y, (X, Y)(0) = (30, 1)
--   u = (X(t_0..t_9), Y(t_0..t_9)), t_k = 2.1 k (every 21st point of sbibm's
--   0.1-day grid on [0, 20])
--   x_j = clip(u_j, 1e-10, 1e4) exp(0.1 eps_j), eps_j ~ N(0, 1)   K = 20
--
-- The ODE is solved by sbi.core.ode with its built-in "lotka_volterra"
-- right-hand side (Dormand-Prince 8(9), rtol = atol = 1e-8; sbibm used Tsit5
-- with the same tolerances) at the 10 kept times and at t = 20, the end of
-- sbibm's grid. A failed solve gives NaNs, as in sbibm, and
-- on_failure = "drop" leaves it out.
--
-- Run (from the repository root):
--   build/lang/sbirun recipes/sbibm/lotka_volterra.lua
--   build/lang/sbirun recipes/sbibm/lotka_volterra.lua --set observation=3 --set method=npe
--
-- Parameters (--set NAME=VALUE): observation (1..10 or a path), method
-- (rejection_abc, npe, nle, nre), simulations, seed, num_samples, quantile,
-- density, sampler: see task.lua beside this file.
-- Output: posterior_samples.csv with columns alpha, beta, gamma, delta (the
-- reference files' $\alpha$, $\beta$, $\gamma$, $\delta$).
local sbi = require "sbi"

local TASK, NT = "lotka_volterra", 10

local prior = sbi.prior.lognormal { mu = { -0.125, -3, -0.125, -3 }, sigma = { 0.5, 0.5, 0.5, 0.5 },
                                    names = { "alpha", "beta", "gamma", "delta" } }

local TIMES = {}
for k = 0, NT - 1 do TIMES[k + 1] = 21 * k / 10 end -- 2.1 k, correctly rounded
TIMES[NT + 1] = 20

local ode = sbi.core.ode
local function clip(u) return math.min(math.max(u, 1e-10), 1e4) end
local function simulator(theta, rng)
  local rows = ode { rhs = "lotka_volterra", params = { theta[1], theta[2], theta[3], theta[4] }, y0 = { 30, 1 },
                     times = TIMES, rtol = 1e-8, atol = 1e-8, max_steps = 1e5 }
  local x = {}
  for k = 1, NT do
    if rows then
      x[k] = clip(rows[k][1]) * math.exp(0.1 * rng:normal())
      x[NT + k] = clip(rows[k][2]) * math.exp(0.1 * rng:normal())
    else
      x[k], x[NT + k] = 0 / 0, 0 / 0
    end
  end
  return x
end

require("task").run { name = TASK, prior = prior, simulator = sbi.simulator { fn = simulator, dim = 2 * NT },
                      on_failure = "drop" }
