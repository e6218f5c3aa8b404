-- core.ode (lang/l_ode.c): closed-form solutions, the built-in right-hand
-- sides against the same models written in Lua, errors and failures.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local sbi = require "sbi"
local core = sbi.core

local function grid(a, b, step)
  local t = {}
  for k = 0, math.floor((b - a) / step + 0.5) do t[#t + 1] = a + k * step end
  return t
end

H.test("exponential decay matches exp(-k t) to 1e-8 (rtol 1e-10)", function()
  local k, y0 = 0.7312, 2.385
  local calls = 0
  local times = grid(0, 5, 0.25)
  local rows = core.ode {
    rhs = function(_, y, dydt) calls = calls + 1; dydt[1] = -k * y[1] end,
    y0 = { y0 }, times = times, rtol = 1e-10, atol = 1e-10,
  }
  H.check(#rows == #times, "one row per time")
  H.check(rows[1][1] == y0, "the first row is y0 at t0 = times[1]")
  for i, t in ipairs(times) do
    H.near(rows[i][1], y0 * math.exp(-k * t), 1e-8, "y(" .. t .. ")")
  end
  H.check(calls > 20 and calls < 20000, "rhs calls: " .. calls)
end)

H.test("harmonic oscillator matches cos/sin to 1e-8 (rtol 1e-10)", function()
  local w = 1.37
  local times = grid(0, 10, 0.5)
  local rows = core.ode {
    rhs = function(_, y, dydt) dydt[1] = y[2]; dydt[2] = -w * w * y[1] end,
    y0 = { 1, 0 }, times = times, rtol = 1e-10, atol = 1e-10,
  }
  for i, t in ipairs(times) do
    H.near(rows[i][1], math.cos(w * t), 1e-8, "x(" .. t .. ")")
    H.near(rows[i][2], -w * math.sin(w * t), 1e-8, "v(" .. t .. ")")
  end
end)

H.test("every method solves exponential decay; t0 before times[1]", function()
  for _, m in ipairs { "rk8pd", "rkf45", "rkck", "rk4", "rk2", "rk1imp", "rk2imp", "rk4imp", "bsimp", "msadams",
                       "msbdf" } do
    local rows, msg = core.ode {
      rhs = function(_, y, dydt) dydt[1] = -0.5 * y[1] end,
      y0 = { 1.5 }, t0 = 0, times = { 1, 2, 4 }, method = m, rtol = 1e-9, atol = 1e-9,
    }
    H.check(rows ~= nil, m .. ": " .. tostring(msg))
    if rows then
      for i, t in ipairs { 1, 2, 4 } do
        -- rk1imp is first order: its local error control is looser in practice.
        H.near(rows[i][1], 1.5 * math.exp(-0.5 * t), m == "rk1imp" and 1e-5 or 1e-7, m .. " y(" .. t .. ")")
      end
    end
  end
end)

local SIR_P = { 0.61479264, 0.19172086, 1e6 }
local function sir_lua(_, y, dydt, p)
  local infection, recovery = p[1] * y[1] * y[2] / p[3], p[2] * y[2]
  dydt[1] = -infection
  dydt[2] = infection - recovery
  dydt[3] = recovery
end

H.test("SIR conserves S + I + R = N", function()
  local rows = core.ode { rhs = "sir", params = SIR_P, y0 = { 1e6 - 1, 1, 0 }, times = grid(0, 160, 1) }
  H.check(#rows == 161, "161 rows")
  for i = 1, #rows do
    local r = rows[i]
    H.near(r[1] + r[2] + r[3], 1e6, 1e-6, "S + I + R at t = " .. (i - 1))
    H.check(r[1] >= 0 and r[2] >= 0 and r[3] >= 0, "non-negative at t = " .. (i - 1))
  end
  H.check(rows[161][3] > 5e5, "the epidemic ran: R(160) = " .. rows[161][3])
end)

H.test("built-in rhs agree with the same models in Lua to 1e-10", function()
  local times = { 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 160 }
  local a = core.ode { rhs = "sir", params = SIR_P, y0 = { 1e6 - 1, 1, 0 }, times = times }
  local b = core.ode { rhs = sir_lua, params = SIR_P, y0 = { 1e6 - 1, 1, 0 }, times = times }
  for k = 1, #times do
    for i = 1, 3 do
      H.near(a[k][i], b[k][i], 1e-10 * math.max(1, math.abs(b[k][i])), "sir t = " .. times[k] .. " y" .. i)
    end
  end
  local p = { 0.6859157, 0.10761319, 0.88789904, 0.116794825 }
  local lt = {}
  for k = 0, 9 do lt[#lt + 1] = 2.1 * k end
  local c = core.ode { rhs = "lotka_volterra", params = p, y0 = { 30, 1 }, times = lt }
  local d = core.ode {
    rhs = function(_, y, dydt)
      dydt[1] = p[1] * y[1] - p[2] * y[1] * y[2]
      dydt[2] = -p[3] * y[2] + p[4] * y[1] * y[2]
    end,
    y0 = { 30, 1 }, times = lt,
  }
  for k = 1, #lt do
    for i = 1, 2 do H.near(c[k][i], d[k][i], 1e-10, "lotka_volterra t = " .. lt[k] .. " y" .. i) end
  end
end)

H.test("the rhs gets the same two tables on every call", function()
  local ys, ds, n = {}, {}, 0
  core.ode {
    rhs = function(_, y, dydt)
      n = n + 1
      ys[y], ds[dydt] = true, true
      dydt[1] = y[2]; dydt[2] = -y[1]
    end,
    y0 = { 0, 1 }, times = { 0, 1 },
  }
  local ny, nd = 0, 0
  for _ in pairs(ys) do ny = ny + 1 end
  for _ in pairs(ds) do nd = nd + 1 end
  H.check(n > 10 and ny == 1 and nd == 1, string.format("%d calls, %d y tables, %d dydt tables", n, ny, nd))
end)

H.test("an error in the rhs is raised, naming the rhs", function()
  local calls = 0
  H.raises(function()
    core.ode {
      rhs = function(t, y, dydt)
        calls = calls + 1
        if t > 0.5 then error("negative population") end
        dydt[1] = -y[1]
      end,
      y0 = { 1 }, times = { 0, 1 },
    }
  end, "core.ode: error in rhs (at t = 0.5")
  H.check(calls > 1, "rhs ran before failing")
  H.raises(function()
    core.ode { rhs = function() error("boom", 0) end, y0 = { 1 }, times = { 0, 1 } }
  end, "core.ode: error in rhs (at t = 0): boom")
  H.raises(function()
    core.ode { rhs = function() error({}) end, y0 = { 1 }, times = { 0, 1 } }
  end, "core.ode: error in rhs (at t = 0): (error object is a table value)")
  H.raises(function()
    core.ode { rhs = function(_, _, dydt) dydt[1] = 0 end, y0 = { 1, 2 }, times = { 0, 1 } }
  end, "core.ode: rhs (at t = 0) did not set dydt[2]; it must set dydt[1..2] to numbers")
  H.raises(function()
    core.ode { rhs = function(_, _, dydt) dydt[1] = "1" end, y0 = { 1 }, times = { 0, 1 } }
  end, "core.ode: rhs (at t = 0) set dydt[1] to a string; it must set dydt[1..1] to numbers")
  -- The state is usable afterwards (and a long run of failures leaks nothing
  -- that Lua could not collect; valgrind checks the C side).
  for _ = 1, 200 do
    pcall(core.ode, { rhs = function() error("x") end, y0 = { 1, 2, 3 }, times = { 0, 1, 2 } })
  end
  collectgarbage()
  local rows = core.ode { rhs = function(_, y, dydt) dydt[1] = -y[1] end, y0 = { 1 }, times = { 0, 1 } }
  H.near(rows[2][1], math.exp(-1), 1e-7, "after errors")
end)

H.test("a failing solve returns nil and a message", function()
  local rows, msg = core.ode { rhs = "sir", params = SIR_P, y0 = { 1e6 - 1, 1, 0 }, times = { 0, 160 },
                               max_steps = 5 }
  H.check(rows == nil, "nil rows")
  H.check(tostring(msg):find("core.ode: max_steps = 5 steps reached at t = ", 1, true), "message: " .. tostring(msg))
  -- dy/dt = y^2 from y(0) = 1 blows up at t = 1.
  rows, msg = core.ode { rhs = function(_, y, dydt) dydt[1] = y[1] * y[1] end, y0 = { 1 }, times = { 0, 0.5, 2 } }
  H.check(rows == nil, "nil rows past the blow-up")
  H.check(type(msg) == "string" and msg:find("core.ode: ", 1, true) == 1, "message: " .. tostring(msg))
  rows, msg = core.ode { rhs = function(_, _, dydt) dydt[1] = 0 / 0 end, y0 = { 1 }, times = { 0, 1 } }
  H.check(rows == nil and tostring(msg):find("non-finite", 1, true), "NaN derivative: " .. tostring(msg))
end)

H.test("bad options raise", function()
  local f = function(_, y, dydt) dydt[1] = -y[1] end
  H.raises(function() core.ode { rhs = f, y0 = { 1 }, times = { 0, 1 }, tol = 1 } end,
           "core.ode: unknown option 'tol' (accepted: atol, h0, max_steps, method, params, rhs, rtol, t0, times, y0)")
  H.raises(function() core.ode { rhs = f, y0 = { 1 }, times = { 0, 1 }, method = "euler" } end,
           "core.ode: unknown method \"euler\"")
  H.raises(function() core.ode { rhs = f, y0 = {}, times = { 0, 1 } } end, "option 'y0' must be a non-empty list")
  H.raises(function() core.ode { rhs = f, y0 = { 1 }, times = { 0, 2, 1 } } end, "times must be strictly increasing")
  H.raises(function() core.ode { rhs = f, y0 = { 1 }, times = { 0, 1 }, t0 = 0.5 } end, "t0 = 0.5 must be")
  H.raises(function() core.ode { rhs = "sir", y0 = { 1, 2, 3 }, times = { 0, 1 } } end,
           "rhs \"sir\" needs params = {beta, gamma, N}")
  H.raises(function() core.ode { rhs = "sir", params = { 1, 2 }, y0 = { 1, 2, 3 }, times = { 0, 1 } } end,
           "(3 numbers), got 2")
  H.raises(function() core.ode { rhs = "lotka_volterra", params = { 1, 2, 3, 4 }, y0 = { 1 }, times = { 0, 1 } } end,
           "rhs \"lotka_volterra\" has 2 state variables, but y0 has 1")
  H.raises(function() core.ode { rhs = "seir", y0 = { 1 }, times = { 0, 1 } } end, "unknown rhs \"seir\"")
  H.raises(function() core.ode { rhs = f, y0 = { 1 }, times = { 0, 1 }, max_steps = 0 } end,
           "max_steps must be a positive integer")
end)

H.done()
