-- The stdlib's checks and primitives, called directly.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local sbi = require "sbi"
local core = sbi.core

H.test("option tables reject unknown keys and list the accepted ones", function()
  local p = sbi.prior.uniform { low = { 0 }, high = { 1 } }
  H.raises(function() sbi.simulate { prior = p, simulator = function() end, n = 10, sed = 1 } end,
           "unknown option 'sed' (accepted: chunk_size, n, on_failure, prior, round, seed, simulator, thetas)")
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

-- The leave-one-out log likelihood of a Gaussian KDE as the stdlib computed
-- it in Lua before it moved to C (sbi_abc_kde_cv): the reference.
local function loo_loglik(rows, std, h)
  local n, d = #rows, #std
  local total = 0
  for i = 1, n do
    local a, best, terms = rows[i], -math.huge, {}
    for k = 1, n do
      if k ~= i then
        local b, q = rows[k], 0
        for j = 1, d do
          local z = (a[j] - b[j]) / (h * std[j])
          q = q + z * z
        end
        terms[#terms + 1] = -0.5 * q
        if -0.5 * q > best then best = -0.5 * q end
      end
    end
    local sum = 0
    for _, t in ipairs(terms) do sum = sum + math.exp(t - best) end
    total = total + best + math.log(sum / (n - 1)) - d * math.log(h)
  end
  return total
end

H.test("cross-validated KDE bandwidth matches the Lua formula", function()
  for _, case in ipairs { { n = 40, d = 3, seed = 1 }, { n = 25, d = 1, seed = 2 }, { n = 60, d = 2, seed = 3 } } do
    local r = core.rng(case.seed)
    local x, std = core.mat(case.n, case.d), {}
    for i = 1, case.n do
      for j = 1, case.d do x:set(i, j, (i % 3) * 2 + r:normal(0, 0.3 * j)) end -- three clusters
    end
    for j = 1, case.d do std[j] = 0.5 + 0.25 * j end
    local factor, ll = core.kde_bandwidth_cv(x, std)
    local rows, best_h, best_ll = x:totable(), 1, -math.huge
    H.check(#ll == 31, "31 grid values")
    for k = 0, 30 do
      local h = 10 ^ (-2 + 2 * k / 30)
      local ref = loo_loglik(rows, std, h)
      H.near(ll[k + 1], ref, 1e-9 * math.abs(ref), string.format("LOO(h = %g), n = %d", h, case.n))
      if ref > best_ll then best_h, best_ll = h, ref end
    end
    H.check(factor == best_h, string.format("factor %.17g, Lua's %.17g", factor, best_h))
  end
end)

H.test("cross-validated KDE bandwidth: a known answer and errors", function()
  -- Pairs delta apart, the pairs far from each other: every point's one
  -- neighbour is at delta, so LOO(h) = n (-delta^2 / (2 h^2) - log h) + const,
  -- largest at h = delta, which is grid value 20.
  local delta = 10 ^ (-2 + 2 * 20 / 30)
  local x = core.mat { { 0 }, { delta }, { 1000 }, { 1000 + delta }, { 2000 }, { 2000 + delta } }
  H.check(core.kde_bandwidth_cv(x, { 1 }) == delta, "factor = delta")
  -- With std 2 the distances halve: the best h is delta / 2 = 10^(-2 + 2*15.48/30),
  -- between grid values 15 and 16.
  local f2 = core.kde_bandwidth_cv(x, { 2 })
  H.check(f2 == 10 ^ (-2 + 2 * 15 / 30) or f2 == 10 ^ (-2 + 2 * 16 / 30), "factor for std 2: " .. f2)
  H.raises(function() core.kde_bandwidth_cv(core.mat { { 1 } }, { 1 }) end, "at least 2 samples")
  H.raises(function() core.kde_bandwidth_cv(x, { 0 }) end, "std[1] must be positive")
  H.raises(function() core.kde_bandwidth_cv(x, { 1, 2 }) end, "the std has 2 values, expected 1")
end)

H.done()
