-- The stdlib's checks and primitives, called directly.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local sbi = require "sbi"
local core = sbi.core

H.test("option tables reject unknown keys and list the accepted ones", function()
  local p = sbi.prior.uniform { low = { 0 }, high = { 1 } }
  H.raises(function() sbi.simulate { prior = p, simulator = function() end, n = 10, sed = 1 } end,
           "unknown option 'sed' (accepted: chunk_size, n, on_failure, prior, seed, simulator)")
  H.raises(function() sbi.simulate { prior = p, simulator = function() end } end, "option 'n' is required")
  H.raises(function() sbi.simulate { prior = p, simulator = function() end, n = "many" } end,
           "option 'n' must be an integer from 1 to 1000000000")
end)

H.test("prior errors name the field", function()
  H.raises(function() sbi.prior.uniform { low = { 0, 1 }, high = { 1, 0.5 } } end, "high[2]")
  H.raises(function() sbi.prior.normal { mean = { 0 }, std = { 0 } } end, "std[1]")
  H.raises(function() sbi.prior.mvn { mean = { 0, 0 }, cov = { { 1, 2 }, { 2, 1 } } } end, "cov")
  H.raises(function() sbi.prior.uniform { low = { 0 }, high = { 1 }, names = { "a", "b" } } end, "names")
end)

H.test("joint prior names and dimension", function()
  local j = sbi.prior.joint { { "amp", sbi.prior.uniform { low = { 0 }, high = { 1 } } },
                              { "rates", sbi.prior.gamma { shape = { 2, 3 }, scale = { 1, 1 } } } }
  H.check(j:dim() == 3, "dim")
  H.check(table.concat(j.names, ",") == "amp,rates[1],rates[2]", "names: " .. table.concat(j.names, ","))
  H.near(j:log_density({ 0.5, 1, 1 }), math.log(1 * math.exp(-1) * (1 * math.exp(-1) / 2)), 1e-12, "log density")
  H.check(j:in_support({ 0.5, 1, 1 }) and not j:in_support({ 1.5, 1, 1 }), "support")
end)

H.test("rng streams are reproducible", function()
  local a, b = core.rng(5, 2, 17), core.rng(5, 2, 17)
  for _ = 1, 10 do H.check(a:normal() == b:normal(), "same stream") end
  local c = core.rng(5, 2, 18)
  H.check(a:uniform() ~= c:uniform(), "different index")
  local n, s = 20000, 0
  local r = core.rng(1)
  for _ = 1, n do s = s + r:binomial(10, 0.3) end
  H.near(s / n, 3, 5 * math.sqrt(10 * 0.3 * 0.7 / n), "binomial mean")
end)

H.test("matrices", function()
  local m = core.mat { { 1, 2 }, { 3, 4 }, { 5, 6 } }
  H.check(m:rows() == 3 and m:cols() == 2, "shape")
  H.check(m:get(3, 2) == 6, "get")
  local s = m:select_rows { 3, 1 }
  H.check(s:get(1, 1) == 5 and s:get(2, 2) == 2, "select_rows")
  H.raises(function() m:get(4, 1) end, "row index 4 out of range")
end)

H.done()
