-- The sbi module: what a recipe gets from `local sbi = require "sbi"`.
-- Declarations build graph nodes (sbi.graph); nothing runs while the recipe
-- loads.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local prior = require "sbi.prior"
local simulate = require "sbi.simulate"
local observation = require "sbi.observation"
local abc = require "sbi.abc"
local neural = require "sbi.neural"
local sequential = require "sbi.sequential"
local summary = require "sbi.summary"
local report = require "sbi.report"
local emulator = require "sbi.emulator"
local diagnose = require "sbi.diagnose"
local health = require "sbi.health"

local sbi = {
  version = core.version,
  core = core,
  prior = prior,
  abc = { rejection = abc.rejection, smc = abc.smc },
  simulator = simulate.simulator,
  simulate = simulate.simulate,
  observation = observation.observation,
  npe = neural.npe,
  nle = neural.nle,
  nre = neural.nre,
  likelihood = neural.likelihood,
  snpe = sequential.snpe,
  snle = sequential.snle,
  snre = sequential.snre,
  summary = { pca = summary.pca, moped = summary.moped, user = summary.user, autoencoder = summary.autoencoder,
              regression = summary.regression },
  emulator = emulator.emulator,
  is_node = graph.is_node,
  diagnose = { coverage = diagnose.coverage, sbc = diagnose.sbc, tarp = diagnose.tarp, ppc = diagnose.ppc,
               c2st = diagnose.c2st, gaussian = diagnose.gaussian, mcmc_health = diagnose.mcmc_health },
  gate = diagnose.gate,
  _params = {},       -- name -> true, for every sbi.param call
  _param_values = {}, -- name -> value used (for run.json)
  _set = {},          -- --set name -> string
}

-- sbi.param(name, default): the value given with --set name=..., else default.
function sbi.param(name, default)
  if type(name) ~= "string" or name == "" then error("sbi.param: the name must be a non-empty string", 2) end
  local raw, v = sbi._set[name], default
  if raw ~= nil then
    if type(default) == "number" then
      v = tonumber(raw)
      if v == nil then
        error(string.format("--set %s=%s: expected a number (the recipe's default is %s)", name, raw,
                            tostring(default)), 2)
      end
    elseif type(default) == "boolean" then
      if raw == "true" or raw == "1" then v = true elseif raw == "false" or raw == "0" then v = false
      else
        error(string.format("--set %s=%s: expected true or false (the recipe's default is %s)", name, raw,
                            tostring(default)), 2)
      end
    else
      v = tonumber(raw) or raw
    end
  end
  sbi._params[name] = true
  sbi._param_values[name] = v
  return v
end

-- sbi.recipe_dir(): the directory of the recipe being run (for data files
-- that live beside it).
function sbi.recipe_dir()
  return observation.recipe_dir or "."
end

-- sbi.output{ name = node, ... }: what the run writes to the output folder.
local output_names = {} -- name -> node, over every sbi.output call
function sbi.output(opts)
  if type(opts) ~= "table" then error("sbi.output: expected { name = node, ... }", 2) end
  for _, name in ipairs(check.sorted_keys(opts)) do
    local node = opts[name]
    if not graph.is_node(node) then
      error(string.format("sbi.output: '%s' must be a step such as sbi.abc.rejection{...}, got %s", name,
                          check.describe(node)), 2)
    end
    if not name:match("^[%w_%-]+$") then
      error(string.format("sbi.output: the name '%s' may only use letters, digits, '_' and '-'", name), 2)
    end
    -- Each output writes NAME.csv and NAME.npy: a name given twice would
    -- overwrite the first output's files with the second's.
    local prev = output_names[name]
    if prev and prev ~= node then
      error(string.format("sbi.output: the name '%s' is already used by another output (%s); give each "
                          .. "output its own name: its files are %s.csv and %s.npy", name, prev.label, name, name), 2)
    end
    if not prev then
      output_names[name] = node
      graph.output(name, node)
    end
  end
end

-- Called by the engine before and after the recipe runs.
function sbi._begin(sets, recipe, recipe_dir)
  sbi._set, sbi._recipe = sets, recipe
  observation.recipe_dir = recipe_dir
end

function sbi._end()
  local unknown = {}
  for k in pairs(sbi._set) do
    if not sbi._params[k] then unknown[#unknown + 1] = k end
  end
  if #unknown > 0 then
    table.sort(unknown)
    local known = check.sorted_keys(sbi._params)
    error(string.format("unknown --set %s: %s has %s", table.concat(unknown, ", "), sbi._recipe,
                        #known > 0 and ("parameters " .. table.concat(known, ", ") .. " (declared with sbi.param)")
                        or "no parameters (declare them with sbi.param)"), 0)
  end
  if graph.noutputs() == 0 then
    error(sbi._recipe .. ": the recipe declares no outputs; add sbi.output{ posterior_samples = ... }", 0)
  end
end

-- outputs: list of { name =, node = } (the engine's, lang/l_graph.c);
-- arts: their artifacts, in order; train: per output, the artifacts of its
-- training inputs (for loss curves).
function sbi._write_outputs(outputs, arts, dir, quiet, train)
  sbi._written = {} -- read by run.json
  sbi._diagnostics = {} -- read by run.json
  sbi._warnings = health.warnings -- read by run.json
  -- Diagnostics (sbi.diagnose.*) write their own tables; the rest go to
  -- the report.
  local plain_o, plain_a, plain_t, diag = {}, {}, {}, {}
  for i, o in ipairs(outputs) do
    if arts[i].diagnostic then
      diag[#diag + 1] = i
    else
      plain_o[#plain_o + 1], plain_a[#plain_a + 1] = o, arts[i]
      plain_t[#plain_o] = train and train[i]
      -- A cached MCMC posterior warns again.
      if arts[i].max_rhat then
        local a = arts[i]
        health.record(o.node.label, a.max_rhat, a.min_ess, nil, health.mixed(a.rhat_within) and a.modes or nil)
      end
    end
  end
  report.write_outputs(plain_o, plain_a, dir, quiet, sbi._written, plain_t)
  for _, i in ipairs(diag) do
    diagnose.write(outputs[i].name, arts[i], dir, quiet, sbi._written, sbi._diagnostics)
  end
  sbi._gate_message = diagnose.finish(sbi._diagnostics)
end

-- Library tables hash by name in cache keys (their code is versioned with
-- the engine), so a simulator that captures `sbi` does not hash the graph.
for name, t in pairs { sbi = sbi, ["sbi.core"] = core, ["sbi.check"] = check, ["sbi.graph"] = graph,
                       ["sbi.prior"] = prior, ["sbi.simulate"] = simulate, ["sbi.observation"] = observation,
                       ["sbi.abc"] = abc, ["sbi.neural"] = neural, ["sbi.report"] = report, ["sbi.abc.api"] = sbi.abc,
                       ["sbi.summary"] = summary, ["sbi.emulator"] = emulator, ["sbi.summary_nn"] = require "sbi.summary_nn", ["sbi.summary.api"] = sbi.summary,
                       ["sbi.diagnose"] = diagnose, ["sbi.c2st"] = require "sbi.c2st", ["sbi.health"] = health,
                       ["sbi.diagnose.api"] = sbi.diagnose } do
  core.register_library(t, name)
end

return sbi
