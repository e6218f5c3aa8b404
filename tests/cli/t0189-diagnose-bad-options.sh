#!/bin/bash
# Bad options of sbi.diagnose.* and sbi.gate are errors naming the option
# (exit 1, nothing run); two diagnostics of a kind get distinct outputs;
# every recipe example of docs/diagnostics.md runs.
. "$(dirname "$0")/lib.sh"

head_lua='local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sim = function(theta, rng) return { theta[1] + rng:normal() } end
local post = sbi.diagnose.gaussian { prior = prior, mean = function(x) return { x[1] / 2 } end,
  std = function(x) return math.sqrt(0.5) end }'

bad() { # TEXT LUA...: the recipe with LUA fails with TEXT
	local text=$1
	shift
	printf '%s\n%s\n' "$head_lua" "$*" > bad.lua
	run bad.lua
	expect_fail 1
	expect_err "$text"
	[ -d .sbirun/objects ] && [ -n "$(ls .sbirun/objects)" ] && fail "$text: something ran"
	rm -rf .sbirun
}

bad "sbi.diagnose.coverage: unknown option 'test' (accepted:" \
	'sbi.diagnose.coverage { posterior = post, simulator = sim, test = 3 }'
bad "sbi.diagnose.coverage: option 'simulator' is required with an sbi.diagnose.gaussian posterior" \
	'sbi.diagnose.coverage { posterior = post }'
bad "sbi.diagnose.coverage: option 'tests' must be an integer from 1 to 1000000, got 0" \
	'sbi.diagnose.coverage { posterior = post, simulator = sim, tests = 0 }'
bad "sbi.diagnose.coverage: option 'levels' must hold numbers strictly between 0 and 1, got 1" \
	'sbi.diagnose.coverage { posterior = post, simulator = sim, levels = { 0.5, 1 } }'
bad "sbi.diagnose.sbc: option 'posterior' must be a posterior (sbi.npe, sbi.nle, sbi.nre, sbi.likelihood or sbi.diagnose.gaussian)" \
	'sbi.diagnose.sbc { posterior = {}, simulator = sim }'
bad "is not amortized: diagnostics take sbi.npe" \
	'local s = sbi.simulate { prior = prior, simulator = sim, n = 100 }
	 local a = sbi.abc.rejection { sims = s, observation = sbi.observation { 0 }, quantile = 0.1 }
	 sbi.diagnose.tarp { posterior = a, simulator = sim }'
bad "sbi.diagnose.sbc: option 'bins' must be an integer from 2 to 1000, got 1" \
	'sbi.diagnose.sbc { posterior = post, simulator = sim, bins = 1 }'
bad "sbi.diagnose.coverage: the name 'a' is used twice" \
	'sbi.diagnose.coverage { posterior = post, simulator = sim, name = "a" }
	 sbi.diagnose.coverage { posterior = post, simulator = sim, name = "a" }'
bad "sbi.gate: coverage: unknown option 'max_dev' (accepted: max_deviation)" \
	'sbi.gate { coverage = { max_dev = 0.1 } }'
bad "sbi.gate: sbc.min_p must be a number >= 0, got -1" 'sbi.gate { sbc = { min_p = -1 } }'
bad "sbi.gate: unknown option 'coverage_max' (accepted:" 'sbi.gate { coverage_max = 0.1 }'
bad "sbi.diagnose.mcmc_health: option 'max_rhat' must be a positive number" \
	'sbi.diagnose.mcmc_health { max_rhat = 0 }'
bad "sbi.diagnose.ppc: option 'observation' is required" 'sbi.diagnose.ppc { posterior = post }'

# Two coverages of different levels: outputs coverage and coverage_2.
printf '%s\n%s\n' "$head_lua" 'sbi.diagnose.coverage { posterior = post, simulator = sim, tests = 50, samples = 100 }
sbi.diagnose.coverage { posterior = post, simulator = sim, tests = 50, samples = 100, levels = { 0.5, 0.9 } }' > two.lua
run two.lua
expect_ok
expect_eq "$(awk 'END { print NR }' sbirun-out/two/coverage_2.csv)" "3" "coverage_2.csv: two levels"
expect_eq "$(jget sbirun-out/two/run.json '[d["name"] for d in j["diagnostics"]]')" "['coverage', 'coverage_2']" \
	"two diagnostics in run.json"
# They share the test-set posteriors: one ranks step.
expect_eq "$(jget sbirun-out/two/run.json 'len([n for n in j["nodes"] if n["kind"] == "diagnose.ranks"])')" "1" \
	"one ranks step"

# The examples of docs/diagnostics.md (and its section of docs/recipes.md).
awk '/^```lua$/ { n++; f = sprintf("doc%02d.lua", n); inblock = 1; next }
	/^```$/ && inblock { inblock = 0; close(f); next }
	inblock { print > f }' "$SRCDIR/docs/diagnostics.md"
awk '/^## Diagnostics: sbi.diagnose/ { on = 1 } /^## Mat objects/ { on = 0 }
	on && /^```lua$/ { inblock = 1; next } /^```$/ && inblock { inblock = 0; next }
	on && inblock { print > "doc99.lua" }' "$SRCDIR/docs/recipes.md"
count=0
for f in doc*.lua; do
	count=$((count + 1))
	run "$f" --quiet
	expect_ok
done
in_range "$count" 6 100 "examples in docs/diagnostics.md and recipes.md"
finish
