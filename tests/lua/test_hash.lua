-- Cache keys of Lua values: what changes a key and what does not.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local sbi = require "sbi"
local core = sbi.core
local hash = core.hash

H.test("primitives", function()
  H.check(hash(1) == hash(1.0), "1 and 1.0 hash alike")
  H.check(hash(100000) == hash(1e5), "100000 and 1e5 hash alike")
  H.check(hash(0.5) ~= hash(0.25), "different floats differ")
  H.check(hash("1") ~= hash(1), "string vs number")
  H.check(hash(true) ~= hash(1), "boolean vs number")
  H.check(hash(0.1 + 0.2) ~= hash(0.3), "bit patterns count")
end)

H.test("tables are order-independent and deep", function()
  local a = { x = 1, y = { 2, 3 }, z = "s" }
  local b = { z = "s", y = { 2, 3 }, x = 1 }
  H.check(hash(a) == hash(b), "same content, different construction order")
  b.y[2] = 4
  H.check(hash(a) ~= hash(b), "nested change")
  local t = {}
  for i = 1, 1000 do t[i] = i * 0.5 end
  local u = {}
  for i = 1000, 1, -1 do u[i] = i * 0.5 end
  H.check(hash(t) == hash(u), "array built in reverse")
end)

H.test("cycles terminate", function()
  local a = { name = "a" }
  a.self = a
  local b = { name = "a" }
  b.self = b
  H.check(hash(a) == hash(b), "isomorphic cycles")
end)

local function make_sim(scale)
  return function(theta, rng) return { theta[1] * scale + rng:normal() } end
end

H.test("functions: bytecode and upvalues", function()
  H.check(hash(make_sim(2)) == hash(make_sim(2)), "same closure twice")
  H.check(hash(make_sim(2)) ~= hash(make_sim(3)), "upvalue value counts")
  local f1 = load("return function(t) return { t[1] + 1 } end")()
  local f2 = load("\n\n-- a comment\nreturn function(t)\n  return { t[1] + 1 }\nend")()
  local f3 = load("return function(t) return { t[1] + 2 } end")()
  H.check(hash(f1) == hash(f2), "comments and line moves do not count")
  H.check(hash(f1) ~= hash(f3), "a constant counts")
  -- A helper function reached through an upvalue counts too.
  local function helper_a(x) return x * 2 end
  local function helper_b(x) return x * 3 end
  local g1 = function(t) return { helper_a(t[1]) } end
  local g2 = function(t) return { helper_b(t[1]) } end
  H.check(hash(g1) ~= hash(g2), "transitive upvalue function")
end)

H.test("library tables and C functions hash by name", function()
  local cos = math.cos
  local f = function(t) return { cos(t[1]) } end
  local g = function(t) return { math.sin(t[1]) } end
  H.check(type(hash(f)) == "string" and #hash(f) == 64, "hash of a function capturing math.cos")
  H.check(hash(math) == hash(math), "math library")
  H.check(hash(sbi) == hash(sbi), "sbi module")
  H.check(hash(f) ~= hash(g), "different library function")
  H.raises(function() hash(io.stdout) end, "cannot hash")
end)

H.test("priors hash by exact parameters", function()
  local p1 = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 } }
  local p2 = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 } }
  local p3 = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 + 2^-52 } }
  H.check(hash(p1) == hash(p2), "equal priors")
  H.check(hash(p1) ~= hash(p3), "one ulp differs")
end)

H.done()
