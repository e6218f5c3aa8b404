-- Approximate Bayesian computation. Rejection ABC keeps the simulations
-- whose data lie nearest the observation (Pritchard et al. 1999); distances
-- are Euclidean on data standardized per column, unless a distance function
-- is given. With adjust = "linear", the accepted parameters are corrected
-- by a local linear regression on the data (Beaumont et al. 2002).
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"

local M = {}

local function lua_distances(x, obs, distance)
  local n = x:rows()
  local d = core.mat(n, 1)
  local o = obs:row(1)
  local row = {}
  for i = 1, n do
    local v = distance(x:row(i, row), o)
    if type(v) ~= "number" then error("the distance function must return a number, got " .. check.describe(v), 0) end
    d:set(i, 1, v ~= v and math.huge or v)
  end
  return d
end

-- The KDE bandwidth factor: a number, "scott" (n^(-1/(d+4))) or "cv":
-- maximum leave-one-out likelihood over a log grid from 0.01 to 1 (the
-- cross-validated choice of sbibm's REJ-ABC, which matters for multimodal
-- posteriors, where the spread of all accepted points is not the width of
-- each mode), computed in C (engine/infer/abc.c, sbi_abc_kde_cv).
local function bandwidth_factor(samples, std, how, label)
  local n, d = samples:rows(), samples:cols()
  if type(how) == "number" then return how end
  if how == "scott" or n < 3 then return n ^ (-1 / (d + 4)) end
  return (core.kde_bandwidth_cv(samples, std, label))
end

-- Draws num_samples rows from the accepted samples: with kde, each draw is
-- an accepted row plus Gaussian noise with per-column sd factor * std_j,
-- redrawn until inside the prior support (after 1000 tries the accepted row
-- itself is kept: inside, unless the adjustment moved it out).
local function resample(samples, num, kde, bandwidth, prior, seed, label)
  local n, d = samples:rows(), samples:cols()
  local rng = core.rng(seed, 3, 0)
  local out = core.mat(num, d)
  local bw = {}
  if kde then
    local s, std = core.summary(samples), {}
    for j = 1, d do std[j] = s[j].std > 0 and s[j].std or 1 end
    local f = bandwidth_factor(samples, std, bandwidth, label)
    for j = 1, d do bw[j] = std[j] * f end
  end
  local row = {}
  for i = 1, num do
    local pick, ok = 1, false
    for _ = 1, 1000 do
      pick = rng:integer(n)
      samples:row(pick, row)
      if kde then
        for j = 1, d do row[j] = row[j] + rng:normal(0, bw[j]) end
      end
      ok = not kde or prior:in_support(row)
      if ok then break end
    end
    if not ok then samples:row(pick, row) end
    out:set_row(i, row)
  end
  return out
end

-- The regression adjustment of Beaumont, Zhang & Balding (2002), in C
-- (engine/infer/abc.c, sbi_abc_adjust_linear): Epanechnikov weights with
-- width h (the acceptance threshold), regression on the summaries scaled by
-- scale, the result kept even outside the prior's support (counted).
-- Returns the adjusted samples and that count.
local function adjust_linear(samples, x, obs, scale, dist, h, prior, label)
  local ok, adj = pcall(core.abc_adjust_linear, samples, x, obs, scale, dist, h)
  if not ok then error(string.format("%s: adjust = \"linear\": %s", label, tostring(adj)), 0) end
  local outside, row = 0, {}
  for i = 1, adj:rows() do
    if not prior:in_support(adj:row(i, row)) then outside = outside + 1 end
  end
  return adj, outside
end

function M.rejection(opts)
  check.options("sbi.abc.rejection", opts, {
    sims = { check.is(graph.Node, "the result of sbi.simulate"), required = true },
    observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
    quantile = { check.fraction() },
    epsilon = { check.positive() },
    distance = { check.func() },
    scale = { check.one_of("std", "mad") },
    num_samples = { check.integer(1) },
    kde = { check.boolean() },
    bandwidth = { check.any(check.positive(), check.one_of("cv", "scott")) },
    seed = { check.integer(0) },
    adjust = { check.one_of("none", "linear") },
  })
  if opts.sims.kind ~= "simulate" then error("sbi.abc.rejection: 'sims' must come from sbi.simulate", 2) end
  if opts.observation.kind ~= "observation" then
    error("sbi.abc.rejection: 'observation' must come from sbi.observation", 2)
  end
  if opts.quantile and opts.epsilon then
    error("sbi.abc.rejection: give either 'quantile' or 'epsilon', not both", 2)
  end
  graph.pair(opts.sims, opts.observation)
  local key_opts = {
    quantile = opts.epsilon == nil and (opts.quantile or 0.01) or nil, epsilon = opts.epsilon,
    distance = opts.distance, scale = opts.scale or "std", num_samples = opts.num_samples,
    kde = opts.kde ~= false, seed = math.tointeger(opts.seed or 1),
    bandwidth = opts.num_samples and opts.kde ~= false and (opts.bandwidth or "cv") or nil,
    adjust = opts.adjust == "linear" and "linear" or nil, -- absent by default: keys of unadjusted runs unchanged
  }
  local sims = opts.sims
  return graph.node("abc.rejection", graph.where(2), key_opts, { sims, opts.observation }, function(node, inp)
    local s, o = inp[1], inp[2]
    if s.x:rows() == 0 then
      error(node.label .. ": there are no simulations to compare with the observation", 0)
    end
    if o.x:cols() ~= s.x:cols() then
      error(string.format("%s: the observation has %d values but the simulator produces %d", node.label,
                          o.x:cols(), s.x:cols()), 0)
    end
    local d, scales
    if key_opts.distance then
      d = lua_distances(s.x, o.x, key_opts.distance)
    else
      scales = core.scales(s.x, key_opts.scale)
      d = core.abc_distances(s.x, o.x, scales)
    end
    local ok, idx, eps = pcall(core.abc_select, d, key_opts.quantile, key_opts.epsilon)
    if not ok then
      local hint = key_opts.epsilon and "; increase 'epsilon' or give 'quantile' instead" or ""
      error(string.format("%s: %s%s", node.label, tostring(idx), hint), 0)
    end
    local samples = s.theta:select_rows(idx)
    local outside
    if key_opts.adjust then
      samples, outside = adjust_linear(samples, s.x:select_rows(idx), o.x, scales or core.scales(s.x, key_opts.scale),
                                       d:select_rows(idx), key_opts.epsilon or eps, sims.prior, node.label)
    end
    if key_opts.num_samples then
      samples = resample(samples, key_opts.num_samples, key_opts.kde, key_opts.bandwidth, sims.prior, key_opts.seed,
                         node.label)
    end
    return { samples = samples, names = s.names, epsilon = eps, n_accepted = #idx,
             n_simulations = s.x:rows(), n_outside_support = outside,
             method = key_opts.adjust and "rejection ABC, linear adjustment" or "rejection ABC" }
  end)
end

return M
