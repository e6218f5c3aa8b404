#!/bin/bash
# stdlib/sbi/summary_nn.lua, the learned compressors that sbi.summary
# wraps in nodes, and the inputs checks of core.mlp_train and friends.
#
# Regression summaries (Fearnhead and Prangle): x holds theta mixed
# linearly with noise of sd 0.05 and three pure-noise columns, so E[theta |
# x] is theta within about 0.05 (the prior is uniform on [-1, 1]^2: sd
# 0.58); both the linear and the MLP regression's predictions of held-out
# rows must be within an RMSE of 0.1 (a fit that ignored x would be at
# 0.58). An autoencoder with a 2-unit code of x2, five smooth functions of
# theta plus noise of sd 0.05, must reconstruct it with a mean squared
# error below 5% of its variance (noise alone is about 1%; PCA with two
# components leaves the curvature of sin(2a), ab and b^2 out). Pure-noise
# columns would defeat it, as any variance-based compressor: the
# reconstruction loss weighs every z-scored column alike.
. "$(dirname "$0")/lib.sh"

cat > nn.lua <<'EOF2'
local core = require "sbi.core"
local nn = require "sbi.summary_nn"
local n, nt = 4000, 500
local r = core.rng(5)
local theta, x, x2 = core.mat(n + nt, 2), core.mat(n + nt, 5), core.mat(n + nt, 5)
for i = 1, n + nt do
  local a, b = r:uniform(-1, 1), r:uniform(-1, 1)
  theta:set_row(i, { a, b })
  x:set_row(i, { a + b + 0.05 * r:normal(), a - b + 0.05 * r:normal(), r:normal(), r:normal(), r:normal() })
  local e = {}
  for j = 1, 5 do e[j] = 0.05 * r:normal() end
  x2:set_row(i, { a + b + e[1], math.sin(2 * a) + e[2], a * b + e[3], b * b + e[4], a - 0.5 * b + e[5] })
end
local rows = {}
for i = 1, n do rows[i] = i end
local train_t, train_x = theta:select_rows(rows), x:select_rows(rows)
local test = {}
for i = 1, nt do test[i] = n + i end
local test_t, test_x = theta:select_rows(test), x:select_rows(test)
local train_x2, test_x2 = x2:select_rows(rows), x2:select_rows(test)
local function rmse(s, t)
  local ss = 0
  for i = 1, t:rows() do
    for j = 1, t:cols() do ss = ss + (s:get(i, j) - t:get(i, j)) ^ 2 end
  end
  return math.sqrt(ss / (t:rows() * t:cols()))
end
-- Keys: defaults filled; a linear regression keeps no training options.
local k = nn.key("regression", {})
assert(k.model == "mlp" and k.hidden[1] == 64 and k.learning_rate == 1e-3 and k.patience == 20)
assert(next(nn.key("regression", { model = "linear", hidden = { 8 } }), nil) == "model")
for _, model in ipairs { "linear", "mlp" } do
  local key = nn.key("regression", { model = model, hidden = { 32, 32 }, max_epochs = 300 })
  local art = nn.regression_fit(train_t, train_x, key, 1, "regression " .. model)
  assert(art.compressor == "regression" and art.form == model)
  local s = nn.apply(art, test_x)
  assert(s:rows() == nt and s:cols() == 2)
  print(string.format("%s %.4f", model, rmse(s, test_t)))
  if model == "mlp" then
    local again = nn.regression_fit(train_t, train_x, key, 1, "again")
    assert(again.model == art.model, "same seed, same model")
  end
end
local key = nn.key("autoencoder", { latent = 2, hidden = { 32 }, max_epochs = 300 })
local art = nn.autoencoder_fit(train_x2, key, 1, "autoencoder")
assert(art.compressor == "autoencoder" and art.latent == 2)
local z = nn.apply(art, test_x2)
assert(z:rows() == nt and z:cols() == 2)
local net = core.mlp_load(art.model)
local rec = net:decode(z)
local ss, var, s = 0, 0, core.summary(test_x2)
for i = 1, nt do
  for j = 1, 5 do
    ss = ss + (rec:get(i, j) - test_x2:get(i, j)) ^ 2
    var = var + (test_x2:get(i, j) - s[j].mean) ^ 2
  end
end
print(string.format("autoencoder %.4f", ss / var))
-- Errors.
local ok, err = pcall(nn.apply, art, test_t)
assert(not ok and err:find("the autoencoder compressor takes 5 values per row, got 2", 1, true), err)
ok, err = pcall(nn.autoencoder_fit, train_x, nn.key("autoencoder", { latent = 5 }), 1, "ae")
assert(not ok and err:find("latent = 5 is not fewer than the 5 columns", 1, true), err)
ok, err = pcall(nn.autoencoder_fit, train_x, nn.key("autoencoder", {}), 1, "ae")
assert(not ok and err:find("'latent' (the number of summaries) is required", 1, true), err)
ok, err = pcall(nn.regression_fit, test_t, train_x, k, 1, "reg")
assert(not ok and err:find("theta has 500 rows but x has 4000", 1, true), err)
print("ok")
EOF2
run lua nn.lua
expect_ok
expect_out "ok"
read -r _ lin < <(grep '^linear ' "$OUT")
read -r _ mlp < <(grep '^mlp ' "$OUT")
read -r _ ae < <(grep '^autoencoder ' "$OUT")
in_range "$lin" 0 0.1 "linear regression summaries: held-out RMSE"
in_range "$mlp" 0 0.1 "MLP regression summaries: held-out RMSE"
in_range "$ae" 0 0.05 "autoencoder: reconstruction error relative to the variance"

# The engine's checks, through core.*: clear errors naming the option.
cat > bad.lua <<'EOF2'
local core = require "sbi.core"
local x, y = core.mat(10, 2), core.mat(10, 1)
for i = 1, 10 do x:set_row(i, { i, i * i }); y:set(i, 1, i) end
local function spec(t)
  local s = { x = x, y = y, hidden = { 4 }, activation = "tanh", seed = 1, batch_size = 4, max_epochs = 2,
              patience = 1, learning_rate = 1e-3, validation_fraction = 0.2, clip = 5, label = "t" }
  for k, v in pairs(t) do s[k] = v end
  return s
end
local function expect(f, arg, msg)
  local ok, err = pcall(f, arg)
  assert(not ok, "expected an error: " .. msg)
  assert(tostring(err):find(msg, 1, true), string.format("expected '%s', got '%s'", msg, tostring(err)))
end
local nan = core.mat(10, 2)
for i = 1, 10 do nan:set_row(i, { i, i }) end
nan:set(3, 2, 0 / 0)
expect(core.mlp_train, spec { x = nan }, "x: row 3, column 2 is")
expect(core.mlp_train, spec { y = core.mat(9, 1) }, "x has 10 rows but y has 9")
expect(core.mlp_train, spec { hidden = { 4, 0 } }, "option 'hidden': element 2 must be an integer")
expect(core.mlp_train, spec { hidden = 4 }, "option 'hidden' must be a list of layer widths")
expect(core.mlp_train, spec { y = "no" }, "option 'y' must be a sbi.Mat, got string")
expect(core.mlp_train, spec { activation = "sigmoid" }, "unknown activation 'sigmoid'")
expect(core.mlp_train, spec { x = core.mat(1, 2), y = core.mat(1, 1) }, "option 'x' has 1 rows")
expect(core.autoencoder_train, spec { y = nil }, "option 'latent' is required")
expect(core.linear_train, { x = x, y = nan }, "y: row 3, column 2 is")
expect(core.linear_train, { x = core.mat(2, 2), y = core.mat(2, 1) }, "needs more rows than columns")
expect(core.mlp_load, "not a model", "cannot load the trained model")
local net = core.mlp_load(core.linear_train { x = x, y = y })
expect(function() return net:gauss_loglik({ 1, 2 }, { 1 }, core.mat(2, 2)) end, nil, "W is 2 x 2, the network has 1 outputs")
expect(function() return net:apply(y) end, nil, "apply: the matrix has 1 columns, the network takes 2")
assert(math.abs(net:gauss_loglik({ 3, 9 }, { 4 }, core.mat { { 2 } }) - (-0.5 * 4)) < 1e-4)
local ll = net:gauss_loglik(core.mat { { 3, 9 }, { 4, 16 } }, { 4 }, core.mat { { 1 } })
assert(ll:rows() == 2 and math.abs(ll:get(2, 1)) < 1e-8 and math.abs(ll:get(1, 1) + 0.5) < 1e-4)
print("ok")
EOF2
run lua bad.lua
expect_ok
expect_out "ok"
finish
