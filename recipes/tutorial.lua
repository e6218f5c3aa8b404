-- The lecture's tutorial model: a Gaussian bump on an affine background.
--
--   y(x) = l * exp(-(x - m)^2 / (2 s^2)) + a * x + b,   x_i = i/49, i = 0..49
--   data_i = y(x_i) + sigma_i * eps_i,   sigma_i = 0.05 + 0.10 x_i,   eps_i ~ N(0, 1)
--
-- Run:   sbirun recipes/tutorial.lua   (method=compare: the exact-likelihood posterior and NPE's, overlaid in
--                                     report.html, with the predictive plot and NPE's expected coverage)
--        sbirun recipes/tutorial.lua --set method=rejection_abc
--        sbirun recipes/tutorial.lua --set method=rejection_abc --set simulations=200000 --set epsilon_quantile=0.001
--        sbirun recipes/tutorial.lua --set observation=my_data.csv
--        sbirun recipes/tutorial.lua --set method=npe        (or nle, nre)
--        sbirun recipes/tutorial.lua --set method=likelihood (the exact Gaussian likelihood + MCMC)
--        sbirun recipes/tutorial.lua --set method=emulator   (a fitted mean, a fiducial covariance + MCMC;
--                                    docs/emulator.md)
--        sbirun recipes/tutorial.lua --set method=snpe --set rounds=10 --set simulations=10000
--                                    (sequential: snpe, tsnpe, snle, snre; smc_abc; docs/sequential.md)
--        sbirun recipes/tutorial.lua --set summary=moped   (compress the 50 values first, any method:
--                                    none, moped, score, pca, autoencoder, regression;
--                                    --set fiducial=prior_mean|pilot|moped_pilot: MOPED's fiducial point;
--                                    --set adjust=none|linear|quadratic|neural: rejection ABC's
--                                    regression adjustment (--set networks=N for neural);
--                                    docs/summaries.md)
--
-- The lecture's comparison: with method=likelihood the recipe writes down
-- the model's log-likelihood and samples it with the engine's MCMC; the
-- other methods only ever run the simulator. method=compare (the default)
-- runs both: the exact-likelihood posterior and NPE on `simulations` prior
-- simulations, in one output folder (likelihood.csv, npe.csv), with NPE's
-- posterior predictive (predictive.csv, observation.csv) and its expected
-- coverage (coverage.csv).
local sbi = require "sbi"

local prior = sbi.prior.uniform {
  low   = { 0, 0, 0.05, -0.5, -0.5 },
  high  = { 1, 1, 0.40,  0.5,  0.5 },
  names = { "l", "m", "s", "a", "b" },
}

-- The grid and the known noise level of every point.
local N = 50
local grid, sigma = {}, {}
for i = 0, N - 1 do
  grid[i + 1] = i / (N - 1)
  sigma[i + 1] = 0.05 + 0.10 * grid[i + 1]
end

-- The model's mean at every grid point (kept separate so a likelihood can
-- reuse it).
local function mean_function(theta)
  local l, m, s, a, b = theta[1], theta[2], theta[3], theta[4], theta[5]
  local mu = {}
  for i = 1, N do
    local x = grid[i]
    mu[i] = l * math.exp(-(x - m) ^ 2 / (2 * s * s)) + a * x + b
  end
  return mu
end

local function simulator(theta, rng)
  local y = mean_function(theta)
  for i = 1, N do y[i] = y[i] + sigma[i] * rng:normal() end
  return y
end

-- --set observation=FILE reads one; otherwise it is simulated at the true
-- parameters below with the noise of seed obs_seed (other seeds give the
-- benchmarks other observations of the same model).
local obs_path = sbi.param("observation", "")
local obs_seed = sbi.param("obs_seed", 2024)
local observation
if obs_path ~= "" then
  observation = sbi.observation(obs_path)
else
  observation = sbi.observation { simulator = simulator, theta = { 0.5, 0.6, 0.2, -0.2, 0.1 }, seed = obs_seed }
end

local method = sbi.param("method", "compare")
local methods = { compare = true, rejection_abc = true, npe = true, nle = true, nre = true, likelihood = true,
                  snpe = true, tsnpe = true, snle = true, snre = true, smc_abc = true, emulator = true }
if not methods[method] then
  error("unknown --set method=" .. tostring(method) .. " (available: compare, rejection_abc, npe, nle, nre, "
        .. "likelihood, snpe, tsnpe, snle, snre, smc_abc, emulator)", 0)
end
local sequential = { snpe = true, tsnpe = true, snle = true, snre = true }
-- Declared whatever the method, so one command line serves every method.
local simulations = sbi.param("simulations", (method == "rejection_abc" or method == "smc_abc") and 100000 or 10000)
local rounds = sbi.param("rounds", 10)
local acquisition = sbi.param("acquisition", "posterior")
local warm_start = sbi.param("warm_start", true)
local sims_per_population = sbi.param("sims_per_population", 10000)

local num_samples = sbi.param("num_samples", 10000)
local seed = sbi.param("seed", 1)
-- --set max_epochs=E caps the training of npe, nle, nre, compare's NPE and
-- every round of snpe, tsnpe, snle and snre (default: each method's own,
-- 2000 with early stopping): a quick look, or the default path under
-- valgrind (tests/cli/t0901-valgrind.sh).
local max_epochs = sbi.param("max_epochs", nil)
if max_epochs ~= nil and not ({ compare = true, npe = true, nle = true, nre = true, snpe = true, tsnpe = true,
                                snle = true, snre = true })[method] then
  error("--set max_epochs=" .. tostring(max_epochs) .. ": applies to methods compare, npe, nle, nre, snpe, "
        .. "tsnpe, snle and snre (got " .. method .. ")", 0)
end
-- --set density=maf|nsf|mdn|auto: the flow of npe, nle, snpe, tsnpe and
-- snle (default: each method's own, docs/neural.md); e.g. density=maf
-- gives NPE the sequential methods' MAF, for a like-for-like comparison.
local density = sbi.param("density", "")
local flow_methods = { npe = true, nle = true, snpe = true, tsnpe = true, snle = true }
if density ~= "" and not flow_methods[method] then
  error("--set density=" .. tostring(density) .. ": applies to methods npe, nle, snpe, tsnpe and snle (got "
        .. method .. ")", 0)
end
density = density ~= "" and density or nil

-- Summary compressors (docs/summaries.md): the method sees the 50 values
-- through one when --set summary= names it. moped: 5 MOPED summaries
-- (fiducial point: the prior's mean; derivatives and covariance from
-- simulations); score: t = grad mu^T C^-1 (x - mu) with the model's mean
-- function; pca: `components` principal components of simulations from
-- the prior (the method's own when it has them); autoencoder: a
-- `components`-wide code of an autoencoder fitted to those simulations;
-- regression: an MLP regression of theta on x fitted to them (Fearnhead
-- and Prangle's semi-automatic summaries: the predicted theta).
local summary_kind = sbi.param("summary", "none")
local components = sbi.param("components", 5)
-- MOPED's fiducial point (summary=moped or score): prior_mean, the prior's
-- mean; pilot, the mean of a pilot posterior, rejection ABC on the raw data
-- (1% of the method's simulations, or of 10,000 from the prior for the
-- methods that simulate as they go); moped_pilot, two stages: the mean of
-- rejection ABC on the summaries of a MOPED at the prior's mean (the
-- method's quantile and adjustment, or 1% and none for the other methods;
-- with adjust=neural 0.2% and linear), then MOPED again at that point.
-- adjust (rejection ABC): linear corrects the accepted parameters by a local
-- linear regression on the summaries (Beaumont et al. 2002), quadratic by a
-- local quadratic one (Blum 2010), neural by Blum & Francois (2010)'s
-- networks (`networks` of each kind, averaged). Rejection ABC on MOPED's
-- summaries defaults to the configuration closest to the exact posterior in
-- the accuracy benchmark (docs/benchmarks-summaries.md): moped_pilot, neural
-- with 5 networks and 20% accepted (0.2% with another adjustment), 10,000
-- covariance simulations (below); every other combination defaults to
-- prior_mean and none.
local moped_abc = method == "rejection_abc" and summary_kind == "moped"
local fiducial = sbi.param("fiducial", moped_abc and "moped_pilot" or "prior_mean")
local fiducials = { prior_mean = true, pilot = true, moped_pilot = true }
if not fiducials[fiducial] then
  error("unknown --set fiducial=" .. tostring(fiducial) .. " (available: prior_mean, pilot, moped_pilot)", 0)
end
local adjust = sbi.param("adjust", moped_abc and "neural" or "none")
local adjusts = { none = true, linear = true, quadratic = true, neural = true }
if not adjusts[adjust] then
  error("unknown --set adjust=" .. tostring(adjust) .. " (available: none, linear, quadratic, neural)", 0)
end
local networks = sbi.param("networks", 5)
-- covariance_sims: MOPED's simulations at its fiducial point, 1000 by
-- default; 10,000 (in each of the two stages) for rejection ABC on MOPED
-- with the neural adjustment: with 1,000, the sample covariance's error
-- alone moves the posterior given the 5 summaries by up to 0.2 prior sd,
-- more than the neural adjustment leaves (docs/benchmarks-summaries.md).
-- (With another adjustment its own error dominates: 1000.)
local covariance_sims = sbi.param("covariance_sims", moped_abc and adjust == "neural" and 10000 or 1000)
-- Rejection ABC keeps 1% by default; with the neural adjustment 20% (the
-- networks need pairs to learn from), on MOPED's summaries otherwise 0.2%
-- (docs/benchmarks-summaries.md).
local epsilon_quantile = sbi.param("epsilon_quantile", adjust == "neural" and 0.2 or moped_abc and 0.002 or 0.01)
if adjust ~= "none" and method ~= "rejection_abc" then
  error("--set adjust=" .. adjust .. ": the regression adjustment applies to method=rejection_abc only", 0)
end
local compressors = { none = true, moped = true, score = true, pca = true, autoencoder = true, regression = true }
if not compressors[summary_kind] then
  error("unknown --set summary=" .. tostring(summary_kind)
        .. " (available: none, moped, score, pca, autoencoder, regression)", 0)
end
local function compressor(sims)
  if summary_kind == "none" then return nil end
  local function prior_sims()
    return sims or sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = N },
                                  n = 10000, seed = seed }
  end
  if summary_kind == "moped" or summary_kind == "score" then
    local mean = summary_kind == "score" and mean_function or nil
    local pilot
    if fiducial == "pilot" then
      pilot = sbi.abc.rejection { sims = prior_sims(), observation = observation, quantile = 0.01 }
    elseif fiducial == "moped_pilot" then
      local first = sbi.summary.moped { prior = prior, simulator = simulator, covariance_sims = covariance_sims,
                                        seed = seed, mean = mean }
      -- The pilot only places the fiducial point: with adjust=neural it
      -- keeps 0.2% with the linear adjustment (cheap, and as close).
      local neural = adjust == "neural"
      pilot = sbi.abc.rejection { sims = prior_sims(), observation = observation, summary = first,
                                  quantile = neural and 0.002 or method == "rejection_abc" and epsilon_quantile or 0.01,
                                  adjust = neural and "linear" or adjust ~= "none" and adjust or nil }
    end
    return sbi.summary.moped { prior = prior, simulator = simulator, covariance_sims = covariance_sims, seed = seed,
                               mean = mean, fiducial = pilot }
  end
  sims = prior_sims()
  if summary_kind == "pca" then
    return sbi.summary.pca { sims = sims, components = components }
  elseif summary_kind == "autoencoder" then
    return sbi.summary.autoencoder { sims = sims, latent = components, seed = seed }
  end
  return sbi.summary.regression { sims = sims, seed = seed }
end

-- The exact likelihood: independent Gaussians around the model's mean.
local function exact_posterior()
  return sbi.likelihood {
    prior = prior, observation = observation, num_samples = num_samples, seed = seed,
    loglik = function(theta, y)
      local mu, ll = mean_function(theta), 0
      for i = 1, N do
        local r = (y[i] - mu[i]) / sigma[i]
        ll = ll - 0.5 * r * r
      end
      return ll
    end,
  }
end

local posterior
if method == "likelihood" and summary_kind ~= "none" then
  error("--set summary=" .. summary_kind .. ": method=likelihood uses the exact likelihood of the 50 values; "
        .. "summaries apply to the simulation-based methods", 0)
end
if method == "compare" then
  -- The lecture's comparison. NPE is the simulation-based side: amortized,
  -- so its coverage needs no retraining (one network evaluation per test
  -- point), and close to the exact posterior at 10,000 simulations. Its
  -- density is a MAF alone: "auto" would also train an NSF (about 2.5x the
  -- MAF's time on one core) and keep the MAF on this model anyway (lower
  -- validation loss), so the same posterior comes a third of the time
  -- (docs/tutorial.md).
  local sims = sbi.simulate {
    prior = prior,
    simulator = sbi.simulator { fn = simulator, dim = N },
    n = simulations,
    seed = seed,
  }
  posterior = sbi.npe { sims = sims, observation = observation, num_samples = num_samples, seed = seed,
                        density = "maf", summary = compressor(sims), max_epochs = max_epochs }
  -- The posterior predictive: one simulation at every NPE draw (seed + 1:
  -- other noise than the training simulations'), drawn against the
  -- observation in report.html.
  local predictive = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = N },
                                    thetas = posterior, seed = seed + 1 }
  sbi.output { likelihood = exact_posterior(), npe = posterior, observation = observation,
               predictive = predictive }
elseif method == "likelihood" then
  posterior = exact_posterior()
elseif sequential[method] then
  -- Rounds of simulations placed by the current posterior (docs/sequential.md).
  posterior = sbi[method == "tsnpe" and "snpe" or method] {
    prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, observation = observation,
    rounds = rounds, simulations = simulations,
    truncate = method == "tsnpe" or nil, acquisition = method ~= "tsnpe" and acquisition or nil,
    warm_start = warm_start, density = density, max_epochs = max_epochs,
    num_samples = num_samples, seed = seed, summary = compressor(),
  }
elseif method == "emulator" then
  -- The mean of the data emulated by a network fitted on `simulations`
  -- draws from the prior, the covariance from 1000 simulations at the prior
  -- mean (docs/emulator.md).
  posterior = sbi.emulator {
    prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, observation = observation,
    design = simulations, model = sbi.param("emulator_model", "mlp"), num_samples = num_samples, seed = seed,
  }
elseif method == "smc_abc" then
  posterior = sbi.abc.smc {
    prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, observation = observation,
    simulations = simulations, populations = rounds,
    sims_per_population = math.min(sims_per_population, simulations), num_samples = num_samples, seed = seed,
    summary = compressor(),
  }
else
  local sims = sbi.simulate {
    prior = prior,
    simulator = sbi.simulator { fn = simulator, dim = N },
    n = simulations,
    seed = seed,
  }
  local summary = compressor(sims)
  if method == "rejection_abc" then
    posterior = sbi.abc.rejection {
      sims = sims,
      observation = observation,
      quantile = epsilon_quantile,
      summary = summary,
      adjust = adjust ~= "none" and adjust or nil,
      networks = adjust == "neural" and networks or nil,
    }
  else
    posterior = sbi[method] { sims = sims, observation = observation, num_samples = num_samples, seed = seed,
                              summary = summary, density = density, max_epochs = max_epochs }
  end
end

if method ~= "compare" then sbi.output { posterior_samples = posterior } end

-- Expected coverage (docs/diagnostics.md): --set coverage=N draws N test
-- points (theta_i, x_i) from the prior and simulator and checks the chosen
-- method's posterior on each (writes coverage.csv; method=compare: NPE's
-- posterior, 200 test points unless set); --set max_coverage_deviation=D
-- fails the run (exit code 3) when the curve strays from the diagonal by
-- more than D at any level.
local coverage = sbi.param("coverage", method == "compare" and 200 or 0)
local max_coverage_deviation = sbi.param("max_coverage_deviation", 0)
if coverage > 0 then
  local amortized = { compare = true, npe = true, nle = true, nre = true, likelihood = true }
  if not amortized[method] then
    error("--set coverage=" .. coverage .. ": the coverage diagnostic needs method compare, npe, nle, nre or "
          .. "likelihood (got " .. method .. ", whose posterior holds for one observation only)", 0)
  end
  sbi.diagnose.coverage { posterior = posterior, tests = coverage, seed = seed,
                          simulator = sbi.simulator { fn = simulator, dim = N } }
  if max_coverage_deviation > 0 then sbi.gate { coverage = { max_deviation = max_coverage_deviation } } end
elseif max_coverage_deviation > 0 then
  error("--set max_coverage_deviation needs --set coverage=N (N test points, e.g. 200)", 0)
end
