#!/bin/bash
# The embedding option (docs/neural.md#learned-embeddings): bad values fail
# with messages naming it; NLE and SNLE refuse it, saying why; defaults
# written out do not retrain; core.flow_train and core.classifier_train
# write the embedding's model versions (3 and 2) only when there is one;
# SNPE trains an embedding through its rounds (the atomic loss); the
# sbibm recipes' --set embedding.
. "$(dirname "$0")/lib.sh"

cat > m.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local function simulator(theta, rng)
  local x = { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() }
  for j = 3, 6 do x[j] = rng:normal() end
  return x
end
local sims = sbi.simulate { prior = prior, n = 1000, seed = 3, simulator = simulator }
local obs = sbi.observation { 1.0, -0.5, 0.3, -0.2, 0.1, 0.6 }
local case = sbi.param("case", "true")
local emb = ({
  ["true"] = true,
  explicit = { hidden = { 64, 64 }, out = 20, activation = "relu" },
  width = { hidden = 64, layers = 2 },
  zero = { out = 0 },
  unknown = { outputs = 4 },
  layers_list = { hidden = { 8, 8 }, layers = 2 },
  number = 5,
  badwidth = { hidden = { 8, 0 } },
})[case]
local method = sbi.param("method", "npe")
local common = { sims = sims, observation = obs, num_samples = 500, embedding = emb, max_epochs = 3,
                 density = method ~= "nre" and "maf" or nil }
local post
if method == "npe" then post = sbi.npe(common)
elseif method == "nre" then post = sbi.nre(common)
elseif method == "nle" then post = sbi.nle(common)
elseif method == "snle" then
  post = sbi.snle { prior = prior, simulator = simulator, observation = obs, rounds = 2, simulations = 400,
                    embedding = emb }
else
  post = sbi.snpe { prior = prior, simulator = simulator, observation = obs, rounds = 2, simulations = 3000,
                    embedding = { hidden = { 32 }, out = 4 }, num_samples = 2000 }
end
sbi.output { posterior_samples = post }
EOF2

# Refusals that name the option.
for m in nle snle; do
	run m.lua --set method=$m
	expect_fail
	expect_err "sbi.$m: 'embedding' is not available for likelihood estimation"
	expect_err "summary = ..."
done
run m.lua --set case=zero
expect_fail
expect_err "sbi.npe embedding: option 'out' must be an integer from 1 to 4096, got 0"
run m.lua --set case=unknown
expect_fail
expect_err "sbi.npe embedding: unknown option 'outputs'"
run m.lua --set case=layers_list
expect_fail
expect_err "'layers' goes with a single width"
run m.lua --set case=number
expect_fail
expect_err "sbi.npe: option 'embedding' must be true or a table"
run m.lua --set case=badwidth --set method=nre
expect_fail
expect_err "sbi.nre embedding: option 'hidden' must be"

# Defaults written out, or as one width and a layer count, are the same
# training step.
run m.lua --quiet
expect_ok
for c in explicit width; do
	run m.lua --set case=$c --out o-$c --quiet
	expect_ok
	expect_eq "$(key_of o-$c/run.json npe.train)" "$(key_of sbirun-out/m/run.json npe.train)" \
		"npe.train's key with embedding case $c"
	expect_eq "$(ran_nodes o-$c/run.json)" 0 "nodes run with embedding case $c"
done

# The primitives: model versions, dims, and a context is required.
cat > core.lua <<'EOF2'
local sbi = require "sbi"
local core = sbi.core
local n, r = 300, core.rng(4)
local theta, x = core.mat(n, 2), core.mat(n, 6)
for i = 1, n do
  for j = 1, 2 do theta:set(i, j, r:normal()) end
  for j = 1, 6 do x:set(i, j, (j <= 2 and theta:get(i, j) or 0) + 0.5 * r:normal()) end
end
local emb = { hidden = { 8 }, out = 3, activation = "tanh" }
local function spec(extra)
  local s = { y = theta, context = x, kind = "maf", transforms = 2, hidden = 8, layers = 1, activation = "tanh",
    seed = 1, batch_size = 50, learning_rate = 1e-3, validation_fraction = 0.1, patience = 5, max_epochs = 3,
    clip = 5, label = "e" }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end
local plain = core.flow_train(spec())
local with = core.flow_train(spec { embedding = emb })
local f = core.flow_load(with)
local dy, dc = f:dims()
local cspec = { theta = theta, x = x, hidden = 8, layers = 1, residual = true, activation = "relu", atoms = 0,
  batch_size = 50, learning_rate = 1e-3, validation_fraction = 0.1, patience = 5, max_epochs = 3, clip = 5,
  seed = 1, label = "c" }
local cplain = core.classifier_train(cspec)
cspec.embedding = emb
local cwith = core.classifier_train(cspec)
local c = core.classifier_load(cwith)
local lr = c:log_ratio(theta, x:row(1))
local noctx = spec { embedding = emb }
noctx.context = nil
local ok, err = pcall(core.flow_train, noctx)
core.stdout(string.format("versions %d %d %d %d dims %d %d ratio %s noctx %s\n", plain:byte(9), with:byte(9),
  cplain:byte(9), cwith:byte(9), dy, dc, tostring(lr:get(1, 1) == lr:get(1, 1)), tostring(not ok and err)))
sbi.output { none = sbi.observation { 0 } }
EOF2
run core.lua
expect_ok
expect_out "versions 2 3 1 2 dims 2 6 ratio true"
expect_out "option 'embedding' needs a context"

# SNPE: round 1's atomic loss trains the embedding too; 2 rounds of 1500
# simulations reach the analytic posterior (mean (0.8, -0.4), sd 0.447)
# within tolerances twice NPE's at 5000 (t0175), for the smaller budget.
run m.lua --set method=snpe --out o-snpe --quiet
expect_ok
read -r m1 s1 <<<"$(col_stats o-snpe/posterior_samples.csv 1)"
read -r m2 s2 <<<"$(col_stats o-snpe/posterior_samples.csv 2)"
within "$m1" 0.8 0.3 "snpe+embedding mean 1"
within "$m2" -0.4 0.3 "snpe+embedding mean 2"
within "$s1" 0.4472 0.15 "snpe+embedding sd 1"
within "$s2" 0.4472 0.15 "snpe+embedding sd 2"

# The sbibm recipes: a bad --set embedding, and NLE's refusal through them.
run "$SRCDIR/recipes/sbibm/two_moons.lua" --set method=npe --set embedding=big
expect_fail
expect_err "--set embedding=big: expected none, mlp, a number of features K"
run "$SRCDIR/recipes/sbibm/two_moons.lua" --set method=nle --set embedding=mlp
expect_fail
expect_err "'embedding' is not available for likelihood estimation"
finish
