-- sbi.summary: summary compressors (docs/summaries.md). A compressor is a
-- graph node whose artifact is a fitted map from a row of data x to a few
-- summaries; a method given `summary = <compressor>` sees the simulations
-- and the observation through it. Each application is a node of its own
-- ("summary.apply": inputs the compressor and the simulations;
-- "summary.obs": the compressor and the observation, a kind that
-- `sbirun sample` may run for a new observation, lang/l_run.c), so a changed method re-uses the fitted
-- compressor and its applications from the cache, and `sbirun graph` and
-- bundles show and carry them.
--
-- The fitted map's artifact names its kind in the field `kind`; KINDS maps
-- each kind to the Lua function that applies it:
--   apply(compressor_node, artifact, x Mat, label) -> Mat (rows of x compressed)
-- "linear": t = (x - offset) w, fields w (d x k Mat) and offset (1 x d Mat,
-- optional), applied in C (core.linear_map, one BLAS product); PCA and
-- MOPED are linear. "user": the recipe's function, row by row. A new
-- compressor (an autoencoder, a regression network) adds its kind with
-- M.register_kind and returns artifacts of that kind.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior_mod = require "sbi.prior"
local simulate = require "sbi.simulate"

local M = {}

local KINDS = {}

-- Registers how artifacts of a kind are applied (stdlib modules only: the
-- function is not part of any key, the stdlib hash covers it).
function M.register_kind(kind, apply)
  KINDS[kind] = apply
end

M.register_kind("linear", function(_, a, x)
  return core.linear_map(x, a.w, a.offset and a.offset:row(1) or nil)
end)

M.register_kind("user", function(comp, _, x, label)
  local n, out, row, k = x:rows(), nil, {}, nil
  for i = 1, n do
    local ok, t = pcall(comp.fn, x:row(i, row))
    if not ok then error(string.format("%s: the summary function failed on row %d: %s", label, i, tostring(t)), 0) end
    if type(t) ~= "table" or #t == 0 then
      error(string.format("%s: the summary function must return a non-empty list of numbers, got %s on row %d",
                          label, check.describe(t), i), 0)
    end
    if out == nil then k = #t; out = core.mat(n, k) end
    if #t ~= k then
      error(string.format("%s: the summary function returned %d numbers on row %d but %d on row 1", label, #t, i, k),
            0)
    end
    for j = 1, k do
      local v = t[j]
      if type(v) ~= "number" then
        error(string.format("%s: the summary function returned a %s at position %d on row %d", label, type(v), j, i), 0)
      end
      out:set(i, j, v)
    end
  end
  return out
end)

-- Is v a compressor node?
function M.is_compressor(v)
  return graph.is_node(v) and v.compressor == true
end

local function compressor_node(kind, where, key, inputs, run)
  local n = graph.node(kind, where, key, inputs, run)
  n.compressor = true
  return n
end

-- x (a Mat) through the compressor whose node is comp and artifact a.
local function compress(comp, a, x, label)
  local apply = KINDS[a.kind]
  if not apply then error(string.format("%s: unknown compressor kind '%s'", label, tostring(a.kind)), 0) end
  if x:rows() == 0 then return core.mat(0, math.tointeger(a.dim_out or 1)) end
  if a.dim_in and x:cols() ~= a.dim_in then
    error(string.format("%s: the compressor was fitted to data of %d values but these have %d", label,
                        math.tointeger(a.dim_in), x:cols()), 0)
  end
  local ok, t = pcall(apply, comp, a, x, label)
  if not ok then
    local msg = tostring(t)
    error(msg:find(label, 1, true) == 1 and msg or label .. ": " .. msg, 0)
  end
  return t
end

-- One application node per (compressor, node): a recipe that gives the
-- same compressor and simulations to two methods declares one.
local applied = setmetatable({}, { __mode = "k" })

-- The node of comp applied to node v (simulations or an observation);
-- where: the method's recipe line.
local function apply_node(comp, v, what, where)
  applied[comp] = applied[comp] or setmetatable({}, { __mode = "k" })
  local done = applied[comp][v]
  if done then return done end
  local kind = what == "observation" and "summary.obs" or "summary.apply"
  local n = graph.node(kind, where .. ", " .. what, { what = what }, { comp, v }, function(node, inp)
    local a, s = inp[1], inp[2]
    local out = {}
    for k, val in pairs(s) do out[k] = val end
    out.x = compress(comp, a, s.x, node.label)
    return out
  end)
  n.prior, n.simulator, n.summary = v.prior, v.simulator, comp
  applied[comp][v] = n
  return n
end

-- The option every method takes.
M.option = { check.is(graph.Node, "a compressor (sbi.summary.pca, sbi.summary.moped, sbi.summary.user)") }

-- What a method sees: sims and obs (either may be nil) through the
-- compressor comp, or unchanged without one. fname names the method in
-- errors, level is the recipe's stack level counted from the caller.
function M.inputs(fname, comp, sims, obs, where, level)
  if comp == nil then return sims, obs end
  if not M.is_compressor(comp) then
    error(string.format("%s: 'summary' must be a compressor (sbi.summary.pca, sbi.summary.moped, sbi.summary.user), "
                        .. "got %s", fname, comp.label), (level or 1) + 1)
  end
  return sims and apply_node(comp, sims, "simulations", where), obs and apply_node(comp, obs, "observation", where)
end

-- ---- sbi.summary.user ----

-- sbi.summary.user{ fn = function(x_row) return { ... } end }
function M.user(opts)
  check.options("sbi.summary.user", opts, { fn = { check.func(), required = true } })
  -- The function is hashed like a simulator (its code and upvalues).
  local n = compressor_node("summary.user", graph.where(2), { fn = opts.fn }, {}, function()
    return { kind = "user", method = "user summary" }
  end)
  n.fn = opts.fn
  return n
end

-- ---- sbi.summary.pca ----

-- sbi.summary.pca{ sims =, components = k, whiten = true, standardize = true }
function M.pca(opts)
  check.options("sbi.summary.pca", opts, {
    sims = { check.is(graph.Node, "the result of sbi.simulate"), required = true },
    components = { check.integer(1), required = true },
    whiten = { check.boolean() },
    standardize = { check.boolean() },
  })
  if opts.sims.kind ~= "simulate" then error("sbi.summary.pca: 'sims' must come from sbi.simulate", 2) end
  local key = { components = math.tointeger(opts.components), whiten = opts.whiten ~= false,
                standardize = opts.standardize ~= false }
  return compressor_node("summary.pca", graph.where(2), key, { opts.sims }, function(node, inp)
    local x = inp[1].x
    if key.components > x:cols() then
      error(string.format("%s: components = %d but the data have %d values", node.label, key.components, x:cols()), 0)
    end
    local ok, w, offset, var, total = pcall(core.pca, x, key.components, key.standardize, key.whiten)
    if not ok then error(node.label .. ": " .. tostring(w), 0) end
    local kept = 0
    for _, v in ipairs(var) do kept = kept + v end
    local explained = total > 0 and kept / total or 1
    core.stderr(string.format("%s: %d of %d components, %.1f%% of the %s variance\n", node.label, key.components,
                              x:cols(), 100 * explained, key.standardize and "standardized" or "total"))
    return { kind = "linear", w = w, offset = core.mat { offset }, variances = core.mat { var },
             explained = explained, dim_in = x:cols(), dim_out = key.components, method = "PCA" }
  end)
end

-- ---- sbi.summary.moped ----

local MOPED_DEFAULTS = { step = 0.05, derivative_sims = 100, covariance_sims = 1000, seed = 1 }

-- The fiducial point: the numbers given, else the mean of a posterior
-- node's samples (art), else the prior's mean.
local function fiducial_of(label, spec, art, p)
  if type(spec) == "table" and not graph.is_node(spec) then return spec end
  if art then
    local m = art.samples or art.theta
    if m == nil or m:rows() < 2 or m:cols() ~= p:dim() then
      error(label .. ": fiducial: the pilot's artifact needs a matrix 'samples' of at least 2 rows of "
            .. p:dim() .. " parameters", 0)
    end
    return (core.covariance(m))
  end
  return p:mean()
end

-- n copies of theta as a Mat.
local function repeated(theta, n)
  local m = core.mat(n, #theta)
  for i = 1, n do m:set_row(i, theta) end
  return m
end

-- The column means of a Mat (at least 2 rows).
local function col_means(label, x, what)
  if x:rows() < 2 then
    error(string.format("%s: fewer than 2 simulations left for %s (on_failure = \"drop\" dropped them)", label, what), 0)
  end
  return (core.covariance(x))
end

-- d mu / d theta_i of a mean function at theta by central differences (p x d).
local function mean_derivatives(label, mean, theta, h)
  local rows = {}
  local function at(t)
    local ok, mu = pcall(mean, t)
    if not ok or type(mu) ~= "table" or #mu == 0 then
      error(string.format("%s: the mean function failed: %s", label, ok and check.describe(mu) or tostring(mu)), 0)
    end
    return mu
  end
  for i = 1, #theta do
    local tp, tm = table.move(theta, 1, #theta, 1, {}), table.move(theta, 1, #theta, 1, {})
    tp[i], tm[i] = theta[i] + h[i], theta[i] - h[i]
    local up, dn = at(tp), at(tm)
    local r = {}
    for j = 1, #up do r[j] = (up[j] - dn[j]) / (2 * h[i]) end
    rows[i] = r
  end
  return core.mat(rows), at(table.move(theta, 1, #theta, 1, {}))
end

-- sbi.summary.moped{ prior =, simulator =, fiducial = {..} | node, step = 0.05,
--   derivative_sims = 100, covariance_sims = 1000, mean = fn, form = "moped"|"score",
--   seed = 1, on_failure =, chunk_size = }
function M.moped(opts)
  check.options("sbi.summary.moped", opts, {
    prior = { check.is(prior_mod.Prior, "a prior (sbi.prior.*)"), required = true },
    simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")), required = true },
    fiducial = { check.any(check.numbers(), check.is(graph.Node, "a posterior node (its samples' mean)")) },
    step = { check.positive() },
    derivative_sims = { check.integer(2, 1000000000) },
    covariance_sims = { check.integer(2, 1000000000) },
    mean = { check.func() },
    form = { check.one_of("moped", "score") },
    seed = { check.integer(0) },
    on_failure = { check.one_of("fail", "drop") },
    chunk_size = { check.integer(1) },
  })
  local p, where = opts.prior, graph.where(2)
  local dim = p:dim()
  if type(opts.fiducial) == "table" and not graph.is_node(opts.fiducial) and #opts.fiducial ~= dim then
    error(string.format("sbi.summary.moped: 'fiducial' has %d values but the prior has %d parameters",
                        #opts.fiducial, dim), 2)
  end
  local sd = {}
  for i, v in ipairs(p:variance()) do
    if not (v > 0 and v < math.huge) then
      error(string.format("sbi.summary.moped: the prior's variance of parameter %d is %s; MOPED's steps are "
                          .. "relative to the prior's standard deviations", i, tostring(v)), 2)
    end
    sd[i] = math.sqrt(v)
  end
  local k = {
    step = opts.step or MOPED_DEFAULTS.step, seed = math.tointeger(opts.seed or MOPED_DEFAULTS.seed),
    derivative_sims = math.tointeger(opts.derivative_sims or MOPED_DEFAULTS.derivative_sims),
    covariance_sims = math.tointeger(opts.covariance_sims or MOPED_DEFAULTS.covariance_sims),
    form = opts.form or (opts.mean and "score" or "moped"), mean = opts.mean, prior = p,
    fiducial = type(opts.fiducial) == "table" and not graph.is_node(opts.fiducial) and opts.fiducial or nil,
    pilot = graph.is_node(opts.fiducial) or nil,
  }
  if opts.mean then k.derivative_sims = nil end
  local h = {}
  for i = 1, dim do h[i] = k.step * sd[i] end
  local pilot = graph.is_node(opts.fiducial) and { opts.fiducial } or {}
  -- The parameters of one block of simulations: the fiducial point, or it
  -- moved by +-h along parameter i; n rows of it.
  local function design(what, i, sign, n)
    local dkey = { what = what, parameter = i, sign = sign, n = n, moped = k }
    return graph.node("summary.design", where .. ", " .. what, dkey, pilot, function(node, inp)
      local theta = table.move(fiducial_of(node.label, k.fiducial, inp[1], p), 1, dim, 1, {})
      if i then theta[i] = theta[i] + sign * h[i] end
      if not p.c:in_support(theta) then
        error(string.format("%s: the point %s lies outside the prior's support; choose a smaller 'step' or another "
                            .. "'fiducial'", node.label, table.concat(theta, ", ")), 0)
      end
      return { theta = repeated(theta, n), names = p.names }
    end)
  end
  -- The same seed and round everywhere: simulation j of every block uses
  -- the noise stream (seed, 2, j), so the differences use common random
  -- numbers.
  local function sims_at(what, i, sign, n)
    return simulate.declare({ prior = p, simulator = opts.simulator, thetas = design(what, i, sign, n),
                              seed = k.seed, on_failure = opts.on_failure, chunk_size = opts.chunk_size },
                            2, where .. ", " .. what)
  end
  local inputs = { sims_at("covariance", nil, 0, k.covariance_sims) }
  if not opts.mean then
    for i = 1, dim do
      inputs[#inputs + 1] = sims_at("derivative " .. p.names[i] .. "+", i, 1, k.derivative_sims)
      inputs[#inputs + 1] = sims_at("derivative " .. p.names[i] .. "-", i, -1, k.derivative_sims)
    end
  end
  return compressor_node("summary.moped", where, k, inputs, function(node, inp)
    local cx = inp[1].x
    local d = cx:cols()
    if cx:rows() <= d then
      error(string.format("%s: covariance_sims must exceed the data's %d values (%d simulations kept)", node.label, d,
                          cx:rows()), 0)
    end
    local mu_hat, cov = core.covariance(cx)
    local spent = 0
    for _, s in ipairs(inp) do spent = spent + s.x:rows() + s.n_error + s.n_nan + s.n_length end
    local dmu, mu
    local fid = inp[1].theta:row(1)
    if opts.mean then
      dmu, mu = mean_derivatives(node.label, opts.mean, fid, h)
      if dmu:cols() ~= d then
        error(string.format("%s: the mean function returns %d values but the simulator %d", node.label, dmu:cols(), d), 0)
      end
    else
      local rows = {}
      for i = 1, dim do
        local up = col_means(node.label, inp[2 * i].x, "the derivative")
        local dn = col_means(node.label, inp[2 * i + 1].x, "the derivative")
        local r = {}
        for j = 1, d do r[j] = (up[j] - dn[j]) / (2 * h[i]) end
        rows[i] = r
      end
      dmu, mu = core.mat(rows), mu_hat
    end
    local ok, w = pcall(core.moped_weights, cov, dmu, k.form == "moped")
    if not ok then error(node.label .. ": " .. tostring(w), 0) end
    core.stderr(string.format("%s: %s compression of %d values to %d; %d simulations (%d at the fiducial point%s)\n",
                              node.label, k.form == "moped" and "MOPED" or "score", d, dim, spent, cx:rows(),
                              opts.mean and ", derivatives from the mean function"
                              or string.format(", 2 x %d x %d for the derivatives", dim, k.derivative_sims)))
    return { kind = "linear", w = w, offset = core.mat { mu }, fiducial = core.mat { fid }, derivatives = dmu,
             covariance = cov, n_simulations = spent, form = k.form, dim_in = d, dim_out = dim, names = p.names,
             method = k.form == "moped" and "MOPED" or "score compression" }
  end)
end

M.MOPED_DEFAULTS = MOPED_DEFAULTS
return M
