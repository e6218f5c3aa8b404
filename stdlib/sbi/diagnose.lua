-- sbi.diagnose: calibration diagnostics of a posterior estimator (expected
-- coverage, SBC, TARP), posterior predictive checks, MCMC health, and
-- sbi.gate, which fails a run (exit code 3) on a diagnostic past its
-- threshold. docs/diagnostics.md explains each; the heavy part, the
-- test-set posteriors of NPE, NLE and NRE, is in C (lang/l_diagnose.c,
-- engine/infer/diagnose.c).
--
-- Every diagnostic is a cached step and an output of the run: it writes
-- <name>.csv (and .npy) and its summary goes into run.json's
-- `diagnostics`. Coverage, SBC and TARP share one step per (posterior,
-- tests, samples, seed) that draws the test set (a simulate step, so
-- chunks, --jobs, on_failure and resume work) and samples every test
-- point's posterior.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior_mod = require "sbi.prior"
local simulate = require "sbi.simulate"
local health = require "sbi.health"

local M = {}

-- Test sets draw from the streams of this round of their seed, which no
-- sequential run reaches (SBI_RNG_MAX_ROUND), so a test set never repeats
-- the training simulations of the same seed.
local TEST_ROUND = 1000000000
local STREAM_DIAG, STREAM_REF = 6, 7 -- sbi/rng.h: SBI_STREAM_DIAG, SBI_STREAM_DIAG_REF
local DEFAULTS = { tests = 200, samples = 1000, seed = 1, confidence = 0.95, chains = 10, warmup = 50, thin = 1,
                   candidates = 1000, bins = 20, ppc_draws = 1000 }

-- ---- analytic posteriors (for tests and known models) ----

local Gaussian = { __name = "sbi.diagnose.gaussian" }
Gaussian.__index = Gaussian
M.Gaussian = Gaussian

-- sbi.diagnose.gaussian{ prior =, mean = function(x) -> list, std = function(x) -> list or number }:
-- a posterior with independent Gaussian marginals given as functions of the
-- data x (a list), for models whose posterior is known (conjugate ones).
function M.gaussian(opts)
  check.options("sbi.diagnose.gaussian", opts, {
    prior = { check.is(prior_mod.Prior, "a prior (sbi.prior.*)"), required = true },
    mean = { check.func(), required = true },
    std = { check.func(), required = true },
  })
  return setmetatable({ prior = opts.prior, mean = opts.mean, std = opts.std }, Gaussian)
end

-- ---- what a posterior is ----

-- The parts of the posterior `post` a diagnostic needs: { kind, prior,
-- simulator, estimator (a training node) or key (the Lua parts) }.
local function resolve(fname, post, simulator)
  if getmetatable(post) == Gaussian then
    if not simulator then error(fname .. ": option 'simulator' is required with an sbi.diagnose.gaussian posterior", 3) end
    return { kind = "gaussian", prior = post.prior, simulator = simulator, key = { mean = post.mean, std = post.std } }
  end
  if not graph.is_node(post) then
    error(string.format("%s: option 'posterior' must be a posterior (sbi.npe, sbi.nle, sbi.nre, sbi.likelihood or "
                        .. "sbi.diagnose.gaussian), got %s", fname, check.describe(post)), 3)
  end
  local kind = post.kind:match("^(%a+)%.sample$")
  if kind == "npe" or kind == "nle" or kind == "nre" then
    local sims = post.estimator.inputs[1]
    return { kind = kind, prior = post.prior, simulator = simulator or sims.simulator, estimator = post.estimator }
  elseif kind == "likelihood" then
    if not simulator then error(fname .. ": option 'simulator' is required with an sbi.likelihood posterior", 3) end
    return { kind = "likelihood", prior = post.prior, simulator = simulator, key = { loglik = post.opts.loglik } }
  end
  error(string.format("%s: %s is not amortized: diagnostics take sbi.npe, sbi.nle, sbi.nre, sbi.likelihood or "
                      .. "sbi.diagnose.gaussian posteriors (sequential and ABC posteriors hold for one observation only)",
                      fname, post.label), 3)
end

-- ---- statistics of one test point's draws (Lua-side posteriors) ----

-- draws: list of rows; lq: their log densities; theta, lq_true: the truth;
-- ref, scale: TARP's reference point and distance scale.
local function point_stats(draws, lq, theta, lq_true, ref, scale)
  local n, d = #draws, #theta
  local above, closer, sbc, dtrue = 0, 0, {}, 0
  for j = 1, d do
    sbc[j] = 0
    local z = (theta[j] - ref[j]) / scale[j]
    dtrue = dtrue + z * z
  end
  for k = 1, n do
    if lq[k] > lq_true then above = above + 1 end
    local p, dist = draws[k], 0
    for j = 1, d do
      local z = (p[j] - ref[j]) / scale[j]
      dist = dist + z * z
      if p[j] < theta[j] then sbc[j] = sbc[j] + 1 end
    end
    if dist < dtrue then closer = closer + 1 end
  end
  return above / n, sbc, closer / n
end

-- The test-set posteriors of an analytic Gaussian, drawn in Lua.
local function gaussian_points(r, key, theta, x, ref, scale)
  local n, d = theta:rows(), theta:cols()
  local hpd, sbc, tarp = core.mat(n, 1), core.mat(n, d), core.mat(n, 1)
  local LOG2PI = math.log(2 * math.pi)
  for i = 1, n do
    local xi, th = x:row(i), theta:row(i)
    local mu, sd = key.mean(xi), key.std(xi)
    if type(sd) == "number" then
      local s = sd
      sd = {}
      for j = 1, d do sd[j] = s end
    end
    local function logq(t)
      local s = 0
      for j = 1, d do
        local z = (t[j] - mu[j]) / sd[j]
        s = s - 0.5 * z * z - math.log(sd[j]) - 0.5 * LOG2PI
      end
      return s
    end
    local rng = core.rng(r.seed, STREAM_DIAG, i - 1)
    local draws, lq = {}, {}
    for k = 1, r.n_samples do
      local p = {}
      for j = 1, d do p[j] = mu[j] + sd[j] * rng:normal() end
      draws[k], lq[k] = p, logq(p)
    end
    local h, s, t = point_stats(draws, lq, th, logq(th), ref:row(i), scale)
    hpd:set(i, 1, h); tarp:set(i, 1, t); sbc:set_row(i, s)
  end
  return hpd, sbc, tarp, nil
end

-- The test-set posteriors of an exact likelihood: MCMC per test point in
-- Lua (the log-likelihood is Lua code, so one thread), density log p(theta)
-- + loglik(theta, x_i).
local function likelihood_points(r, key, prior, theta, x, ref, scale)
  local n, d = theta:rows(), theta:cols()
  local hpd, sbc, tarp, rhat = core.mat(n, 1), core.mat(n, d), core.mat(n, 1), core.mat(n, 1)
  local meta = simulate.theta_meta(prior.names)
  for i = 1, n do
    local xi = x:row(i)
    local function loglik(t) return key.loglik(setmetatable(t, meta), xi) end
    local samples, diag = core.mcmc { prior = prior.c, loglik = loglik, kind = "slice", chains = r.chains,
                                      warmup = r.warmup, thin = r.thin, num_samples = r.n_samples, seed = r.seed,
                                      candidates = r.candidates, round = i }
    local draws, lq = {}, {}
    local function logpost(t)
      local lp = prior.c:log_density(t)
      if lp == -math.huge then return lp end
      local v = loglik({ table.unpack(t) })
      return lp + (v == v and v or -math.huge)
    end
    for k = 1, samples:rows() do
      draws[k] = samples:row(k)
      lq[k] = logpost(draws[k])
    end
    local th = theta:row(i)
    local h, s, t = point_stats(draws, lq, th, logpost(th), ref:row(i), scale)
    hpd:set(i, 1, h); tarp:set(i, 1, t); sbc:set_row(i, s)
    local worst = 0
    for _, v in ipairs(diag.rhat) do worst = (v ~= v or v > worst) and v or worst end
    rhat:set(i, 1, worst)
  end
  return hpd, sbc, tarp, rhat
end

-- x on the scale the estimator was trained on (its log columns).
local function scaled_x(label, trained, x)
  local cols = trained.log_columns and trained.log_columns:row(1) or {}
  if #cols == 0 then return x end
  local out = x:copy()
  for _, j in ipairs(cols) do
    for i = 1, x:rows() do
      local v = x:get(i, j)
      if not (v > 0) then
        error(string.format("%s: test simulation %d has value %g in column %d of x, which the estimator uses on "
                            .. "the log scale", label, i, v, j), 0)
      end
      out:set(i, j, math.log(v))
    end
  end
  return out
end

-- TARP's reference points (uniform in the box of the test parameters) and
-- distance scale (the test parameters' standard deviations).
local function tarp_references(theta, seed)
  local n, d = theta:rows(), theta:cols()
  local lo, hi, mean, sd = {}, {}, {}, {}
  for j = 1, d do lo[j], hi[j], mean[j], sd[j] = math.huge, -math.huge, 0, 0 end
  for i = 1, n do
    for j = 1, d do
      local v = theta:get(i, j)
      lo[j], hi[j], mean[j] = math.min(lo[j], v), math.max(hi[j], v), mean[j] + v / n
    end
  end
  for i = 1, n do
    for j = 1, d do sd[j] = sd[j] + (theta:get(i, j) - mean[j]) ^ 2 / n end
  end
  for j = 1, d do sd[j] = sd[j] > 0 and math.sqrt(sd[j]) or 1 end
  local ref, rng, row = core.mat(n, d), core.rng(seed, STREAM_REF, 0), {}
  for i = 1, n do
    for j = 1, d do row[j] = lo[j] + (hi[j] - lo[j]) * rng:uniform() end
    ref:set_row(i, row)
  end
  return ref, sd
end

-- The step that samples every test point's posterior; one per set of
-- options (declared once per recipe).
local ranks_steps = {}
local ranks_options = {
  tests = { check.integer(1, 1000000) },
  samples = { check.integer(1, 1 << 24) },
  seed = { check.integer(0) },
  chains = { check.integer(1, 1 << 16) },
  warmup = { check.integer(0, 1 << 30) },
  thin = { check.integer(1, 1 << 16) },
  candidates = { check.integer(1, 1 << 24) },
  on_failure = { check.one_of("fail", "drop") },
}

local function ranks_step(fname, opts, where)
  local r = resolve(fname, opts.posterior, opts.simulator)
  local key = { method = r.kind, n_samples = math.tointeger(opts.samples or DEFAULTS.samples),
                seed = math.tointeger(opts.seed or DEFAULTS.seed), analytic = r.key }
  if r.kind ~= "npe" and r.kind ~= "gaussian" then
    for _, k in ipairs { "chains", "warmup", "thin", "candidates" } do
      key[k] = math.tointeger(opts[k] or DEFAULTS[k])
    end
  end
  local tests = math.tointeger(opts.tests or DEFAULTS.tests)
  -- Shared by the diagnostics of one posterior object and simulator
  -- object with the same options.
  local memo = table.concat({ tests, key.n_samples, key.seed, tostring(key.chains), tostring(key.warmup),
                              tostring(key.thin), tostring(key.candidates), opts.on_failure or "fail" }, "|")
  local by_post = ranks_steps[opts.posterior] or {}
  ranks_steps[opts.posterior] = by_post
  local by_sim = by_post[r.simulator] or {}
  by_post[r.simulator] = by_sim
  if by_sim[memo] then return by_sim[memo], r end
  local sims = simulate.declare({ prior = r.prior, simulator = r.simulator, n = tests, seed = key.seed,
                                  round = TEST_ROUND, on_failure = opts.on_failure }, 2,
                                "test set of " .. where)
  local inputs = { sims, r.estimator }
  local prior = r.prior
  local node = graph.node("diagnose.ranks", where, key, inputs, function(node, inp)
    local t, trained = inp[1], inp[2]
    local theta = t.theta
    local ref, scale = tarp_references(theta, key.seed)
    local hpd, sbc, tarp, rhat
    if r.kind == "gaussian" then
      hpd, sbc, tarp, rhat = gaussian_points(key, r.key, theta, t.x, ref, scale)
    elseif r.kind == "likelihood" then
      hpd, sbc, tarp, rhat = likelihood_points(key, r.key, prior, theta, t.x, ref, scale)
    else
      hpd, sbc, tarp, rhat = core.diagnose_ranks {
        kind = r.kind, model = trained.model, prior = prior.c, theta = theta,
        x = scaled_x(node.label, trained, t.x), ref = ref, scale = core.mat({ scale }), samples = key.n_samples,
        seed = key.seed, chains = key.chains, warmup = key.warmup, thin = key.thin, candidates = key.candidates,
      }
      if r.kind == "npe" then rhat = nil end
    end
    core.stderr(string.format("%s: %d test-set posteriors of %d draws each\n", node.label, theta:rows(),
                              key.n_samples))
    return { hpd = hpd, sbc = sbc, tarp = tarp, rhat = rhat, names = prior.names, n_samples = key.n_samples,
             method = r.kind }
  end)
  by_sim[memo] = node
  return node, r
end

-- ---- outputs ----

local used_names = {}

-- Declares node as output `name` (default: the diagnostic's kind; a
-- second diagnostic of a kind gets _2, _3, ...).
local function as_output(fname, node, name, default)
  if name then
    if not name:match("^[%w_%-]+$") then
      error(string.format("%s: the name '%s' may only use letters, digits, '_' and '-'", fname, name), 3)
    end
    if used_names[name] then error(string.format("%s: the name '%s' is used twice", fname, name), 3) end
  else
    name = default
    local k = 1
    while used_names[name] do k = k + 1; name = default .. "_" .. k end
  end
  used_names[name] = true
  node.output_name = name
  graph.output(name, node)
  return node
end

local function median(m)
  local v = {}
  for i = 1, m:rows() do v[i] = m:get(i, 1) end
  table.sort(v, function(a, b) return a < b or (a == a and b ~= b) end)
  local n = #v
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

-- The levels of a coverage curve: given, or 0.01 .. 0.99.
local function levels_of(opts)
  if opts.levels then return opts.levels end
  local out = {}
  for k = 1, 99 do out[k] = k / 100 end
  return out
end

local function check_levels(fname, levels)
  for _, l in ipairs(levels) do
    if not (l > 0 and l < 1) then
      error(string.format("%s: option 'levels' must hold numbers strictly between 0 and 1, got %g", fname, l), 3)
    end
  end
end

-- A curve of coverage against levels from per-test values v (coverage at
-- level c: the fraction of tests with v < c), its band and its summary.
local function curve(values, levels, confidence)
  local n = values:rows()
  local tab = core.mat(#levels, 4)
  local worst, at, inside = 0, levels[1], 0
  for k, c in ipairs(levels) do
    local hits = 0
    for i = 1, n do
      if values:get(i, 1) < c then hits = hits + 1 end
    end
    local cov = hits / n
    local lo, hi = core.binomial_band(c, n, confidence)
    tab:set_row(k, { c, cov, lo, hi })
    if cov >= lo and cov <= hi then inside = inside + 1 end
    if math.abs(cov - c) > math.abs(worst) then worst, at = cov - c, c end
  end
  return tab, worst, at, inside
end

local function direction(dev)
  if dev < 0 then return "over-confident" elseif dev > 0 then return "under-confident" end
  return "calibrated"
end

local common_spec = {
  posterior = { check.table(), required = true },
  simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")) },
  name = { check.string() },
}

local merge = check.merge

local function numbers_rule()
  return check.numbers()
end

-- sbi.diagnose.coverage{ posterior =, tests = 200, samples = 1000, seed = 1, levels =, confidence = 0.95,
--                        simulator =, chains =, warmup =, thin =, candidates =, on_failure =, name = }
function M.coverage(opts)
  check.options("sbi.diagnose.coverage", opts, merge(common_spec, ranks_options, {
    levels = { numbers_rule() }, confidence = { check.fraction() } }))
  local levels = levels_of(opts)
  check_levels("sbi.diagnose.coverage", levels)
  local confidence = opts.confidence or DEFAULTS.confidence
  local where = graph.where(2)
  local ranks = ranks_step("sbi.diagnose.coverage", opts, where)
  local node = graph.node("diagnose.coverage", where, { levels = levels, confidence = confidence }, { ranks },
    function(node, inp)
      local rk = inp[1]
      local tab, dev, at, inside = curve(rk.hpd, levels, confidence)
      local art = { diagnostic = "coverage", table = tab, columns = { "level", "coverage", "lower", "upper" },
                    value = math.abs(dev), signed_deviation = dev, at_level = at, direction = direction(dev),
                    inside = inside, levels = #levels, tests = rk.hpd:rows(), confidence = confidence,
                    method = rk.method }
      if rk.rhat then art.median_rhat = median(rk.rhat) end
      return art
    end)
  return as_output("sbi.diagnose.coverage", node, opts.name, "coverage")
end

-- sbi.diagnose.tarp{ same options as coverage }: TARP's expected coverage
-- (Lemos et al. 2023) against random reference points.
function M.tarp(opts)
  check.options("sbi.diagnose.tarp", opts, merge(common_spec, ranks_options, {
    levels = { numbers_rule() }, confidence = { check.fraction() } }))
  local levels = levels_of(opts)
  check_levels("sbi.diagnose.tarp", levels)
  local confidence = opts.confidence or DEFAULTS.confidence
  local where = graph.where(2)
  local ranks = ranks_step("sbi.diagnose.tarp", opts, where)
  local node = graph.node("diagnose.tarp", where, { levels = levels, confidence = confidence }, { ranks },
    function(node, inp)
      local rk = inp[1]
      local tab, dev, at, inside = curve(rk.tarp, levels, confidence)
      return { diagnostic = "tarp", table = tab, columns = { "level", "coverage", "lower", "upper" },
               value = math.abs(dev), signed_deviation = dev, at_level = at, direction = direction(dev),
               inside = inside, levels = #levels, tests = rk.tarp:rows(), confidence = confidence, method = rk.method }
    end)
  return as_output("sbi.diagnose.tarp", node, opts.name, "tarp")
end

-- sbi.diagnose.sbc{ same options as coverage, bins = 20 }: SBC rank
-- histograms per parameter and a chi-square uniformity test of each.
function M.sbc(opts)
  check.options("sbi.diagnose.sbc", opts, merge(common_spec, ranks_options, { bins = { check.integer(2, 1000) } }))
  local bins = math.tointeger(opts.bins or DEFAULTS.bins)
  local where = graph.where(2)
  local ranks = ranks_step("sbi.diagnose.sbc", opts, where)
  local node = graph.node("diagnose.sbc", where, { bins = bins }, { ranks }, function(node, inp)
    local rk = inp[1]
    local n, d, L = rk.sbc:rows(), rk.sbc:cols(), math.tointeger(rk.n_samples)
    local b = math.min(bins, L + 1)
    local tab = core.mat(b, d + 1)
    local pvals, ks, worst, at = core.mat(1, d), core.mat(1, d), 2, 1
    for j = 1, d do
      local counts, u = {}, {}
      for k = 1, b do counts[k] = 0 end
      for i = 1, n do
        local rank = rk.sbc:get(i, j)
        local k = math.floor(rank * b / (L + 1)) + 1
        counts[k] = counts[k] + 1
        u[i] = (rank + 0.5) / (L + 1)
      end
      for k = 1, b do tab:set(k, 1, (k - 1) / b); tab:set(k, j + 1, counts[k]) end
      local p = core.chi2_uniform_p(counts)
      pvals:set(1, j, p)
      ks:set(1, j, core.ks_uniform_p(u))
      if p < worst then worst, at = p, j end
    end
    local columns = { "bin" }
    for j = 1, d do columns[j + 1] = rk.names[j] end
    return { diagnostic = "sbc", table = tab, columns = columns, value = worst, parameter = rk.names[at],
             p_values = pvals, ks_p_values = ks, tests = n, bins = b, method = rk.method }
  end)
  return as_output("sbi.diagnose.sbc", node, opts.name, "sbc")
end

-- ---- posterior predictive check ----

-- sbi.diagnose.ppc{ posterior =, simulator =, observation =, draws = 1000, seed = 1, level = 0.9, name = }
function M.ppc(opts)
  check.options("sbi.diagnose.ppc", opts, {
    posterior = { check.is(graph.Node, "a posterior step"), required = true },
    simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")) },
    observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
    draws = { check.integer(2, 1 << 24) },
    seed = { check.integer(0) },
    level = { check.fraction() },
    on_failure = { check.one_of("fail", "drop") },
    name = { check.string() },
  })
  if opts.observation.kind ~= "observation" then error("sbi.diagnose.ppc: 'observation' must come from sbi.observation", 2) end
  local post = opts.posterior
  local prior = post.prior
  local sim = opts.simulator
  if sim == nil and post.estimator then sim = post.estimator.inputs[1].simulator end
  if not prior then
    error(string.format("sbi.diagnose.ppc: %s has no prior to simulate under", post.label), 2)
  end
  if not sim then
    error("sbi.diagnose.ppc: option 'simulator' is required (the posterior does not carry one)", 2)
  end
  local where = graph.where(2)
  local draws = math.tointeger(opts.draws or DEFAULTS.ppc_draws)
  local level = opts.level or 0.9
  local pick = graph.node("diagnose.ppc_draws", where, { draws = draws }, { post }, function(node, inp)
    local s = inp[1].samples
    local n = math.min(draws, s:rows())
    local rows = {}
    for i = 1, n do rows[i] = math.floor((i - 1) * s:rows() / n) + 1 end
    return { samples = s:select_rows(rows), names = inp[1].names }
  end)
  local sims = simulate.declare({ prior = prior, simulator = sim, thetas = pick, seed = math.tointeger(opts.seed or 1),
                                  on_failure = opts.on_failure }, 2, "posterior predictive of " .. where)
  graph.pair(sims, opts.observation)
  local node = graph.node("diagnose.ppc", where, { level = level }, { sims, opts.observation }, function(node, inp)
    local x, obs = inp[1].x, inp[2].x:row(1)
    local n, k = x:rows(), x:cols()
    local tab = core.mat(k, 6)
    local mean, sd = {}, {}
    local outside = 0
    for j = 1, k do
      local v = {}
      for i = 1, n do v[i] = x:get(i, j) end
      table.sort(v)
      local function q(p) return v[math.max(1, math.min(n, math.floor(p * (n - 1) + 0.5) + 1))] end
      local m, s2 = 0, 0
      for i = 1, n do m = m + v[i] / n end
      for i = 1, n do s2 = s2 + (v[i] - m) ^ 2 / (n - 1) end
      mean[j], sd[j] = m, s2 > 0 and math.sqrt(s2) or 1
      local lo, hi = q((1 - level) / 2), q((1 + level) / 2)
      if obs[j] < lo or obs[j] > hi then outside = outside + 1 end
      tab:set_row(j, { j, obs[j], lo, q(0.5), hi, m })
    end
    -- The discrepancy: the standardized squared distance to the predictive
    -- mean, of the observation against that of every predictive draw.
    local function disc(row)
      local t = 0
      for j = 1, k do t = t + ((row[j] - mean[j]) / sd[j]) ^ 2 end
      return t
    end
    local t_obs, ge = disc(obs), 0
    for i = 1, n do
      if disc(x:row(i)) >= t_obs then ge = ge + 1 end
    end
    local p = (ge + 1) / (n + 1)
    return { diagnostic = "ppc", table = tab, columns = { "dim", "observed", "lower", "median", "upper", "mean" },
             value = p, outside = outside, dims = k, draws = n, level = level }
  end)
  return as_output("sbi.diagnose.ppc", node, opts.name, "ppc")
end

-- The classifier two-sample test lives in its own module (sbi.c2st).
M.c2st = function(opts) return require("sbi.c2st").node(opts) end

-- ---- MCMC health ----

-- sbi.diagnose.mcmc_health{ max_rhat = 1.05, min_ess = 100 }: the
-- thresholds of the MCMC warnings.
function M.mcmc_health(opts)
  check.options("sbi.diagnose.mcmc_health", opts, { max_rhat = { check.positive() }, min_ess = { check.number() } })
  if opts.max_rhat then health.thresholds.max_rhat = opts.max_rhat end
  if opts.min_ess then health.thresholds.min_ess = opts.min_ess end
end

-- ---- gates ----

local gates = {}
M.gates = gates

local gate_spec = {
  coverage = { check.table() }, tarp = { check.table() }, sbc = { check.table() }, ppc = { check.table() },
  c2st = { check.table() }, rhat = { check.positive() }, ess = { check.positive() },
}
-- kind -> { option name, value comparator }
local GATE_RULES = {
  coverage = { "max_deviation", "max" }, tarp = { "max_deviation", "max" },
  sbc = { "min_p", "min" }, ppc = { "min_p", "min" }, c2st = { "max_accuracy", "max" },
}

-- sbi.gate{ coverage = { max_deviation = D }, tarp = { max_deviation = D }, sbc = { min_p = P },
--           ppc = { min_p = P }, rhat = R, ess = E }
function M.gate(opts)
  check.options("sbi.gate", opts, gate_spec)
  for kind, rule in pairs(GATE_RULES) do
    local g = opts[kind]
    if g ~= nil then
      for k, v in pairs(g) do
        if k ~= rule[1] then
          error(string.format("sbi.gate: %s: unknown option '%s' (accepted: %s)", kind, tostring(k), rule[1]), 2)
        end
        if type(v) ~= "number" or v ~= v or v < 0 then
          error(string.format("sbi.gate: %s.%s must be a number >= 0, got %s", kind, k, check.describe(v)), 2)
        end
      end
      gates[kind] = g[rule[1]]
    end
  end
  if opts.rhat then gates.rhat = opts.rhat end
  if opts.ess then gates.ess = opts.ess end
end

-- The verdict of a diagnostic artifact without a gate: coverage and TARP
-- inside the band at a fraction `confidence` of the levels or more (the
-- band is pointwise), SBC and PPC p >= 0.01.
local function default_pass(art)
  if art.diagnostic == "c2st" then return nil end -- no verdict without a gate: what accuracy is good enough is the user's call
  if art.diagnostic == "coverage" or art.diagnostic == "tarp" then return art.inside >= art.confidence * art.levels end
  return art.value >= 0.01
end

local function describe_result(name, art)
  local d = art.diagnostic
  if d == "coverage" or d == "tarp" then
    return string.format("%s: %s over %d tests: largest deviation %.4f at level %.2f (%s), %d of %d levels inside "
                         .. "the %g%% band", name, d == "tarp" and "TARP coverage" or "expected coverage", art.tests,
                         art.value, art.at_level, art.direction, art.inside, art.levels, 100 * art.confidence)
  elseif d == "c2st" then
    return string.format("%s: C2ST accuracy %.4f (%d folds, %d against %d samples)", name, art.value, art.folds,
                         art.samples_a, art.samples_b)
  elseif d == "sbc" then
    return string.format("%s: SBC over %d tests: smallest chi-square p-value %.4g (parameter %s)", name, art.tests,
                         art.value, art.parameter)
  end
  return string.format("%s: posterior predictive check, %d draws: discrepancy p-value %.4g, %d of %d dimensions "
                       .. "outside the %g%% predictive interval", name, art.draws, art.value, art.outside, art.dims,
                       100 * art.level)
end

-- Writes the diagnostic artifact art as output `name` into dir; appends to
-- written (run.json's outputs) and to results (its diagnostics).
function M.write(name, art, dir, quiet, written, results)
  local ok, csv, npy = pcall(core.write_samples, dir, name, art.table, art.columns)
  if not ok then
    written[#written + 1] = { name = name, error = tostring(csv) }
    error(csv, 0)
  end
  written[#written + 1] = { name = name, files = { [name .. ".csv"] = csv, [name .. ".npy"] = npy } }
  core.stdout(describe_result(name, art), "\n")
  if not quiet then core.stderr(string.format("wrote %s/%s.csv and %s.npy\n", dir, name, name)) end
  if art.median_rhat then
    health.record("test-set posteriors of " .. name, art.median_rhat, nil, "MCMC (median over test points)")
  end
  local threshold = gates[art.diagnostic]
  local rule = GATE_RULES[art.diagnostic]
  local pass
  if threshold then
    pass = rule[2] == "max" and art.value <= threshold or rule[2] == "min" and art.value >= threshold
  else
    pass = default_pass(art)
  end
  results[#results + 1] = { name = name, diagnostic = art.diagnostic, value = art.value, threshold = threshold,
                            pass = pass, gated = threshold ~= nil, direction = art.direction,
                            summary = describe_result(name, art) }
end

-- Gates over MCMC health, then the message of every failed gate (nil when
-- all pass). results: as filled by M.write.
function M.finish(results)
  if gates.rhat then
    local worst, at = health.worst_rhat()
    if worst then
      results[#results + 1] = { name = "rhat", diagnostic = "rhat", value = worst, threshold = gates.rhat,
                                pass = worst == worst and worst <= gates.rhat, gated = true,
                                summary = string.format("largest R-hat %.4f (%s)", worst, at) }
    end
  end
  if gates.ess then
    local worst, at = health.worst_ess()
    if worst then
      results[#results + 1] = { name = "ess", diagnostic = "ess", value = worst, threshold = gates.ess,
                                pass = worst == worst and worst >= gates.ess, gated = true,
                                summary = string.format("smallest ESS %.1f (%s)", worst, at) }
    end
  end
  local failed = {}
  for _, r in ipairs(results) do
    if r.gated and not r.pass then
      local rule = GATE_RULES[r.diagnostic]
      local op = (rule and rule[2] == "min" or r.diagnostic == "ess") and ">=" or "<="
      failed[#failed + 1] = string.format("gate failed: %s (%s) = %.4g, required %s %.4g", r.name, r.diagnostic,
                                          r.value, op, r.threshold)
    end
  end
  return #failed > 0 and table.concat(failed, "\n") or nil
end

return M
