-- Cost per training step of SNPE's atomic loss (not a test): a MAF of the
-- sequential speed bench's size (5 transforms, 50 hidden, 2 blocks, batch
-- 50, 10 atoms) trained for a fixed 30 epochs on 2,000 synthetic rows, so
-- two builds do the same work whatever their summation order (early
-- stopping would otherwise change the epoch count). DC context columns
-- (2 as two_moons, 50 as the tutorial), EPOCHS epochs (30). Prints CPU ms
-- per step.
--
--   DC=2 build/lang/sbirun lua tests/bench/atomic_step.lua
--   DC=50 build/lang/sbirun lua tests/bench/atomic_step.lua
local sbi = require "sbi"
local core = require "sbi.core"
local dc = tonumber(os.getenv("DC") or 2)
local n = 2000
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local rng = core.rng(1, 7, 0)
local th, x = {}, {}
for i = 1, n do
  local a, b = rng:uniform(-1, 1), rng:uniform(-1, 1)
  th[i] = { a, b }
  local r = {}
  for j = 1, dc do r[j] = (j % 2 == 1 and a or b) + 0.1 * rng:normal() end
  x[i] = r
end
local t0 = os.clock()
local _, rep = core.flow_train { kind = "maf", y = core.mat(th), context = core.mat(x), transforms = 5, hidden = 50,
  layers = 2, activation = "tanh", batch_size = 50, learning_rate = 5e-4, validation_fraction = 0.1,
  patience = 1000, max_epochs = tonumber(os.getenv("EPOCHS") or 30), clip = 5, seed = 1, label = "atomic_step", atoms = 10, prior = prior.c }
local cpu = os.clock() - t0
print(string.format("context %d: %d steps, %.2f CPU s, %.3f ms per step", dc, rep.steps, cpu, 1000 * cpu / rep.steps))
