#!/bin/bash
# MCMC health: chains stuck in the two modes of a bimodal posterior give a
# warning (R-hat and ESS past the thresholds) on stderr and in run.json's
# `warnings`, again when the step is cached; the warning says the chains
# sit in 2 modes, 2 chains each, and mix within them (unmixed groups of
# chains are not called modes); sbi.diagnose.mcmc_health moves the
# thresholds; sbi.gate{ rhat = R } fails the run with exit code 3 after
# writing the samples. A converged run has no warning and no new run.json key.
. "$(dirname "$0")/lib.sh"

cat > health.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -3, -3 }, high = { 3, 3 } }
local obs = sbi.observation { 0.5, 0.5 }
local bimodal = sbi.param("bimodal", true)
local post = sbi.likelihood { prior = prior, observation = obs, num_samples = 400, warmup = 5, chains = 4,
  loglik = function(theta, x)
    local a = -((theta[1] - 2) ^ 2 + (theta[2] - 2) ^ 2) / 0.02
    if not bimodal then return -((theta[1] - x[1]) ^ 2 + (theta[2] - x[2]) ^ 2) / 2 end
    local b = -((theta[1] + 2) ^ 2 + (theta[2] + 2) ^ 2) / 0.02
    return math.max(a, b) + math.log(1 + math.exp(math.min(a, b) - math.max(a, b)))
  end }
sbi.output { posterior_samples = post }
local g = sbi.param("gate", 0)
if g > 0 then sbi.gate { rhat = g } end
local t = sbi.param("max_rhat", 0)
if t > 0 then sbi.diagnose.mcmc_health { max_rhat = t, min_ess = 1 } end
EOF2

run health.lua
expect_ok
expect_err "sbirun: warning: likelihood.sample (health.lua:5): MCMC may not have converged: R-hat"
expect_err "docs/diagnostics.md#mcmc-health"
expect_err "; 2 modes (2 + 2 of 4 chains), R-hat within modes 1.0"
expect_err "the chains sit in 2 modes (2 + 2 of 4 chains), R-hat within modes 1.0"
expect_err "their weights come from the chains' starting points"
expect_eq "$(jget sbirun-out/health/run.json 'len(j["warnings"])')" "1" "one warning in run.json"
expect_eq "$(jget sbirun-out/health/run.json '"R-hat" in j["warnings"][0] and "ESS" in j["warnings"][0]')" "true" \
	"the warning names R-hat and ESS"

# Cached: the warning again; with a gate, exit 3 after the samples were written.
rm sbirun-out/health/posterior_samples.csv
run health.lua --set gate=1.05
expect_fail 3
expect_err "MCMC may not have converged"
expect_err "the chains sit in 2 modes (2 + 2 of 4 chains)"
expect_err "sbirun: error: gate failed: rhat (rhat) ="
expect_err "required <= 1.05"
expect_eq "$(ran_nodes sbirun-out/health/run.json)" "0" "gate: nothing re-ran"
[ -s sbirun-out/health/posterior_samples.csv ] || fail "gate: the samples are written before exit 3"
expect_eq "$(jget sbirun-out/health/run.json 'j["diagnostics"][0]["pass"]')" "false" "gate: run.json records the failure"

# A threshold under the R-hat within the modes (1.00x), on the cached
# posterior: the modes no longer explain the R-hat.
run health.lua --set max_rhat=1.0001
expect_ok
expect_err "MCMC may not have converged: R-hat"
expect_err "(more warm-up or chains: docs/diagnostics.md#mcmc-health)"
grep -q "the chains sit in" "$ERR" && fail "max_rhat = 1.0001: modes called mixed: $(cat "$ERR")"
expect_eq "$(ran_nodes sbirun-out/health/run.json)" "0" "max_rhat = 1.0001: nothing re-ran"

# Chains that have not mixed (a Gaussian with correlation 0.99 between 5
# parameters, 50 draws a chain) fall apart into groups too, each unmixed:
# those are not called modes (seed 2: 3 groups, R-hat within them 2.98).
cat > corr.lua <<'EOF2'
local core, health, sbi = require "sbi.core", require "sbi.health", require "sbi"
local prior = sbi.prior.uniform { low = { -5, -5, -5, -5, -5 }, high = { 5, 5, 5, 5, 5 } }
local function loglik(t)
  local s, q = 0, 0
  for j = 1, 5 do s, q = s + t[j], q + t[j] * t[j] end
  return -0.5 * (q - 0.99 / (1 + 4 * 0.99) * s * s) / (1 - 0.99)
end
local _, diag = core.mcmc { prior = prior.c, loglik = loglik, kind = "slice", chains = 20, warmup = 200, thin = 1,
  num_samples = 1000, seed = 2, candidates = 10000 }
print(#diag.mode_chains, diag.rhat_within > 1.5, health.modes(diag))
EOF2
run lua corr.lua
expect_ok
expect_eq "$(cat "$OUT")" "$(printf '3\ttrue\tnil')" "unmixed groups of chains: count, R-hat within, not called modes"

# Thresholds moved: no warning.
run health.lua --set max_rhat=1000
expect_ok
grep -q "warning" "$ERR" && fail "max_rhat = 1000: unexpected warning: $(cat "$ERR")"

# A unimodal posterior, sampled long enough: no warning, no new key.
cat > ok.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local post = sbi.likelihood { prior = prior, observation = sbi.observation { 0.5, 0.5 }, num_samples = 4000,
  loglik = function(theta, x) return -((theta[1] - x[1]) ^ 2 + (theta[2] - x[2]) ^ 2) / 0.5 end }
sbi.output { posterior_samples = post }
EOF2
run ok.lua
expect_ok
grep -q "warning" "$ERR" && fail "converged: unexpected warning: $(cat "$ERR")"
grep -q "modes" "$ERR" && fail "converged: chains in modes: $(cat "$ERR")"
expect_eq "$(jget sbirun-out/ok/run.json '"warnings" in j or "diagnostics" in j')" "false" "converged: run.json keys"
finish
