-- The tutorial's simulator (recipes/tutorial.lua: a Gaussian bump on an
-- affine background, 50 noisy values), the same code, as a module for the
-- workers benchmark.
local N = 50
local grid, sigma = {}, {}
for i = 0, N - 1 do
  grid[i + 1] = i / (N - 1)
  sigma[i + 1] = 0.05 + 0.10 * grid[i + 1]
end

local function mean_function(theta)
  local l, m, s, a, b = theta[1], theta[2], theta[3], theta[4], theta[5]
  local mu = {}
  for i = 1, N do
    local x = grid[i]
    mu[i] = l * math.exp(-(x - m) ^ 2 / (2 * s * s)) + a * x + b
  end
  return mu
end

return function(theta, rng)
  local y = mean_function(theta)
  for i = 1, N do y[i] = y[i] + sigma[i] * rng:normal() end
  return y
end
