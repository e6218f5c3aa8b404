-- The MPI tests' recipe (t08xx): a prior simulation whose failures are
-- dropped (in several chunks), rejection ABC, and SMC-ABC, whose later
-- populations simulate at given parameters (rank 0 sends them).
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local work = sbi.param("work", 0)
local function busy(theta)
  local s = 0
  for k = 1, work do s = s + math.sin(k * theta[1]) end
  return 1e-12 * s
end
local function failing(theta, rng)
  if theta.a > 0.9 then return { 0 / 0, 0 } end -- dropped: counted, with the first failure
  return { theta.a + 0.1 * rng:normal() + busy(theta), theta.b + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = failing, n = sbi.param("n", 6000), seed = 5,
                            chunk_size = sbi.param("chunk", 250), on_failure = "drop" }
local obs = sbi.observation { 0.2, -0.3 }
local rej = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.05 }
local outputs = { rejection = rej }
if sbi.param("smc", true) then
  outputs.smc = sbi.abc.smc { prior = prior, observation = obs, seed = 11, sims_per_population = 12000,
    populations = 3, simulator = function(theta, rng) return { theta.a + 0.1 * rng:normal(), theta.b } end }
end
sbi.output(outputs)
