-- A deliberately slow simulator for interruption tests (about 50 us per
-- simulation); `work` sets the busy-loop length.
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local work = sbi.param("work", 2000)
local function simulator(theta, rng)
  local s = 0
  for k = 1, work do s = s + math.sin(k * theta[1]) end
  return { theta[1] + 0.1 * rng:normal() + 1e-12 * s, theta[2] + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = sbi.param("simulations", 20000),
                            seed = 3, chunk_size = sbi.param("chunk", 500) }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.2, -0.3 }, quantile = 0.05 }
sbi.output { posterior_samples = post }
