-- The MPI tests' recipe of tasks (t0803): NPE with expected coverage and SBC
-- over 48 test points, SNPE whose "uncertainty" acquisition trains an
-- ensemble of 3 flows each round, and SNRE with an ensemble of 2 classifiers.
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local function simulator(theta, rng)
  return { theta.a + 0.1 * rng:normal(), theta.b + 0.1 * rng:normal() }
end
local obs = sbi.observation { 0.2, -0.3 }
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 600, seed = 3 }
local npe = sbi.npe { sims = sims, observation = obs, density = "maf", hidden = 16, transforms = 2,
                      max_epochs = 30, num_samples = 300 }
local tests = sbi.param("tests", 48)
local outputs = { npe = npe,
  coverage = sbi.diagnose.coverage { posterior = npe, tests = tests, samples = 200, seed = 4 },
  sbc = sbi.diagnose.sbc { posterior = npe, tests = tests, samples = 200, seed = 4 } }
if sbi.param("ensemble", true) then
  outputs.snpe = sbi.snpe { prior = prior, simulator = simulator, observation = obs, rounds = 2,
    simulations_per_round = 300, seed = 6, acquisition = "uncertainty", ensemble = 3, density = "maf",
    hidden = 16, transforms = 2, max_epochs = 20, num_samples = 200 }
  outputs.snre = sbi.snre { prior = prior, simulator = simulator, observation = obs, rounds = 2,
    simulations_per_round = 300, seed = 7, acquisition = "uncertainty", ensemble = 2, hidden = 16, max_epochs = 20,
    num_samples = 200, chains = 4, warmup = 20 }
end
sbi.output(outputs)
