#!/bin/bash
# The recipe sandbox is a security boundary (bundles from strangers run in
# it): no path from a recipe, a module beside it or a bundled recipe reaches
# io, os.execute, debug, package, load, string.dump, a shared library table
# or a userdata's __gc. Nondeterministic functions are refused where they
# would escape the cache key (docs/recipes.md#the-sandbox).
. "$(dirname "$0")/lib.sh"

# refused FILE TEXT < LUA: the recipe LUA, written to FILE, fails (exit 1)
# with TEXT on stderr.
refused() {
	cat > "$1"
	run "$1" --quiet
	expect_fail 1
	expect_err "$2"
}

# ---- 1. require of an unsafe module: refused by name, with the line ----
for m in os io debug package _G; do
	cat > req.lua <<LUA
local sbi = require "sbi"
local lib = require "$m"
print("ESCAPED", lib)
LUA
	run req.lua --quiet
	expect_fail 1
	expect_err "req.lua:2: module '$m' not found"
	expect_err "module '$m' is not available in a recipe"
	grep -q ESCAPED "$OUT" && fail "require '$m' returned a module"
done

# ---- 2. a walk over everything reachable from a recipe ----
# Starting from _ENV (and its __index), every stdlib module, sbi.core, the
# nodes and priors a recipe makes, the string metatable and the metatables
# of every userdata type, it follows tables, metatables and the values of
# calls that return tables, and fails on any function or table that looks
# like io, os.execute, debug, package, load or string.dump.
mkdir -p mods
cat > mods/helper.lua <<'LUA'
local M = {}
M.io, M.os_execute, M.debug, M.package, M.load = io, os.execute, debug, package, load
M.require_os = pcall(require, "os")
return M
LUA
cat > walk.lua <<'LUA'
local sbi = require "sbi"
local core = require "sbi.core"
-- Names only the unsafe libraries have.
local bad_keys = { popen = "io", stdin = "io", execute = "os", exit = "os", tmpname = "os",
  getupvalue = "debug", sethook = "debug", getregistry = "debug", upvalueid = "debug",
  loadlib = "package", searchers = "package", searchpath = "package",
  load = "load", loadfile = "load", dofile = "load", dump = "string.dump", collectgarbage = "collectgarbage" }
local seen, found, n = {}, {}, 0
local function walk(v, path, depth)
  if depth > 12 then return end
  local t = type(v)
  if (t ~= "table" and t ~= "userdata" and t ~= "function") or seen[v] then return end
  seen[v] = true
  n = n + 1
  if t == "function" then return end
  local mt = getmetatable(v)
  if mt ~= nil and mt ~= false then walk(mt, path .. "<mt>", depth + 1) end
  if t ~= "table" then return end
  for k, x in pairs(v) do
    if type(k) == "string" and bad_keys[k] and x ~= nil and x ~= false then
      found[#found + 1] = path .. "." .. k .. " (" .. bad_keys[k] .. ")"
    end
    walk(x, path .. "." .. tostring(k), depth + 1)
  end
end
local roots = { _ENV = _ENV, env_mt = getmetatable(_ENV), sbi = sbi, core = core, string_mt = getmetatable(""),
  helper = require "helper" }
for _, m in ipairs { "sbi.check", "sbi.graph", "sbi.prior", "sbi.simulate", "sbi.observation", "sbi.abc",
                     "sbi.neural", "sbi.report" } do roots[m] = require(m) end
for _, m in ipairs { "string", "math", "table", "utf8", "coroutine" } do roots["require " .. m] = require(m) end
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sims = sbi.simulate { prior = prior, n = 10, seed = 1, simulator = function(t, rng) return { t[1] } end }
roots.prior, roots.sims, roots.mat, roots.rng = prior, sims, core.mat(1, 1), core.rng(1)
roots.thread = coroutine.create(function() end)
local co = coroutine.wrap(function() coroutine.yield(_ENV, getmetatable("")) end)
roots.from_coroutine = { co() }
for k, v in pairs(roots) do walk(v, k, 0) end
-- Userdata metatables are locked: no __gc to call twice.
for _, u in ipairs { roots.mat, roots.rng, prior.c } do
  assert(getmetatable(u) == false, "a userdata metatable is reachable")
end
assert(getmetatable("") == false, "the string metatable is reachable")
assert(("").dump == nil, "string.dump is reachable through a string")
assert(load == nil and loadstring == nil and dofile == nil and loadfile == nil, "load is reachable")
assert(not roots.helper.require_os, "a module beside the recipe required os")
-- Changing the recipe's own libraries changes nothing for the stdlib.
string.format = nil
table.concat = nil
math.floor = nil
print("walked " .. n .. " values")
for _, f in ipairs(found) do print("FOUND " .. f) end
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0 }, quantile = 0.5 } }
LUA
cp mods/helper.lua helper.lua
run walk.lua --quiet
expect_ok
expect_out "walked"
grep -q FOUND "$OUT" && fail "unsafe values reachable from a recipe: $(grep FOUND "$OUT" | head -5 | tr '\n' ' ')"
n=$(sed -n 's/^walked \([0-9]*\) values$/\1/p' "$OUT")
[ "${n:-0}" -ge 200 ] || fail "the walk reached only ${n:-0} values; it should cover the stdlib"

# ---- 3. closing what the engine holds ----
# The simulator's rng is the engine's: closing it is an error, not a
# stream freed under the engine's feet (AddressSanitizer would see the use
# after free); a stream of core.rng closes.
refused close.lua "belongs to the engine" <<'LUA'
local sbi = require "sbi"
local core = require "sbi.core"
do local own <close> = core.rng(1) end
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 20, seed = 1,
  simulator = function(theta, rng) local r <close> = rng; return { theta[1] + r:normal() } end }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.5 } }
LUA

# ---- 4. nondeterminism: refused in simulators and steps, pointing to rng ----
nondet() { # nondet NAME LUA-EXPRESSION: the expression in a simulator is refused
	cat > nd.lua <<LUA
local sbi = require "sbi"
local core = require "sbi.core"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 20, seed = 1,
  simulator = function(theta, rng) local v = $2; return { theta[1] } end }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.5 } }
LUA
	for jobs in 1 2; do
		run nd.lua --quiet --jobs "$jobs" --cache "c$jobs"
		expect_fail 1
		expect_err "$1 is not available in a simulator"
		expect_err "rng argument"
	done
}
nondet os.time "os.time()"
nondet os.clock "os.clock()"
nondet os.date "os.date()"
nondet os.getenv 'os.getenv("HOME")'
nondet sbi.core.clock "core.clock()"
nondet os.time "coroutine.wrap(function() return os.time() end)()"
# Fatal whatever on_failure says (dropping every simulation would hide it),
# also for a batched simulator.
sed -i 's/seed = 1,/seed = 1, on_failure = "drop",/' nd.lua
run nd.lua --quiet
expect_fail 1
expect_err "os.time is not available in a simulator"
grep -q "on_failure" "$ERR" && fail "a sandbox refusal suggests on_failure: $(cat "$ERR")"
# A refusal the simulator catches itself is not fatal later: other
# failures are still dropped as on_failure says.
cat > caught.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 20, seed = 1, on_failure = "drop",
  simulator = function(theta, rng)
    if theta[1] <= 0.5 then pcall(os.time) end -- caught: the call goes on
    if theta[1] > 0.5 then error("too large") end
    return { theta[1] }
  end }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.2 }, quantile = 0.5 } }
LUA
run caught.lua --quiet --jobs 1
expect_ok
refused batch.lua "os.clock is not available in a simulator" <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 20, seed = 1,
  simulator = sbi.simulator { batched = true, dim = 1, fn = function(theta, x, rng)
    for i = 1, theta:rows() do x:set(i, 1, theta:get(i, 1) + os.clock()) end end } }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.5 } }
LUA

# math.random: refused everywhere in a recipe, even in a coroutine.
refused rnd.lua "math.random and math.randomseed are not available in recipes" <<'LUA'
local sbi = require "sbi"
local seed = coroutine.wrap(function() return math.random(1, 100) end)()
LUA
expect_err "sbi.core.rng(seed)"
refused rnd.lua "rnd.lua:1: math.random and math.randomseed are not available" <<'LUA'
math.randomseed(1)
LUA

# While a step runs (an exact likelihood evaluated by the engine's MCMC).
refused lik.lua "os.time is not available while a step runs" <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
sbi.output { s = sbi.likelihood { prior = prior, observation = sbi.observation { 0.5 }, num_samples = 100,
  loglik = function(theta, x) local t = os.time(); return -(x[1] - theta[1]) ^ 2 end } }
LUA

# At load time os.time and os.getenv work (their values enter the keys).
cat > load.lua <<'LUA'
local sbi = require "sbi"
local t = os.time()
assert(type(t) == "number" and os.getenv("HOME") ~= nil and os.difftime(t, t) == 0)
print("LOAD OK")
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 20, seed = t % 2, simulator = function(th, rng) return { th[1] } end }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.5 } }
LUA
run load.lua --quiet
expect_ok
expect_out "LOAD OK"

# ---- 5. a bundled recipe under replay and graph runs in the same sandbox ----
cat > esc.lua <<'LUA'
local sbi = require "sbi"
for _, m in ipairs { "os", "io", "debug", "package" } do
  if pcall(require, m) then print("ESCAPED " .. m) end
end
if getmetatable("") then print("ESCAPED string") end
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 50, seed = 1, simulator = function(t, rng) return { t[1] + rng:normal() } end }
sbi.output { s = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.5 } }
LUA
run esc.lua --quiet
expect_ok
run bundle esc.lua -o esc.tar --compression none
expect_ok
run replay esc.tar --quiet
expect_ok
grep -q ESCAPED "$OUT" && fail "a replayed bundle escaped: $(grep ESCAPED "$OUT" | tr '\n' ' ')"
run unpack esc.tar un
expect_ok
# Restricted, a bundled recipe cannot read this machine's environment.
refused un/env.lua "os.getenv is not available to a recipe from a bundle" <<'LUA'
print("HOME=" .. tostring(os.getenv("HOME")))
LUA
rm un/env.lua
# A restricted recipe writes only into the bundle's own cache: not into one
# that trusted runs read (it could plant results under their keys).
run un/esc.lua --quiet --cache shared-cache
expect_fail 1
expect_err "uses only the bundle's own cache"
[ -e shared-cache ] && fail "a refused restricted run created the cache"
run un/esc.lua --quiet --cache un/.sbirun
expect_ok
run un/esc.lua --quiet --cache shared-cache --trust
expect_ok
# A marker planted in a shared parent folder owned by someone else does not
# adopt a project below it (its recipe would run restricted, on the
# planted cache). Needs root to own files as another user.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	mkdir -p shared/proj
	cp un/.sbirun-bundle* shared/
	cp -r un/.sbirun shared/.sbirun
	chown nobody shared
	cp esc.lua shared/proj/r.lua
	run shared/proj/r.lua
	expect_ok
	grep -q "is an unpacked bundle" "$ERR" && fail "a marker in a folder of another owner adopted the project"
	[ -d shared/proj/.sbirun ] || fail "the project did not use its own cache"
	chown "$(id -u)" shared
	run shared/proj/r.lua
	expect_err "is an unpacked bundle"
fi
run graph un/esc.lua
expect_ok
grep -q ESCAPED "$OUT" && fail "graph on an unpacked bundle escaped"

# ---- 6. the graph's internal functions reach the stdlib only ----
# (their loader hands them to the stdlib's chunks; require returns no
# loader data for a module already loaded, and the node list is C's)
cat > internal.lua <<'LUA'
local sbi = require "sbi"
for _, name in ipairs { "sbi", "sbi.graph", "sbi.core", "sbi.observation", "sbi.report" } do
  local m, extra = require(name)
  if extra ~= nil then print("ESCAPED", name, extra) end
end
local g = require "sbi.graph"
if g.nodes or g.outputs or sbi._nodes or sbi._outputs then print("ESCAPED", "node list") end
sbi.output { x = sbi.observation { 1 } }
LUA
run internal.lua --quiet
expect_ok
grep -q ESCAPED "$OUT" && fail "a recipe reached the graph's internal functions"
finish
