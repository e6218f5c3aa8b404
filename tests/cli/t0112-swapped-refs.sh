#!/bin/bash
# A cache ref that names another step's valid artifact (refs swapped: the
# ABC ref naming the observation's artifact, chunk 3's ref naming chunk
# 4's, in the cache of an interrupted run) is detected like corruption: a
# warning, the step is recomputed and the results are those of a clean run.
. "$(dirname "$0")/lib.sh"
cat > recipe.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 } }
local function simulator(theta, rng)
  return { theta[1] + 0.3 * rng:normal(), theta[2] * theta[1] + 0.3 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 5000, chunk_size = 1000, seed = 7 }
local obs = sbi.observation { simulator = simulator, theta = { 0.5, -0.4 }, seed = 3 }
sbi.output { posterior_samples = sbi.abc.rejection { sims = sims, observation = obs,
  quantile = sbi.param("epsilon_quantile", 0.01) } }
EOF2

ref_path() { echo ".sbirun/refs/${1:0:2}/${1:2}"; }
chunk_ref() { grep -rlx "chunk $2 of $1" "$3/refs"; }

run recipe.lua --out ref --quiet
expect_ok
abc=$(key_of ref/run.json abc.rejection)
obs=$(key_of ref/run.json observation)

# The ABC ref names the observation's artifact.
cp "$(ref_path "$obs")" "$(ref_path "$abc")"
run recipe.lua --out o1
expect_ok
expect_err "which is the result of key"
expect_eq "$(state_of o1/run.json abc.rejection)" ran "abc with a swapped ref"
expect_eq "$(state_of o1/run.json observation)" cached "observation after the swap"
cmp -s o1/posterior_samples.csv ref/posterior_samples.csv || fail "posterior after a swapped ABC ref"

# Chunk 3's ref names chunk 4's artifact, and the simulations must be
# gathered from the chunks again. A complete run leaves no chunks, so the
# chunks come from a run killed (SIGKILL) once 6 refs are stored (observed
# by polling): chunks 0-4 at least, whether or not the observation's ref
# came first.
cp "$SRCDIR/tests/cli/slow_recipe.lua" slow.lua
run slow.lua --cache kref --out kref --quiet
expect_ok
"$SBIRUN" slow.lua --cache k --out k --quiet >/dev/null 2>&1 &
pid=$!
wait_refs k 6 "$pid"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
ksim=$(key_of kref/run.json simulate)
c3=$(chunk_ref "$ksim" 3 k) c4=$(chunk_ref "$ksim" 4 k)
[ -n "$c3" ] && [ -n "$c4" ] || fail "chunk refs not found"
[ -e "k/refs/${ksim:0:2}/${ksim:2}" ] && fail "the killed run finished its simulations"
cp "$c4" "$c3"
run slow.lua --cache k --out o2
expect_ok
expect_err "recomputing chunk 3"
expect_err "which is the result of key"
expect_eq "$(artifact_of o2/run.json simulate)" "$(artifact_of kref/run.json simulate)" \
	"simulations gathered after a swapped chunk ref"
cmp -s o2/posterior_samples.csv kref/posterior_samples.csv || fail "posterior after a swapped chunk ref"
no_temp_files k
no_temp_files .sbirun
finish
