-- A simulator that never returns for theta > 0 (interruption tests): with
-- chunk_size 1 the first chunks finish, then every worker is stuck in it.
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local function simulator(theta, rng)
  if theta[1] > 0 then while true do end end
  return { theta[1] + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = 1 }, n = 40,
                            seed = 3, chunk_size = 1 }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.2 }, quantile = 0.5 }
sbi.output { posterior_samples = post }
