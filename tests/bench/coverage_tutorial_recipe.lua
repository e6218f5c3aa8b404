-- The tutorial model (as recipes/tutorial.lua with its defaults: the same
-- prior, simulator, observation, 10,000 simulations, seed 1) with NPE, NLE
-- or NRE and its expected coverage, exposing the test-set MCMC settings
-- the tutorial leaves at the diagnostic's defaults (10 chains, 50 warm-up
-- sweeps): tests/bench/coverage_tutorial.sh runs NLE and NRE again with
-- --set chains=20 --set warmup=200 to see whether the curve moves when the
-- per-test-point MCMC has converged.
local sbi = require "sbi"
local method = sbi.param("method", "nle")
local tests, chains, warmup = sbi.param("tests", 200), sbi.param("chains", 10), sbi.param("warmup", 50)
local prior = sbi.prior.uniform {
  low   = { 0, 0, 0.05, -0.5, -0.5 },
  high  = { 1, 1, 0.40,  0.5,  0.5 },
  names = { "l", "m", "s", "a", "b" },
}
local N = 50
local grid, sigma = {}, {}
for i = 0, N - 1 do
  grid[i + 1] = i / (N - 1)
  sigma[i + 1] = 0.05 + 0.10 * grid[i + 1]
end
local function simulator(theta, rng)
  local l, m, s, a, b = theta[1], theta[2], theta[3], theta[4], theta[5]
  local y = {}
  for i = 1, N do
    local x = grid[i]
    y[i] = l * math.exp(-(x - m) ^ 2 / (2 * s * s)) + a * x + b + sigma[i] * rng:normal()
  end
  return y
end
local observation = sbi.observation { simulator = simulator, theta = { 0.5, 0.6, 0.2, -0.2, 0.1 }, seed = 2024 }
local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, n = 10000, seed = 1 }
local post = sbi[method] { sims = sims, observation = observation, num_samples = 10000, seed = 1 }
sbi.output { posterior_samples = post }
sbi.diagnose.coverage { posterior = post, tests = tests, seed = 1, simulator = sbi.simulator { fn = simulator, dim = N },
  chains = method ~= "npe" and chains or nil, warmup = method ~= "npe" and warmup or nil }
