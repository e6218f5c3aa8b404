-- Benchmark recipe: n two_moons simulations through the engine.
local sbi = require "sbi"
local simulator = require "two_moons_sim"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = 2 },
                            n = sbi.param("simulations", 1000000), seed = 1 }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0, 0 }, quantile = 0.001 }
sbi.output { posterior_samples = post }
