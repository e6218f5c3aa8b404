-- The same simulator called n times in a bare Lua loop (no prior, no
-- checks, no storage): the baseline for the engine's per-simulation overhead.
-- Usage: sbirun lua bare_loop.lua N
local dir = arg[0]:match("(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local core = require "sbi.core"
local simulator = require "two_moons_sim"
local n = tonumber(arg[1] or "1000000")
local rng = core.rng(1, 2, 0)
local t0 = core.clock()
local sink = 0
for i = 1, n do
  local theta = { 0.1, -0.2 }
  local x = simulator(theta, rng)
  sink = sink + x[1]
end
local dt = core.clock() - t0
print(string.format("%.6f %g", dt, sink))
