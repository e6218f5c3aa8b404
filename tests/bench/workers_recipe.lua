-- Benchmark recipe: n simulations of two_moons or of the tutorial's
-- simulator through the engine (tests/bench/workers_scaling.sh), then a
-- cheap rejection ABC step so the recipe has an output.
local sbi = require "sbi"
local model = sbi.param("model", "two_moons")
local models = {
  two_moons = { sim = require "two_moons_sim", dim = 2,
                prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } } },
  tutorial = { sim = require "tutorial_sim", dim = 50,
               prior = sbi.prior.uniform { low = { 0, 0, 0.05, -0.5, -0.5 }, high = { 1, 1, 0.40, 0.5, 0.5 } } },
}
local m = assert(models[model], "model must be two_moons or tutorial")
local sims = sbi.simulate { prior = m.prior, simulator = sbi.simulator { fn = m.sim, dim = m.dim },
                            n = sbi.param("simulations", 1000000), seed = 1 }
local obs = {}
for i = 1, m.dim do obs[i] = 0 end
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation(obs), quantile = 0.001 }
sbi.output { posterior_samples = post }
