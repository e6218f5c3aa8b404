-- sbi.observation: the observed data x_obs, from a file (CSV or .npy), an
-- inline list of numbers, or a simulation at a given theta.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local simulate = require "sbi.simulate"

-- What only the stdlib may call, from the loader (lang/l_state.c).
local internal = select(3, ...)

local M = {}

-- Relative paths are tried from the current directory, then beside the recipe.
-- The second result says why a file that exists may not be read (a recipe
-- from a bundle runs restricted to its folder).
local function resolve(path, recipe_dir)
  local ok, refused = core.file_exists(path)
  if ok then return path end
  if path:sub(1, 1) ~= "/" and recipe_dir then
    local p = recipe_dir .. "/" .. path
    local ok2, refused2 = core.file_exists(p)
    if ok2 then return p end
    refused = refused2 or refused
  end
  return nil, refused
end

M.resolve = resolve -- for other files of data (sbi.c2st)

local function one_row(m, what)
  if m:rows() == 1 then return m end
  if m:cols() == 1 then
    local t = {}
    for i = 1, m:rows() do t[i] = m:get(i, 1) end
    return core.mat(t)
  end
  error(string.format("%s has %d rows of %d values; an observation is one row", what, m:rows(), m:cols()), 0)
end

-- An observation must be finite: a NaN or inf would make every distance
-- infinite and fail much later with a less helpful message.
local function check_finite(m, what)
  for j = 1, m:cols() do
    local v = m:get(1, j)
    if v ~= v or v == math.huge or v == -math.huge then
      error(string.format("%s: value %d is %s; an observation must be finite numbers", what, j,
                          v ~= v and "NaN" or tostring(v)), 0)
    end
  end
  return m
end

local function from_file(path, where, level)
  local found, refused = resolve(path, M.recipe_dir)
  if not found and refused then
    error("sbi.observation: cannot read observation file '" .. path .. "': " .. refused, level + 1)
  end
  if not found then
    local beside = M.recipe_dir and M.recipe_dir ~= "." and path:sub(1, 1) ~= "/"
    error(string.format("sbi.observation: observation file '%s' not found (looked in the current directory%s)",
                        path, beside and (" and in " .. M.recipe_dir) or ""), level + 1)
  end
  local hash, msg = core.file_hash(found)
  if not hash then error("sbi.observation: cannot read observation file: " .. msg, level + 1) end
  internal.data_file(path, found) -- provenance, for bundles
  local opts = { file_hash = hash, npy = found:sub(-4) == ".npy" }
  -- Its length, for the simulate step's early check (errors are left to
  -- the step that reads it).
  local m = core.read_matrix(found)
  local dim = m and (m:rows() == 1 and m:cols() or m:cols() == 1 and m:rows()) or nil
  local node = graph.node("observation", where, opts, {}, function(node)
    local m, names = core.read_matrix(found)
    if not m then error(node.label .. ": " .. names, 0) end
    local what = node.label .. ": observation file " .. found
    return { x = check_finite(one_row(m, what), what) }
  end)
  node.dim = dim
  return node
end

local function from_simulation(spec, where)
  check.options("sbi.observation", spec, {
    simulator = { check.any(check.func(), check.is(simulate.Simulator, "an sbi.simulator")), required = true },
    theta = { check.numbers(), required = true },
    seed = { check.integer(0) },
    names = { check.strings() },
  }, 4)
  local sim = simulate.as_simulator(spec.simulator)
  if sim.batched then error("sbi.observation: use a per-simulation (not batched) simulator", 3) end
  if sim.native then
    error("sbi.observation: a " .. sim.native.kind .. " simulator cannot simulate the observation here; simulate it "
          .. "with sbi.simulate{ ..., thetas = ... } or give the data", 3)
  end
  local opts = { simulator = sim.fn, theta = spec.theta, seed = math.tointeger(spec.seed or 0), names = spec.names }
  return graph.node("observation", where, opts, {}, function(node)
    local theta = {}
    for i, v in ipairs(spec.theta) do theta[i] = v end
    if spec.names then setmetatable(theta, simulate.theta_meta(spec.names)) end
    local rng = core.rng(opts.seed, 4, 0)
    local x = sim.fn(theta, rng)
    if type(x) ~= "table" or #x == 0 then error(node.label .. ": the simulator did not return a table of numbers", 0) end
    for i = 1, #x do
      if type(x[i]) ~= "number" then
        error(string.format("%s: the simulator returned a non-number at position %d (a %s)", node.label, i,
                            type(x[i])), 0)
      end
    end
    return { x = check_finite(core.mat(x), node.label .. ": the simulated observation") }
  end)
end

-- sbi.observation(path | {x1, x2, ...} | {simulator = f, theta = {...}, seed = s})
-- (No tail calls to from_file / from_simulation: their errors count stack
-- levels up to the recipe, and a tail call would drop this frame.)
function M.observation(v)
  local where = graph.where(2)
  local node
  if type(v) == "string" then
    node = from_file(v, where, 2)
    return node
  end
  if type(v) == "table" and v.simulator ~= nil then
    node = from_simulation(v, where)
    return node
  end
  if type(v) == "table" and check.numbers().test(v) then
    for k in pairs(v) do
      if math.type(k) ~= "integer" then error("sbi.observation: unknown key '" .. tostring(k) .. "'", 2) end
    end
    local ok, msg = pcall(check_finite, core.mat(v), "sbi.observation")
    if not ok then error(msg, 2) end
    node = graph.node("observation", where, { values = v }, {}, function() return { x = core.mat(v) } end)
    node.dim = #v
    return node
  end
  error("sbi.observation: expected a file path, a list of numbers or { simulator = ..., theta = {...} }, got "
        .. check.describe(v), 2)
end

return M
