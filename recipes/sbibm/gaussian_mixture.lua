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
--   build/lang/sbirun recipes/sbibm/gaussian_mixture.lua --set observation=my_x.csv
--
-- Parameters (--set NAME=VALUE):
--   observation  1..10: sbibm's observation N from ../shared/benchmarks/sbibm
--                (beside the repository); anything else: a CSV/.npy path (default 1)
--   simulations  simulation budget (default 100000)
--   seed         seed of the simulations and of the resampling (default 1)
--   method       inference method; available: rejection_abc (default)
--   num_samples  posterior samples written (default 10000)
--   quantile     fraction of simulations accepted (default 100/simulations: the
--                100 nearest, followed by a KDE, as sbibm's REJ-ABC)
-- Output: posterior_samples.csv with columns theta1, theta2 (the reference
-- files' parameter_1, parameter_2).
local sbi = require "sbi"

local TASK, D, K = "gaussian_mixture", 2, 2
local METHODS = { "rejection_abc" }

local prior = sbi.prior.uniform { low = { -10, -10 }, high = { 10, 10 } }

local function simulator(theta, rng)
  local sd = rng:bernoulli(0.5) == 1 and 1.0 or 0.1
  return { theta[1] + rng:normal(0, sd), theta[2] + rng:normal(0, sd) }
end

-- The observation: sbibm's obs<N> (N = 1..10) or a file path.
local obs = sbi.param("observation", "1")
local obs_path = obs
if tonumber(obs) then
  local n = tonumber(obs)
  if n ~= math.floor(n) or n < 1 or n > 10 then
    error(string.format("--set observation=%s: sbibm has observations 1..10 for %s; "
                        .. "give 1..10 or the path of a data file", obs, TASK), 0)
  end
  obs_path = string.format("../../../shared/benchmarks/sbibm/%s/obs%d/observation.csv", TASK, math.tointeger(n))
end
local observation = sbi.observation(obs_path)

local method = sbi.param("method", "rejection_abc")
if method ~= "rejection_abc" then
  error(string.format("unknown --set method=%s (available: %s)", tostring(method), table.concat(METHODS, ", ")), 0)
end

local n_sims = sbi.param("simulations", 100000)
local seed = sbi.param("seed", 1)
local sims = sbi.simulate {
  prior = prior,
  simulator = sbi.simulator { fn = simulator, dim = K },
  n = n_sims,
  seed = seed,
}

local posterior = sbi.abc.rejection {
  sims = sims,
  observation = observation,
  quantile = sbi.param("quantile", math.min(1, 100 / n_sims)),
  num_samples = sbi.param("num_samples", 10000),
  kde = true,
  seed = seed,
}

sbi.output { posterior_samples = posterior }
