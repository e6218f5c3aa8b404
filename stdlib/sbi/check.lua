-- Option-table checking for every recipe function: unknown keys are errors
-- that list the accepted ones, and each value is checked against a rule.
-- Errors point at the recipe line that called the sbi function.
local M = {}

local function describe(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" and getmetatable(v) and getmetatable(v).__name then
    return getmetatable(v).__name
  end
  if type(v) == "table" or type(v) == "function" or type(v) == "userdata" then return "a " .. type(v) end
  return tostring(v)
end
M.describe = describe

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

-- merge(a, b, ...): a new table with every key of the arguments, later
-- ones winning; how option specs are built from shared parts.
function M.merge(...)
  local out = {}
  for _, t in ipairs { ... } do
    for k, v in pairs(t) do out[k] = v end
  end
  return out
end

-- Rules: each is { test = function(v) -> bool, doc = "what is expected" }.
function M.number() return { test = function(v) return type(v) == "number" and v == v end, doc = "a number" } end
function M.positive()
  return { test = function(v) return type(v) == "number" and v > 0 and v < math.huge end, doc = "a positive number" }
end
-- An integer >= min (and <= max when given: the engine's bounds).
function M.integer(min, max)
  return { test = function(v) return (math.type(v) == "integer" and v >= min
             or (type(v) == "number" and v == math.floor(v) and v >= min and v < 2^53))
             and (max == nil or v <= max) end,
           doc = max and string.format("an integer from %d to %d", min, max) or "an integer >= " .. min }
end
function M.fraction()
  return { test = function(v) return type(v) == "number" and v > 0 and v <= 1 end, doc = "a number in (0, 1]" }
end
function M.string() return { test = function(v) return type(v) == "string" end, doc = "a string" } end
function M.boolean() return { test = function(v) return type(v) == "boolean" end, doc = "true or false" } end
function M.func() return { test = function(v) return type(v) == "function" end, doc = "a function" } end
function M.table() return { test = function(v) return type(v) == "table" end, doc = "a table" } end
function M.one_of(...)
  local allowed, set = { ... }, {}
  for _, a in ipairs(allowed) do set[a] = true end
  local quoted = {}
  for i, a in ipairs(allowed) do quoted[i] = string.format("%q", a) end
  return { test = function(v) return set[v] == true end, doc = "one of " .. table.concat(quoted, ", ") }
end
function M.numbers()
  return { test = function(v)
             if type(v) ~= "table" or #v == 0 then return false end
             for i = 1, #v do if type(v[i]) ~= "number" then return false end end
             return true
           end, doc = "a non-empty list of numbers" }
end
function M.strings()
  return { test = function(v)
             if type(v) ~= "table" then return false end
             for i = 1, #v do if type(v[i]) ~= "string" then return false end end
             return true
           end, doc = "a list of strings" }
end
-- A value whose metatable is mt (a Prior, a Node, ...).
function M.is(mt, doc)
  return { test = function(v) return type(v) == "table" and getmetatable(v) == mt end, doc = doc }
end
function M.any(a, b)
  return { test = function(v) return a.test(v) or b.test(v) end, doc = a.doc .. " or " .. b.doc }
end

-- Checks opts against spec = { key = { rule, required = bool } } for the
-- function named fname. level is where the error points (default: the caller
-- of the function that calls options).
function M.options(fname, opts, spec, level)
  level = level or 3
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    error(string.format("%s: expected an option table { ... }, got %s", fname, describe(opts)), level)
  end
  for k in pairs(opts) do
    if spec[k] == nil then
      error(string.format("%s: unknown option '%s' (accepted: %s)", fname, tostring(k),
                          table.concat(sorted_keys(spec), ", ")), level)
    end
  end
  for _, k in ipairs(sorted_keys(spec)) do
    local s, v = spec[k], opts[k]
    if v == nil then
      if s.required then
        error(string.format("%s: option '%s' is required (%s)", fname, k, s[1].doc), level)
      end
    elseif not s[1].test(v) then
      error(string.format("%s: option '%s' must be %s, got %s", fname, k, s[1].doc, describe(v)), level)
    end
  end
  return opts
end

return M
