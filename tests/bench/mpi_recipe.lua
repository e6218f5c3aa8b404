-- Benchmark recipe of mpi_scaling.sh: n simulations of a cheap simulator
-- (work = 0) or of one that spins `work` iterations per call (the script
-- calibrates work to about 1 ms), in chunks of `chunk`.
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local work = sbi.param("work", 0)
local function simulator(theta, rng)
  local s = 0
  for k = 1, work do s = s + math.sin(k * theta[1]) end
  return { theta[1] + 0.1 * rng:normal() + 1e-12 * s, theta[2] + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = 2 },
                            n = sbi.param("simulations", 100000), seed = 1, chunk_size = sbi.param("chunk", 10000) }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0, 0 }, quantile = 0.01 }
sbi.output { posterior_samples = post }
