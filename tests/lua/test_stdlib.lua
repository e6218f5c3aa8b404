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

-- Synthetic regression data: n rows of K summaries (columns of very
-- different sizes) and D = 2 parameters theta = a + (s - obs) B + noise *
-- N(0, 1) + curve * s_1^2.
local function regression_data(n, noise, curve)
  local rng = core.rng(7, 0, 0)
  local obs, a = { 0.3, -1.2, 5 }, { 0.1, -4 }
  local B = { { 1.5, -0.5 }, { -2, 0.25 }, { 0.7, 3 } }
  local th, x = core.mat(n, 2), core.mat(n, 3)
  for i = 1, n do
    local s = { rng:normal(), 10 * rng:normal(), 5 + 0.01 * rng:normal() }
    for j = 1, 3 do x:set(i, j, s[j]) end
    for d = 1, 2 do
      local v = a[d] + noise * rng:normal() + curve * s[1] ^ 2
      for j = 1, 3 do v = v + (s[j] - obs[j]) * B[j][d] end
      th:set(i, d, v)
    end
  end
  local scale = core.scales(x, "std")
  local dist = core.abc_distances(x, obs, scale)
  local h = 0
  for i = 1, n do h = math.max(h, dist:get(i, 1)) end
  return th, x, obs, scale, dist, h, a, B
end

-- The reference: weighted normal equations in raw units, (X'WX) c = X'W y,
-- by Gauss-Jordan elimination with partial pivoting; returns the slopes.
local function reference_beta(th, x, obs, dist, h, d)
  local p = x:cols() + 1
  local A = {}
  for r = 1, p do A[r] = {} for c = 1, p + 1 do A[r][c] = 0 end end
  for i = 1, x:rows() do
    local w = math.max(0, 1 - (dist:get(i, 1) / h) ^ 2)
    local z = { 1 }
    for j = 1, p - 1 do z[j + 1] = x:get(i, j) - obs[j] end
    for r = 1, p do
      for c = 1, p do A[r][c] = A[r][c] + w * z[r] * z[c] end
      A[r][p + 1] = A[r][p + 1] + w * z[r] * th:get(i, d)
    end
  end
  for c = 1, p do
    local piv = c
    for r = c + 1, p do if math.abs(A[r][c]) > math.abs(A[piv][c]) then piv = r end end
    A[c], A[piv] = A[piv], A[c]
    for r = 1, p do
      if r ~= c then
        local f = A[r][c] / A[c][c]
        for k = c, p + 1 do A[r][k] = A[r][k] - f * A[c][k] end
      end
    end
  end
  local beta = {}
  for j = 2, p do beta[j - 1] = A[j][p + 1] / A[j][j] end
  return beta
end

H.test("linear regression adjustment: an exact linear model becomes constant", function()
  local th, x, obs, scale, dist, h, a, B = regression_data(400, 1e-6, 0)
  local adj, beta = core.abc_adjust_linear(th, x, obs, scale, dist, h)
  H.check(adj:rows() == 400 and adj:cols() == 2 and beta:rows() == 3 and beta:cols() == 2, "shapes")
  for i = 1, 400 do
    for d = 1, 2 do
      H.check(math.abs(adj:get(i, d) - a[d]) < 2e-5, "adjusted theta = its value at s_obs")
    end
  end
  -- Slope 3 of column 3 (sd 0.01) is the least determined: noise 1e-6 / (0.01 sqrt(n)).
  for j = 1, 3 do
    for d = 1, 2 do H.check(math.abs(beta:get(j, d) - B[j][d]) < 1e-3, "beta " .. j .. "," .. d) end
  end
  H.check(th:get(1, 1) ~= adj:get(1, 1), "the input is not changed")
end)

H.test("linear regression adjustment matches the weighted normal equations", function()
  local th, x, obs, scale, dist, h = regression_data(300, 0.5, 0.8)
  local adj, beta = core.abc_adjust_linear(th, x, obs, scale, dist, h)
  for d = 1, 2 do
    local ref = reference_beta(th, x, obs, dist, h, d)
    for j = 1, 3 do
      local tol = 1e-8 * math.max(1, math.abs(ref[j]))
      H.check(math.abs(beta:get(j, d) - ref[j]) < tol, string.format("beta %d,%d: %.17g vs %.17g", j, d,
                                                                      beta:get(j, d), ref[j]))
    end
    for i = 1, 300 do
      local v = th:get(i, d)
      for j = 1, 3 do v = v - (x:get(i, j) - obs[j]) * ref[j] end
      H.check(math.abs(adj:get(i, d) - v) < 1e-7, "adjusted row " .. i)
    end
  end
  -- The farthest row has weight 0, yet is adjusted.
  local far = 1
  for i = 1, 300 do if dist:get(i, 1) == h then far = i end end
  H.check(adj:get(far, 1) ~= th:get(far, 1), "the farthest row is adjusted too")
end)

H.test("linear regression adjustment: errors name the problem", function()
  local th, x, obs, scale, dist, h = regression_data(50, 0.5, 0)
  local function adjust(t, m, hh) return core.abc_adjust_linear(t, m, obs, core.scales(m, "std"),
                                                                core.abc_distances(m, obs, scale), hh or h) end
  H.raises(function() adjust(th:select_rows { 1, 2, 3 }, x:select_rows { 1, 2, 3 }) end,
           "needs at least 4 accepted simulations with a positive weight")
  local c = x:select_rows((function() local t = {} for i = 1, 50 do t[i] = i end return t end)())
  for i = 1, 50 do c:set(i, 2, 7) end
  H.raises(function() adjust(th, c) end, "summary 2 is constant")
  for i = 1, 50 do c:set(i, 2, c:get(i, 1) + 2 * c:get(i, 3)) end
  H.raises(function() adjust(th, c) end, "linearly dependent (the weighted design with an intercept has rank 3 < 4)")
  H.raises(function() adjust(th, x, 0) end, "the kernel width must be positive")
  H.raises(function() core.abc_adjust_linear(th, x, obs, scale, dist:select_rows { 1 }, h) end,
           "the distances has 1 values, expected 50")
end)

H.test("quadratic regression adjustment: an exact quadratic model becomes constant", function()
  -- theta = a + (s - obs) B + 0.8 s_1^2 without noise: its value at the
  -- observation is a + 0.8 * 0.3^2. The linear adjustment leaves the
  -- curvature (its adjusted values spread by about 0.8 var(s_1) = 0.8).
  local th, x, obs, scale, dist, h, a = regression_data(400, 0, 0.8)
  local adj = core.abc_adjust_quadratic(th, x, obs, scale, dist, h)
  local lin = core.abc_adjust_linear(th, x, obs, scale, dist, h)
  H.check(adj:rows() == 400 and adj:cols() == 2, "shapes")
  local spread = 0
  for i = 1, 400 do
    for d = 1, 2 do
      H.check(math.abs(adj:get(i, d) - (a[d] + 0.8 * 0.09)) < 1e-8, "adjusted theta = its value at s_obs")
      spread = math.max(spread, math.abs(lin:get(i, d) - (a[d] + 0.8 * 0.09)))
    end
  end
  H.check(spread > 0.5, "the linear adjustment leaves the curvature: " .. spread)
  H.check(th:get(1, 1) ~= adj:get(1, 1), "the input is not changed")
end)

H.test("quadratic regression adjustment: errors name the problem", function()
  local th, x, obs, scale, dist, h = regression_data(50, 0.5, 0)
  -- 3 summaries: 1 + 3 + 6 = 10 coefficients
  local nine = {}
  for i = 1, 9 do nine[i] = i end
  H.raises(function() core.abc_adjust_quadratic(th:select_rows(nine), x:select_rows(nine), obs, scale,
                                                 dist:select_rows(nine), h) end,
           "the quadratic adjustment needs at least 10 accepted simulations with a positive weight")
  H.raises(function() core.abc_adjust_quadratic(th, x, obs, scale, dist, -1) end, "the kernel width must be positive")
  H.raises(function() core.abc_adjust_quadratic(th, x, obs, scale, dist:select_rows { 1 }, h) end,
           "the distances has 1 values, expected 50")
end)

H.done()
