-- sbi.simulator and sbi.simulate: n draws of (theta, x) from the prior (or
-- at the rows of a node's matrix, `thetas`) and the simulator. The hot loop is in C (lang/l_sim.c); this module checks
-- options, declares the node and reports failures.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior = require "sbi.prior"

local M = {}
local Simulator = { __name = "sbi.Simulator" }
Simulator.__index = Simulator
M.Simulator = Simulator

-- sbi.simulator{ fn = f, dim = K, batched = false }
function M.simulator(opts)
  check.options("sbi.simulator", opts, {
    fn = { check.func(), required = true },
    dim = { check.integer(1) },
    batched = { check.boolean() },
  })
  if opts.batched and not opts.dim then
    error("sbi.simulator: a batched simulator needs 'dim' (the length of one simulation's data)", 2)
  end
  return setmetatable({ fn = opts.fn, dim = opts.dim and math.tointeger(opts.dim), batched = opts.batched == true },
                      Simulator)
end

-- A plain function or a Simulator, as a Simulator.
function M.as_simulator(v)
  if getmetatable(v) == Simulator then return v end
  return setmetatable({ fn = v, batched = false }, Simulator)
end

-- theta.name works in simulators: names resolve to positions.
local function theta_meta(names)
  local pos = {}
  for i, n in ipairs(names) do pos[n] = i end
  return { __index = function(t, k)
    local i = pos[k]
    if i then return rawget(t, i) end
    return nil
  end }
end

-- The observation length the simulations must match, when every observation
-- they are compared with (graph.pair) knows its length before running.
local function expected_length(node)
  local found
  for _, o in ipairs(node.observations or {}) do
    if not o.dim or (found and found.dim ~= o.dim) then return nil end
    found = found or o
  end
  return found
end

local function report_failures(label, r)
  local failed = r.n_error + r.n_nan + r.n_length
  if failed > 0 then
    core.stderr(string.format(
      "%s: dropped %d of %d simulations (%d errors, %d NaN/inf, %d wrong length); first: %s\n",
      label, failed, failed + r.n_kept, r.n_error, r.n_nan, r.n_length, r.first_failure))
  end
end

-- The matrix of parameters in the artifact a of node `thetas`: its field
-- `samples` (a posterior) or else `theta` (simulations).
local function thetas_matrix(label, a, from, dim)
  local m = a.samples
  local field = "samples"
  if m == nil then m, field = a.theta, "theta" end
  local ok, cols = pcall(function() return m:cols() end)
  if type(m) ~= "userdata" or not ok then
    error(string.format("%s: thetas: the artifact of %s has no matrix 'samples' or 'theta'", label, from.label), 0)
  end
  if cols ~= dim then
    error(string.format("%s: thetas: %s's '%s' has %d columns but the prior has %d parameters", label,
                        from.label, field, cols, dim), 0)
  end
  return m
end

-- Declares the step; level is the stack level of the recipe line that
-- declares it, counted from declare's caller (stdlib methods that declare
-- simulate steps for the recipe, such as sbi.abc.smc, pass theirs; where,
-- when given, replaces the location in the step's label).
local function declare(opts, level, where)
  check.options("sbi.simulate", opts, {
    prior = { check.is(prior.Prior, "a prior (sbi.prior.*)"), required = true },
    simulator = { check.any(check.func(), check.is(Simulator, "an sbi.simulator")), required = true },
    n = { check.integer(1, 1000000000) },
    thetas = { check.is(graph.Node, "a node whose artifact holds a matrix 'samples' or 'theta' (a posterior, "
                                    .. "sbi.simulate)") },
    round = { check.integer(0, 1000000000) },
    seed = { check.integer(0) },
    on_failure = { check.one_of("fail", "drop") },
    chunk_size = { check.integer(1) },
  }, level + 2)
  if opts.n == nil and opts.thetas == nil then
    error("sbi.simulate: option 'n' is required (an integer from 1 to 1000000000) unless 'thetas' is given", level + 1)
  end
  local sim = M.as_simulator(opts.simulator)
  local p = opts.prior
  local key_opts = {
    prior = p, simulator = sim.fn, dim = sim.dim, batched = sim.batched,
    n = math.tointeger(opts.n), seed = math.tointeger(opts.seed or 1), on_failure = opts.on_failure or "fail",
  }
  -- Round 0 uses the streams of a single-round run: the same key too.
  local round = math.tointeger(opts.round or 0)
  if round ~= 0 then key_opts.round = round end
  -- The thetas node is an input: its key enters this node's.
  if opts.thetas then key_opts.thetas = true end
  local inputs = opts.thetas and { opts.thetas } or {}
  local chunk = opts.chunk_size and math.tointeger(opts.chunk_size) or nil
  -- A batched simulator draws a chunk's noise from one stream, so its results
  -- depend on the chunk size: then the chunk size is part of the key.
  if sim.batched then key_opts.chunk_size = chunk or 10000 end
  -- A round other than 0 shows in the label (sbirun graph, messages),
  -- unless the declaring method names the step itself.
  where = where or graph.where(level + 1) .. (round ~= 0 and ", round " .. round or "")
  local node = graph.node("simulate", where, key_opts, inputs, function(node, inp)
    local expect = expected_length(node)
    local thetas = opts.thetas and thetas_matrix(node.label, inp[1], opts.thetas, p:dim())
    local ok, r = pcall(core.simulate, {
      thetas = thetas, round = round,
      expect_dim = expect and expect.dim, expect_label = expect and expect.label,
      prior = p.c, simulator = sim.fn, batched = sim.batched, dim = sim.dim, n = key_opts.n,
      seed = key_opts.seed, chunk_size = chunk, on_failure = key_opts.on_failure,
      names = p.names, theta_meta = theta_meta(p.names), label = node.label,
    })
    if not ok then
      -- The engine's messages already name the node and the failing theta.
      local msg = tostring(r)
      if not sim.dim and msg:find("values, expected %d+$") then
        msg = msg .. "\n(the expected length was taken from the first simulation; declare it with"
          .. " sbi.simulator{ fn = ..., dim = K })"
      end
      -- (Not for a crashed worker: dropping would not help there.)
      if key_opts.on_failure == "fail" and msg:find("at theta = ", 1, true)
         and not msg:find("while running simulation", 1, true)
         and not msg:find("docs/recipes.md#the-sandbox", 1, true) then
        msg = msg .. "\n(to skip failing simulations instead, pass on_failure = \"drop\" to sbi.simulate)"
      end
      error(msg, 0)
    end
    report_failures(node.label, r)
    if r.n_kept == 0 then
      error(string.format("%s: every one of the %d simulations failed and was dropped; first: %s",
                          node.label, r.n_error + r.n_nan + r.n_length, r.first_failure), 0)
    end
    return { theta = r.theta, x = r.x, names = p.names, n_kept = r.n_kept, n_error = r.n_error,
             n_nan = r.n_nan, n_length = r.n_length, first_failure = r.first_failure }
  end)
  node.prior, node.simulator = p, sim
  return node
end

function M.simulate(opts)
  local node = declare(opts, 2) -- not a tail call: the levels count this frame
  return node
end

M.declare = declare
M.theta_meta = theta_meta
return M
