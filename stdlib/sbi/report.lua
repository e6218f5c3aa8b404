-- Writing outputs and the end-of-run summary table.
local core = require "sbi.core"

local M = {}

local function fmt(v)
  return string.format("%10.4g", v)
end

-- Prints mean, std and the 5/50/95% quantiles of every parameter through
-- out(s, ...) (default core.stdout).
function M.summary(name, art, out)
  out = out or core.stdout
  local m = art.samples
  local head = string.format("%s: %d samples", name, m:rows())
  if art.method then
    head = head .. string.format(" (%s", art.method)
    if art.n_accepted and art.n_simulations then
      head = head .. string.format(", %d of %d simulations accepted, epsilon = %.4g", art.n_accepted,
                                   art.n_simulations, art.epsilon or 0)
    end
    if art.n_outside_support and art.n_outside_support > 0 then
      head = head .. string.format(", %d adjusted outside the prior's support", art.n_outside_support)
    end
    head = head .. ")"
  end
  out(head, "\n")
  local width = 9
  for _, n in ipairs(art.names) do width = math.max(width, #n) end
  local rowf = "%-" .. width .. "s %10s %10s %10s %10s %10s\n"
  out(string.format(rowf, "parameter", "mean", "std", "5%", "50%", "95%"))
  for j, s in ipairs(core.summary(m)) do
    out(string.format(rowf, art.names[j], fmt(s.mean), fmt(s.std), fmt(s.q05), fmt(s.q50), fmt(s.q95)))
  end
end

-- A simulate step's artifact as samples: the parameters, then the data
-- x[1] .. x[K] (a posterior predictive, say); nil for any other artifact.
local function simulations_as_samples(art)
  if art.samples or not (art.theta and art.x and art.names) then return nil end
  local t, x = art.theta, art.x
  local d, k = t:cols(), x:cols()
  local m, names, row = core.mat(t:rows(), d + k), {}, {}
  for i = 1, t:rows() do
    t:row(i, row)
    for j = 1, k do row[d + j] = x:get(i, j) end
    m:set_row(i, row)
  end
  for j = 1, d do names[j] = art.names[j] end
  for j = 1, k do names[d + j] = string.format("x[%d]", j) end
  return { samples = m, names = names, method = "simulations" }
end

-- An observation step's artifact as one row x[1] .. x[K] (for the
-- report's predictive plot); nil for any other artifact.
local function observation_as_row(art)
  if art.samples or art.theta or not art.x or art.x:rows() ~= 1 then return nil end
  local names = {}
  for j = 1, art.x:cols() do names[j] = string.format("x[%d]", j) end
  return { samples = art.x, names = names, observation = true }
end

-- The training curve (epoch, train, validation) of the first training
-- input with one (an artifact's `losses`, epochs x 2), or nil.
local function loss_curve(train)
  for _, t in ipairs(train or {}) do
    local l = t.losses
    if l and l:rows() > 0 and l:cols() == 2 then
      local m = core.mat(l:rows(), 3)
      for e = 1, l:rows() do m:set_row(e, { e, l:get(e, 1), l:get(e, 2) }) end
      return m
    end
  end
end

-- The MCMC traces of an MCMC posterior's artifact (its samples interleave
-- the chains: row t * chains + c is chain c's draw t, engine/infer/mcmc.c)
-- as rows (chain, parameters...) grouped by chain, the first 4 chains:
-- the report draws them (NAME.trace.csv); nil for other artifacts.
local TRACE_CHAINS = 4
local function mcmc_trace(art)
  local nc = math.tointeger(art.chains or 0)
  if not (art.samples and nc and nc > 1) or art.samples:rows() % nc ~= 0 then return nil end
  local s, d = art.samples, art.samples:cols()
  local niter, keep = s:rows() // nc, math.min(nc, TRACE_CHAINS)
  local m, row, out = core.mat(keep * niter, d + 1), {}, { 0 }
  for c = 1, keep do
    for t = 1, niter do
      s:row((t - 1) * nc + c, row)
      out[1] = c
      for j = 1, d do out[j + 1] = row[j] end
      m:set_row((c - 1) * niter + t, out)
    end
  end
  local names = { "chain" }
  for j = 1, d do names[j + 1] = art.names[j] end
  return m, names
end

-- Writes name.csv and name.npy into files (name -> hash); raises after
-- recording the error in written.
local function write_pair(dir, name, out, m, names, files, written)
  local ok, csv, npy = pcall(core.write_samples, dir, name, m, names)
  if not ok then
    written[#written + 1] = { name = out, error = tostring(csv) }
    error(csv, 0)
  end
  files[name .. ".csv"], files[name .. ".npy"] = csv, npy
end

-- outputs: list of { name = , node = }; arts: their artifacts, in order;
-- train: per output, the artifacts of its training inputs (a loss curve
-- goes to NAME.loss.csv). Appends to written one { name =, files = {
-- [file] = content hash } } per output written, or { name =, error =
-- message } for the write that failed (then raises): run.json records them.
function M.write_outputs(outputs, arts, dir, quiet, written, train)
  written = written or {}
  for i, o in ipairs(outputs) do
    local art = simulations_as_samples(arts[i]) or observation_as_row(arts[i]) or arts[i]
    if art.samples and art.names then
      local files = {}
      write_pair(dir, o.name, o.name, art.samples, art.names, files, written)
      local loss = loss_curve(train and train[i])
      if loss then write_pair(dir, o.name .. ".loss", o.name, loss, { "epoch", "train", "validation" }, files, written) end
      local trace, tnames = mcmc_trace(art)
      if trace then write_pair(dir, o.name .. ".trace", o.name, trace, tnames, files, written) end
      written[#written + 1] = { name = o.name, files = files }
      if not art.observation then M.summary(o.name, art) end
      if not quiet then
        core.stderr(string.format("wrote %s/%s.csv and %s.npy%s\n", dir, o.name, o.name,
                                  loss and string.format(" (and %s.loss.csv)", o.name) or ""))
      end
    else
      core.stderr(string.format("sbirun: warning: output '%s' (%s) has no samples to write\n", o.name,
                                    o.node.label))
    end
  end
end

return M
