#!/bin/bash
# Positive and negative controls of the calibration diagnostics on a
# conjugate Gaussian model whose posterior is known: the exact posterior's
# expected coverage lies inside the binomial band at every level and passes
# the gate; one narrowed by 2x is over-confident and one widened by 2x
# under-confident, and both fail the gate with exit code 3 after writing
# every output; SBC flags a shifted posterior. TARP agrees.
. "$(dirname "$0")/lib.sh"

# theta ~ N(0, I_2), x ~ N(theta, 0.5^2 I): posterior N(0.8 x, 0.2 I).
cat > conj.lua <<'EOF2'
local sbi = require "sbi"
local scale, shift = sbi.param("scale", 1), sbi.param("shift", 0)
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local sim = function(theta, rng) return { theta[1] + 0.5 * rng:normal(), theta[2] + 0.5 * rng:normal() } end
local post = sbi.diagnose.gaussian { prior = prior,
  mean = function(x) return { 0.8 * x[1] + shift, 0.8 * x[2] + shift } end,
  std = function(x) return math.sqrt(0.2) * scale end }
sbi.diagnose.coverage { posterior = post, simulator = sim, tests = 200, samples = 500, seed = 3 }
sbi.diagnose.sbc { posterior = post, simulator = sim, tests = 200, samples = 500, seed = 3 }
sbi.diagnose.tarp { posterior = post, simulator = sim, tests = 200, samples = 500, seed = 3 }
sbi.gate { coverage = { max_deviation = 0.1 }, sbc = { min_p = 0.01 } }
EOF2

# coverage.csv: 99 levels 0.01 .. 0.99, each row level,coverage,lower,upper;
# prints the number of rows whose coverage lies inside [lower, upper].
inside_band() {
	awk -F, 'NR == 1 { if ($0 != "level,coverage,lower,upper") { print "bad header"; exit } next }
		{ n++; if ($2 >= $3 && $2 <= $4) k++ } END { print k + 0 "/" n }' "$1"
}

run conj.lua
expect_ok
expect_eq "$(inside_band sbirun-out/conj/coverage.csv)" "99/99" "exact posterior: levels inside the band"
expect_eq "$(jget sbirun-out/conj/run.json 'j["gates_passed"]')" "true" "exact posterior: gates_passed"
expect_eq "$(jget sbirun-out/conj/run.json '[d["pass"] for d in j["diagnostics"]]')" "[True, True, True]" \
	"exact posterior: every diagnostic passes"
in_range "$(jget sbirun-out/conj/run.json 'j["diagnostics"][0]["value"]')" 0 0.08 "exact posterior: max deviation"
in_range "$(jget sbirun-out/conj/run.json 'j["diagnostics"][1]["value"]')" 0.05 1 "exact posterior: SBC p-value"
expect_out "99 of 99 levels inside the 95% band"

run conj.lua --set scale=0.5
expect_fail 3
expect_err "gate failed: coverage (coverage) = 0.49, required <= 0.1"
expect_out "(over-confident)"
expect_eq "$(jget sbirun-out/conj/run.json 'j["diagnostics"][0]["direction"]')" "over-confident" "narrow: direction"
expect_eq "$(jget sbirun-out/conj/run.json 'j["gates_passed"]')" "false" "narrow: gates_passed"
expect_eq "$(jget sbirun-out/conj/run.json 'j["diagnostics"][2]["direction"]')" "over-confident" "narrow: TARP"
[ -s sbirun-out/conj/sbc.csv ] && [ -s sbirun-out/conj/tarp.csv ] || fail "narrow: outputs written before exit 3"
in_range "$(inside_band sbirun-out/conj/coverage.csv | cut -d/ -f1)" 0 20 "narrow: levels inside the band"

run conj.lua --set scale=2
expect_fail 3
expect_err "gate failed: coverage (coverage) = 0.47, required <= 0.1"
expect_eq "$(jget sbirun-out/conj/run.json 'j["diagnostics"][0]["direction"]')" "under-confident" "wide: direction"
expect_eq "$(jget sbirun-out/conj/run.json 'j["diagnostics"][2]["direction"]')" "under-confident" "wide: TARP"

# A shift of 0.3 (0.67 posterior sd): SBC's ranks pile up at one end.
run conj.lua --set shift=0.3
expect_fail 3
expect_err "gate failed: sbc (sbc) ="
in_range "$(jget sbirun-out/conj/run.json 'j["diagnostics"][1]["value"]')" 0 1e-6 "shift: SBC p-value"
# Ranks of theta1 below the true value: the shifted posterior puts most draws above.
low=$(awk -F, 'NR > 1 && NR <= 6 { s += $2 } END { print s }' sbirun-out/conj/sbc.csv)
in_range "$low" 80 200 "shift: SBC ranks in the lowest quarter"

# Re-running a failing gate from the cache fails the same way.
run conj.lua --set shift=0.3
expect_fail 3
expect_eq "$(ran_nodes sbirun-out/conj/run.json)" "0" "cached: nothing re-ran"
finish
