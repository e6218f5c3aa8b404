-- sbi.simulator and sbi.simulate: n draws of (theta, x) from the prior (or
-- at the rows of a node's matrix, `thetas`) and the simulator. The hot loop is in C (lang/l_sim.c); this module checks
-- options, declares the node and reports failures.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior = require "sbi.prior"

local M = {}
-- The plugins and programs declared, for bundles' manifests (lang/bundle_cmd.c).
M.natives = {}
local Simulator = { __name = "sbi.Simulator" }
Simulator.__index = Simulator
M.Simulator = Simulator

-- What only the stdlib may call, from the loader (lang/l_state.c).
local internal = select(3, ...)

-- The files of sbi.simulator's option `source` (a path or a list), from
-- the recipe's folder: their hashes enter the key, and bundles carry them
-- (as data files) so a plugin or program can be rebuilt from them.
local function source_hashes(source, dir)
  local list = type(source) == "table" and source or { source }
  local hashes = {}
  for i, path in ipairs(list) do
    local found = path:sub(1, 1) == "/" and path or dir .. "/" .. path
    local h, msg = core.file_hash(found)
    if not h then error("sbi.simulator: source '" .. path .. "': " .. tostring(msg), 4) end
    internal.data_file(path, found) -- provenance: bundles carry it
    hashes[i] = h
  end
  return hashes
end

-- A plugin (a C shared library, docs/simulators.md) or a program: what the
-- key hashes (the file's content hash, never its path) and what
-- core.simulate gets (spec.native, read by lang/l_native.c).
local function native(opts)
  local dir = require("sbi.observation").recipe_dir or "."
  local kind = opts.plugin and "plugin" or "command"
  local file = opts.plugin or opts.command[1]
  local ok, real, hash = pcall(internal.native_file, file, dir, kind)
  if not ok then
    local msg = tostring(real)
    if msg:find("not found", 1, true) and opts.source then
      local list = type(opts.source) == "table" and table.concat(opts.source, ", ") or opts.source
      msg = msg .. "\n(a bundle carries a plugin's or program's source, not the binary: build it from " .. list
        .. " into that path; docs/simulators.md#bundles)"
    end
    error(msg, 3)
  end
  local run = { kind = kind, path = real, hash = hash, batch = opts.batch and math.tointeger(opts.batch) }
  local sources = type(opts.source) == "table" and opts.source or { opts.source }
  local seen = false
  for _, e in ipairs(M.natives) do seen = seen or (e.path == file and e.blake2b == hash) end
  if not seen then M.natives[#M.natives + 1] = { kind = kind, path = file, blake2b = hash, sources = sources } end
  local key = { kind = kind, hash = hash, sources = opts.source and source_hashes(opts.source, dir) or nil }
  if kind == "plugin" then
    run.symbol = opts.symbol or "simulate"
    key.symbol = run.symbol
  else
    run.argv, key.args = {}, {}
    for i, a in ipairs(opts.command) do
      run.argv[i] = a
      if i > 1 then key.args[i - 1] = a end
    end
    run.cwd, run.timeout = dir, opts.timeout
  end
  return run, key
end

-- sbi.simulator{ fn = f, dim = K, batched = false }
-- sbi.simulator{ plugin = "libsim.so", symbol = "simulate", dim = K, batch = B, source = ... }
-- sbi.simulator{ command = { "./sim", "--flag" }, dim = K, batch = B, timeout = S, source = ... }
function M.simulator(opts)
  check.options("sbi.simulator", opts, {
    fn = { check.func() },
    plugin = { check.string() },
    command = { check.strings() },
    symbol = { check.string() },
    batch = { check.integer(1, 100000) },
    timeout = { check.positive() },
    source = { check.any(check.string(), check.strings()) },
    dim = { check.integer(1) },
    batched = { check.boolean() },
  })
  local given = (opts.fn and 1 or 0) + (opts.plugin and 1 or 0) + (opts.command and 1 or 0)
  if given ~= 1 then
    error("sbi.simulator: give exactly one of 'fn' (a Lua function), 'plugin' (a C shared library) or "
          .. "'command' (a program and its arguments)", 2)
  end
  if opts.fn then
    for _, k in ipairs({ "symbol", "batch", "timeout", "source" }) do
      if opts[k] ~= nil then error("sbi.simulator: option '" .. k .. "' is for plugin or command simulators", 2) end
    end
    if opts.batched and not opts.dim then
      error("sbi.simulator: a batched simulator needs 'dim' (the length of one simulation's data)", 2)
    end
    return setmetatable({ fn = opts.fn, dim = opts.dim and math.tointeger(opts.dim), batched = opts.batched == true },
                        Simulator)
  end
  local what = opts.plugin and "plugin" or "command"
  if not opts.dim then
    error("sbi.simulator: a " .. what .. " simulator needs 'dim' (the length of one simulation's data)", 2)
  end
  if opts.batched ~= nil then error("sbi.simulator: 'batched' is for Lua functions (a " .. what
                                    .. " is always called in batches: see 'batch')", 2) end
  if opts.plugin and opts.timeout then error("sbi.simulator: 'timeout' is for command simulators", 2) end
  if opts.command and opts.symbol then error("sbi.simulator: 'symbol' is for plugin simulators", 2) end
  if opts.command and #opts.command == 0 then
    error("sbi.simulator: 'command' must list the program and its arguments, e.g. { \"./sim\", \"--fast\" }", 2)
  end
  local run, key = native(opts)
  return setmetatable({ native = run, key = key, dim = math.tointeger(opts.dim), batched = false }, Simulator)
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
    prior = p, simulator = sim.fn or sim.key, dim = sim.dim, batched = sim.batched,
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
      prior = p.c, simulator = sim.fn, native = sim.native, batched = sim.batched, dim = sim.dim, n = key_opts.n,
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
