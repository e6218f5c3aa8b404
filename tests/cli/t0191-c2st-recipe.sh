#!/bin/bash
# sbi.diagnose.c2st in a recipe: a posterior step against a file of
# reference samples, and two files against each other, give the accuracies
# their distributions imply; the step is cached, the same for any --jobs,
# and bad options fail naming the option.
#
# Known answers. The model: theta ~ N(0, 1), x ~ N(theta, 1), x_obs = 1;
# the exact posterior is N(0.5, 1/2). ref.csv and ref2.csv hold 1,000
# independent draws of it each, far.csv 1,000 draws of N(1.5, 1/2). Two
# normals of sd s a distance d apart are told apart with the Bayes
# accuracy Phi(d / 2s) = Phi(0.707) = 0.760 here; the network reaches it
# within about 3 sampling sds (0.0095 at 2,000 test points) and a little
# more for its learned boundary: 0.72-0.79. ref2 against ref: 0.5 within
# 0.05 (sd 0.011 and the overfitting bias, tests/engine/test_c2st.c). The
# rejection-ABC posterior (quantile 0.02 of 50,000 simulations) is close
# to the exact one: below 0.62.
. "$(dirname "$0")/lib.sh"

# The samples files, drawn by sbirun itself (no python needed).
cat >draw.lua <<'LUA'
local core = require "sbi.core"
local function draw(name, mean, seed)
  local r, m = core.rng(seed), core.mat(1000, 1)
  for i = 1, 1000 do m:set(i, 1, r:normal(mean, math.sqrt(0.5))) end
  core.write_samples(".", name, m, { "theta" })
end
draw("ref", 0.5, 1)
draw("ref2", 0.5, 2)
draw("far", 1.5, 3)
LUA
run lua draw.lua
expect_ok

cat >recipe.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sims = sbi.simulate { prior = prior, n = 50000, seed = 1,
  simulator = function(theta, rng) return { theta[1] + rng:normal() } end }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 1.0 }, quantile = 0.02 }
sbi.output {
  posterior_samples = post,
  c2st_abc = sbi.diagnose.c2st { a = "ref.csv", b = post, samples = 1000 },
  c2st_same = sbi.diagnose.c2st { a = "ref.csv", b = "ref2.csv" },
  c2st_far = sbi.diagnose.c2st { a = "ref.csv", b = "far.csv", seed = 3 },
}
LUA

# accuracy B: the accuracy printed by the c2st step whose b is B.
accuracy() {
	grep -F "C2ST accuracy" "$ERR" | grep -F "$1" | sed 's/.*C2ST accuracy \([0-9.]*\).*/\1/'
}
run recipe.lua --cache cache --out out
expect_ok
grep -F "C2ST accuracy" "$ERR" >&2
# Each step's label names its recipe line: 8 (abc), 9 (same), 10 (far).
acc_abc=$(accuracy "recipe.lua:8") acc_same=$(accuracy "recipe.lua:9") acc_far=$(accuracy "recipe.lua:10")
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }'; }
within "$acc_far" 0.72 0.79 || fail "ref against far: accuracy '$acc_far', expected 0.72-0.79 (Bayes 0.760)"
within "$acc_same" 0.45 0.55 || fail "ref against ref2: accuracy '$acc_same', expected 0.45-0.55"
within "$acc_abc" 0.40 0.62 || fail "ref against rejection ABC: accuracy '$acc_abc', expected below 0.62"
expect_err "1000 against 1000 samples"

# Cached: a second run trains nothing; --jobs 2 (folds in threads) in a
# fresh cache gives the same accuracies.
run recipe.lua --cache cache --out out2
expect_ok
grep -qF "C2ST accuracy" "$ERR" && fail "the c2st steps ran again instead of coming from the cache"
run recipe.lua --cache cache2 --out out3 --jobs 2
expect_ok
[ "$(accuracy recipe.lua:10)" = "$acc_far" ] && [ "$(accuracy recipe.lua:8)" = "$acc_abc" ] ||
	fail "--jobs 2 changed the accuracies: $(grep -F 'C2ST accuracy' "$ERR")"

# Bad options name the option.
bad() {
	local want=$1
	printf 'local sbi = require "sbi"\nlocal p = sbi.prior.normal { mean = { 0 }, std = { 1 } }\n%s\n' "$2" >bad.lua
	printf 'sbi.output { c = c }\n' >>bad.lua
	run bad.lua --cache cache --out bad
	expect_fail
	expect_err "$want"
}
bad "option 'a' is required" 'local c = sbi.diagnose.c2st { b = "ref.csv" }'
bad "unknown option 'sample'" 'local c = sbi.diagnose.c2st { a = "ref.csv", b = "ref2.csv", sample = 10 }'
bad "option 'b' must be a string or a step" 'local c = sbi.diagnose.c2st { a = "ref.csv", b = 3 }'
bad "option 'folds' must be an integer from 2 to 100" 'local c = sbi.diagnose.c2st { a = "ref.csv", b = "ref2.csv", folds = 1 }'
bad "option 'a': cannot read samples file 'nope.csv'" 'local c = sbi.diagnose.c2st { a = "nope.csv", b = "ref2.csv" }'
bad "bad.lua:3:" 'local c = sbi.diagnose.c2st { a = "nope.csv", b = "ref2.csv" }'
bad "input 'b' has no samples" \
	'local c = sbi.diagnose.c2st { a = "ref.csv", b = sbi.simulate { prior = p, n = 10, simulator = function(t, r) return { t[1] } end } }'
printf 'theta,x\n1,2\n' >two.csv
bad "a has 1 parameters but b has 2" 'local c = sbi.diagnose.c2st { a = "ref.csv", b = "two.csv" }'
finish
