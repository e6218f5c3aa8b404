-- The report tests' recipe (t0180, t0181): a line y_i = mu + nu t_i with
-- known noise, three posteriors of it (rejection ABC, NPE with a short
-- training, the exact likelihood), a posterior predictive and the
-- observation as outputs: every kind of plot the report draws from a run.
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "mu", "nu" } }
local N = 8
local function sim(theta, rng)
  local y = {}
  for i = 1, N do y[i] = theta[1] + theta[2] * (i - 1) / (N - 1) + 0.3 * rng:normal() end
  return y
end
local obs = sbi.observation { simulator = sim, theta = { 0.5, -0.3 }, seed = 7 }
local sims = sbi.simulate { prior = prior, simulator = sbi.simulator { fn = sim, dim = N }, n = 3000, seed = 1 }
local abc = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.05 }
local npe = sbi.npe { sims = sims, observation = obs, num_samples = 2000, seed = 1, max_epochs = 30,
                      transforms = 2, hidden = 20 }
local exact = sbi.likelihood { prior = prior, observation = obs, num_samples = 2000, seed = 1,
  loglik = function(theta, y)
    local ll = 0
    for i = 1, N do
      local r = (y[i] - theta[1] - theta[2] * (i - 1) / (N - 1)) / 0.3
      ll = ll - 0.5 * r * r
    end
    return ll
  end }
local pred = sbi.simulate { prior = prior, thetas = exact, simulator = sbi.simulator { fn = sim, dim = N }, seed = 3 }
sbi.output { abc = abc, npe = npe, exact = exact, predictive = pred, observation = obs }
