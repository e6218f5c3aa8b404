-- The observation model shared by gaussian_linear.lua and
-- gaussian_linear_uniform.lua (shared/benchmarks/TASKS.md sections 1 and 2):
-- x = theta + eps, eps ~ N(0, 0.1 I), D = K = 10.
local D = 10

local NOISE_SD = math.sqrt(0.1)
local function simulator(theta, rng)
  local x = {}
  for i = 1, D do x[i] = theta[i] + rng:normal(0, NOISE_SD) end
  return x
end

return { D = D, simulator = simulator }
