-- Benchmark (not a test): compressing 10^6 simulations of 50 values to 5
-- against simulating them. Run: sbirun lua tests/bench/summary_speed.lua [N]
-- Prints the seconds to fit PCA (core.pca) and to apply the map
-- (core.linear_map, one BLAS product) on N x 50 standard normal data, and
-- the seconds of the tutorial's simulator for N simulations in a bare Lua
-- loop (timed on N / 10 and scaled: a lower bound of what sbi.simulate
-- takes, which adds the engine's overhead).
local core = require "sbi.core"
local n, d, k = math.tointeger(tonumber(arg and arg[1]) or 1000000), 50, 5
local x, rng, row = core.mat(n, d), core.rng(1), {}
for i = 1, n do
  for j = 1, d do row[j] = rng:normal() end
  x:set_row(i, row)
end
local t0 = core.clock()
local w, offset = core.pca(x, k, true, true)
local t1 = core.clock()
local t = core.linear_map(x, w, offset)
local t2 = core.clock()
assert(t:rows() == n and t:cols() == k)
-- The tutorial's simulator (recipes/tutorial.lua).
local grid, sigma = {}, {}
for i = 0, d - 1 do grid[i + 1] = i / (d - 1); sigma[i + 1] = 0.05 + 0.10 * grid[i + 1] end
local function simulator(theta, r)
  local l, m, s, a, b = theta[1], theta[2], theta[3], theta[4], theta[5]
  local y = {}
  for i = 1, d do
    local g = grid[i]
    y[i] = l * math.exp(-(g - m) ^ 2 / (2 * s * s)) + a * g + b + sigma[i] * r:normal()
  end
  return y
end
local m = n // 10
local t3 = core.clock()
for _ = 1, m do simulator({ rng:uniform(), rng:uniform(), 0.05 + 0.35 * rng:uniform(), rng:uniform() - 0.5,
                           rng:uniform() - 0.5 }, rng) end
local sim = (core.clock() - t3) * n / m
print(string.format("%d x %d -> %d: PCA fit %.2f s, apply %.2f s; simulating them (bare loop) %.1f s", n, d, k,
                    t1 - t0, t2 - t1, sim))
