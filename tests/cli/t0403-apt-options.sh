#!/bin/bash
# core.flow_train's atomic loss (atoms, prior), the nested validation split
# (nested_split) and the warm starts (init) of
# core.flow_train, flow_train_each and classifier_train from Lua: they run,
# flow_train_each gives what flow_train does, and bad uses fail with
# messages that name the option. The statistics are tests/engine/test_apt.c's.
. "$(dirname "$0")/lib.sh"

cat > apt.lua <<'EOF2'
local sbi = require "sbi"
local core = sbi.core
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local n, r = 600, core.rng(4)
local theta, x = core.mat(n, 1), core.mat(n, 1)
for i = 1, n do
  local t = 1 + 0.4 * r:normal()
  theta:set(i, 1, t)
  x:set(i, 1, t + 0.5 * r:normal())
end
local function spec(extra)
  local s = { y = theta, context = x, kind = "maf", transforms = 2, hidden = 8, layers = 1, activation = "tanh",
    seed = 1, batch_size = 50, learning_rate = 1e-3, validation_fraction = 0.1, patience = 5, max_epochs = 5,
    clip = 5, label = "apt" }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end
local function fails(f, s, msg)
  local ok, err = pcall(f, s)
  if ok or not tostring(err):find(msg, 1, true) then
    error(("expected an error with %q, got %s"):format(msg, tostring(err)), 2)
  end
end

local plain, prep = core.flow_train(spec())
local apt, arep = core.flow_train(spec { atoms = 10, prior = prior.c })
assert(apt ~= plain and arep.epochs >= 1)
-- the atomic loss is log(K) at worst for an uninformative model: 0 < loss < log 10
assert(arep.best_val_loss > 0 and arep.best_val_loss < math.log(10))
local warm, wrep = core.flow_train(spec { init = plain, atoms = 10, prior = prior.c })
assert(type(warm) == "string" and wrep.epochs >= 1)
local each = core.flow_train_each { spec { atoms = 10, prior = prior.c }, spec { init = plain } }
assert(each[1].model == apt)
assert(each[2].model == core.flow_train(spec { init = plain }))
-- the seed is not part of the configuration a warm start checks (it draws the split and batches)
local cont = core.flow_train(spec { init = plain, seed = 7, max_epochs = 1 })
assert(cont == core.flow_train(spec { init = plain, seed = 7, max_epochs = 1 }))
print(("plain best %.4f, apt best %.4f, warm apt first epoch %.4f"):format(prep.best_val_loss, arep.best_val_loss,
  wrep.losses:get(1, 2)))

fails(core.flow_train, spec { atoms = 10 }, "option 'prior' (the .c of the sbi.prior of y) is required with 'atoms'")
fails(core.flow_train, spec { atoms = 1, prior = prior.c }, "option 'atoms' must be in 2..1024, got 1")
fails(core.flow_train, spec { atoms = 2.5, prior = prior.c }, "option 'atoms' must be an integer")
fails(core.flow_train, spec { atoms = 10, prior = prior }, "option 'prior' must be the C prior (the .c of an sbi.prior), got a table")
fails(core.flow_train, spec { atoms = 10, prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }.c },
  "option 'prior' has dimension 2 but y has 1 columns")
local unconditional = spec { atoms = 10, prior = prior.c }
unconditional.context = nil
fails(core.flow_train, unconditional, "option 'atoms' needs a context")
local outside = sbi.prior.uniform { low = { -10 }, high = { 1 } }
fails(core.flow_train, spec { atoms = 10, prior = outside.c }, "atoms: row ")
fails(core.flow_train, spec { atoms = 10, prior = outside.c }, "of y has log prior density -inf")
fails(core.flow_train_each, { spec { atoms = 10 } }, "option 'prior' (the .c of the sbi.prior of y) is required")
fails(core.flow_train, spec { init = 5 }, "option 'init' must be a model string (as a training call returns), got number")
fails(core.flow_train, spec { init = "junk" }, "option 'init': flow model checksum mismatch")
fails(core.flow_train, spec { hidden = 16, init = plain }, "init: the initial model's hidden is 8, the fit's 16")
fails(core.flow_train, spec { kind = "nsf", bins = 4, bound = 3, init = plain },
  "init: the initial model is a maf, the fit's kind is nsf")
fails(core.flow_train_each, { spec { transforms = 3, init = plain } },
  "init: the initial model's transforms is 2, the fit's 3")

local c = { theta = theta, x = x, hidden = 8, layers = 1, residual = false, activation = "tanh", atoms = 5, seed = 1,
  batch_size = 50, learning_rate = 1e-3, validation_fraction = 0.1, patience = 5, max_epochs = 5, clip = 5,
  label = "nre" }
local clsf = core.classifier_train(c)
c.init = clsf
local cwarm = core.classifier_train(c)
assert(type(cwarm) == "string" and cwarm ~= clsf)
fails(core.flow_train, spec { init = clsf }, "option 'init': not a flow model")
c.init = plain
fails(core.classifier_train, c, "option 'init': not a version 1 classifier model")
c.init, c.layers = clsf, 2
fails(core.classifier_train, c, "init: the initial model's layers is 1, the fit's 2")

-- nested_split (sequential rounds' validation rows): false is the default
-- split, true another one; a non-boolean names the option.
assert(core.flow_train(spec { nested_split = false }) == plain)
local nested = core.flow_train(spec { nested_split = true, atoms = 10, prior = prior.c })
assert(type(nested) == "string" and nested ~= apt)
fails(core.flow_train, spec { nested_split = 1 }, "option 'nested_split' must be a boolean, got number")
print("ok")
EOF2

# sbi.snpe's nested_validation takes a boolean.
cat > bad.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
sbi.output { p = sbi.snpe { prior = prior, observation = sbi.observation { 0 }, rounds = 2, simulations = 100,
  nested_validation = "yes", simulator = function(theta, rng) return { theta[1] + rng:normal() } end } }
EOF2
run bad.lua --quiet
expect_fail
expect_err "nested_validation"

run lua apt.lua
expect_ok
grep -q '^ok$' "$OUT" || fail "apt.lua did not finish: $(cat "$ERR")"
finish
