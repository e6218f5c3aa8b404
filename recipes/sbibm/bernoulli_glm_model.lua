-- The Bernoulli GLM shared by bernoulli_glm.lua and bernoulli_glm_raw.lua
-- (shared/benchmarks/TASKS.md sections 5 and 6): the design matrix X
-- (100 x 10), the prior N(0, P^-1), read from sbibm's simulator_data, and
-- the spike train's draw.
local sbi = require "sbi"
local task = require "task"

local D, T = 10, 100

-- The inverse of a small matrix (rows of numbers) by Gauss-Jordan
-- elimination with partial pivoting.
local function inverse(a)
  local n, m = #a, {}
  for i = 1, n do
    m[i] = {}
    for j = 1, n do m[i][j], m[i][n + j] = a[i][j], i == j and 1 or 0 end
  end
  for c = 1, n do
    local p = c
    for r = c + 1, n do if math.abs(m[r][c]) > math.abs(m[p][c]) then p = r end end
    m[c], m[p] = m[p], m[c]
    local pivot = m[c][c]
    assert(pivot ~= 0, "singular prior precision")
    for j = 1, 2 * n do m[c][j] = m[c][j] / pivot end
    for r = 1, n do
      local f = m[r][c]
      if r ~= c and f ~= 0 then
        for j = 1, 2 * n do m[r][j] = m[r][j] - f * m[c][j] end
      end
    end
  end
  local inv = {}
  for i = 1, n do
    inv[i] = {}
    for j = 1, n do inv[i][j] = m[i][n + j] end
  end
  return inv
end

local X = task.read_data("bernoulli_glm", "design_matrix.csv"):totable()
local precision = task.read_data("bernoulli_glm", "prior_precision.csv"):totable()
assert(#X == T and #X[1] == D and #precision == D, "simulator_data: expected a 100 x 10 X and a 10 x 10 P")

-- Prior N(0, P^-1); the covariance is symmetrised against rounding.
local inv, mean, cov = inverse(precision), {}, {}
for i = 1, D do
  mean[i], cov[i] = 0, {}
  for j = 1, D do cov[i][j] = (inv[i][j] + inv[j][i]) / 2 end
end
local prior = sbi.prior.mvn { mean = mean, cov = cov }

-- The spike train y (T values in {0, 1}): psi = X theta,
-- y_t ~ Bernoulli(1 / (1 + exp(-psi_t))), one uniform draw per t in order.
local function spikes(theta, rng)
  local y = {}
  for t = 1, T do
    local row, psi = X[t], 0
    for j = 1, D do psi = psi + row[j] * theta[j] end
    y[t] = rng:uniform() < 1 / (1 + math.exp(-psi)) and 1 or 0
  end
  return y
end

return { D = D, T = T, X = X, prior = prior, spikes = spikes }
