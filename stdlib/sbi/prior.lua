-- Priors: thin Lua objects over the engine's priors (engine/numerics/prior.c). A
-- prior knows its kind, its parameters and a name per dimension.
local core = require "sbi.core"
local check = require "sbi.check"

local M = {}
local Prior = { __name = "sbi.Prior" }
Prior.__index = Prior
M.Prior = Prior

function Prior:dim() return self.c:dim() end
function Prior:sample(rng) return self.c:sample(rng) end
function Prior:log_density(theta) return self.c:log_density(theta) end
function Prior:in_support(theta) return self.c:in_support(theta) end
function Prior:mean() return self.c:mean() end
function Prior:variance() return self.c:variance() end
Prior.__tostring = function(p) return "sbi.Prior " .. p.c:describe() end

local function default_names(d)
  local names = {}
  for i = 1, d do names[i] = "theta" .. i end
  return names
end

-- Builds the C prior; its validation errors point at the recipe line.
-- Callers must not tail-call make (`return make(...)`): a tail call drops
-- their frame and the error level would point past the recipe.
local function make(kind, params, names, level)
  local ok, c = pcall(core.prior, kind, params)
  if not ok then error(c, level + 1) end
  local d = c:dim()
  names = names or default_names(d)
  if #names ~= d then
    error(string.format("prior.%s: 'names' has %d entries but the prior has dimension %d", kind, #names, d),
          level + 1)
  end
  local seen = {}
  for i, n in ipairs(names) do
    if seen[n] then
      error(string.format("prior.%s: names[%d] = %q repeats names[%d]; every parameter needs its own name",
                          kind, i, n, seen[n]), level + 1)
    end
    seen[n] = i
  end
  return setmetatable({ kind = kind, params = params, names = names, c = c }, Prior)
end

local function pair_prior(kind, a, b)
  M[kind] = function(opts)
    check.options("sbi.prior." .. kind, opts, {
      [a] = { check.numbers(), required = true },
      [b] = { check.numbers(), required = true },
      names = { check.strings() },
    })
    if #opts[a] ~= #opts[b] then
      error(string.format("prior.%s: '%s' has %d entries but '%s' has %d", kind, a, #opts[a], b, #opts[b]), 2)
    end
    local p = make(kind, { [a] = opts[a], [b] = opts[b] }, opts.names, 2)
    return p
  end
end

pair_prior("uniform", "low", "high")
pair_prior("normal", "mean", "std")
pair_prior("lognormal", "mu", "sigma")
pair_prior("gamma", "shape", "scale")
pair_prior("beta", "a", "b")

function M.exponential(opts)
  check.options("sbi.prior.exponential", opts, {
    rate = { check.numbers(), required = true }, names = { check.strings() } })
  local p = make("exponential", { rate = opts.rate }, opts.names, 2)
  return p
end

function M.mvn(opts)
  check.options("sbi.prior.mvn", opts, {
    mean = { check.numbers(), required = true },
    cov = { check.table(), required = true },
    names = { check.strings() },
  })
  local p = make("mvn", { mean = opts.mean, cov = opts.cov }, opts.names, 2)
  return p
end

-- sbi.prior.joint{ {"name", prior}, ... }: independent named blocks in order.
function M.joint(blocks)
  if type(blocks) ~= "table" or #blocks == 0 then
    error("prior.joint: expected a list of { \"name\", prior } blocks", 2)
  end
  local count = 0
  for _ in pairs(blocks) do count = count + 1 end
  if count ~= #blocks then
    error(string.format("prior.joint: expected a list of %d blocks without holes, got %d entries", #blocks, count), 2)
  end
  local params, names = { blocks = {} }, {}
  for i, b in ipairs(blocks) do
    if type(b) ~= "table" or type(b[1]) ~= "string" or getmetatable(b[2]) ~= Prior then
      error(string.format("prior.joint: block %d must be { \"name\", prior }, got %s", i, check.describe(b)), 2)
    end
    local name, p = b[1], b[2]
    params.blocks[i] = { kind = p.kind, params = p.params }
    local d = p:dim()
    for j = 1, d do
      names[#names + 1] = d == 1 and name or string.format("%s[%d]", name, j)
    end
  end
  local p = make("joint", params, names, 2)
  return p
end

function M.is_prior(v) return getmetatable(v) == Prior end

return M
