-- Neural posterior and likelihood estimation (NPE, NLE) and exact-likelihood
-- MCMC: Lua modules over the engine's flows, training loop and samplers
-- (lang/l_flow.c, l_classifier.c, l_mcmc.c). Each method is two graph nodes: a training node that only
-- depends on the simulations (so a new observation or new sampling options
-- re-use the trained estimator) and a sampling node.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior_mod = require "sbi.prior"
local simulate = require "sbi.simulate"
local summary = require "sbi.summary"
local health = require "sbi.health"

local M = {}

local merge = check.merge

-- The inputs of every estimator: simulations and the observation.
local inputs_spec = {
  sims = { check.is(graph.Node, "the result of sbi.simulate"), required = true },
  observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
  summary = summary.option,
}

-- Training options shared by every estimator (docs/neural.md explains each).
local training_spec = {
  x_transform = { check.one_of("auto", "log", "none") },
  batch_size = { check.integer(1, 1 << 30) },
  learning_rate = { check.positive() },
  validation_fraction = { check.fraction() },
  patience = { check.integer(0, 1 << 30) },
  max_epochs = { check.integer(1, 1 << 30) },
  clip = { check.number() },
}

-- Options of the density estimator (flows), with its training.
local estimator_spec = merge({
  density = { check.one_of("maf", "nsf", "mdn", "auto") },
  components = { check.integer(1) },
  transforms = { check.integer(1) },
  hidden = { check.integer(1) },
  layers = { check.integer(0) },
  bins = { check.integer(2) },
  bound = { check.positive() },
  activation = { check.one_of("tanh", "relu", "elu", "silu") },
}, training_spec)

-- A learned embedding network e(x), trained jointly with the estimator
-- (NPE's flow sees e(x) as its context, NRE's classifier [theta, e(x)]):
-- embedding = true (the defaults) or { hidden = { widths } or a width (with
-- layers), layers =, out =, activation = } (docs/neural.md#learned-embeddings).
-- NLE takes none: it models the density of x itself, and a jointly learned
-- embedding of the modelled variable can collapse (a constant e(x) has an
-- arbitrarily high density).
local EMBEDDING_DEFAULTS = { hidden = { 64, 64 }, out = 20, activation = "relu", layers = 2 }
local embedding_spec = {
  embedding = { { test = function(v) return v == true or (type(v) == "table" and getmetatable(v) == nil) end,
                  doc = "true or a table { hidden =, layers =, out =, activation = }" } },
}
local embedding_fields = {
  hidden = { check.any(check.integer(1, 1 << 16), { test = function(v)
    if type(v) ~= "table" or #v > 8 then return false end
    for i = 1, #v do
      if math.type(v[i]) ~= "integer" and not (type(v[i]) == "number" and v[i] == math.floor(v[i])) then
        return false
      end
      if v[i] < 1 or v[i] > 1 << 16 then return false end
    end
    for k in pairs(v) do if math.type(k) ~= "integer" or k < 1 or k > #v then return false end end
    return true
  end, doc = "a list of at most 8 layer widths" }) },
  layers = { check.integer(0, 8) },
  out = { check.integer(1, 4096) },
  activation = { check.one_of("tanh", "relu", "elu", "silu") },
}

-- The canonical form of a checked embedding option (every value filled, so
-- writing a default does not retrain), or nil. fname names the caller in
-- errors, which point at the recipe line (level).
local function embedding_key(fname, v, level)
  if v == nil then return nil end
  if v == true then v = {} end
  check.options(fname .. " embedding", v, embedding_fields, level + 1)
  if v.layers and type(v.hidden) == "table" then
    error(fname .. ": embedding: 'layers' goes with a single width (hidden = 64), not a list of widths", level)
  end
  local hidden = v.hidden or EMBEDDING_DEFAULTS.hidden
  if type(hidden) ~= "table" then
    local list = {}
    for i = 1, math.tointeger(v.layers or EMBEDDING_DEFAULTS.layers) do list[i] = math.tointeger(hidden) end
    hidden = list
  elseif v.hidden == nil and v.layers then
    hidden = {}
    for i = 1, math.tointeger(v.layers) do hidden[i] = EMBEDDING_DEFAULTS.hidden[1] end
  end
  local widths = {}
  for i, w in ipairs(hidden) do widths[i] = math.tointeger(w) end
  return { hidden = widths, out = math.tointeger(v.out or EMBEDDING_DEFAULTS.out),
           activation = v.activation or EMBEDDING_DEFAULTS.activation }
end

-- NLE and SNLE refuse an embedding, saying what to use instead.
local function refuse_embedding(fname, opts)
  if type(opts) == "table" and opts.embedding ~= nil then
    error(fname .. ": 'embedding' is not available for likelihood estimation: NLE models the density of x "
          .. "itself, and an embedding of x learned with it can collapse (a constant e(x) has unbounded density); "
          .. "compress x with a fitted summary instead (summary = ...), or use sbi.npe / sbi.nre with embedding", 3)
  end
end

local sampling_spec = {
  num_samples = { check.integer(1, 1 << 30) },
  seed = { check.integer(0) },
}

local mcmc_spec = {
  sampler = { check.one_of("slice", "ensemble") },
  chains = { check.integer(1, 1 << 16) },
  warmup = { check.integer(0, 1 << 30) },
  thin = { check.integer(1, 1 << 16) },
}

local function pick(opts, spec)
  local out = {}
  for k in pairs(spec) do out[k] = opts[k] end
  return out
end

local function check_inputs(fname, opts)
  if opts.sims.kind ~= "simulate" then error(fname .. ": 'sims' must come from sbi.simulate", 3) end
  if opts.observation.kind ~= "observation" then
    error(fname .. ": 'observation' must come from sbi.observation", 3)
  end
  graph.pair(opts.sims, opts.observation)
end

-- The simulations and the observation as the estimator sees them: through
-- the compressor opts.summary when given (sbi.summary).
local function estimator_inputs(fname, opts, where)
  return summary.inputs(fname, opts.summary, opts.sims, opts.observation, where, 3)
end

-- The defaults of every option (also in docs/neural.md), and the only
-- ones: sbi.core and the engine require every value. They are filled into
-- the keys, so writing a default explicitly does not retrain.
-- Batch sizes were chosen by measurement (docs/benchmarks-neural.md): flows
-- reach a lower validation loss with 50 (the reference package's size when
-- its figures were measured) at about the same cost; the classifier keeps 200.
local TRAINING_DEFAULTS = { x_transform = "auto", batch_size = 200, learning_rate = 5e-4, validation_fraction = 0.1,
                            patience = 20, max_epochs = 2000, clip = 5 }
local FLOW_DEFAULTS = merge(TRAINING_DEFAULTS, { transforms = 5, hidden = 50, layers = 2, batch_size = 50 })
local NSF_DEFAULTS = { bins = 10, bound = 3 }
local MDN_DEFAULTS = { components = 10 }
local FLOW_ACTIVATION = { maf = "tanh", nsf = "relu", mdn = "tanh" } -- by density, unless given
local CLASSIFIER_DEFAULTS = merge(TRAINING_DEFAULTS, { hidden = 50, layers = 2, residual = true, activation = "relu" })
local NRE_DEFAULTS = { loss = "contrastive", atoms = 10 }
local SAMPLING_DEFAULTS = { num_samples = 10000, seed = 1 }
-- chains: for the slice sampler; the ensemble sampler's default is 4 D + 4
-- walkers. candidates: the prior draws among which the chains' starting
-- points are chosen (not an option).
local MCMC_DEFAULTS = { sampler = "slice", chains = 20, warmup = 200, thin = 1, candidates = 10000 }

local function integer_seed(opts) return math.tointeger(opts.seed or SAMPLING_DEFAULTS.seed) end

local function with_defaults(opts, spec, defaults)
  local key = pick(opts, spec)
  for k, v in pairs(defaults) do
    if key[k] == nil then key[k] = v end
  end
  for k, v in pairs(key) do key[k] = math.tointeger(v) or v end
  return key
end

-- The core.flow_train spec of one flow of the given density: every value
-- it uses (key has the defaults filled in).
local function flow_spec(key, density, s, y_field, c_field, label)
  local nsf = density == "nsf"
  return {
    kind = density, y = s[y_field], context = s[c_field], transforms = key.transforms, hidden = key.hidden,
    components = key.components,
    layers = key.layers, bins = nsf and key.bins or nil, bound = nsf and key.bound or nil,
    activation = key.activation or FLOW_ACTIVATION[density], batch_size = key.batch_size,
    learning_rate = key.learning_rate, validation_fraction = key.validation_fraction, patience = key.patience,
    max_epochs = key.max_epochs, clip = key.clip, seed = key.seed, label = label, embedding = key.embedding,
  }
end

-- The columns of the simulated data x that are used on the log scale.
-- "auto": the strictly positive columns with skewness above 1 that the log
-- makes smaller in magnitude (multiplicative noise, population sizes):
-- after z-scoring, their small values are crowded together and a few large
-- ones dominate, which an affine flow cannot model and a network barely
-- resolves. "log": every column, which must all be positive.
local function log_columns(label, x, mode)
  local cols = {}
  if mode == "none" then return cols end
  local positive, skewed = core.log_candidates(x)
  for j = 1, x:cols() do
    if mode == "log" and not positive[j] then
      error(string.format("%s: x_transform = \"log\" needs positive data, but column %d of the simulations has a "
                          .. "value <= 0 (use \"auto\" or \"none\")", label, j), 0)
    end
    if mode == "log" or skewed[j] then cols[#cols + 1] = j end
  end
  return cols
end

-- A copy of m with the log of the given columns; nil and the first
-- offending (row, column) if one of those values is not positive.
local function log_transform(m, cols)
  if #cols == 0 then return m end
  local out = core.mat(m:rows(), m:cols())
  for i = 1, m:rows() do out:set_row(i, m:row(i)) end
  for _, j in ipairs(cols) do
    for i = 1, m:rows() do
      local v = m:get(i, j)
      if not (v > 0) then return nil, i, j end
      out:set(i, j, math.log(v))
    end
  end
  return out
end

-- The simulations with x on the scale the estimator is trained on, and the
-- log columns as an artifact field (nil when none). The transform is
-- a fixed bijection of the data: for NLE its Jacobian does not depend on
-- theta, for NPE and NRE it only changes what the network sees, so the
-- posterior targeted is the same. cols, when given, are the columns to use
-- (a later round of sequential inference keeps round 0's).
local function scaled_simulations(label, s, mode, cols)
  cols = cols or log_columns(label, s.x, mode)
  if #cols == 0 then return s, nil end
  local x, i, j = log_transform(s.x, cols)
  if not x then
    error(string.format("%s: simulation %d has value %g in column %d of x, which the estimator uses on the log "
                        .. "scale (chosen in round 0); use x_transform = \"none\"", label, i, s.x:get(i, j), j), 0)
  end
  core.stderr(string.format("%s: %d of %d columns of x used on the log scale\n", label, #cols, s.x:cols()))
  return merge(s, { x = x }), core.mat({ cols })
end

-- The observation on the scale of the trained estimator (trained: the
-- training step's result).
local function scaled_observation(label, trained, obs)
  local cols = trained.log_columns and trained.log_columns:row(1) or {}
  local x, _, j = log_transform(obs.x, cols)
  if not x then
    error(string.format("%s: observed value %g in column %d of x, which the estimator uses on the log scale "
                        .. "(all its simulations were positive); use x_transform = \"none\"", label,
                        obs.x:get(1, j), j), 0)
  end
  return x
end

-- The simulations of several steps as one set, rows in the order given.
local function joined(parts)
  if #parts == 1 then return parts[1] end
  local th, xs = {}, {}
  for i, s in ipairs(parts) do th[i], xs[i] = s.theta, s.x end
  return merge(parts[1], { theta = core.vstack(th), x = core.vstack(xs) })
end

-- Ensembles: artifacts hold lists of text only, so member k's model (a
-- binary string) is the field member_k (k >= 2; member 1 is `model`).
local function with_members(artifact, models)
  if models then
    artifact.members = #models
    for k = 2, #models do artifact["member_" .. k] = models[k] end
  end
  return artifact
end

-- The model strings of a training artifact, member 1 first.
local function members_of(t)
  local out = { t.model }
  for k = 2, math.tointeger(t.members or 1) do out[k] = t["member_" .. k] end
  return out
end

-- The training node: fits q(y | context) where y and context are columns of
-- the simulations ("theta" or "x") of the steps in sims (a list). density = "auto" fits a MAF and an NSF
-- on the same training/validation split and keeps the one with the lower
-- validation loss: splines win on multimodal and skewed densities, the
-- affine MAF on near-Gaussian ones at small budgets (docs/neural.md).
-- key.x_transform chooses the columns of x used on the log scale; the
-- result lists them in log_columns.
-- seq (sequential inference, nil otherwise): { round =, prev = the previous
-- round's training node, atoms = K (the APT loss, with prior), prior =,
-- warm_start = bool, members = K (an ensemble of K flows, seeds seed + k) }.
local function train_node(kind, where, sims, opts, y_field, c_field, density, seq)
  local key = with_defaults(opts, estimator_spec, merge(FLOW_DEFAULTS, { density = density }))
  if key.density == "nsf" or key.density == "auto" then
    key = with_defaults(key, estimator_spec, NSF_DEFAULTS)
  else
    key.bins, key.bound = nil, nil -- meaningless for MAF and MDN
  end
  if key.density == "mdn" then
    key.components, key.transforms = key.components or MDN_DEFAULTS.components, nil
  else
    key.components = nil
  end
  key.seed = integer_seed(opts)
  key.fit = y_field .. "|" .. c_field
  key.format = core.FLOW_FORMAT -- a new model format retrains instead of failing to load
  -- Only present with an embedding, so keys without one are unchanged.
  key.embedding = embedding_key(kind, opts.embedding, 4)
  local inputs = { table.unpack(sims) }
  if seq then
    key.round, key.atoms, key.warm_start, key.members = seq.round, seq.atoms, seq.warm_start, seq.members
    if seq.atoms then key.prior = seq.prior end
    key.nested_split = seq.nested_split
    if seq.prev then inputs[#inputs + 1] = seq.prev end
  end
  local nsims = #sims
  return graph.node(kind, where, key, inputs, function(node, inp)
    local prev = seq and seq.prev and inp[nsims + 1]
    local s, log_cols = scaled_simulations(node.label, joined({ table.unpack(inp, 1, nsims) }), key.x_transform,
                                           prev and (prev.log_columns and prev.log_columns:row(1) or {}))
    local candidates = key.density == "auto" and { "maf", "nsf" } or { key.density }
    local members = key.members or 1
    local specs = {}
    for i, d in ipairs(candidates) do
      specs[i] = flow_spec(key, d, s, y_field, c_field, #candidates > 1 and node.label .. " " .. d or node.label)
    end
    for k = 2, members do
      specs[k] = flow_spec(merge(key, { seed = key.seed + k - 1 }), key.density, s, y_field, c_field,
                           string.format("%s member %d", node.label, k))
    end
    for i, spec in ipairs(specs) do
      if key.atoms then spec.atoms, spec.prior = key.atoms, seq.prior.c end
      spec.nested_split = key.nested_split
      if key.warm_start and prev then
        -- "auto" kept one flow last round (its model, of prev.density): it
        -- continues the candidate of the same density, MAF or NSF.
        local pm = #candidates > 1 and prev.model or members_of(prev)[i]
        if pm and prev.density == (candidates[i] or key.density) then spec.init = pm end
      end
    end
    -- Candidates train in parallel threads with --jobs 2 or more; each is
    -- trained as it would be alone, so the result does not depend on --jobs.
    local fits = core.flow_train_each(specs)
    local best, val_losses = nil, core.mat(1, #candidates)
    for i, d in ipairs(candidates) do
      local report = fits[i].report
      core.stderr(string.format("%s: %s, %d epochs (best %d), validation loss %.4f, %.2f s\n", node.label, d,
                                    report.epochs, report.best_epoch, report.best_val_loss, report.seconds))
      val_losses:set(1, i, report.best_val_loss)
      if best == nil or report.best_val_loss < best.report.best_val_loss then
        best = { model = fits[i].model, report = report, density = d }
      end
    end
    local r = best.report
    if #candidates > 1 then
      core.stderr(string.format("%s: kept the %s (lower validation loss)\n", node.label, best.density))
    end
    local models
    if members > 1 then
      models = {}
      for k = 1, members do models[k] = fits[k].model end
    end
    return with_members({ model = best.model, density = best.density, losses = r.losses, epochs = r.epochs,
             best_epoch = r.best_epoch, best_val_loss = r.best_val_loss, val_losses = val_losses,
             candidates = candidates, names = s.names, log_columns = log_cols,
             n_train = seq and s.theta:rows() or nil }, models)
  end)
end

local function check_observation(label, obs, dim)
  if obs.x:cols() ~= dim then
    error(string.format("%s: the observation has %d values but the simulator produces %d", label, obs.x:cols(), dim), 0)
  end
end

-- want draws of q(theta | x) inside the prior's support, and the fraction
-- of flow draws that fell inside. Draws in batches; after the first batch,
-- draws what the acceptance so far says is missing (plus 10% and 100), not
-- another full batch. Round r (sequential inference) has streams of its
-- own; round 0 those of single-round NPE.
local function sample_flow_posterior(label, flow, x, prior, want, seed, round)
  local got, drawn, batch = 0, 0, 0
  local parts = {}
  while got < want and drawn < 100 * want do
    local n = want
    if drawn > 0 then
      n = math.min(math.ceil(1.1 * (want - got) * drawn / math.max(got, 1)) + 100, 100 * want - drawn)
    end
    n = math.max(n, 1000)
    local s = prior.c:filter(flow:sample(n, x, seed, (round << 32) + batch))
    drawn, batch = drawn + n, batch + 1
    if s:rows() > 0 then parts[#parts + 1] = s; got = got + s:rows() end
  end
  local acceptance = got / drawn
  if got >= want then return core.vstack(parts, want), acceptance end
  -- Almost all mass outside the prior: MCMC on q restricted to the support.
  core.stderr(string.format("%s: only %.3g%% of flow samples fall inside the prior; sampling q by MCMC\n",
                                label, 100 * acceptance))
  local d = MCMC_DEFAULTS
  local samples = core.mcmc { prior = prior.c, flow = flow, posterior = true, x = x, num_samples = want,
                              seed = seed, kind = d.sampler, chains = d.chains, warmup = d.warmup, thin = d.thin,
                              candidates = d.candidates, round = round }
  return samples, acceptance
end

-- sbi.npe{ sims =, observation =, ...estimator and training options...,
--          num_samples = 10000, seed = 1 }
function M.npe(opts)
  check.options("sbi.npe", opts, merge(inputs_spec, estimator_spec, embedding_spec, sampling_spec))
  check_inputs("sbi.npe", opts)
  embedding_key("sbi.npe", opts.embedding, 2)
  local where = graph.where(2)
  local sims, obs = estimator_inputs("sbi.npe", opts, where)
  local prior = opts.sims.prior
  local train = train_node("npe.train", where, { sims }, opts, "theta", "x", "auto")
  local key = { num_samples = math.tointeger(opts.num_samples or SAMPLING_DEFAULTS.num_samples),
                seed = integer_seed(opts) }
  local node = graph.node("npe.sample", where, key, { train, obs }, function(node, inp)
    local t, obs = inp[1], inp[2]
    local flow = core.flow_load(t.model)
    local _, dc = flow:dims()
    check_observation(node.label, obs, dc)
    local x = scaled_observation(node.label, t, obs)
    local want = key.num_samples
    local samples, acceptance = sample_flow_posterior(node.label, flow, x, prior, want, key.seed, 0)
    core.stderr(string.format("%s: %d samples, acceptance inside the prior %.4f\n", node.label, want, acceptance))
    return { samples = samples, names = t.names, acceptance = acceptance, method = "NPE" }
  end)
  node.estimator, node.prior = train, prior
  return node
end

local function mcmc_node(kind, where, inputs, key, prior, label_method, make_target)
  return graph.node(kind, where, key, inputs, function(node, inp)
    local spec = make_target(node, inp)
    spec.prior, spec.kind, spec.chains, spec.warmup = prior.c, key.sampler, key.chains, key.warmup
    spec.thin, spec.num_samples, spec.seed, spec.round = key.thin, key.num_samples, key.seed, key.round
    spec.candidates = MCMC_DEFAULTS.candidates
    local samples, diag = core.mcmc(spec)
    local worst = 0
    for _, r in ipairs(diag.rhat) do worst = math.max(worst, r) end
    local min_ess = math.huge
    for _, e in ipairs(diag.ess) do min_ess = math.min(min_ess, e) end
    local modes = health.modes(diag)
    core.stderr(string.format("%s: %s sampling, %d chains, %d samples in %.2f s, max R-hat %.3f, min ESS %.0f%s\n",
                              node.label, key.sampler, diag.chains, key.num_samples, diag.seconds, worst, min_ess,
                              modes and "; " .. modes or ""))
    health.record(node.label, worst, min_ess, nil, modes)
    -- No wall times in artifacts: they would make equal results hash differently
    -- (run.json has the seconds of every step).
    return { samples = samples, names = prior.names, max_rhat = worst, min_ess = min_ess, method = label_method,
             modes = modes, rhat_within = modes and diag.rhat_within or nil,
             rhat = key.round and diag.rhat or nil, chains = diag.chains }
  end)
end

-- The sampling key of an MCMC method for a prior of dimension dim.
local function mcmc_key(opts, dim)
  local d = MCMC_DEFAULTS
  local sampler = opts.sampler or d.sampler
  return { sampler = sampler, chains = math.tointeger(opts.chains or (sampler == "slice" and d.chains or 4 * dim + 4)),
           warmup = math.tointeger(opts.warmup or d.warmup), thin = math.tointeger(opts.thin or d.thin),
           num_samples = math.tointeger(opts.num_samples or SAMPLING_DEFAULTS.num_samples), seed = integer_seed(opts) }
end

-- sbi.nle{ sims =, observation =, ...estimator, training and MCMC options... }
function M.nle(opts)
  refuse_embedding("sbi.nle", opts)
  check.options("sbi.nle", opts, merge(inputs_spec, estimator_spec, sampling_spec, mcmc_spec))
  check_inputs("sbi.nle", opts)
  local where = graph.where(2)
  local sims, obs = estimator_inputs("sbi.nle", opts, where)
  local prior = opts.sims.prior
  local train = train_node("nle.train", where, { sims }, opts, "x", "theta", "maf")
  local node = mcmc_node("nle.sample", where, { train, obs }, mcmc_key(opts, prior.c:dim()), prior, "NLE",
    function(node, inp)
      local flow = core.flow_load(inp[1].model)
      local dy = flow:dims()
      check_observation(node.label, inp[2], dy)
      return { flow = flow, posterior = false, x = scaled_observation(node.label, inp[1], inp[2]) }
    end)
  node.estimator, node.prior = train, prior
  return node
end

local classifier_spec = merge({
  hidden = { check.integer(1) },
  layers = { check.integer(0) },
  residual = { check.boolean() },
  activation = { check.one_of("tanh", "relu", "elu", "silu") },
  loss = { check.one_of("binary", "contrastive") },
  atoms = { check.integer(2, 1 << 10) },
}, training_spec)

-- The training node of a ratio classifier on the simulations of the steps
-- in sims; seq as for train_node (atoms there is the APT loss's; the
-- classifier's own contrastive atoms are opts.atoms).
local function classifier_train_node(kind, where, sims, opts, seq)
  local key = with_defaults(opts, classifier_spec, CLASSIFIER_DEFAULTS)
  key.seed = integer_seed(opts)
  key.loss = opts.loss or NRE_DEFAULTS.loss
  key.atoms = key.loss == "binary" and 0 or math.tointeger(opts.atoms or NRE_DEFAULTS.atoms)
  key.embedding = embedding_key(kind, opts.embedding, 4) -- only present with an embedding
  local inputs = { table.unpack(sims) }
  if seq then
    key.round, key.warm_start, key.members = seq.round, seq.warm_start, seq.members
    if seq.prev then inputs[#inputs + 1] = seq.prev end
  end
  local nsims = #sims
  return graph.node(kind, where, key, inputs, function(node, inp)
    local prev = seq and seq.prev and inp[nsims + 1]
    local s, log_cols = scaled_simulations(node.label, joined({ table.unpack(inp, 1, nsims) }), key.x_transform,
                                           prev and (prev.log_columns and prev.log_columns:row(1) or {}))
    local members = key.members or 1
    local specs = {}
    for k = 1, members do
      local init = key.warm_start and prev and members_of(prev)[k] or nil
      specs[k] = {
        theta = s.theta, x = s.x, hidden = key.hidden, layers = key.layers, residual = key.residual,
        activation = key.activation, atoms = key.atoms, batch_size = key.batch_size,
        learning_rate = key.learning_rate, validation_fraction = key.validation_fraction, patience = key.patience,
        max_epochs = key.max_epochs, clip = key.clip, seed = key.seed + k - 1, init = init, embedding = key.embedding,
        label = k == 1 and node.label or string.format("%s member %d", node.label, k),
      }
    end
    -- Members train in parallel threads with --jobs 2 or more (over the
    -- ranks under MPI); each as it would alone, so the result is the same.
    local fits = core.classifier_train_each(specs)
    local models, first = {}, nil
    for k = 1, members do
      local model, report = fits[k].model, fits[k].report
      core.stderr(string.format("%s: %d epochs (best %d), validation loss %.4f, %.2f s\n", node.label,
                                    report.epochs, report.best_epoch, report.best_val_loss, report.seconds))
      models[k] = model
      first = first or { model = model, report = report }
    end
    local report = first.report
    return with_members({ model = first.model, losses = report.losses,
             epochs = report.epochs, best_epoch = report.best_epoch, best_val_loss = report.best_val_loss,
             names = s.names, log_columns = log_cols, n_train = seq and s.theta:rows() or nil },
             members > 1 and models or nil)
  end)
end

-- sbi.nre{ sims =, observation =, loss = "contrastive" (NRE-B, default) | "binary" (NRE-A),
--          atoms = 10, ...classifier, training and MCMC options... }
function M.nre(opts)
  check.options("sbi.nre", opts, merge(inputs_spec, classifier_spec, embedding_spec, sampling_spec, mcmc_spec))
  check_inputs("sbi.nre", opts)
  embedding_key("sbi.nre", opts.embedding, 2)
  if opts.loss == "binary" and opts.atoms then
    error("sbi.nre: 'atoms' only applies to loss = \"contrastive\"", 2)
  end
  local where = graph.where(2)
  local sims, obs = estimator_inputs("sbi.nre", opts, where)
  local prior = opts.sims.prior
  local train = classifier_train_node("nre.train", where, { sims }, opts)
  local node = mcmc_node("nre.sample", where, { train, obs }, mcmc_key(opts, prior.c:dim()), prior, "NRE",
    function(node, inp)
      local c = core.classifier_load(inp[1].model)
      local _, dx = c:dims()
      check_observation(node.label, inp[2], dx)
      return { classifier = c, x = scaled_observation(node.label, inp[1], inp[2]) }
    end)
  node.estimator, node.prior = train, prior
  return node
end

-- sbi.likelihood{ prior =, observation =, loglik = function(theta, x) ... end, ...MCMC options... }
-- The exact log-likelihood, written in the recipe, sampled with the engine's MCMC.
function M.likelihood(opts)
  check.options("sbi.likelihood", opts, merge({
    prior = { check.is(prior_mod.Prior, "a prior (sbi.prior.*)"), required = true },
    observation = { check.is(graph.Node, "the result of sbi.observation"), required = true },
    loglik = { check.func(), required = true },
  }, sampling_spec, mcmc_spec))
  local where = graph.where(2)
  local key = mcmc_key(opts, opts.prior.c:dim())
  key.prior, key.loglik = opts.prior, opts.loglik
  local meta = simulate.theta_meta(opts.prior.names)
  local node = mcmc_node("likelihood.sample", where, { opts.observation }, key, opts.prior, "likelihood MCMC",
    function(node, inp)
      local x = inp[1].x:row(1)
      return { loglik = function(theta) return opts.loglik(setmetatable(theta, meta), x) end }
    end)
  node.prior = opts.prior
  return node
end

-- What the sequential methods (sbi.sequential) build on: the same training
-- and sampling steps, with a round.
M.parts = {
  merge = merge, estimator_spec = estimator_spec, classifier_spec = classifier_spec, sampling_spec = sampling_spec,
  mcmc_spec = mcmc_spec, embedding_spec = embedding_spec, embedding_key = embedding_key,
  refuse_embedding = refuse_embedding, train_node = train_node, classifier_train_node = classifier_train_node,
  mcmc_node = mcmc_node, mcmc_key = mcmc_key, sample_flow_posterior = sample_flow_posterior,
  scaled_observation = scaled_observation, members_of = members_of, check_observation = check_observation, integer_seed = integer_seed,
  MCMC_DEFAULTS = MCMC_DEFAULTS, SAMPLING_DEFAULTS = SAMPLING_DEFAULTS,
}

return M
