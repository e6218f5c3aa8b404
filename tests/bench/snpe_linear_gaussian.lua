-- A linear-Gaussian model with an analytic posterior, the tutorial's shape
-- (5 parameters, 50 data values, a posterior about 1/20 of the prior's
-- width in every direction, correlated): theta ~ U[-W, W]^5, x = A theta +
-- sigma eps, A fixed (neighbouring columns correlated). The exact posterior
-- is N(mu, S), S = (A^T A / sigma^2)^-1, mu = S A^T x_o / sigma^2 (the box's
-- truncation is negligible at W = 2); the recipe prints "EXACT" and the
-- mean and sd of each parameter. Used by tests/bench/snpe_accuracy.sh
-- (docs/benchmarks-sequential.md, "The tutorial model").
--   sbirun tests/bench/snpe_linear_gaussian.lua --set method=npe|snpe|tsnpe --set seed=S
local sbi = require "sbi"
local D, N = 5, 50
local W = sbi.param("width", 2)
local sigma = sbi.param("sigma", 1.0)
-- A, theta* and x_o from a fixed linear congruential generator (not the
-- engine's streams: the model must not depend on the seed)
local state = 12345
local function unif() state = (state * 1103515245 + 12345) % 2147483648; return (state + 0.5) / 2147483648 end
local function gauss() return math.sqrt(-2 * math.log(unif())) * math.cos(2 * math.pi * unif()) end
local A = {}
local g = {}
for i = 1, N do g[i] = {} for j = 1, D do g[i][j] = gauss() end end
for i = 1, N do A[i] = {} for j = 1, D do A[i][j] = g[i][j] + (j > 1 and 0.7 * g[i][j - 1] or 0) end end
local truth = { 0.3, -0.5, 0.8, 0.1, -1.0 }
local obs_seed = sbi.param("obs_seed", 1)
for _ = 1, obs_seed do gauss() end
local xo = {}
for i = 1, N do
  local s = 0
  for j = 1, D do s = s + A[i][j] * truth[j] end
  xo[i] = s + sigma * gauss()
end
-- the exact posterior's precision P and P mu = b
local P, b = {}, {}
for a = 1, D do
  P[a] = {}
  for c = 1, D do local s = 0 for i = 1, N do s = s + A[i][a] * A[i][c] end P[a][c] = s / sigma ^ 2 end
  local s = 0 for i = 1, N do s = s + A[i][a] * xo[i] end b[a] = s / sigma ^ 2
end
-- S = P^-1 by Gauss-Jordan (P is well conditioned)
local M = {}
for a = 1, D do M[a] = {} for c = 1, D do M[a][c] = P[a][c] end for c = 1, D do M[a][D + c] = (a == c) and 1 or 0 end end
for col = 1, D do
  local piv = M[col][col]
  for c = 1, 2 * D do M[col][c] = M[col][c] / piv end
  for r = 1, D do if r ~= col then local f = M[r][col] for c = 1, 2 * D do M[r][c] = M[r][c] - f * M[col][c] end end end
end
local mu, sd = {}, {}
for a = 1, D do local s = 0 for c = 1, D do s = s + M[a][D + c] * b[c] end mu[a] = s; sd[a] = math.sqrt(M[a][D + a]) end
local line = "EXACT"
for a = 1, D do line = line .. string.format(" %.6f %.6f", mu[a], sd[a]) end
print(line)

local low, high, names = {}, {}, {}
for j = 1, D do low[j], high[j], names[j] = -W, W, "t" .. j end
local prior = sbi.prior.uniform { low = low, high = high, names = names }
local function simulator(theta, rng)
  local x = {}
  for i = 1, N do
    local s = 0
    for j = 1, D do s = s + A[i][j] * theta[j] end
    x[i] = s + sigma * rng:normal()
  end
  return x
end
local observation = sbi.observation(xo)
local method = sbi.param("method", "npe")
local simulations = sbi.param("simulations", 10000)
local rounds = sbi.param("rounds", 10)
local seed = sbi.param("seed", 1)
local num_samples = sbi.param("num_samples", 10000)
local warm_start = sbi.param("warm_start", true)
local atoms = sbi.param("atoms", 10)
local posterior
if method == "npe" then
  local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, n = simulations, seed = seed }
  posterior = sbi.npe { sims = sims, observation = observation, num_samples = num_samples, seed = seed, density = "maf" }
else
  posterior = sbi.snpe {
    prior = prior, simulator = sbi.simulator { fn = simulator, dim = N }, observation = observation,
    rounds = rounds, simulations = simulations, truncate = method == "tsnpe" or nil,
    atoms = method == "snpe" and atoms or nil,
    warm_start = warm_start, num_samples = num_samples, seed = seed,
  }
end
sbi.output { posterior_samples = posterior }
