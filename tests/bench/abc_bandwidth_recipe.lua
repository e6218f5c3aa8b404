-- Rejection ABC with a cross-validated KDE bandwidth (bandwidth = "cv") on
-- `accepted` accepted samples: the recipe of tests/bench/abc_bandwidth.sh.
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1, -1 }, high = { 1, 1, 1 } }
local function sim(theta, rng)
  return { theta[1] + 0.1 * rng:normal(), theta[2] + 0.1 * rng:normal(), theta[1] * theta[3] + 0.1 * rng:normal() }
end
local n = sbi.param("simulations", 100000)
local sims = sbi.simulate { prior = prior, simulator = sim, n = n, seed = 1 }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.2, -0.3, 0.1 },
                                 quantile = sbi.param("accepted", 1000) / n, num_samples = 1000,
                                 kde = true, bandwidth = "cv" }
sbi.output { posterior_samples = post }
