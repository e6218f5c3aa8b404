-- One conjugate Gaussian model with its simulator in three forms
-- (docs/simulators.md): a Lua function, a C plugin (gauss_plugin.c) and an
-- external program (gauss_program.c) speaking the line protocol.
--
--   theta ~ N(0, I_2),  x_j = theta_j + 0.5 eps_j:  posterior N(0.8 x_obs, 0.2 I)
--
-- meson builds the plugin and the program and copies this recipe and the
-- sources beside them (build/recipes/examples/); run it there:
--   sbirun build/recipes/examples/gauss_native.lua --set simulator=plugin   (lua, plugin, command)
-- The Lua function and the plugin draw the same noise from the engine's
-- streams: their simulations, and so their posteriors, are identical.
local sbi = require "sbi"

local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }

local kind = sbi.param("simulator", "plugin")
local n = sbi.param("simulations", 100000)
local seed = sbi.param("seed", 1)

local simulator
if kind == "lua" then
  simulator = sbi.simulator { dim = 2, fn = function(theta, rng)
    return { theta[1] + rng:normal(0, 0.5), theta[2] + rng:normal(0, 0.5) }
  end }
elseif kind == "plugin" then
  simulator = sbi.simulator { plugin = "libgauss_plugin.so", dim = 2, source = "gauss_plugin.c" }
elseif kind == "command" then
  simulator = sbi.simulator { command = { "./gauss_program", "--sigma", "0.5" }, dim = 2, batch = 256,
                              timeout = 10, source = "gauss_program.c" }
else
  error("unknown --set simulator=" .. tostring(kind) .. " (available: lua, plugin, command)", 0)
end

local sims = sbi.simulate { prior = prior, simulator = simulator, n = n, seed = seed }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 1.0, -0.5 }, quantile = 0.01 }
sbi.output { posterior = post, simulations = sims }
