-- Learned summary compressors: the fitting and application of the
-- autoencoder and of the regression summaries (Fearnhead and Prangle 2012's
-- semi-automatic ABC), as plain functions over the engine's networks
-- (lang/l_mlp.c, engine/nn/mlp.c). sbi.summary wraps them in graph nodes;
-- this module declares none.
--
--   local key = nn.key("autoencoder", opts)              -- options with defaults, for a node's key
--   local art = nn.autoencoder_fit(sims.x, key, seed, label)  -- the artifact's fields
--   local s = nn.apply(art, x)                           -- n x latent summaries of the rows of x
--   local art = nn.regression_fit(sims.theta, sims.x, key, seed, label)
--   local s = nn.apply(art, x)                           -- n x D predicted parameters
local core = require "sbi.core"
local check = require "sbi.check"

local M = {}

-- A list of layer widths.
local function widths()
  return { test = function(v)
             if type(v) ~= "table" then return false end
             for i = 1, #v do
               if math.type(v[i]) ~= "integer" and not (type(v[i]) == "number" and v[i] == math.floor(v[i])) then
                 return false
               end
               if v[i] < 1 or v[i] > 65536 then return false end
             end
             return true
           end, doc = "a list of layer widths (integers from 1 to 65536), e.g. { 64, 64 }" }
end

-- The network and training options, as check.options rules.
local training_spec = {
  hidden = { widths() },
  activation = { check.one_of("tanh", "relu", "elu", "silu") },
  batch_size = { check.integer(1, 1 << 30) },
  learning_rate = { check.positive() },
  validation_fraction = { check.fraction() },
  patience = { check.integer(0, 1 << 30) },
  max_epochs = { check.integer(1, 1 << 30) },
  clip = { check.number() },
}

local merge = check.merge

-- The options of each compressor, for check.options: latent is the
-- autoencoder's code width; model the regression's form.
M.spec = {
  autoencoder = merge(training_spec, { latent = { check.integer(1, 65536) } }),
  regression = merge(training_spec, { model = { check.one_of("linear", "mlp") } }),
}

-- The defaults (also in docs/emulator.md); filled into keys, so writing a
-- default explicitly does not refit. Two tanh layers of 64: enough for the
-- smooth maps of summaries, small enough to fit 10^5 rows in seconds.
M.DEFAULTS = { hidden = { 64, 64 }, activation = "tanh", batch_size = 128, learning_rate = 1e-3,
               validation_fraction = 0.1, patience = 20, max_epochs = 1000, clip = 5 }
M.REGRESSION_DEFAULTS = { model = "mlp" }

-- The options of compressor kind ("autoencoder" or "regression") with the
-- defaults filled in: what a node's key holds. Only the keys of M.spec[kind]
-- are read; a linear regression keeps only `model` (no training options).
function M.key(kind, opts)
  local spec = M.spec[kind]
  local key = {}
  for k in pairs(spec) do key[k] = opts[k] end
  for k, v in pairs(M.DEFAULTS) do
    if key[k] == nil then key[k] = v end
  end
  if kind == "regression" then
    key.model = key.model or M.REGRESSION_DEFAULTS.model
    if key.model == "linear" then return { model = "linear" } end
  end
  local hidden = {}
  for i, w in ipairs(key.hidden) do hidden[i] = math.tointeger(w) end
  key.hidden = hidden
  for k, v in pairs(key) do
    if type(v) == "number" then key[k] = math.tointeger(v) or v end
  end
  return key
end

-- The core.mlp_train / autoencoder_train spec of key.
local function train_spec(key, seed, label)
  return { hidden = key.hidden, activation = key.activation, seed = math.tointeger(seed), batch_size = key.batch_size,
           learning_rate = key.learning_rate, validation_fraction = key.validation_fraction,
           patience = key.patience, max_epochs = key.max_epochs, clip = key.clip, label = label }
end

local function log_fit(label, what, report)
  core.stderr(string.format("%s: %s, %d epochs (best %d), validation MSE %.4f (z-scored), %.2f s\n", label, what,
                            report.epochs, report.best_epoch, report.best_val_loss, report.seconds))
end

-- The fields of a training artifact (no wall times: they would make equal
-- results hash differently).
local function fitted(kind, model, report, extra)
  local a = merge({ compressor = kind, model = model }, extra or {})
  if report then
    a.epochs, a.best_epoch, a.best_val_loss, a.losses = report.epochs, report.best_epoch, report.best_val_loss,
      report.losses
  end
  return a
end

-- Fits an autoencoder to the rows of x (an n x p Mat) with the options key
-- (M.key("autoencoder", ...); latent required) and seed. Returns the
-- artifact's fields: compressor = "autoencoder", model (the network's
-- model string), latent, epochs, best_epoch, best_val_loss, losses.
function M.autoencoder_fit(x, key, seed, label)
  label = label or "autoencoder"
  if key.latent == nil then error(label .. ": option 'latent' (the number of summaries) is required", 0) end
  if key.latent >= x:cols() then
    error(string.format("%s: latent = %d is not fewer than the %d columns of the data", label, key.latent,
                        x:cols()), 0)
  end
  local spec = train_spec(key, seed, label)
  spec.x, spec.latent = x, key.latent
  local model, report = core.autoencoder_train(spec)
  log_fit(label, string.format("autoencoder %d -> %d", x:cols(), key.latent), report)
  return fitted("autoencoder", model, report, { latent = key.latent })
end

-- Fits the regression of theta (n x D) on x (n x p): key.model "linear"
-- (least squares with an intercept) or "mlp" (the network of key, trained
-- on the mean squared error). The predicted parameters are the summaries:
-- E[theta | x] is the choice of summary that Fearnhead and Prangle (2012)
-- show gives ABC posterior means of theta's quality as the tolerance
-- shrinks. Returns compressor = "regression", model, form ("linear" or
-- "mlp"), and for an MLP the training report's fields.
function M.regression_fit(theta, x, key, seed, label)
  label = label or "regression"
  if theta:rows() ~= x:rows() then
    error(string.format("%s: theta has %d rows but x has %d", label, theta:rows(), x:rows()), 0)
  end
  if key.model == "linear" then
    local model = core.linear_train { x = x, y = theta }
    core.stderr(string.format("%s: linear regression of %d columns on %d\n", label, theta:cols(), x:cols()))
    return fitted("regression", model, nil, { form = "linear" })
  end
  local spec = train_spec(key, seed, label)
  spec.x, spec.y = x, theta
  local model, report = core.mlp_train(spec)
  log_fit(label, string.format("MLP regression of %d columns on %d", theta:cols(), x:cols()), report)
  return fitted("regression", model, report, { form = "mlp" })
end

-- The summaries of the rows of x (an n x p Mat) under a fitted compressor
-- artifact (from autoencoder_fit or regression_fit): n x latent codes, or
-- n x D predicted parameters.
function M.apply(artifact, x)
  local net = core.mlp_load(artifact.model)
  local p = net:dims()
  if x:cols() ~= p then
    error(string.format("the %s compressor takes %d values per row, got %d", artifact.compressor, p, x:cols()), 0)
  end
  if artifact.compressor == "autoencoder" then return net:encode(x) end
  return net:apply(x)
end

return M
