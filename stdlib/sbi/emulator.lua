-- sbi.emulator: a Gaussian-likelihood emulator (the lecture's "templates").
-- The mean of the data as a function of theta, mu(theta), is fitted by a
-- network (or least squares) on a design of simulations drawn from the
-- prior; the covariance C comes from simulations repeated at one fiducial
-- theta; the posterior N(x_obs; mu(theta), C) p(theta) is sampled with the
-- engine's MCMC. Every step is a cached node:
--
--   simulate (design, n = design)  --> emulator.fit
--   emulator.fiducial --> simulate (thetas, round 1) --> emulator.covariance
--   emulator.fit, emulator.covariance, observation --> emulator.sample
--
-- so new MCMC options re-use the fit and the covariance, a new covariance
-- budget re-uses the fit, and the design simulations are those of an
-- sbi.simulate with the same prior, simulator, n and seed.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior_mod = require "sbi.prior"
local simulate = require "sbi.simulate"
local neural = require "sbi.neural"
local nn = require "sbi.summary_nn"
local linalg = require "sbi.linalg"

local M = {}
local P = neural.parts

local DEFAULTS = { model = "mlp", covariance_sims = 1000 }

-- Checks opts and returns the fiducial point (a list of D numbers).
local function fiducial_of(opts, p)
  local f = opts.fiducial or p:mean()
  if #f ~= p:dim() then
    error(string.format("sbi.emulator: 'fiducial' has %d values but the prior has %d parameters", #f, p:dim()), 3)
  end
  if not p:in_support(f) then
    error("sbi.emulator: 'fiducial' is outside the prior's support", 3)
  end
  return f
end

-- The fit node: mu(theta), the regression of the design's x on its theta
-- (summary_nn's regression with the roles swapped).
local function fit_node(where, sims, key, seed)
  return graph.node("emulator.fit", where, { mean = key, seed = seed }, { sims }, function(node, inp)
    local s = inp[1]
    local a = nn.regression_fit(s.x, s.theta, key, seed, node.label)
    a.names = s.names
    return a
  end)
end

-- The m x D matrix whose rows are all the fiducial point.
local function fiducial_node(where, f, m)
  return graph.node("emulator.fiducial", where, { fiducial = f, n = m }, {}, function()
    local t = core.mat(m, #f)
    for i = 1, m do t:set_row(i, f) end
    return { theta = t }
  end)
end

-- W = L^-1 (lower triangular) for C = L L^T, so that (x - mu)^T C^-1 (x - mu) = |W (x - mu)|^2.
local function inverse_lower(L, d)
  local W = {}
  for i = 1, d do
    W[i] = {}
    for j = 1, d do W[i][j] = 0 end
  end
  for j = 1, d do
    W[j][j] = 1 / L[j][j]
    for i = j + 1, d do
      local s = 0
      for k = j, i - 1 do s = s - L[i][k] * W[k][j] end
      W[i][j] = s / L[i][i]
    end
  end
  return W
end

-- The covariance node: the sample covariance of the fiducial simulations,
-- scaled by Hartlap et al. (2007)'s factor so that its inverse is an
-- unbiased estimate of the precision; the artifact holds C (cov), the
-- fiducial mean and W = L^-1 scaled likewise (whiten).
local function covariance_node(where, fsims)
  return graph.node("emulator.covariance", where, { hartlap = true }, { fsims }, function(node, inp)
    local x = inp[1].x
    local m, d = x:rows(), x:cols()
    if m < d + 3 then
      error(string.format("%s: %d fiducial simulations for %d values: the covariance needs at least %d "
                          .. "(raise covariance_sims)", node.label, m, d, d + 3), 0)
    end
    local mean, c, row = {}, {}, {}
    for j = 1, d do mean[j] = 0 end
    for i = 1, m do
      x:row(i, row)
      for j = 1, d do mean[j] = mean[j] + row[j] / m end
    end
    for j = 1, d do c[j] = {} for k = 1, d do c[j][k] = 0 end end
    for i = 1, m do
      x:row(i, row)
      for j = 1, d do
        local rj = row[j] - mean[j]
        local cj = c[j]
        for k = 1, j do cj[k] = cj[k] + rj * (row[k] - mean[k]) end
      end
    end
    for j = 1, d do
      for k = 1, j do c[j][k] = c[j][k] / (m - 1); c[k][j] = c[j][k] end
    end
    local L = linalg.cholesky(c, d)
    if not L then
      error(string.format("%s: the covariance of the %d fiducial simulations is singular (a value that does not "
                          .. "vary at the fiducial point?)", node.label, m), 0)
    end
    local W, hartlap = inverse_lower(L, d), (m - d - 2) / (m - 1)
    local s = math.sqrt(hartlap)
    for i = 1, d do for j = 1, d do W[i][j] = W[i][j] * s end end
    core.stderr(string.format("%s: covariance of %d values from %d simulations, Hartlap factor %.4f\n", node.label,
                              d, m, hartlap))
    return { cov = core.mat(c), mean = core.mat({ mean }), whiten = core.mat(W), hartlap = hartlap, n_sims = m }
  end)
end

local spec = P.merge({
  prior = { check.is(prior_mod.Prior, "a prior (sbi.prior.*)"), required = true },
  simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")), required = true },
  observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
  design = { check.integer(2, 1000000000), required = true },
  fiducial = { check.numbers() },
  covariance_sims = { check.integer(2, 1000000000) },
  on_failure = { check.one_of("fail", "drop") },
}, nn.spec.regression, P.sampling_spec, P.mcmc_spec)

-- sbi.emulator{ prior =, simulator =, observation =, design = n, model = "mlp" | "linear",
--               fiducial = { ... } (default: the prior mean), covariance_sims = 1000,
--               ...network and training options..., num_samples =, seed =, ...MCMC options... }
function M.emulator(opts)
  check.options("sbi.emulator", opts, spec)
  if opts.observation.kind ~= "observation" then
    error("sbi.emulator: 'observation' must come from sbi.observation", 2)
  end
  local where = graph.where(2)
  local p = opts.prior
  local f = fiducial_of(opts, p)
  local seed = P.integer_seed(opts)
  local m = math.tointeger(opts.covariance_sims or DEFAULTS.covariance_sims)
  local design = simulate.declare({ prior = p, simulator = opts.simulator, n = opts.design, seed = seed,
                                    on_failure = opts.on_failure }, 2, where .. ", design")
  graph.pair(design, opts.observation)
  local key = nn.key("regression", { model = opts.model or DEFAULTS.model, hidden = opts.hidden,
                                     activation = opts.activation, batch_size = opts.batch_size,
                                     learning_rate = opts.learning_rate, validation_fraction = opts.validation_fraction,
                                     patience = opts.patience, max_epochs = opts.max_epochs, clip = opts.clip })
  local fit = fit_node(where, design, key, seed)
  -- Round 1's streams: the fiducial simulations' noise is independent of the design's.
  local fsims = simulate.declare({ prior = p, simulator = opts.simulator, thetas = fiducial_node(where, f, m),
                                   round = 1, seed = seed, on_failure = opts.on_failure }, 2, where .. ", fiducial")
  graph.pair(fsims, opts.observation)
  local cov = covariance_node(where, fsims)
  local node = P.mcmc_node("emulator.sample", where, { fit, cov, opts.observation }, P.mcmc_key(opts, p:dim()), p,
    "emulator", function(node, inp)
      local net = core.mlp_load(inp[1].model)
      local _, d = net:dims()
      P.check_observation(node.label, inp[3], d)
      -- The emulated log-likelihood -|W (x_obs - mu(theta))|^2 / 2, in C
      -- (log det C, a constant, left out).
      local W, x = inp[2].whiten, inp[3].x
      return { loglik = function(theta) return net:gauss_loglik(theta, x, W) end }
    end)
  node.prior, node.emulator, node.covariance = p, fit, cov
  return node
end

return M
