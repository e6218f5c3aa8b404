-- Sequential neural inference: sbi.snpe (SNPE-C / APT, and TSNPE with
-- truncate = true), sbi.snle and sbi.snre. Each round is a few graph
-- steps, labelled with their round:
--   round 0:  simulate from the prior -> train
--   round r:  propose (acquisition, from round r-1's estimator at the
--             observation) -> simulate at those theta -> train on the
--             simulations of rounds 0..r
--   then:     sample the last round's estimator at the observation.
-- Every step is cached like any other, so an interrupted run resumes from
-- the last completed step (and inside a round's simulations, from the last
-- completed chunk), and raising `rounds` re-uses the rounds already run
-- when the per-round budget stays the same (docs/sequential.md).
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior_mod = require "sbi.prior"
local simulate = require "sbi.simulate"
local neural = require "sbi.neural"
local summary = require "sbi.summary"
local linalg = require "sbi.linalg"
local health = require "sbi.health"

local P = neural.parts
local merge = P.merge

local M = {}

-- Defaults of the sequential options (docs/sequential.md).
local DEFAULTS = { rounds = 10, ensemble = 5, candidates = 10, atoms = 10, warm_start = true,
                   truncation_quantile = 1e-4 }
local ACQUISITIONS = { posterior = true, truncated = true, uncertainty = true, likely = true }

local sequential_spec = {
  prior = { check.is(prior_mod.Prior, "a prior (sbi.prior.*)"), required = true },
  simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")), required = true },
  observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
  rounds = { check.integer(1, 1000) },
  simulations = { check.integer(1, 1000000000) },
  simulations_per_round = { check.integer(1, 1000000000) },
  acquisition = { check.any(check.one_of("posterior", "truncated", "uncertainty", "likely"), check.func()) },
  ensemble = { check.integer(1, 64) },
  candidates = { check.integer(1, 1000) },
  truncation_quantile = { check.fraction() },
  warm_start = { check.boolean() },
  on_failure = { check.one_of("fail", "drop") },
  chunk_size = { check.integer(1) },
  summary = summary.option,
}

-- The number of simulations of each round (a list, round 0 first):
-- simulations_per_round each, or `simulations` split evenly, the first
-- rounds taking one more when it does not divide.
local function budgets(fname, opts, rounds)
  if opts.simulations and opts.simulations_per_round then
    error(fname .. ": give 'simulations' (the total) or 'simulations_per_round', not both", 4)
  end
  local n = {}
  if opts.simulations_per_round then
    for r = 1, rounds do n[r] = math.tointeger(opts.simulations_per_round) end
    return n
  end
  if not opts.simulations then
    error(fname .. ": option 'simulations' (the total budget) or 'simulations_per_round' is required", 4)
  end
  local total = math.tointeger(opts.simulations)
  if total < rounds then
    error(string.format("%s: %d simulations cannot be spread over %d rounds", fname, total, rounds), 4)
  end
  local each, extra = total // rounds, total % rounds
  for r = 1, rounds do n[r] = each + (r <= extra and 1 or 0) end
  return n
end

-- ---- the current estimator at the observation ----
--
-- est = { sample = function(n) -> Mat, log_prob = function(Mat) -> Mat
-- (n x 1, log posterior density up to a constant, -inf outside the prior),
-- members = { log_prob, ... } (one per ensemble member; member 1 is the
-- estimator), method = "snpe" | "snle" | "snre" }.

-- log p(theta) per row (-inf outside the support), added to lp in place.
local function add_log_prior(prior, thetas, lp)
  local row = {}
  for i = 1, thetas:rows() do
    local ld = prior.c:log_density(thetas:row(i, row))
    lp:set(i, 1, (ld == ld and ld > -math.huge) and lp:get(i, 1) + ld or -math.huge)
  end
  return lp
end

local function npe_estimator(label, t, obs, prior, seed, round)
  local x = P.scaled_observation(label, t, obs)
  local flows = {}
  for k, blob in ipairs(P.members_of(t)) do flows[k] = core.flow_load(blob) end
  local _, dc = flows[1]:dims()
  P.check_observation(label, obs, dc)
  local members = {}
  for k, f in ipairs(flows) do
    members[k] = function(thetas)
      local lp = f:log_prob(thetas, x)
      local row = {}
      for i = 1, thetas:rows() do
        if not prior.c:in_support(thetas:row(i, row)) then lp:set(i, 1, -math.huge) end
      end
      return lp
    end
  end
  return { method = "snpe", members = members, log_prob = members[1],
           sample = function(n) return (P.sample_flow_posterior(label, flows[1], x, prior, n, seed, round)) end }
end

-- An MCMC-sampled estimator (NLE, NRE): target(model) gives core.mcmc's
-- target fields, log_lik(model, thetas) the log-likelihood (or ratio).
local function mcmc_estimator(method, label, t, prior, key, round, load, target, log_lik)
  local models = {}
  for k, blob in ipairs(P.members_of(t)) do models[k] = load(blob) end
  local members = {}
  for k, m in ipairs(models) do
    members[k] = function(thetas) return add_log_prior(prior, thetas, log_lik(m, thetas)) end
  end
  local function sample(n)
    local spec = target(models[1])
    spec.prior, spec.kind, spec.chains, spec.warmup, spec.thin = prior.c, key.sampler, key.chains, key.warmup, key.thin
    spec.num_samples, spec.seed, spec.round, spec.candidates = n, key.seed, round, P.MCMC_DEFAULTS.candidates
    local samples, diag = core.mcmc(spec)
    local worst = 0
    for _, r in ipairs(diag.rhat) do worst = math.max(worst, r) end
    local modes = health.modes(diag)
    core.stderr(string.format("%s: %s sampling, %d draws, max R-hat %.3f%s\n", label, key.sampler, n, worst,
                              modes and "; " .. modes or ""))
    return samples
  end
  return { method = method, members = members, log_prob = members[1], sample = sample }
end

-- ---- acquisitions ----

-- The n rows of candidates with the largest score (ties: the earlier row).
local function top_rows(candidates, score, n)
  local idx = {}
  for i = 1, candidates:rows() do
    local s = score[i]
    if s ~= s then score[i] = -math.huge end -- NaN ranks last
    idx[i] = i
  end
  table.sort(idx, function(a, b)
    if score[a] ~= score[b] then return score[a] > score[b] end
    return a < b
  end)
  local pick = {}
  for i = 1, math.min(n, #idx) do pick[i] = idx[i] end
  table.sort(pick)
  return candidates:select_rows(pick)
end

-- Per candidate row: the mean and the variance over the members' log densities.
local function member_moments(est, candidates)
  local lps = {}
  for k, f in ipairs(est.members) do lps[k] = f(candidates) end
  local mean, var = {}, {}
  local K = #lps
  for i = 1, candidates:rows() do
    local s, ss = 0, 0
    for k = 1, K do s = s + lps[k]:get(i, 1) end
    local m = s / K
    for k = 1, K do ss = ss + (lps[k]:get(i, 1) - m) ^ 2 end
    mean[i], var[i] = m, K > 1 and ss / (K - 1) or 0
  end
  return mean, var
end

-- n draws by sampling-importance-resampling of the prior restricted to
-- { log_prob >= threshold }: candidates from the current posterior (which
-- covers that region), weights prior / posterior inside it.
local function truncated_sir(est, prior, n, threshold, factor, rng)
  local cand = est.sample(n * factor)
  local lp = est.log_prob(cand)
  local lw, top, row = {}, -math.huge, {}
  for i = 1, cand:rows() do
    local l = lp:get(i, 1)
    lw[i] = l >= threshold and prior.c:log_density(cand:row(i, row)) - l or -math.huge
    if lw[i] ~= lw[i] then lw[i] = -math.huge end
    top = math.max(top, lw[i])
  end
  local cum, total = {}, 0
  for i = 1, #lw do total = total + math.exp(lw[i] - top); cum[i] = total end
  local pick = {}
  for k = 1, n do
    local u, lo, hi = rng:uniform() * total, 1, #cum
    while lo < hi do
      local mid = (lo + hi) // 2
      if cum[mid] > u then hi = mid else lo = mid + 1 end
    end
    pick[k] = lo
  end
  return cand:select_rows(pick)
end

-- The lower Cholesky factor (a table of rows) of c x the sample covariance
-- of the rows of m; a direction without spread gets variance 1e-12.
local function scaled_chol(m, c)
  local n, d = m:rows(), m:cols()
  local mean, row = {}, {}
  for j = 1, d do mean[j] = 0 end
  for i = 1, n do
    m:row(i, row)
    for j = 1, d do mean[j] = mean[j] + row[j] / n end
  end
  local cov = {}
  for a = 1, d do cov[a] = {} for b = 1, d do cov[a][b] = 0 end end
  for i = 1, n do
    m:row(i, row)
    for a = 1, d do
      for b = 1, a do cov[a][b] = cov[a][b] + c * (row[a] - mean[a]) * (row[b] - mean[b]) / math.max(1, n - 1) end
    end
  end
  return linalg.cholesky(cov, d, 1e-12)
end

-- Moves the rows of start (draws of the prior restricted to { log_prob >=
-- threshold }, approximately: importance-resampled, so with repeats) by
-- `steps` sweeps of random-walk Metropolis whose target is that restricted
-- prior: one chain per row, all chains a batch per sweep; a Gaussian step
-- of covariance 2.38^2 / d x the covariance of start; a move is accepted
-- with probability prior(new) / prior(old) if it stays in the prior's
-- support and in the region. The target is invariant, so the chains keep
-- the resampled draws' distribution (or improve it) and separate repeats.
local function truncated_mcmc(est, prior, start, threshold, steps, rng)
  local n, d = start:rows(), start:cols()
  local l = scaled_chol(start, 2.38 ^ 2 / d)
  local cur, lp, row, z = {}, {}, {}, {}
  for i = 1, n do
    cur[i] = start:row(i)
    lp[i] = prior.c:log_density(cur[i])
  end
  local moved = 0
  for _ = 1, steps do
    local prop, ok = {}, {}
    for i = 1, n do
      for a = 1, d do z[a] = rng:normal(0, 1) end
      local p = {}
      for a = 1, d do
        local v = 0
        for b = 1, a do v = v + l[a][b] * z[b] end
        p[a] = cur[i][a] + v
      end
      prop[i], ok[i] = p, prior.c:in_support(p)
      if not ok[i] then prop[i] = cur[i] end -- evaluated but never accepted
    end
    local q = est.log_prob(core.mat(prop))
    for i = 1, n do
      local u = rng:uniform()
      if ok[i] and q:get(i, 1) >= threshold then
        local lpn = prior.c:log_density(prop[i])
        if math.log(u) < lpn - lp[i] then cur[i], lp[i], moved = prop[i], lpn, moved + 1 end
      end
    end
  end
  for i = 1, n do row[i] = cur[i] end
  return core.mat(row), moved / (n * steps)
end

-- The prior restricted to { theta : log_prob(theta) >= threshold }, where
-- the threshold is the q-quantile of log_prob over draws of the current
-- posterior (the highest-density region holding 1 - q of its mass;
-- Deistler et al. 2022): n draws by rejection from the prior, or, when
-- that region holds too little of the prior for rejection (fewer than n
-- kept out of 200,000 draws), by sampling-importance-resampling of
-- posterior draws followed by 20 sweeps of random-walk Metropolis on the
-- restricted prior, which turn the resampling's repeats into distinct draws.
local function truncated_prior(label, est, prior, n, draws, q, seed, round, factor)
  local lp = est.log_prob(draws)
  local v = {}
  for i = 1, lp:rows() do v[i] = lp:get(i, 1) end
  table.sort(v)
  local threshold = v[math.max(1, math.floor(q * #v))]
  local rng = core.rng(seed, 3 + (round << 32), 1 << 31)
  local parts, got, drawn, batch = {}, 0, 0, 10000
  while got < n and drawn < math.max(200000, 20 * n) do
    local rows = {}
    for i = 1, batch do rows[i] = prior.c:sample(rng) end
    local th = core.mat(rows)
    local l = est.log_prob(th)
    local keep = {}
    for i = 1, batch do
      if l:get(i, 1) >= threshold then keep[#keep + 1] = i end
    end
    drawn = drawn + batch
    if #keep > 0 then parts[#parts + 1] = th:select_rows(keep); got = got + #keep end
  end
  if got >= n then
    core.stderr(string.format("%s: truncated prior: log density threshold %.4g, %.3g%% of prior draws kept\n",
                              label, threshold, 100 * got / drawn))
    return core.vstack(parts, n)
  end
  local start = truncated_sir(est, prior, n, threshold, factor, rng)
  local out, rate = truncated_mcmc(est, prior, start, threshold, 20, rng)
  core.stderr(string.format("%s: truncated prior: log density threshold %.4g holds %.3g%% of the prior; "
                            .. "sampling it by importance resampling of %d posterior draws and 20 Metropolis "
                            .. "sweeps (%.0f%% of moves accepted)\n", label, threshold, 100 * got / drawn,
                            n * factor, 100 * rate))
  return out
end

-- The theta of round r's simulations: n of them (a user function chooses
-- its own count).
local function acquire(label, key, est, prior, n, round)
  local a = key.acquisition
  if a == "posterior" then return est.sample(n) end
  local candidates = est.sample(n * key.candidates)
  if a == "truncated" then
    return truncated_prior(label, est, prior, n, candidates, key.truncation_quantile, key.seed, round, key.candidates)
  elseif a == "likely" then
    local mean = member_moments(est, candidates)
    return top_rows(candidates, mean, n)
  elseif a == "uncertainty" then
    local _, var = member_moments(est, candidates)
    return top_rows(candidates, var, n)
  end
  -- A user function: fn(round, estimator, candidates) -> Mat or rows.
  local user = { method = est.method, sample = est.sample, log_prob = est.log_prob, members = est.members,
                 n = n }
  local ok, out = pcall(a, round, user, candidates)
  if not ok then error(string.format("%s: the acquisition function failed: %s", label, tostring(out)), 0) end
  if type(out) == "table" and getmetatable(out) == nil then
    if #out == 0 then error(label .. ": the acquisition function returned no theta", 0) end
    local okm, m = pcall(core.mat, out)
    if not okm then error(string.format("%s: the acquisition function's rows: %s", label, tostring(m)), 0) end
    out = m
  end
  local okc, cols = pcall(function() return out:cols() end)
  if not okc then
    error(string.format("%s: the acquisition function must return a Mat or a list of rows, got %s", label,
                        type(out)), 0)
  end
  if cols ~= prior.c:dim() or out:rows() == 0 then
    error(string.format("%s: the acquisition function returned %d x %d, expected rows of %d parameters", label,
                        out:rows(), cols, prior.c:dim()), 0)
  end
  return out
end

-- ---- the rounds ----

-- Declares the rounds of method m ("snpe", "snle", "snre"); hooks:
--   train(r, sims_list, prev) -> training node of round r
--   estimator(node, train_artifact, obs_artifact, r) -> est (above)
-- Returns the last training node.
local function declare_rounds(fname, m, opts, key, hooks)
  local where = graph.where(3)
  local p, n = opts.prior, budgets(fname, opts, key.rounds)
  -- With a compressor, every round's simulations and the observation go
  -- through it (sbi.summary); obs is what the rounds see.
  local _, obs = summary.inputs(fname, opts.summary, nil, opts.observation, where, 3)
  local sims_list, train = {}, nil
  for r = 0, key.rounds - 1 do
    local at = string.format("%s, round %d", where, r)
    local sopts = { prior = p, simulator = opts.simulator, seed = key.seed, on_failure = opts.on_failure,
                    chunk_size = opts.chunk_size, round = r }
    if r == 0 then
      sopts.n = n[1]
    else
      local pkey = { round = r, n = n[r + 1], acquisition = key.acquisition, candidates = key.candidates,
                     truncation_quantile = key.truncation_quantile, seed = key.seed, prior = p,
                     mcmc = key.mcmc }
      sopts.thetas = graph.node(m .. ".propose", at, pkey, { train, obs }, function(node, inp)
        local est = hooks.estimator(node, inp[1], inp[2], r)
        local theta = acquire(node.label, pkey, est, p, pkey.n, r)
        core.stderr(string.format("%s: %d theta (%s)\n", node.label, theta:rows(),
                                  type(key.acquisition) == "string" and key.acquisition or "user function"))
        return { theta = theta, names = p.names }
      end)
    end
    local sims = simulate.declare(sopts, 3, at)
    graph.pair(sims, opts.observation)
    sims_list[#sims_list + 1] = (summary.inputs(fname, opts.summary, sims, nil, at, 3))
    train = hooks.train(r, at, { table.unpack(sims_list) }, train)
  end
  return train, where, obs
end

-- The sequential key shared by the three methods (also what docs list).
local function sequential_key(fname, opts)
  local a = opts.acquisition or "posterior"
  local ensemble = math.tointeger(opts.ensemble or (a == "uncertainty" and DEFAULTS.ensemble or 1))
  if a == "uncertainty" and ensemble < 2 then
    error(fname .. ": acquisition = \"uncertainty\" needs an ensemble of at least 2 estimators", 3)
  end
  return {
    rounds = math.tointeger(opts.rounds or DEFAULTS.rounds), acquisition = a, ensemble = ensemble,
    candidates = math.tointeger(opts.candidates or DEFAULTS.candidates),
    truncation_quantile = opts.truncation_quantile or DEFAULTS.truncation_quantile,
    warm_start = opts.warm_start == nil and DEFAULTS.warm_start or opts.warm_start, seed = P.integer_seed(opts),
  }
end

local function check_density(fname, opts, key)
  if key.ensemble > 1 and opts.density == "auto" then
    error(fname .. ": an ensemble (ensemble > 1) needs one density: \"maf\", \"nsf\" or \"mdn\", not \"auto\"", 3)
  end
end

local function seq_of(key, r, prev, extra)
  -- Round 0 has nothing to start from: its key is the same either way.
  return merge({ round = r, prev = prev, warm_start = (r > 0 and key.warm_start) or nil,
                 members = key.ensemble > 1 and key.ensemble or nil }, extra or {})
end

-- sbi.snpe{ prior =, simulator =, observation =, rounds = 10, simulations = N
--           | simulations_per_round = n, truncate = false, atoms = 10, ... }
function M.snpe(opts)
  check.options("sbi.snpe", opts, merge(sequential_spec, P.estimator_spec, P.embedding_spec, P.sampling_spec, {
    truncate = { check.boolean() }, atoms = { check.integer(2, 1000) }, nested_validation = { check.boolean() },
  }))
  P.embedding_key("sbi.snpe", opts.embedding, 2)
  local key = sequential_key("sbi.snpe", opts)
  if opts.truncate then
    if opts.acquisition and opts.acquisition ~= "truncated" then
      error("sbi.snpe: truncate = true (TSNPE) draws from the truncated prior; it takes no other acquisition", 2)
    end
    if opts.atoms then error("sbi.snpe: truncate = true trains with the plain NPE loss; 'atoms' does not apply", 2) end
    key.acquisition = "truncated"
  end
  check_density("sbi.snpe", opts, key)
  local p = opts.prior
  local topts = merge(opts, { density = opts.density or "maf" })
  local atoms = not opts.truncate and math.tointeger(opts.atoms or DEFAULTS.atoms) or nil
  -- nested_validation: the validation rows of every round are those of the
  -- rounds before plus a share of the new ones, never rows an earlier
  -- round trained on (with warm starts, a split redrawn each round selects
  -- the weights on rows the starting weights were fitted to). Off by
  -- default: better on the tutorial, worse on two_moons
  -- (docs/sequential.md#validation-rows).
  local nested = opts.nested_validation == true
  local fname = opts.truncate and "tsnpe" or "snpe"
  local train, where, obs = declare_rounds("sbi.snpe", fname, opts, key, {
    train = function(r, at, sims, prev)
      -- Round 0's simulations are from the prior: the plain loss. Later
      -- rounds' mix proposals: the atomic loss (APT), unless truncated.
      local seq = seq_of(key, r, prev, { atoms = r > 0 and atoms or nil, prior = p,
                                         nested_split = nested or nil })
      return P.train_node(fname .. ".train", at, sims, topts, "theta", "x", "maf", seq)
    end,
    estimator = function(node, t, obs, r) return npe_estimator(node.label, t, obs, p, key.seed, r) end,
  })
  local skey = { num_samples = math.tointeger(opts.num_samples or P.SAMPLING_DEFAULTS.num_samples), seed = key.seed }
  local node = graph.node(fname .. ".sample", where, skey, { train, obs }, function(node, inp)
    local est = npe_estimator(node.label, inp[1], inp[2], p, key.seed, 0)
    local samples = est.sample(skey.num_samples)
    core.stderr(string.format("%s: %d samples\n", node.label, skey.num_samples))
    return { samples = samples, names = p.names, method = opts.truncate and "TSNPE" or "SNPE",
             rounds = key.rounds }
  end)
  node.estimator, node.prior = train, p
  return node
end

-- The MCMC key of a sequential method's final sampling, and the part of
-- it that the proposals use (not num_samples: changing the final number
-- of samples must not re-run the rounds).
local function mcmc_key_of(opts, p)
  local k = P.mcmc_key(opts, p.c:dim())
  return k, { sampler = k.sampler, chains = k.chains, warmup = k.warmup, thin = k.thin, seed = k.seed }
end

local function snle_target(label, t, obs)
  local flow = core.flow_load(t.model)
  local dy = flow:dims()
  P.check_observation(label, obs, dy)
  return { flow = flow, posterior = false, x = P.scaled_observation(label, t, obs) }
end

-- sbi.snle{ prior =, simulator =, observation =, rounds =, simulations =, ...MCMC options... }
function M.snle(opts)
  P.refuse_embedding("sbi.snle", opts)
  check.options("sbi.snle", opts, merge(sequential_spec, P.estimator_spec, P.sampling_spec, P.mcmc_spec))
  local key = sequential_key("sbi.snle", opts)
  check_density("sbi.snle", opts, key)
  local p, mkey, proposal_mcmc = opts.prior, mcmc_key_of(opts, opts.prior)
  key.mcmc = proposal_mcmc
  local train, where, obs = declare_rounds("sbi.snle", "snle", opts, key, {
    train = function(r, at, sims, prev)
      return P.train_node("snle.train", at, sims, opts, "x", "theta", "maf", seq_of(key, r, prev))
    end,
    estimator = function(node, t, obs, r)
      local x = snle_target(node.label, t, obs).x
      return mcmc_estimator("snle", node.label, t, p, proposal_mcmc, r, core.flow_load,
        function(flow) return { flow = flow, posterior = false, x = x } end,
        function(flow, thetas) return flow:log_prob(x, thetas) end)
    end,
  })
  local node = P.mcmc_node("snle.sample", where, { train, obs }, mkey, p, "SNLE",
    function(node, inp) return snle_target(node.label, inp[1], inp[2]) end)
  node.estimator, node.prior = train, p
  return node
end

-- sbi.snre{ prior =, simulator =, observation =, rounds =, simulations =, ...classifier and MCMC options... }
function M.snre(opts)
  check.options("sbi.snre", opts, merge(sequential_spec, P.classifier_spec, P.embedding_spec, P.sampling_spec,
                                        P.mcmc_spec))
  P.embedding_key("sbi.snre", opts.embedding, 2)
  if opts.loss == "binary" and opts.atoms then
    error("sbi.snre: 'atoms' only applies to loss = \"contrastive\"", 2)
  end
  local key = sequential_key("sbi.snre", opts)
  local p, mkey, proposal_mcmc = opts.prior, mcmc_key_of(opts, opts.prior)
  key.mcmc = proposal_mcmc
  local function target(label, t, obs)
    local c = core.classifier_load(t.model)
    local _, dx = c:dims()
    P.check_observation(label, obs, dx)
    return { classifier = c, x = P.scaled_observation(label, t, obs) }
  end
  local train, where, obs = declare_rounds("sbi.snre", "snre", opts, key, {
    train = function(r, at, sims, prev)
      return P.classifier_train_node("snre.train", at, sims, opts, seq_of(key, r, prev))
    end,
    estimator = function(node, t, obs, r)
      local x = target(node.label, t, obs).x
      return mcmc_estimator("snre", node.label, t, p, proposal_mcmc, r, core.classifier_load,
        function(c) return { classifier = c, x = x } end,
        function(c, thetas) return c:log_ratio(thetas, x) end)
    end,
  })
  local node = P.mcmc_node("snre.sample", where, { train, obs }, mkey, p, "SNRE",
    function(node, inp) return target(node.label, inp[1], inp[2]) end)
  node.estimator, node.prior = train, p
  return node
end

M.DEFAULTS = DEFAULTS
M.ACQUISITIONS = ACQUISITIONS
return M
