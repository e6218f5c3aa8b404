-- A hostile caller: every function of sbi.core and every method of its
-- userdata, called inside pcall with wrong, extreme and adversarial
-- arguments. It must end with every call either returning or raising a
-- Lua error: a crash, a sanitizer report or a hang is a bug in the C code.
local sbi = require "sbi"
local core = require "sbi.core"
local graph = require "sbi.graph"

local R = core.rng(20261202)
local calls, oks = 0, 0
-- core.mcmc and the training functions require every option (the stdlib
-- fills the defaults): small values for whatever a call leaves out, filled
-- in place (a callback may change the table passed).
local MC = { kind = "slice", chains = 2, warmup = 1, thin = 1, num_samples = 4, seed = 1, candidates = 4 }
local function mc(t) for k, v in pairs(MC) do if t[k] == nil then t[k] = v end end return t end
local function try(f, ...)
  calls = calls + 1
  local ok = pcall(f, ...)
  if ok then oks = oks + 1 end
  return ok
end
local function call_method(obj, name, ...)
  return try(function(...) return obj[name](...) end, ...)
end

-- ---- values ----
local function released_mat() local m <close> = core.mat(2, 2); return m end
local function released_rng() local r <close> = core.rng(7); return r end
local function lying_len(n) return setmetatable({}, { __len = function() return n end }) end
local erroring = setmetatable({}, {
  __index = function() error("boom __index") end, __newindex = function() error("boom __newindex") end,
  __len = function() error("boom __len") end, __tostring = function() error("boom __tostring") end,
  __name = "Hostile" })
local yielding = setmetatable({}, {
  __index = function() return coroutine.yield(1) end, __newindex = function() coroutine.yield(1) end,
  __len = function() return coroutine.yield(3) end, __tostring = function() return coroutine.yield("s") end })
-- __index that makes fresh garbage strings and numbers: fills the heap so
-- the collector runs while a C function walks the table.
local function garbage_list(n, str)
  return setmetatable({}, { __len = function() return n end, __index = function(_, k)
    local s = {}
    for i = 1, 400 do s[i] = tostring(i * k) .. "x" end
    return str and (string.rep("s", 40) .. k) or k
  end })
end
local recursive = {}
recursive[1] = recursive
recursive.self = recursive
local holes = { 1, nil, 3, nil, 5 }
local prior = core.prior("normal", { mean = { 0, 1 }, std = { 1, 2 } })
local prior1 = core.prior("uniform", { low = { 0 }, high = { 1 } })
local rng = core.rng(1)
local m22 = core.mat({ { 1, 2 }, { 3, 4 } })
local m13 = core.mat({ 1, 2, 3 })
local m0 = core.mat(0, 0)
local m03 = core.mat(0, 3)
local m20 = core.mat(2, 0)

local ints = { -1, 0, 1, 2, 3, 1 << 40, 1 << 53, 1 << 62, math.maxinteger, math.mininteger }
local floats = { 0.5, 0 / 0, math.huge, -math.huge, -0.0, 1e308, 2.5e-310 }
local strings = { "", "a\0b", "std", "mad", "normal", "joint", "maf", "slice", "x/../../y", string.rep("z", 5000) }
local function pool()
  return { nil, true, false, ints, floats, strings, {}, { 1, 2, 3 }, { { 1, 2 }, { 3 } }, holes, recursive,
    erroring, yielding, lying_len(-1), lying_len(1 << 62), garbage_list(4), garbage_list(3, true),
    prior, prior1, rng, m22, m13, m0, m03, m20, released_mat(), released_rng(),
    function() error("boom fn") end, function() return coroutine.yield() end,
    function() return core.mcmc(mc { prior = prior1, loglik = function() return 0 end, num_samples = 2, chains = 1,
      warmup = 0, candidates = 2 }) end,
    core.mat, print, coroutine.create(function() end) }
end
local vals = pool()
local function rand_value()
  local v = vals[R:integer(#vals)]
  if v == ints then return ints[R:integer(#ints)] end
  if v == floats then return floats[R:integer(#floats)] end
  if v == strings then return strings[R:integer(#strings)] end
  return v
end
-- Garbage with finalizers that call sbi.core: the collector runs them at
-- whatever allocation comes next, often inside a C function of sbi.core.
local finalizer_targets = {}
local function drop_finalizer()
  local f = finalizer_targets[R:integer(#finalizer_targets)]
  local a, b = rand_value(), rand_value()
  setmetatable({}, { __gc = function() pcall(f, a, b) end })
end
local function random_calls(f, count)
  for _ = 1, count do
    if #finalizer_targets > 0 then drop_finalizer() end
    local n = R:integer(5) - 1
    local a = {}
    for i = 1, n do a[i] = rand_value() end
    try(f, table.unpack(a, 1, n))
    -- Also from a coroutine, where a yield inside a callback is possible.
    local co = coroutine.wrap(function() return try(f, table.unpack(a, 1, n)) end)
    try(co)
  end
end

-- ---- models for the neural methods ----
local y = core.mat(30, 2)
for i = 1, 30 do y:set(i, 1, R:normal()); y:set(i, 2, R:normal()) end
local small = { kind = "maf", max_epochs = 2, hidden = 4, layers = 2, transforms = 1, bins = 4, bound = 3,
  components = 2, activation = "tanh", residual = true, seed = 1, batch_size = 10, learning_rate = 5e-4,
  validation_fraction = 0.1, patience = 0, clip = 5, label = "train" }
local function spec(t) local s = {} for k, v in pairs(small) do s[k] = v end for k, v in pairs(t) do s[k] = v end return s end
local flow_blob = core.flow_train(spec { y = y, context = y })
local flow = core.flow_load(flow_blob)
local uflow = core.flow_load(core.flow_train(spec { y = y }))
local clsf_blob = core.classifier_train(spec { theta = y, x = y, atoms = 4 })
local clsf = core.classifier_load(clsf_blob)

local methods = {
  [m22] = { "get", "set", "rows", "cols", "row", "set_row", "totable", "select_rows" },
  [rng] = { "uniform", "normal", "lognormal", "exponential", "gamma", "beta", "chisq", "student_t", "poisson",
            "binomial", "bernoulli", "integer" },
  [prior] = { "sample", "sample_mat", "log_density", "in_support", "dim", "filter", "mean", "variance", "describe" },
  [flow] = { "sample", "log_prob", "dims" },
  [clsf] = { "log_ratio", "dims" },
}
vals[#vals + 1] = flow
vals[#vals + 1] = uflow
vals[#vals + 1] = clsf

-- ---- targeted cases: each once a memory bug ----
local function targeted(in_step)
  -- plots: valid-looking option tables with hostile members
  try(core.plot_corner, { samples = { m22, released_mat() } })
  try(core.plot_corner, { samples = { m22 }, labels = garbage_list(2, true), names = erroring })
  try(core.plot_corner, { samples = { m22, m13 } })
  try(core.plot_corner, { samples = { m22 }, lower = { 0, 0 }, upper = { 0 / 0, math.huge } })
  try(core.plot_corner, { samples = { m22 }, bins = 1000, grid = 400, scatter = true, panel = 1e308 })
  try(core.plot_curve, { series = { { y = m22, x = lying_len(4), lo = erroring, hi = yielding } } })
  try(core.plot_curve, { series = { { y = { 0 / 0, math.huge, -math.huge }, name = "a\0b" } }, xmin = 0 / 0 })
  try(core.plot_ranks, { ranks = m22, max_rank = 1 << 62 })
  try(core.plot_ranks, { ranks = m22, max_rank = 1e308, bins = 1000 })
  try(core.plot_trace, { chains = { m22, m13 } })
  try(core.plot_predictive, { predictive = m03 })
  try(core.plot_predictive, { predictive = m22, observation = { 0 / 0, 1 }, x = { 1, 1 } })
  -- a joint prior with more blocks than a C function's guaranteed stack
  local blocks = {}
  for i = 1, 200 do blocks[i] = { kind = "uniform", params = { low = { 0 }, high = { 1 } } } end
  try(core.prior, "joint", { blocks = blocks })
  try(core.prior, "joint", { blocks = lying_len(1 << 61) })
  try(core.prior, "joint", { blocks = {} })
  -- a covariance whose rows lie about their length (len * len overflows)
  local row = setmetatable({}, { __len = function() return 1 << 32 end, __index = function() return 1 end })
  local cov = setmetatable({}, { __len = function() return 1 << 32 end, __index = function() return row end })
  try(core.prior, "mvn", { mean = { 0 }, cov = cov })
  try(core.prior, "uniform", { low = lying_len(1 << 62), high = lying_len(1 << 62) })
  try(core.prior, "uniform", { low = {}, high = {} })
  -- matrices released by a callback while a method walks them
  local function closer(victim, n, v)
    return setmetatable({}, { __len = function() return n end,
      __index = function() do local x <close> = victim end return v or 1 end,
      __newindex = function(t, k, val) do local x <close> = victim end rawset(t, k, val) end })
  end
  local v = core.mat(3, 3)
  try(v.row, v, 1, closer(v, 3))
  v = core.mat(3, 3)
  try(v.set_row, v, 1, closer(v, 3))
  v = core.mat(3, 3)
  try(v.select_rows, v, closer(v, 3))
  v = core.mat(3, 3)
  try(core.abc_distances, v, closer(v, 3), { 1, 1, 1 })
  v = core.mat(3, 3)
  try(core.vstack, closer(v, 2, v))
  -- vstack of a list whose entries change between passes
  local big, small1, flip = core.mat(1, 1000), core.mat(1, 1), 0
  try(core.vstack, setmetatable({}, { __len = function() return 2 end,
    __index = function() flip = flip + 1; return flip <= 2 and big or small1 end }))
  -- a table read twice whose second read raises (the first allocation must not leak)
  local reads = 0
  try(core.mat, setmetatable({}, { __len = function() return 3 end,
    __index = function(_, k) reads = reads + 1; if reads > 4 then error("second pass") end return k end }))
  -- flow without a context, empty y
  try(uflow.log_prob, uflow, core.mat(0, 2))
  try(uflow.log_prob, uflow, core.mat(0, 2), core.mat(0, 0))
  try(flow.log_prob, flow, core.mat(0, 2), core.mat(0, 2))
  -- sizes that overflow
  try(core.mcmc, mc { prior = prior, loglik = function() return 0 end, candidates = 1 << 62, num_samples = 2 })
  try(core.mcmc, mc { prior = prior, loglik = function() return 0 end, chains = 1 << 62, num_samples = 2 })
  try(core.mcmc, mc { prior = prior, loglik = function() return 0 end, chains = 1 << 61, candidates = 4,
    num_samples = 2 })
  try(core.mcmc, mc { prior = prior, loglik = function() return 0 end, num_samples = 1 << 62, candidates = 4 })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 4, batch_size = 1 << 62 })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 1 << 62 })
  try(core.flow_train, spec { y = y, batch_size = 1 << 62 })
  try(core.flow_train_each, { spec { y = y, batch_size = 1 << 62 } })
  try(core.flow_train, spec { y = y, hidden = 1 << 62 })
  try(core.flow_train, spec { y = y, transforms = 1 << 62 })
  try(core.flow_train, spec { y = y, kind = "nsf", bins = 1 << 62 })
  try(core.flow_train, spec { y = y, layers = 1 << 40 })
  try(core.flow_train, spec { y = y, kind = "mdn", context = y, components = 1 << 62 })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 4, hidden = 1 << 62 })
  -- the atomic loss and warm starts: bad priors, models and sizes
  local prior2 = core.prior("normal", { mean = { 0, 0 }, std = { 1, 1 } })
  try(core.flow_train, spec { y = y, context = y, atoms = 4, prior = prior2, init = flow_blob })
  try(core.flow_train, spec { y = y, context = y, atoms = 1 << 62, prior = prior2 })
  try(core.flow_train, spec { y = y, context = y, atoms = 4, prior = prior })
  try(core.flow_train, spec { y = y, context = y, atoms = 4, prior = prior1 })
  try(core.flow_train, spec { y = y, context = y, atoms = 4,
    prior = core.prior("uniform", { low = { 0, 0 }, high = { 1, 1 } }) })
  local closed_prior = core.prior("normal", { mean = { 0, 0 }, std = { 1, 1 } })
  do local c <close> = closed_prior end
  try(core.flow_train, spec { y = y, context = y, atoms = 4, prior = closed_prior })
  try(core.flow_train, spec { y = y, context = y, init = clsf_blob })
  try(core.flow_train, spec { y = y, context = y, init = flow_blob:sub(1, -2) })
  try(core.flow_train, spec { y = y, init = flow_blob })
  try(core.flow_train_each, { spec { y = y, context = y, atoms = 4, prior = prior2, batch_size = 1 << 62 } })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 4, init = flow_blob })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 4, init = clsf_blob, hidden = 5 })
  try(core.classifier_train, spec { theta = y, x = y, atoms = 4, init = clsf_blob })
  try(prior.sample_mat, prior, 1 << 62, 1)
  try(prior.sample_mat, prior, math.mininteger, -1)
  try(flow.sample, flow, 1 << 40, { 0, 0 }, 1)
  try(flow.sample, flow, 3, garbage_list(2), 1)
  -- values the C code reads from a spec, then taken out of it by a
  -- metamethod or a callback while it runs, and collected
  local function churn() local junk = {} for i = 1, 30000 do junk[i] = {} end end
  local function vanishing(t, keys)
    return setmetatable({}, { __index = function(_, k)
      if keys[k] then for kk in pairs(t) do if getmetatable(t[kk]) == false then t[kk] = nil end end churn() end
      return rawget(t, k) end })
  end
  for _, k in ipairs { "kind", "label", "seed", "max_epochs" } do
    local raw = spec { y = core.mat(30, 2, 1), context = core.mat(30, 2, 2), label = string.rep("L", 60) }
    raw.y:set(1, 1, 5)
    try(core.flow_train, vanishing(raw, { [k] = true }))
    raw = spec { y = core.mat(30, 2, 1), label = string.rep("L", 60) }
    raw.y:set(1, 1, 5)
    try(core.flow_train_each, { vanishing(raw, { [k] = true }) })
    raw = spec { theta = core.mat(30, 2, 1), x = core.mat(30, 2, 2), atoms = 4, label = string.rep("L", 60) }
    raw.theta:set(1, 1, 5)
    try(core.classifier_train, vanishing(raw, { [k] = true }))
  end
  -- the prior, read and then taken out of the spec and collected while it is in use
  for _, k in ipairs { "atoms", "prior", "init" } do
    local raw = spec { y = core.mat(30, 2, 1), context = core.mat(30, 2, 2), atoms = 4, init = flow_blob,
      prior = core.prior("normal", { mean = { 0, 0 }, std = { 1, 1 } }), label = string.rep("L", 60) }
    try(core.flow_train, vanishing(raw, { [k] = true }))
    try(core.flow_train_each, { vanishing(raw, { [k] = true }) })
    raw = spec { theta = core.mat(30, 2, 1), x = core.mat(30, 2, 2), atoms = 4, init = clsf_blob,
      label = string.rep("L", 60) }
    try(core.classifier_train, vanishing(raw, { [k] = true }))
  end
  local ms = { prior = core.prior("uniform", { low = { 0 }, high = { 1 } }), num_samples = 20, chains = 2,
    warmup = 5, candidates = 10 }
  ms.loglik = function() ms.prior = nil; churn(); return 0 end
  try(core.mcmc, mc(ms))
  -- re-entrant MCMC, and a loglik that raises, yields or returns junk
  for _, ll in ipairs { function() return core.mcmc(mc { prior = prior1, loglik = function() return 0 end,
      num_samples = 2, chains = 1, warmup = 0, candidates = 2 }) end,
    function() error("loglik failed") end, function() error({}) end, function() return coroutine.yield() end,
    function() return "x" end, function() return 0 / 0 end, function() return math.huge end,
    function(t) t[1] = nil; t.x = erroring; return 0 end } do
    try(core.mcmc, mc { prior = prior1, loglik = ll, num_samples = 4, chains = 2, warmup = 1, candidates = 4 })
    try(core.mcmc, mc { prior = prior1, loglik = ll, num_samples = 4, chains = 4, warmup = 1, candidates = 4,
      kind = "ensemble" })
  end
  -- models from random bytes and from damaged real ones
  for _, blob in ipairs { flow_blob, clsf_blob } do
    for k = 1, 60 do
      local b = { blob:byte(1, -1) }
      local cut = R:integer(#b)
      if k % 3 == 0 then
        b[cut] = R:integer(256) - 1
        b[R:integer(#b)] = R:integer(256) - 1
      elseif k % 3 == 1 then
        for i = cut + 1, #b do b[i] = nil end
      else
        for i = 1, 8 do b[R:integer(#b)] = 255 end
      end
      local s = {}
      for i = 1, #b, 4000 do s[#s + 1] = string.char(table.unpack(b, i, math.min(i + 3999, #b))) end
      s = table.concat(s)
      for _, load in ipairs { core.flow_load, core.classifier_load } do
        local ok, model = pcall(load, s)
        if ok then
          try(model.sample, model, 3, { 0, 0 }, 1)
          try(model.log_prob, model, m22, m22)
          try(model.log_ratio, model, m22, { 0, 0 })
          try(model.dims, model)
        end
      end
    end
  end
  for k = 0, 40 do
    local b = {}
    for i = 1, k * 7 do b[i] = R:integer(256) - 1 end
    local s = string.char(table.unpack(b))
    try(core.flow_load, s)
    try(core.classifier_load, s)
  end
  -- every distribution at the edges of its parameters (poisson(inf) never returned)
  local edges = { math.huge, -math.huge, 0 / 0, 1e308, 5e-324, 0, -1, 1e19, 4294967295 }
  for _, name in ipairs(methods[rng]) do
    for _, a in ipairs(edges) do
      for _, b in ipairs(edges) do try(rng[name], rng, a, b) end
    end
  end
  -- artifacts hashing and strings
  try(core.hash, recursive)
  try(core.hash, { m22, prior, rng, released_mat(), garbage_list(3) })
  try(core.hash, coroutine.create(function() end))
  try(core.where, math.mininteger)
  try(core.where, math.maxinteger)
  try(core.register_library, erroring, "x")
  try(core.stderr, "")
  try(core.summary, m03)
  try(core.summary, m20)
  try(core.scales, m03, "mad")
  try(core.log_candidates, m03)
  try(core.abc_select, core.mat(0, 1), 0.5)
  try(core.abc_select, core.mat(3, 1), 0 / 0, 0 / 0)
  try(core.abc_select, core.mat(3, 1), 2, -1)
  try(core.abc_select, m20, 0.5)
  try(core.read_matrix, "a\0b")
  try(core.file_hash, "/dev/null")
  try(core.ode, { rhs = function(t, y, d) d[1] = 0 end, y0 = { 1 }, times = garbage_list(3) })
  try(core.ode, { rhs = function(t, y, d) return core.ode { rhs = "sir", y0 = { 1, 1, 1 }, times = { 1 },
    params = { 1, 1, 1 } } end, y0 = { 1 }, times = { 1, 2 } })
  try(core.ode, { rhs = function(t, y, d) coroutine.yield() end, y0 = { 1 }, times = { 1, 2 } })
  for _, obj in ipairs { erroring, yielding, setmetatable({}, { __tostring = function() return {} end }), {} } do
    try(core.ode, { rhs = function() error(obj) end, y0 = { 1 }, times = { 1, 2 } })
    try(core.mcmc, mc { prior = prior1, loglik = function() error(obj) end, num_samples = 2, chains = 1, warmup = 0,
      candidates = 2 })
  end
  try(core.ode, { rhs = function(t, y, d) d[1] = nil; y[5] = 1; d[1] = "1" end, y0 = { 1 }, times = { 1, 2 } })
  try(core.ode, { rhs = function(t, y, d) setmetatable(d, erroring) end, y0 = { 1, 2 }, times = { 1, 2 } })
  if in_step then
    local sim = function(theta, r) return { theta[1] } end
    local function sspec(t)
      local s = { prior = prior1, simulator = sim, n = 4, seed = 1, chunk_size = 2, label = "h" }
      for k, v in pairs(t) do s[k] = v end
      return s
    end
    try(core.simulate, sspec { n = 1 << 62, chunk_size = 1 })
    try(core.simulate, sspec { n = math.maxinteger, chunk_size = math.maxinteger })
    try(core.simulate, sspec { simulator = function(theta, r) return core.simulate(sspec {}) end })
    try(core.simulate, sspec { names = garbage_list(1, true), simulator = function() error("x") end })
    try(core.simulate, sspec { names = setmetatable({}, { __index = function() error({}) end }),
      simulator = function() error("x") end })
    local s = sspec { n = 40, prior = core.prior("uniform", { low = { 0 }, high = { 1 } }) }
    s.simulator = function(theta, r) s.prior = nil; local junk = {} for i = 1, 20000 do junk[i] = {} end
      return { theta[1] } end
    try(core.simulate, s)
    try(core.simulate, sspec { batched = true, dim = 1, simulator = function(t, x, r)
      do local a <close> = t end do local b <close> = x end end })
    try(core.simulate, sspec { batched = true, dim = 1 << 62 })
    try(core.simulate, sspec { theta_meta = erroring, simulator = function(theta) return { theta.x } end })
    try(core.simulate, sspec { simulator = function() return garbage_list(1) end })
    try(core.simulate, sspec { simulator = function() return lying_len(1 << 62) end })
    try(core.write_samples, ".", "h", core.mat(1, 300), garbage_list(300, true))
    for _, a in ipairs { { "ws", "a\0b", m22, { "a", "b" } }, { "ws", "s", m22, { "a" } },
                         { "ws", "s", m22, { "a", {} } }, { "ws", "s", released_mat(), { "a", "b" } },
                         { "ws", "s", m20, {} }, { "ws", "s", m03, { "a", "b", "c" } },
                         { "ws", "s", rng, { "a" } }, { "ws", "s", m22, erroring }, { "ws", "s", m22, yielding },
                         { "ws", "s", m22, lying_len(1 << 62) }, { "ws\0x", "s", m22, { "a", "b" } } } do
      try(core.write_samples, table.unpack(a, 1, 4))
    end
  end
end

local function everything(in_step)
  targeted(in_step)
  local names = {}
  for k, f in pairs(core) do
    if type(f) == "function" and (in_step or k ~= "simulate") and k ~= "stdout" and k ~= "stderr"
       and k ~= "register_library" and k ~= "write_samples" then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    if k ~= "simulate" and k ~= "flow_train" and k ~= "flow_train_each" and k ~= "classifier_train" then
      finalizer_targets[#finalizer_targets + 1] = core[k]
    end
  end
  for _, k in ipairs(names) do random_calls(core[k], 12) end
  local objs = {}
  for obj in pairs(methods) do objs[#objs + 1] = obj end
  table.sort(objs, function(a, b) return tostring(a) < tostring(b) end)
  for _, obj in ipairs(objs) do
    for _, name in ipairs(methods[obj]) do
      local f = obj[name]
      for _ = 1, 10 do
        local a = { rand_value(), rand_value(), rand_value() }
        drop_finalizer()
        try(f, obj, a[1], a[2], a[3])
        try(f, rand_value(), a[1], a[2])  -- self of the wrong type
        try(f)
      end
    end
  end
end

everything(false)
-- finalizers that call sbi.core when the state closes
-- (kept referenced, so they run in lua_close, after the run)
FINALIZERS = {}
for i = 1, 20 do
  FINALIZERS[i] = setmetatable({}, { __gc = function()
    pcall(core.mat, 2, 2)
    pcall(m22.totable, m22)
    pcall(core.summary, m22)
    pcall(rng.normal, rng)
    pcall(core.prior, "joint", { blocks = { { kind = "uniform", params = { low = { 0 }, high = { 1 } } } } })
    pcall(core.clock)
    pcall(core.simulate, { prior = prior1, simulator = function() return { 1 } end, n = 1 })
    pcall(core.flow_load, flow_blob)
    pcall(core.rng, 1)
    pcall(core.ode, { rhs = "sir", y0 = { 1, 1, 1 }, times = { 1 }, params = { 1, 1, 1 } })
    pcall(prior.sample_mat, prior, 2, 1)
  end })
end

local node = graph.node("hostile", "hostile.lua:1", { v = 1 }, {}, function()
  everything(true)
  core.stderr(string.format("hostile: %d calls, %d returned\n", calls, oks))
  return { samples = core.mat(1, 1), names = { "a" } }
end)
sbi.output { hostile = node }
