-- Approximate Bayesian computation. Rejection ABC keeps the simulations
-- whose data lie nearest the observation (Pritchard et al. 1999); distances
-- are Euclidean on data standardized per column, unless a distance function
-- is given. With adjust = "linear", the accepted parameters are corrected
-- by a local linear regression on the data (Beaumont et al. 2002), with
-- "quadratic" by a local quadratic one (Blum 2010).
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local simulate = require "sbi.simulate"
local summary = require "sbi.summary"
local summary_nn = require "sbi.summary_nn"
local linalg = require "sbi.linalg"
local sbi_scheme = require "sbi.abc_smc_sbi"

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
-- Returns the adjusted samples and that count. adjust = "quadratic" adds
-- the squares and products of the summaries to the regression (Blum 2010;
-- sbi_abc_adjust_quadratic).
-- adjust = "neural": the neural-network adjustment of Blum & Francois
-- (2010). Two MLPs (sbi.summary's default network, summary_nn.DEFAULTS,
-- trained by core.mlp_train on the accepted rows, unweighted: core.mlp_train
-- takes no weights): m(x) for the mean of theta and g(x) for the log of
-- the squared residuals e_i = theta_i - m(x_i); then
-- theta_i <- m(obs) + e_i exp((g(obs) - g(x_i)) / 2), so residuals from
-- where theta given x spreads more are shrunk to the spread at obs.
local function mlp_fit(x, y, seed, label, what)
  local spec = { x = x, y = y, seed = seed, label = label .. ": " .. what }
  for k, v in pairs(summary_nn.DEFAULTS) do spec[k] = v end
  local ok, model, report = pcall(core.mlp_train, spec)
  if not ok then error(string.format("%s: adjust = \"neural\": %s", label, tostring(model)), 0) end
  core.stderr(string.format("%s: %s network, %d epochs (best %d), validation MSE %.4f (z-scored)\n", label, what,
                            report.epochs, report.best_epoch, report.best_val_loss))
  return core.mlp_load(model)
end

-- The average of the predictions at x and at obs of `networks` MLPs fitted
-- to (x, y) with the seeds seed, seed + 2, ... (an ensemble, as Blum &
-- Francois average theirs: less variance from the training).
local function mlp_average(x, y, obs, seed, networks, label, what)
  local fit, at_obs
  for k = 1, networks do
    local net = mlp_fit(x, y, seed + 2 * (k - 1), label, what)
    local f, o = net:apply(x), net:apply(obs)
    if k == 1 then
      fit, at_obs = f, o
    else
      for i = 1, f:rows() do
        for j = 1, f:cols() do fit:set(i, j, fit:get(i, j) + f:get(i, j)) end
      end
      for j = 1, o:cols() do at_obs:set(1, j, at_obs:get(1, j) + o:get(1, j)) end
    end
  end
  for i = 1, fit:rows() do
    for j = 1, fit:cols() do fit:set(i, j, fit:get(i, j) / networks) end
  end
  for j = 1, at_obs:cols() do at_obs:set(1, j, at_obs:get(1, j) / networks) end
  return fit, at_obs:row(1)
end

local function adjust_neural(samples, x, obs, seed, networks, label)
  local n, d = samples:rows(), samples:cols()
  local fit, m_obs = mlp_average(x, samples, obs, seed, networks, label, "mean")
  local logsq, row = core.mat(n, d), {}
  for i = 1, n do
    for j = 1, d do
      local e = samples:get(i, j) - fit:get(i, j)
      logsq:set(i, j, math.log(e * e + 1e-300))
    end
  end
  local g, g_obs = mlp_average(x, logsq, obs, seed + 1, networks, label, "log residual scale")
  local adj = core.mat(n, d)
  for i = 1, n do
    for j = 1, d do
      row[j] = m_obs[j] + (samples:get(i, j) - fit:get(i, j)) * math.exp((g_obs[j] - g:get(i, j)) / 2)
    end
    adj:set_row(i, row)
  end
  return adj
end

local function adjust_samples(samples, x, obs, scale, dist, h, prior, label, how, seed, networks)
  local ok, adj
  if how == "neural" then
    ok, adj = true, adjust_neural(samples, x, obs, seed, networks, label)
  else
    ok, adj = pcall(how == "quadratic" and core.abc_adjust_quadratic or core.abc_adjust_linear, samples, x, obs,
                    scale, dist, h)
  end
  if not ok then error(string.format("%s: adjust = \"%s\": %s", label, how, tostring(adj)), 0) end
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
    adjust = { check.one_of("none", "linear", "quadratic", "neural") },
    networks = { check.integer(1, 100) },
    summary = summary.option,
  })
  if opts.sims.kind ~= "simulate" then error("sbi.abc.rejection: 'sims' must come from sbi.simulate", 2) end
  if opts.observation.kind ~= "observation" then
    error("sbi.abc.rejection: 'observation' must come from sbi.observation", 2)
  end
  if opts.quantile and opts.epsilon then
    error("sbi.abc.rejection: give either 'quantile' or 'epsilon', not both", 2)
  end
  if opts.networks and opts.adjust ~= "neural" then
    error("sbi.abc.rejection: 'networks' applies to adjust = \"neural\" only", 2)
  end
  graph.pair(opts.sims, opts.observation)
  local key_opts = {
    quantile = opts.epsilon == nil and (opts.quantile or 0.01) or nil, epsilon = opts.epsilon,
    distance = opts.distance, scale = opts.scale or "std", num_samples = opts.num_samples,
    kde = opts.kde ~= false, seed = math.tointeger(opts.seed or 1),
    bandwidth = opts.num_samples and opts.kde ~= false and (opts.bandwidth or "cv") or nil,
    adjust = opts.adjust ~= "none" and opts.adjust or nil, -- absent by default: keys of unadjusted runs unchanged
    networks = opts.adjust == "neural" and math.tointeger(opts.networks or 1) or nil,
  }
  local where = graph.where(2)
  local sims, obs = summary.inputs("sbi.abc.rejection", opts.summary, opts.sims, opts.observation, where, 2)
  return graph.node("abc.rejection", where, key_opts, { sims, obs }, function(node, inp)
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
      samples, outside = adjust_samples(samples, s.x:select_rows(idx), o.x, scales or core.scales(s.x, key_opts.scale),
                                        d:select_rows(idx), key_opts.epsilon or eps, sims.prior, node.label,
                                        key_opts.adjust, key_opts.seed, key_opts.networks)
    end
    if key_opts.num_samples then
      samples = resample(samples, key_opts.num_samples, key_opts.kde, key_opts.bandwidth, sims.prior, key_opts.seed,
                         node.label)
    end
    return { samples = samples, names = s.names, epsilon = eps, n_accepted = #idx,
             n_simulations = s.x:rows(), n_outside_support = outside,
             method = key_opts.adjust and "rejection ABC, " .. key_opts.adjust .. " adjustment" or "rejection ABC" }
  end)
end

-- SMC-ABC: adaptive population Monte Carlo ABC (Lenormand, Jabot &
-- Deffuant 2013), a fixed population of N = `particles` particles.
-- Population 0 keeps the N of sims_per_population prior simulations
-- nearest the observation (weights 1). Population t proposes
-- sims_per_population thetas by drawing a particle of population t-1 by
-- weight and moving it with a Gaussian kernel of covariance 2 x the
-- weighted covariance of population t-1 (redrawn until inside the prior's
-- support; Beaumont et al. 2009), simulates, and keeps the N nearest of
-- population t-1's particles and the new simulations together: epsilon_t is
-- the largest kept distance, so it never grows and the population never
-- shrinks. A new particle weighs prior(theta) / sum_j w_j K(theta | theta_j);
-- a retained one keeps its weight. Each population is three steps
-- (propose, simulate, population), declared when the recipe loads; once a
-- stopping rule fires, the later ones pass the result on unchanged.

-- The Cholesky factor (lower, a table of rows) of 2 x the weighted
-- covariance of the particles; a direction without spread gets variance
-- 1e-12 so that the factor exists.
local function kernel_factor(p, w, scale)
  local n, d = p:rows(), p:cols()
  local mean, row = {}, {}
  for j = 1, d do mean[j] = 0 end
  for i = 1, n do
    p:row(i, row)
    local wi = w:get(i, 1)
    for j = 1, d do mean[j] = mean[j] + wi * row[j] end
  end
  local c = {}
  for a = 1, d do c[a] = {} for b = 1, d do c[a][b] = 0 end end
  for i = 1, n do
    p:row(i, row)
    local wi = w:get(i, 1)
    for a = 1, d do
      for b = 1, a do c[a][b] = c[a][b] + scale * wi * (row[a] - mean[a]) * (row[b] - mean[b]) end
    end
  end
  return linalg.cholesky(c, d, 1e-12)
end

-- Draws rows from the particles by weight (cumulative weights and
-- bisection): returns the row number.
local function pick(cum, u)
  local lo, hi = 1, #cum
  while lo < hi do
    local mid = (lo + hi) // 2
    if cum[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function cumulative(w)
  local cum, s = {}, 0
  for i = 1, w:rows() do s = s + w:get(i, 1); cum[i] = s end
  for i = 1, #cum do cum[i] = cum[i] / s end
  return cum
end

-- The proposals of population t from population prev: n rows, stream
-- (seed, 5, t).
local function propose(prev, n, prior, seed, t, label, kscale)
  local p = prev.particles
  local l = kernel_factor(p, prev.weights, kscale)
  local cum = cumulative(prev.weights)
  return sbi_scheme.perturb(p, function(u) return pick(cum, u) end, l, n, prior, core.rng(seed, 5, t), label)
end

-- The raw importance weights of the new particles given population prev:
-- prior(theta) / sum_j w_j K(theta | theta_j), K the normalized Gaussian
-- density of the kernel (its constant matters: retained particles keep the
-- raw weights of the populations that made them, each with its own
-- kernel; population 0's are prior / prior = 1). The O(n m) sums are in C
-- (sbi_abc_smc_kernel_sums); the support truncation of the kernel is not
-- corrected for, as in Lenormand et al.
local function smc_weights(thetas, prev, prior, kscale)
  local p, d = prev.particles, prev.particles:cols()
  local l = kernel_factor(p, prev.weights, kscale)
  local rows, log_c = {}, -0.5 * d * math.log(2 * math.pi)
  for a = 1, d do
    rows[a] = {}
    for b = 1, d do rows[a][b] = b <= a and l[a][b] or 0 end
    log_c = log_c - math.log(l[a][a])
  end
  local den = core.abc_smc_kernel_sums(thetas, p, prev.weights, core.mat(rows))
  local n = thetas:rows()
  local w, th = core.mat(n, 1), {}
  for i = 1, n do
    local di = den:get(i, 1)
    w:set(i, 1, di > 0 and math.exp(prior:log_density(thetas:row(i, th)) - math.log(di) - log_c) or 0)
  end
  return w
end

-- A history row: epsilon, accepted, simulations, acceptance rate, ESS.
local HISTORY = { "epsilon", "accepted", "simulations", "acceptance", "ess" }

local function history_with(prev, eps, acc, nsim, w)
  local ess = 0
  for i = 1, w:rows() do ess = ess + w:get(i, 1) ^ 2 end
  local row = { eps, acc, nsim, nsim > 0 and acc / nsim or 0, 1 / ess }
  if prev == nil then return core.mat { row } end
  return core.vstack { prev.history, core.mat { row } }
end

-- The rule that stops the run after this population, or "" to go on. (The
-- count of populations is not one: it is not in the populations' keys, so
-- raising it reuses the populations already run.)
local function stop_reason(k, eps, rate, total)
  if k.epsilon and eps <= k.epsilon then return "epsilon" end
  if k.min_acceptance and rate < k.min_acceptance then return "min_acceptance" end
  if k.simulations and total + k.sims_per_population > k.simulations then return "simulations" end
  return ""
end

-- The indices (ascending) of the m smallest finite distances of d (ties:
-- the lower index) and the largest of them; fewer if fewer are finite.
local function closest(d, m, label)
  local n = d:rows()
  if n == 0 then error(label .. ": no simulation has a finite distance to the observation", 0) end
  local ok, idx, eps = pcall(core.abc_select, d, math.min(1, m / n))
  if not ok then error(label .. ": " .. tostring(idx), 0) end
  return idx, eps
end

local function normalized(raw)
  local n, total = raw:rows(), 0
  for i = 1, n do total = total + raw:get(i, 1) end
  if not (total > 0 and total < math.huge) then error("the importance weights are degenerate", 0) end
  local w = core.mat(n, 1)
  for i = 1, n do w:set(i, 1, raw:get(i, 1) / total) end
  return w
end

-- Population t's result from its simulations s and population prev (nil
-- for t = 0): the k.particles closest of prev's particles and the new
-- simulations (adaptive population Monte Carlo ABC, Lenormand et al. 2013).
local function population(node, k, t, s, o, prev, prior)
  if s.x:rows() > 0 and o.x:cols() ~= s.x:cols() then
    error(string.format("%s: the observation has %d values but the simulator produces %d", node.label,
                        o.x:cols(), s.x:cols()), 0)
  end
  local nsim = s.x:rows() + s.n_error + s.n_nan + s.n_length
  local total = (prev and prev.n_simulations or 0) + nsim
  local scales = prev and prev.scales or core.mat { core.scales(s.x, k.scale) }
  local d = core.abc_distances(s.x, o.x, scales:row(1))
  local theta, xs, raw, nold = s.theta, s.x, nil, 0
  if prev then
    local wok, ww = pcall(smc_weights, s.theta, prev, prior, k.kernel_scale or 2)
    if not wok then error(node.label .. ": " .. tostring(ww), 0) end
    nold = prev.particles:rows()
    theta, raw = core.vstack { prev.particles, s.theta }, core.vstack { prev.raw_weights, ww }
    xs = core.vstack { prev.x, s.x }
    d = core.vstack { prev.distances, d }
  else
    raw = core.mat(s.theta:rows(), 1)
    for i = 1, s.theta:rows() do raw:set(i, 1, 1) end
  end
  local idx, eps = closest(d, k.particles, node.label)
  local new = 0
  for _, i in ipairs(idx) do if i > nold then new = new + 1 end end
  local r = raw:select_rows(idx)
  local wok, w = pcall(normalized, r)
  if not wok then error(node.label .. ": " .. tostring(w), 0) end
  local h = history_with(prev, eps, new, nsim, w)
  core.stderr(string.format("%s: epsilon = %.4g, %d particles, %d of %d new simulations kept, ESS %.0f\n",
                            node.label, eps, #idx, new, nsim, h:get(h:rows(), 5)))
  -- x: the particles' data (summaries), for adjust = "linear".
  return { particles = theta:select_rows(idx), x = xs:select_rows(idx), weights = w, raw_weights = r,
           distances = d:select_rows(idx),
           scales = scales, names = s.names, epsilon = eps, population = t, n_simulations = total,
           history = h,
           stop_reason = stop_reason(k, eps, nsim > 0 and new / nsim or 0, total) }
end

-- The per-column KDE bandwidths of the final SMC population: factor x the
-- weighted sd of each column. The factor: a number, "scott" with the
-- effective sample size, or "cv" (as for rejection ABC) on an unweighted
-- resample of the population by weight (at most 2,000 rows; stream
-- (seed, 3, 1)), which stands for the weighted particles.
local function smc_kde_bandwidths(a, cum, how, seed, label)
  local p, w = a.particles, a.weights
  local n, d = p:rows(), p:cols()
  local mean, var, sw, sw2 = {}, {}, 0, 0
  for j = 1, d do mean[j], var[j] = 0, 0 end
  for i = 1, n do
    local wi = w:get(i, 1)
    sw, sw2 = sw + wi, sw2 + wi * wi
    for j = 1, d do mean[j] = mean[j] + wi * p:get(i, j) end
  end
  for j = 1, d do mean[j] = mean[j] / sw end
  for i = 1, n do
    local wi = w:get(i, 1) / sw
    for j = 1, d do var[j] = var[j] + wi * (p:get(i, j) - mean[j]) ^ 2 end
  end
  local std = {}
  for j = 1, d do std[j] = var[j] > 0 and math.sqrt(var[j]) or 1 end
  local f
  if type(how) == "number" then
    f = how
  elseif how == "scott" or n < 3 then
    f = ((sw * sw) / sw2) ^ (-1 / (d + 4))
  else
    local m, rng, row = math.min(n, 2000), core.rng(seed, 3, 1), {}
    local r = core.mat(m, d)
    for i = 1, m do r:set_row(i, p:row(pick(cum, rng:uniform()), row)) end
    f = core.kde_bandwidth_cv(r, std, label)
  end
  local bw = {}
  for j = 1, d do bw[j] = f * std[j] end
  return bw
end

-- One KDE draw: a particle chosen by weight plus Gaussian noise of sd bw,
-- redrawn until inside the prior's support (after 1000 tries, the
-- particle itself).
local function kde_draw(particles, cum, bw, prior, rng, row)
  local i
  for _ = 1, 1000 do
    i = pick(cum, rng:uniform())
    particles:row(i, row)
    for j = 1, #bw do row[j] = row[j] + rng:normal(0, bw[j]) end
    if prior.c:in_support(row) then return row end
  end
  return particles:row(i, row)
end

-- The data columns that vary over the particles of positive weight, with
-- the observation's and the scales' entries: a constant column (e.g. sir's
-- first count, 0 in every simulation) carries no information and would
-- make the regression singular. All columns when none is constant.
local function varying_columns(x, obs, scales, w)
  local keep, row = {}, {}
  for j = 1, x:cols() do
    local lo, hi = math.huge, -math.huge
    for i = 1, x:rows() do
      if w:get(i, 1) > 0 then
        local v = x:get(i, j)
        lo, hi = math.min(lo, v), math.max(hi, v)
      end
    end
    if lo ~= hi then keep[#keep + 1] = j end
  end
  if #keep == x:cols() or #keep == 0 then return x, obs, scales end
  local rows, o, sc = {}, {}, {}
  for i = 1, x:rows() do
    x:row(i, row)
    local r = {}
    for k, j in ipairs(keep) do r[k] = row[j] end
    rows[i] = r
  end
  for k, j in ipairs(keep) do o[k], sc[k] = obs[j], scales[j] end
  return core.mat(rows), o, sc
end

-- The final population with its particles moved by the linear regression
-- adjustment (Beaumont et al. 2002) weighted by the importance weights, as
-- the reference package's SMC-ABC with lra = True (no kernel: every particle
-- is already within epsilon), on the data columns that vary; the weights
-- are kept. Returns the population
-- and the count of adjusted particles outside the prior's support (kept).
local function smc_adjusted(a, o, prior, label)
  if o.x:cols() ~= a.x:cols() then
    error(string.format("%s: the observation has %d values but the simulator produces %d", label, o.x:cols(),
                        a.x:cols()), 0)
  end
  local x, obs, scales = varying_columns(a.x, o.x:row(1), a.scales:row(1), a.weights)
  local ok, adj = pcall(core.abc_adjust_linear_weighted, a.particles, x, obs, scales, a.weights)
  if not ok then error(string.format("%s: adjust = \"linear\": %s", label, tostring(adj)), 0) end
  local outside, row = 0, {}
  for i = 1, adj:rows() do
    if not prior:in_support(adj:row(i, row)) then outside = outside + 1 end
  end
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  out.particles = adj
  return out, outside
end

-- The final population with equal weights (weighted = false): the KDE and
-- the adjustment treat every particle alike, as sbibm's SMC-ABC KDE did
-- (its kde_sample_weights = False).
local function equally_weighted(a)
  local out, n = {}, a.weights:rows()
  for k, v in pairs(a) do out[k] = v end
  out.weights = core.mat(n, 1)
  for i = 1, n do out.weights:set(i, 1, 1 / n) end
  return out
end

-- The options of scheme = "sbi" alone, and those it refuses.
local SBI_ONLY = { "initial_round_factor", "epsilon_decay", "distance_based_decay", "ess_min",
                   "use_last_pop_samples" }
local APMC_ONLY = { "sims_per_population", "quantile", "adjust" }

-- scheme = "sbi": the reference package's SMC-ABC (stdlib/sbi/abc_smc_sbi.lua).
-- Every option's default is sbibm's (its sbibm/algorithms/sbi/smcabc.py).
local function smc_sbi(opts)
  for _, name in ipairs(APMC_ONLY) do
    if opts[name] ~= nil then
      error(string.format("sbi.abc.smc: '%s' does not apply with scheme = \"sbi\"", name), 3)
    end
  end
  if opts.simulations == nil then
    error("sbi.abc.smc: scheme = \"sbi\" needs 'simulations' (the simulation budget)", 3)
  end
  if opts.bandwidth and not opts.kde then
    error("sbi.abc.smc: 'bandwidth' only applies with kde = true", 3)
  end
  local budget = math.tointeger(opts.simulations)
  -- sbibm: 100 particles up to 10,000 simulations, 1,000 above.
  local n = math.min(math.tointeger(opts.particles or (budget > 10000 and 1000 or 100)), budget)
  if n < 2 then error(string.format("sbi.abc.smc: 'simulations' (%d) leaves fewer than 2 particles", budget), 3) end
  local factor = math.tointeger(opts.initial_round_factor or 5)
  local k = {
    algorithm = "sbi", particles = n, simulations = budget,
    initial = math.floor(math.min(math.max(factor * n, n), math.max(0.5 * budget, n))),
    epsilon_decay = opts.epsilon_decay or 0.2, distance_based_decay = opts.distance_based_decay ~= false,
    kernel_scale = opts.kernel_scale or 0.5, ess_min = opts.ess_min,
    use_last_pop_samples = opts.use_last_pop_samples ~= false, scale = opts.scale or "none",
    epsilon = opts.epsilon, min_acceptance = opts.min_acceptance,
    populations = math.tointeger(opts.populations or 30), seed = math.tointeger(opts.seed or 1),
  }
  if k.distance_based_decay and k.epsilon_decay > 1 then
    error(string.format("sbi.abc.smc: 'epsilon_decay' (%g) is a fraction of the distances with "
                        .. "distance_based_decay = true: at most 1", k.epsilon_decay), 3)
  end
  local kde = opts.kde == true
  local final = { num_samples = math.tointeger(opts.num_samples or 1000), kde = kde,
                  bandwidth = kde and (opts.bandwidth or "cv") or nil,
                  -- sbibm's KDE ignores the weights; sbi's own draws use them.
                  weighted = opts.weighted == nil and not kde or opts.weighted == true }
  return sbi_scheme.declare(opts, k, final, graph.where(3))
end

-- sbi.abc.smc{ prior =, simulator =, observation =, ... }
function M.smc(opts)
  check.options("sbi.abc.smc", opts, {
    prior = { check.is(require("sbi.prior").Prior, "a prior (sbi.prior.*)"), required = true },
    simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")), required = true },
    observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
    sims_per_population = { check.integer(2, 1000000000) },
    populations = { check.integer(1, 1000) },
    quantile = { check.fraction() },
    particles = { check.integer(2, 1000000000) },
    epsilon = { check.positive() },
    min_acceptance = { check.fraction() },
    simulations = { check.integer(1) },
    num_samples = { check.integer(1) },
    scale = { check.one_of("std", "mad", "none") },
    seed = { check.integer(0) },
    on_failure = { check.one_of("fail", "drop") },
    kde = { check.boolean() },
    bandwidth = { check.any(check.positive(), check.one_of("cv", "scott")) },
    adjust = { check.one_of("none", "linear") },
    weighted = { check.boolean() },
    kernel_scale = { check.positive() },
    summary = summary.option,
    scheme = { check.one_of("apmc", "sbi") },
    initial_round_factor = { check.integer(1) },
    epsilon_decay = { check.positive() },
    distance_based_decay = { check.boolean() },
    ess_min = { check.fraction() },
    use_last_pop_samples = { check.boolean() },
  })
  if opts.observation.kind ~= "observation" then
    error("sbi.abc.smc: 'observation' must come from sbi.observation", 2)
  end
  if opts.scheme == "sbi" then
    local node = smc_sbi(opts) -- not a tail call: the levels count this frame
    return node
  end
  for _, name in ipairs(SBI_ONLY) do
    if opts[name] ~= nil then
      error(string.format("sbi.abc.smc: '%s' only applies with scheme = \"sbi\"", name), 2)
    end
  end
  if opts.scale == "none" then error("sbi.abc.smc: scale = \"none\" only applies with scheme = \"sbi\"", 2) end
  if opts.bandwidth and not opts.kde then
    error("sbi.abc.smc: 'bandwidth' only applies with kde = true", 2)
  end
  if opts.quantile and opts.particles then
    error("sbi.abc.smc: give either 'quantile' or 'particles', not both", 2)
  end
  local spp = math.tointeger(opts.sims_per_population or 1000)
  local k = {
    -- "apmc" (Lenormand et al. 2013) is in every population's key: the
    -- populations of the earlier algorithm are not reused.
    algorithm = "apmc", sims_per_population = spp,
    particles = math.tointeger(opts.particles or math.floor((opts.quantile or 0.5) * spp)),
    epsilon = opts.epsilon, min_acceptance = opts.min_acceptance,
    simulations = opts.simulations and math.tointeger(opts.simulations), scale = opts.scale or "std",
    seed = math.tointeger(opts.seed or 1),
    kernel_scale = opts.kernel_scale, -- nil (2) by default: the keys of earlier runs unchanged
  }
  if k.particles < 2 or k.particles > spp then
    error(string.format("sbi.abc.smc: 'particles' (%d%s) must be between 2 and 'sims_per_population' (%d)",
                        k.particles, opts.particles and "" or ", from 'quantile'", spp), 2)
  end
  if k.simulations and k.simulations < k.sims_per_population then
    error(string.format("sbi.abc.smc: 'simulations' (%d) is less than one population's %d simulations",
                        k.simulations, k.sims_per_population), 2)
  end
  local p, where = opts.prior, graph.where(2)
  local _, obs = summary.inputs("sbi.abc.smc", opts.summary, nil, opts.observation, where, 2)
  -- A fresh option table per step: simulate's run reads it later.
  local function sim_opts(n, thetas, round)
    return { prior = p, simulator = opts.simulator, seed = k.seed, on_failure = opts.on_failure, n = n,
             thetas = thetas, round = round }
  end
  local prev
  for t = 0, math.tointeger(opts.populations or 5) - 1 do
    local sims
    local at = string.format("%s, population %d", where, t)
    if t == 0 then
      sims = simulate.declare(sim_opts(k.sims_per_population), 2, at)
    else
      local key = { population = t, keys = k, prior = p }
      local prop = graph.node("abc.smc.propose", at, key, { prev }, function(node, inp)
        if inp[1].stop_reason ~= "" then return { theta = core.mat(0, p:dim()) } end
        return { theta = propose(inp[1], k.sims_per_population, p, k.seed, t, node.label, k.kernel_scale or 2) }
      end)
      sims = simulate.declare(sim_opts(nil, prop, t), 2, at)
      -- A stopped run simulates nothing.
      local run = sims.run
      sims.run = function(node, inp)
        if inp[1].theta:rows() == 0 then
          local none = core.mat(0, p:dim())
          return { theta = none, x = none, names = p.names, n_kept = 0, n_error = 0, n_nan = 0, n_length = 0 }
        end
        return run(node, inp)
      end
    end
    graph.pair(sims, opts.observation)
    local inputs = { summary.inputs("sbi.abc.smc", opts.summary, sims, nil, at, 2), obs, prev }
    prev = graph.node("abc.smc.population", at, { population = t, keys = k, prior = p }, inputs, function(node, inp)
      if inp[3] and inp[3].stop_reason ~= "" then return inp[3] end
      return population(node, k, t, inp[1], inp[2], inp[3], p)
    end)
  end
  local num = math.tointeger(opts.num_samples or 1000)
  local key = { num_samples = num, seed = k.seed }
  if opts.kde then key.kde, key.bandwidth = true, opts.bandwidth or "cv" end
  -- adjust is absent from the key by default: unadjusted runs keep their keys.
  local adjust = opts.adjust == "linear"
  if adjust then key.adjust = "linear" end
  if opts.weighted == false then key.weighted = false end
  -- The adjustment regresses on the data the distances saw: the summarized
  -- observation when there is a summary.
  return graph.node("abc.smc", where, key, { prev, adjust and obs or opts.observation }, function(node, inp)
    local a, outside = inp[1], nil
    if key.weighted == false then a = equally_weighted(a) end
    if adjust then a, outside = smc_adjusted(a, inp[2], p, node.label) end
    local cum, rng = cumulative(a.weights), core.rng(k.seed, 3, 0)
    local out, row = core.mat(num, a.particles:cols()), {}
    local bw = key.kde and smc_kde_bandwidths(a, cum, key.bandwidth, k.seed, node.label)
    for i = 1, num do
      if bw then
        out:set_row(i, kde_draw(a.particles, cum, bw, p, rng, row))
      else
        out:set_row(i, a.particles:row(pick(cum, rng:uniform()), row))
      end
    end
    local h = a.history
    return { samples = out, names = a.names, particles = a.particles, weights = a.weights,
             epsilon = a.epsilon, history = h,
             history_columns = HISTORY, n_accepted = a.particles:rows(), n_simulations = a.n_simulations,
             populations = h:rows(), stop_reason = a.stop_reason ~= "" and a.stop_reason or "populations",
             kde_bandwidths = bw and core.mat { bw } or nil, n_outside_support = outside,
             method = adjust and "SMC-ABC, linear adjustment" or "SMC-ABC" }
  end)
end

return M
