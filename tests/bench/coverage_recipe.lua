-- The recipe of tests/bench/coverage_speed.sh: sbibm two_moons (as
-- recipes/sbibm/two_moons.lua), 10,000 simulations, NPE or NLE (MAF of 5
-- transforms, 50 hidden units), and its expected coverage over `tests`
-- test observations with `samples` posterior draws each.
local sbi = require "sbi"
local method = sbi.param("method", "npe")
local tests, samples = sbi.param("tests", 200), sbi.param("samples", 1000)
local chains, warmup = sbi.param("chains", 10), sbi.param("warmup", 50)
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local HALF_PI, SQRT2 = math.pi / 2, math.sqrt(2)
local simulator = sbi.simulator { dim = 2, fn = function(theta, rng)
  local a = rng:uniform(-HALF_PI, HALF_PI)
  local r = rng:normal(0.1, 0.01)
  local p1, p2 = r * math.cos(a) + 0.25, r * math.sin(a)
  local z0 = (theta[1] + theta[2]) / SQRT2
  local z1 = (theta[2] - theta[1]) / SQRT2
  return { p1 - math.abs(z0), p2 + z1 }
end }
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 10000, seed = 1 }
local post = sbi[method] { sims = sims, observation = sbi.observation { 0, 0 }, density = "maf", num_samples = 1000 }
sbi.output { posterior_samples = post }
sbi.diagnose.coverage { posterior = post, tests = tests, samples = samples,
  chains = method ~= "npe" and chains or nil, warmup = method ~= "npe" and warmup or nil }
