-- The same simulator called n times in a bare Lua loop (no prior, no
-- checks, no storage): the baseline for the engine's per-simulation overhead.
-- Usage: sbirun lua bare_loop.lua N [two_moons|tutorial]
local dir = arg[0]:match("(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local core = require "sbi.core"
local model = arg[2] or "two_moons"
local simulator = require(model .. "_sim")
local n = tonumber(arg[1] or "1000000")
local rng = core.rng(1, 2, 0)
local t0 = core.clock()
local sink = 0
if model == "tutorial" then
  for i = 1, n do
    local theta = { 0.5, 0.6, 0.2, -0.2, 0.1 }
    local x = simulator(theta, rng)
    sink = sink + x[1]
  end
else
  for i = 1, n do
    local theta = { 0.1, -0.2 }
    local x = simulator(theta, rng)
    sink = sink + x[1]
  end
end
local dt = core.clock() - t0
print(string.format("%.6f %g", dt, sink))
