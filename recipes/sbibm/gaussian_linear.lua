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
--   build/lang/sbirun recipes/sbibm/gaussian_linear.lua --set observation=my_x.csv
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
-- Output: posterior_samples.csv with columns theta1..theta10 (the reference
-- files' parameter_1..parameter_10).
local sbi = require "sbi"

local TASK, D = "gaussian_linear", 10
local METHODS = { "rejection_abc" }

local mean, std = {}, {}
for i = 1, D do mean[i], std[i] = 0, math.sqrt(0.1) end
local prior = sbi.prior.normal { mean = mean, std = std }

local NOISE_SD = math.sqrt(0.1)
local function simulator(theta, rng)
  local x = {}
  for i = 1, D do x[i] = theta[i] + rng:normal(0, NOISE_SD) end
  return x
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
  simulator = sbi.simulator { fn = simulator, dim = D },
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
