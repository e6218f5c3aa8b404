-- Shared driver of the sbibm recipes: every task recipe declares its prior
-- and simulator and calls task.run{...}; this module reads the common
-- parameters and declares the simulations and the chosen method.
--
-- Parameters (--set NAME=VALUE), the same for every task:
--   observation  1..10: sbibm's observation N, read from data/<task>/obs<N>/observation.csv
--                beside this file; anything else: a CSV/.npy path (default 1)
--   method       rejection_abc (default), npe, nle, nre; sequential: snpe, tsnpe,
--                snle, snre (docs/sequential.md), smc_abc
--   simulations  simulation budget (default 100000 for rejection_abc and smc_abc,
--                10000 otherwise); the sequential methods spread it over the rounds
--   rounds       sequential methods: rounds (default 10, as in the sbibm paper);
--                smc_abc: populations (default 10)
--   acquisition  sequential methods other than tsnpe: posterior (default), truncated,
--                likely, uncertainty
--   warm_start   sequential neural methods: start each round's training from the
--                previous round's weights (default true)
--   nested_validation  snpe, tsnpe: false (default: the validation rows are redrawn from
--                all rounds' rows each round) or true (each round's validation rows are
--                the earlier rounds' plus a tenth of its own, never rows a warm-started
--                round's starting weights trained on; docs/sequential.md#validation-rows)
--   seed         seed of simulations, training and sampling (default 1)
--   num_samples  posterior samples written (default 10000)
--   quantile     rejection_abc: fraction accepted (default 100/simulations, then a KDE)
--   scheme       smc_abc: sbi (default: the reference package's SMC-ABC with sbibm's
--                settings, the sbibm paper's "SMC-ABC (ours) 100 .5 .2 KDE"; populations
--                until the budget is spent, `rounds` unused) or apmc (sbi.abc.smc's
--                default scheme, `rounds` populations of simulations / rounds)
--   particles    smc_abc: population size (sbi: 100, 1000 above 10000 simulations;
--                apmc: a tenth of simulations / rounds)
--   adjust       smc_abc, apmc: none (default, as the sbibm paper's SMC-ABC) or linear:
--                the final population moved by a weighted linear regression adjustment
--   weighted     smc_abc: false (default, as the sbibm paper: final draws ignore the
--                importance weights) or true
--   kernel_scale smc_abc: proposal covariance / population covariance (default sbi 0.5,
--                apmc 2)
--   epsilon_decay, ess_min (0: none), initial_round_factor, use_last_pop_samples
--                smc_abc, sbi: as sbi.abc.smc (defaults 0.2, 0, 5, true, sbibm's)
--   density      npe: auto (default: a MAF and an NSF, the one with the lower
--                validation loss), maf, nsf or mdn; nle, snle: maf (default), nsf, mdn
--                or auto; snpe, tsnpe: nsf (default, as in the sbibm paper), maf, mdn
--   sampler      nle/nre: slice (default) or ensemble
--   summary      none (default), pca or moped: the method sees the data through a
--                compressor (docs/summaries.md): pca, `components` principal
--                components (default: the number of parameters) of the recipe's
--                simulations (for the sequential methods and smc_abc an extra set of
--                `simulations` prior simulations); moped, one MOPED summary per
--                parameter at the prior's mean (`covariance_sims`, default 1000, plus
--                2 x 100 per parameter); regression, the predicted theta of an MLP
--                regression of theta on x (Fearnhead & Prangle); autoencoder, a
--                `components`-wide autoencoder code; both fitted to the same simulations as pca
--   embedding    npe, nre, snpe, tsnpe, snre: a learned embedding network of x trained with
--                the estimator (docs/neural.md#learned-embeddings): none (default), mlp
--                (hidden {64, 64}, 20 features), a number of features K (hidden {64, 64}),
--                widths and K as 128x128x20, or linear:K (a linear map to K features); a
--                suffix -tanh (-relu, -elu, -silu) sets the activation; nle and snle
--                refuse it (they model x itself)
local sbi = require "sbi"

local M = {}

M.METHODS = { "rejection_abc", "npe", "nle", "nre", "snpe", "tsnpe", "snle", "snre", "smc_abc" }

local function is_method(m)
  for _, v in ipairs(M.METHODS) do
    if v == m then return true end
  end
  return false
end

-- The embedding option of --set embedding=SPEC: none (nil), mlp (true: the
-- defaults), K (K features), W1xW2x...xK (hidden widths, then K features)
-- or linear:K (no hidden layer), optionally followed by -ACTIVATION (e.g.
-- 128x128x20-tanh).
function M.embedding(spec)
  spec = tostring(spec)
  if spec == "none" then return nil end
  local body, act = spec:match("^(.-)%-(%a+)$")
  body = body or spec
  local e = body == "mlp" and {} or nil
  local linear = math.tointeger(tonumber(body:match("^linear:(%d+)$")))
  if linear and linear >= 1 then e = { hidden = {}, out = linear } end
  if not e then
    local nums = {}
    for part in (body .. "x"):gmatch("(.-)x") do nums[#nums + 1] = math.tointeger(tonumber(part)) end
    local ok = #nums >= 1
    for _, v in ipairs(nums) do ok = ok and v ~= nil and v >= 1 end
    if not ok then
      error(string.format("--set embedding=%s: expected none, mlp, a number of features K, or widths and K "
                          .. "as 64x64x10, optionally with -relu, -tanh, -elu or -silu", spec), 0)
    end
    e = { out = table.remove(nums) }
    if #nums > 0 then e.hidden = nums end
  end
  e.activation = act
  return e
end

-- The observation node: sbibm's obs<N> or a file.
function M.observation(name)
  local obs = sbi.param("observation", "1")
  local n = tonumber(obs)
  if n then
    if n ~= math.floor(n) or n < 1 or n > 10 then
      error(string.format("--set observation=%s: sbibm has observations 1..10 for %s; give 1..10 or the path "
                          .. "of a data file", obs, name), 0)
    end
    obs = string.format("data/%s/obs%d/observation.csv", name, math.tointeger(n))
  end
  return sbi.observation(obs)
end

-- The task's constant simulator data (data/<task>/simulator_data/<file>
-- beside this file), as a Mat.
function M.read_data(name, file)
  local path = string.format("%s/data/%s/simulator_data/%s", sbi.recipe_dir(), name, file)
  local m, err = sbi.core.read_matrix(path)
  if not m then error(name .. ": cannot read the simulator's constants: " .. err, 0) end
  return m
end

-- The compressor chosen with --set summary= (nil for none).
function M.summary(spec, sims, seed)
  local kind = sbi.param("summary", "none")
  local components = sbi.param("components", spec.prior:dim())
  local covariance_sims = sbi.param("covariance_sims", 1000)
  if kind == "none" then return nil end
  if kind == "pca" then return sbi.summary.pca { sims = sims, components = components } end
  if kind == "moped" then
    return sbi.summary.moped { prior = spec.prior, simulator = spec.simulator, covariance_sims = covariance_sims,
                               seed = seed, on_failure = spec.on_failure }
  end
  if kind == "regression" then return sbi.summary.regression { sims = sims, seed = seed } end
  if kind == "autoencoder" then return sbi.summary.autoencoder { sims = sims, latent = components, seed = seed } end
  error("unknown --set summary=" .. tostring(kind) .. " (available: none, pca, moped, regression, autoencoder)", 0)
end

-- task.run{ name =, prior =, simulator =, on_failure = "fail"|"drop" }
function M.run(spec)
  local method = sbi.param("method", "rejection_abc")
  if not is_method(method) then
    error(string.format("unknown --set method=%s (available: %s)", tostring(method), table.concat(M.METHODS, ", ")), 0)
  end
  local observation = M.observation(spec.name)
  local abc = method == "rejection_abc" or method == "smc_abc"
  local n_sims = sbi.param("simulations", abc and 100000 or 10000)
  local rounds = sbi.param("rounds", 10)
  local acquisition = sbi.param("acquisition", "posterior")
  local warm_start = sbi.param("warm_start", true)
  local nested_validation = sbi.param("nested_validation", false)
  local seed = sbi.param("seed", 1)
  local num_samples = sbi.param("num_samples", 10000)
  -- Every parameter is declared whatever the method, so one command line
  -- can serve all methods.
  local density = sbi.param("density", "default")
  density = density ~= "default" and density or nil -- nil: the method's own default
  local sampler = sbi.param("sampler", "slice")
  local quantile = sbi.param("quantile", math.min(1, 100 / n_sims))
  local per_population = math.max(2, n_sims // rounds)
  -- smc_abc: a tenth of each population (100 at 10,000 simulations, the
  -- population size of sbibm's SMC-ABC): at 10,000 simulations, observation
  -- 1, it gave a lower C2ST than half on 5 of the 7 tasks (docs/benchmarks-sequential.md).
  -- smc_abc: scheme sbi (default) is the reference package's SMC-ABC that
  -- the sbibm paper ran, with sbibm's settings (docs/sequential.md); apmc
  -- the adaptive population Monte Carlo ABC of sbi.abc.smc's default.
  local scheme = sbi.param("scheme", "sbi")
  if scheme ~= "sbi" and scheme ~= "apmc" then
    error(string.format("--set scheme=%s: expected sbi or apmc", tostring(scheme)), 0)
  end
  local sbi_scheme = scheme == "sbi"
  local particles = sbi.param("particles", sbi_scheme and math.min(n_sims > 10000 and 1000 or 100, n_sims)
                                           or math.max(2, per_population // 10))
  local embedding = M.embedding(sbi.param("embedding", "none"))
  local adjust = sbi.param("adjust", "none")
  local weighted = sbi.param("weighted", false)
  local kernel_scale = sbi.param("kernel_scale", sbi_scheme and 0.5 or 2)
  local epsilon_decay = sbi.param("epsilon_decay", 0.2)
  local ess_min = sbi.param("ess_min", 0)
  local initial_round_factor = sbi.param("initial_round_factor", 5)
  local use_last_pop_samples = sbi.param("use_last_pop_samples", true)
  local sims = sbi.simulate { prior = spec.prior, simulator = spec.simulator, n = n_sims, seed = seed,
                              on_failure = spec.on_failure }
  local summary = M.summary(spec, sims, seed)
  local common = { prior = spec.prior, simulator = spec.simulator, observation = observation, seed = seed,
                   on_failure = spec.on_failure, num_samples = num_samples, summary = summary }
  local function with(t)
    for k, v in pairs(common) do t[k] = v end
    if method ~= "smc_abc" then t.warm_start = warm_start end
    return t
  end
  local posterior
  if method == "snpe" or method == "tsnpe" then
    -- The sbibm paper's SNPE used a neural spline flow (sbi.snpe's own
    -- default is the reference package's MAF).
    posterior = sbi.snpe(with { rounds = rounds, simulations = n_sims, density = density or "nsf",
                                truncate = method == "tsnpe" or nil, embedding = embedding,
                                acquisition = method == "snpe" and acquisition or nil,
                                nested_validation = nested_validation or nil })
  elseif method == "snle" then
    posterior = sbi.snle(with { rounds = rounds, simulations = n_sims, density = density, sampler = sampler,
                                acquisition = acquisition, embedding = embedding })
  elseif method == "snre" then
    posterior = sbi.snre(with { rounds = rounds, simulations = n_sims, sampler = sampler, acquisition = acquisition,
                                embedding = embedding })
  elseif method == "smc_abc" and sbi_scheme then
    if adjust ~= "none" then error("--set adjust applies to --set scheme=apmc only", 0) end
    -- sbibm's "SMC-ABC (ours) 100 .5 .2 KDE": its KDE of the final
    -- particles without their weights; the budget, not `rounds`, sets the
    -- number of populations.
    posterior = sbi.abc.smc(with { scheme = "sbi", simulations = n_sims, particles = particles, kde = true,
                                   weighted = weighted, kernel_scale = kernel_scale, epsilon_decay = epsilon_decay,
                                   ess_min = ess_min > 0 and ess_min or nil,
                                   initial_round_factor = initial_round_factor,
                                   use_last_pop_samples = use_last_pop_samples })
  elseif method == "smc_abc" then
    -- Like the sbibm paper's SMC-ABC, a KDE of the final population; here
    -- `rounds` populations, each of simulations / rounds simulations.
    posterior = sbi.abc.smc(with { simulations = n_sims, populations = rounds,
                                   sims_per_population = per_population, particles = particles, kde = true,
                                   adjust = adjust, weighted = weighted,
                                   kernel_scale = kernel_scale ~= 2 and kernel_scale or nil })
  elseif method == "rejection_abc" then
    posterior = sbi.abc.rejection { sims = sims, observation = observation,
      quantile = quantile, num_samples = num_samples, kde = true, seed = seed, summary = summary }
  elseif method == "npe" then
    posterior = sbi.npe { sims = sims, observation = observation, density = density,
                          num_samples = num_samples, seed = seed, summary = summary,
                          embedding = embedding }
  elseif method == "nle" then
    posterior = sbi.nle { sims = sims, observation = observation, density = density,
                          sampler = sampler, num_samples = num_samples, seed = seed, summary = summary,
                          embedding = embedding }
  else
    posterior = sbi.nre { sims = sims, observation = observation, sampler = sampler,
                          num_samples = num_samples, seed = seed, summary = summary,
                          embedding = embedding }
  end
  sbi.output { posterior_samples = posterior }
  return posterior
end

return M
