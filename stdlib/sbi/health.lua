-- MCMC health: every MCMC-based step reports its worst split R-hat and
-- smallest effective sample size here; those past the thresholds
-- (sbi.diagnose.mcmc_health, docs/diagnostics.md#mcmc-health) give a
-- warning on stderr and in run.json's `warnings`. Warnings only: they change
-- no result and no cache key.
local core = require "sbi.core"

local M = {
  thresholds = { max_rhat = 1.05, min_ess = 100 },
  records = {},  -- label -> { max_rhat =, min_ess = } (min_ess nil when not measured)
  warnings = {}, -- messages, in the order given
  seen = {},     -- message -> true
}

-- Adds a warning (once) and prints it.
function M.warn(msg)
  if M.seen[msg] then return end
  M.seen[msg] = true
  M.warnings[#M.warnings + 1] = msg
  core.stderr("sbirun: warning: " .. msg .. "\n")
end

-- Chains in separate modes, from core.mcmc's diagnostics: nil unless
-- the chains sit in two or more modes and mix within each (the R-hat
-- within the modes under the threshold: chains that merely have not
-- mixed also fall apart into groups), else e.g. "2 modes (12 + 8 of 20
-- chains), R-hat within modes 1.004".
function M.modes(diag)
  local mc, within = diag.mode_chains, diag.rhat_within
  if not mc or #mc < 2 or not M.mixed(within) then return nil end
  local counts, n = {}, 0
  for k, c in ipairs(mc) do counts[k], n = string.format("%d", c), n + c end
  local list = #mc <= 5 and " (" .. table.concat(counts, " + ") .. string.format(" of %d chains)", n) or ""
  return string.format("%d modes%s, R-hat within modes %.3f", #mc, list, within)
end

-- Whether an R-hat within modes is under this run's threshold (a cached
-- artifact's modes are judged again by it).
function M.mixed(rhat_within)
  return rhat_within ~= nil and rhat_within == rhat_within and rhat_within <= M.thresholds.max_rhat
end

-- Records the convergence figures of a step labelled label and warns
-- when they pass the thresholds. modes (M.modes) explains a large
-- R-hat by chains that each stay in one mode of a multimodal density.
function M.record(label, max_rhat, min_ess, what, modes)
  M.records[label] = { max_rhat = max_rhat, min_ess = min_ess }
  local t, bad = M.thresholds, {}
  if max_rhat ~= max_rhat or max_rhat > t.max_rhat then
    bad[#bad + 1] = string.format("R-hat %.3f > %.3g", max_rhat, t.max_rhat)
  end
  if min_ess and (min_ess ~= min_ess or min_ess < t.min_ess) then
    bad[#bad + 1] = string.format("ESS %.0f < %.0f", min_ess, t.min_ess)
  end
  if #bad == 0 then return end
  if modes and bad[1]:find("^R%-hat") then
    M.warn(string.format("%s: %s may not have converged: %s; the chains sit in %s: the sampler does not move " ..
                         "between modes, so their weights come from the chains' starting points, not from MCMC, " ..
                         "and are rough (docs/diagnostics.md#mcmc-health)",
                         label, what or "MCMC", table.concat(bad, ", "), modes))
  else
    M.warn(string.format("%s: %s may not have converged: %s (more warm-up or chains: docs/diagnostics.md#mcmc-health)",
                         label, what or "MCMC", table.concat(bad, ", ")))
  end
end

-- The largest R-hat recorded in this run, and the step it belongs to.
function M.worst_rhat()
  local worst, at = nil, nil
  for _, label in ipairs((function()
    local ks = {}
    for k in pairs(M.records) do ks[#ks + 1] = k end
    table.sort(ks)
    return ks
  end)()) do
    local r = M.records[label].max_rhat
    if worst == nil or r ~= r or r > worst then worst, at = r, label end
  end
  return worst, at
end

-- The smallest ESS recorded, and its step.
function M.worst_ess()
  local worst, at = nil, nil
  local ks = {}
  for k in pairs(M.records) do ks[#ks + 1] = k end
  table.sort(ks)
  for _, label in ipairs(ks) do
    local e = M.records[label].min_ess
    if e and (worst == nil or e ~= e or e < worst) then worst, at = e, label end
  end
  return worst, at
end

return M
