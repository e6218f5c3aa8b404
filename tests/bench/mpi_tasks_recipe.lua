-- The recipe of tests/bench/mpi_tasks.sh: the tasks MPI ranks share besides
-- simulation chunks. NLE's expected coverage over `tests` test points (a
-- slice sampler per point), and SNPE with an ensemble of `ensemble` flows
-- per round (acquisition = "uncertainty").
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local function simulator(theta, rng)
  return { theta.a + 0.1 * rng:normal(), theta.b + 0.1 * rng:normal() }
end
local obs = sbi.observation { 0.2, -0.3 }
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 2000, seed = 3 }
local nle = sbi.nle { sims = sims, observation = obs, hidden = 16, transforms = 2, max_epochs = 40, num_samples = 500 }
sbi.output {
  coverage = sbi.diagnose.coverage { posterior = nle, tests = sbi.param("tests", 200), samples = 1000, seed = 4 },
  snpe = sbi.snpe { prior = prior, simulator = simulator, observation = obs, rounds = 2, simulations_per_round = 1000,
    seed = 6, acquisition = "uncertainty", ensemble = sbi.param("ensemble", 4), density = "maf", hidden = 32,
    transforms = 3, max_epochs = 100, num_samples = 500 },
}
