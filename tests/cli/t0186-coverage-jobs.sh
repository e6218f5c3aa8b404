#!/bin/bash
# The test-set posteriors of the diagnostics are bit-identical for --jobs 1
# and 2 (NPE, NLE, NRE: C threads; each test point has its own streams);
# the exact-likelihood MCMC posterior (ranked by its unnormalized density)
# is calibrated on a conjugate model; PPC flags an observation far outside
# the predictive distribution.
. "$(dirname "$0")/lib.sh"

# theta ~ N(0, I_2), x ~ N(theta, 0.5^2 I).
cat > model.lua <<'EOF2'
local sbi = require "sbi"
local method = sbi.param("method", "npe")
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local sim = sbi.simulator { dim = 2,
  fn = function(theta, rng) return { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() } end }
local obs = sbi.observation { sbi.param("x1", 1.0), -0.5 }
local post
if method == "likelihood" then
  post = sbi.likelihood { prior = prior, observation = obs, num_samples = 1000,
    loglik = function(theta, x)
      local a, b = (x[1] - theta[1]) / 0.5, (x[2] - theta[2]) / 0.5
      return -0.5 * (a * a + b * b)
    end }
else
  local sims = sbi.simulate { prior = prior, simulator = sim, n = 1000, seed = 3 }
  post = sbi[method] { sims = sims, observation = obs, num_samples = 1000, max_epochs = 20 }
end
sbi.output { posterior_samples = post }
sbi.diagnose.coverage { posterior = post, simulator = sim, tests = sbi.param("tests", 40), samples = 200, seed = 5 }
sbi.diagnose.sbc { posterior = post, simulator = sim, tests = sbi.param("tests", 40), samples = 200, seed = 5, bins = 10 }
sbi.diagnose.ppc { posterior = post, simulator = sim, observation = obs, draws = 300 }
EOF2

for m in npe nle nre; do
	run model.lua --set method=$m --jobs 1 --cache c1 --out o1
	expect_ok
	run model.lua --set method=$m --jobs 2 --cache c2 --out o2
	expect_ok
	expect_eq "$(artifact_of o2/run.json diagnose.ranks)" "$(artifact_of o1/run.json diagnose.ranks)" "$m: ranks, --jobs 2"
	cmp -s o1/coverage.csv o2/coverage.csv || fail "$m: coverage.csv differs between --jobs 1 and 2"
	cmp -s o1/sbc.csv o2/sbc.csv || fail "$m: sbc.csv differs between --jobs 1 and 2"
	expect_eq "$(awk 'END { print NR }' o1/coverage.csv)" "100" "$m: coverage.csv rows"
	# Trained on 1,000 simulations the estimators are rough, but not wild.
	in_range "$(jget o1/run.json 'j["diagnostics"][0]["value"]')" 0 0.45 "$m: max coverage deviation"
done

# The exact likelihood by MCMC: calibrated.
run model.lua --set method=likelihood --set tests=100 --out ol
expect_ok
in_range "$(jget ol/run.json 'j["diagnostics"][0]["value"]')" 0 0.12 "likelihood: max coverage deviation"
in_range "$(jget ol/run.json 'j["diagnostics"][1]["value"]')" 0.01 1 "likelihood: SBC p-value"
# An observation the model cannot produce: a tiny predictive p-value.
expect_eq "$(jget ol/run.json '[d["diagnostic"] for d in j["diagnostics"]]')" "['coverage', 'sbc', 'ppc']" "diagnostics listed"
in_range "$(jget ol/run.json 'j["diagnostics"][2]["value"]')" 0.05 1 "ppc: plausible observation"
run model.lua --set method=likelihood --set tests=100 --set x1=40 --out of
expect_ok
in_range "$(jget of/run.json 'j["diagnostics"][2]["value"]')" 0 0.01 "ppc: implausible observation"
expect_eq "$(jget of/run.json 'j["diagnostics"][2]["pass"]')" "false" "ppc: fails without a gate"
awk -F, 'NR == 2 { exit !($2 == 40 && $5 < 40) }' of/ppc.csv || fail "ppc.csv: observed 40 above the interval"
finish
