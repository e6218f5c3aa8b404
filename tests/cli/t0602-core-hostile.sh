#!/bin/bash
# sbi.core under a hostile caller. Recipes from strangers run in the
# sandbox, and what they reach in C (every sbi.core function and the methods
# of Mat, Rng, Prior, Flow and Classifier) is part of its boundary: a
# memory-safety bug there is an escape. hostile_core.lua calls each of them
# inside pcall with wrong types, NaN and infinities, huge and negative
# integers, lying __len, metamethods that raise, yield or release the
# matrix being read, recursive tables, released and wrong userdata, damaged
# model blobs, re-entrant and failing callbacks, and finalizers that call
# sbi.core when the state closes. Each call must return or raise a Lua
# error: the run must finish with no crash and, in the sanitizer build
# (where this test bites), no AddressSanitizer, UndefinedBehaviorSanitizer
# or LeakSanitizer report. Deterministic: arguments come from core.rng(seed).
. "$(dirname "$0")/lib.sh"

# A request that cannot be met returns NULL from malloc, as without the
# sanitizer (its default is to abort on e.g. an 8e18-byte calloc).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"

sanitizer_clean() { # sanitizer_clean FILE: no sanitizer report in FILE
	if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$1"; then
		fail "sanitizer report: $(grep -m1 -A6 -E "AddressSanitizer|LeakSanitizer|runtime error:" "$1")"
	fi
}

# ---- 1. every function and method, hostile arguments ----
cp "$SRCDIR/tests/cli/hostile_core.lua" hostile.lua
run hostile.lua --quiet
expect_ok
sanitizer_clean "$ERR"
n=$(sed -n 's/^hostile: \([0-9]*\) calls.*/\1/p' "$ERR")
[ "${n:-0}" -ge 3000 ] || fail "the hostile caller made only ${n:-0} calls (it must reach the end of its step)"
# Again with forked simulation workers (core.simulate inside the step).
run hostile.lua --quiet --jobs 2 --cache c2
expect_ok
sanitizer_clean "$ERR"
expect_err "hostile: $n calls"

# ---- 2. released values: an error naming the argument, not freed memory ----
cat > released.lua <<'LUA'
local sbi = require "sbi"
local core = require "sbi.core"
local function released_mat() local m <close> = core.mat(2, 2); return m end
local function released_rng() local r <close> = core.rng(3); return r end
local m, r = released_mat(), released_rng()
local checks = {
  { function() return m:get(1, 1) end, "matrix has been released" },
  { function() return core.summary(m) end, "bad argument #1 to 'summary' (matrix has been released)" },
  { function() return core.vstack { core.mat(1, 2), m } end, "matrix has been released" },
  { function() return r:normal() end, "released random stream" },
  { function() return core.prior("normal", { mean = { 0 }, std = { 1 } }):sample(r) end,
    "to 'sample' (released random stream)" },
  -- values read from tables are named by their option or position
  { function() return core.mcmc { prior = core.mat(1, 1) } end, "option 'prior' must be a sbi.Prior, got sbi.Mat" },
  { function() return core.flow_train { y = 5 } end, "option 'y' must be a sbi.Mat, got number" },
  { function() return core.vstack { core.mat(1, 1), core.rng(1) } end, "element 2 must be a sbi.Mat, got sbi.Rng" },
  { function() return core.mat(1, 2):set_row(1, { 1, "x" }) end, "element 2 must be a number, got string" },
  { function() return core.mcmc { prior = core.prior("uniform", { low = { 0 }, high = { 1 } }),
      loglik = function() error({}) end, num_samples = 2, chains = 1, warmup = 0, candidates = 2, kind = "slice",
      thin = 1, seed = 1 } end,
    "the log-likelihood raised: released.lua:19: (error object is a table value)" },
}
for i, c in ipairs(checks) do
  local ok, e = pcall(c[1])
  assert(not ok and tostring(e):find(c[2], 1, true), "check " .. i .. ": " .. tostring(e))
end
assert(tostring(m) == "sbi.Mat (released)")
-- Every userdata type closes (<close>: unusable, freed by __gc) and prints.
local y = core.mat(20, 1)
for i = 1, 20 do y:set(i, 1, i % 7) end
local t = { y = y, theta = y, x = y, kind = "maf", transforms = 1, hidden = 2, layers = 1, activation = "tanh",
  residual = true, seed = 1, batch_size = 5, learning_rate = 5e-4, validation_fraction = 0.2,
  patience = 1, max_epochs = 1, clip = 5, label = "t" }
local flow = core.flow_load(core.flow_train(t))
t.atoms = 2 -- the classifier's (a flow's would ask for the atomic loss)
local clsf = core.classifier_load(core.classifier_train(t))
local live = core.prior("normal", { mean = { 0 }, std = { 1 } })
assert(tostring(r) == "sbi.Rng (released)" and tostring(core.rng(1)) == "sbi.Rng")
assert(tostring(live) == "sbi.Prior(dim 1)", tostring(live))
assert(tostring(flow) == "sbi.Flow(maf, dim 1, context 0)", tostring(flow))
assert(tostring(clsf) == "sbi.Classifier(theta 1, x 1)", tostring(clsf))
local function closed(v) do local c <close> = v end return v end
local p = closed(core.prior("normal", { mean = { 0 }, std = { 1 } }))
closed(flow)
closed(clsf)
assert(tostring(p) == "sbi.Prior (released)" and tostring(flow) == "sbi.Flow (released)"
  and tostring(clsf) == "sbi.Classifier (released)")
local later = {
  { function() return p:dim() end, "calling 'dim' on bad self (released prior)" },
  { function() return flow:dims() end, "calling 'dims' on bad self (released flow)" },
  { function() return clsf:dims() end, "calling 'dims' on bad self (released classifier)" },
  -- arguments and options are named by their real position or name
  { function() return core.write_samples(".", "never", core.mat(1, 1), { 5 }) end,
    "bad argument #4 to 'write_samples' (element 1 must be a string, got number)" },
  { function() return core.flow_train_each { 5 } end,
    "bad argument #1 to 'flow_train_each' (element 1 must be a table, got number)" },
  { function() return core.prior("joint", { blocks = { 5 } }) end, "prior.joint: block 1 must be a table, got number" },
  { function() return core.prior("joint", { blocks = { { kind = 1 } } }) end,
    "block 1 needs a string 'kind' and a table 'params', got number and nil" },
  { function() t.hidden = "x"; return core.flow_train(t) end, "option 'hidden' must be an integer, got string" },
  { function() t.hidden = nil; return core.classifier_train(t) end, "option 'hidden' is required" },
  { function() return core.mcmc { prior = live, loglik = function() return 0 end } end, "option 'kind' is required" },
}
for i, c in ipairs(later) do
  local ok, e = pcall(c[1])
  assert(not ok and tostring(e):find(c[2], 1, true), "later check " .. i .. ": " .. tostring(e))
end
-- select_rows reads its indices once: an __index that raises on a second
-- pass is never reached (it was, with the result allocated: a leak).
local reads = 0
local idx = setmetatable({}, { __len = function() return 2 end,
  __index = function() reads = reads + 1; if reads > 2 then error("second pass") end return 1 end })
local picked = core.mat(2, 2, 3):select_rows(idx)
assert(picked:rows() == 2 and picked:get(2, 2) == 3 and reads == 2)
-- A matrix closed by a metamethod while a method reads it: the method ends
-- on memory still owned by the Mat, and the Mat is released afterwards.
local v = core.mat(1, 3)
local t = setmetatable({}, { __newindex = function(t, k, x) do local c <close> = v end rawset(t, k, x) end })
v:row(1, t)
assert(not pcall(v.get, v, 1, 1))
print("released ok")
sbi.output { s = sbi.abc.rejection { sims = sbi.simulate { prior = sbi.prior.uniform { low = { 0 }, high = { 1 } },
  n = 10, seed = 1, simulator = function(th) return { th[1] } end }, observation = sbi.observation { 0.5 },
  quantile = 0.5 } }
LUA
run released.lua --quiet
expect_ok
expect_out "released ok"
sanitizer_clean "$ERR"

# ---- 3. a step's result that cannot be stored ----
# The matrices it holds stay usable (and are freed once) after the error.
cat > art.lua <<'LUA'
local sbi = require "sbi"
local core = require "sbi.core"
local graph = require "sbi.graph"
local kept = {}
for i = 1, 8 do kept[i] = core.mat(2, 2, i) end
KEEP = setmetatable({}, { __gc = function()
  local s = 0
  for i = 1, 8 do s = s + kept[i]:get(2, 2) end
  core.stdout("sum " .. s .. "\n")
end })
local node = graph.node("bad", "art.lua:1", { v = 1 }, {}, function()
  local r = { names = setmetatable({}, { __len = function() return 3 end,
    __index = function(_, k) return string.rep("n", 50) .. k end }) }
  for i = 1, 8 do r["m" .. i] = kept[i] end
  r.bad = function() end
  return r
end)
sbi.output { s = node }
LUA
run art.lua --quiet
expect_fail 1
expect_err "artifacts hold matrices"
expect_out "sum 36"
sanitizer_clean "$ERR"

# ---- 4. the engine's bounds on sizes, checked where the recipe sets them ----
cat > big.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 100, seed = 1, simulator = function(t, rng) return { t[1] } end }
sbi.output { s = sbi.nle { sims = sims, observation = sbi.observation { 0.5 }, chains = 1 << 20 } }
LUA
run big.lua --quiet
expect_fail 1
expect_err "an integer from 1 to 65536"

finish
