#!/bin/bash
# A second run of an unchanged recipe does no work and says so; editing only
# an ABC option re-runs ABC and re-uses the simulations.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" recipe.lua

run recipe.lua --set simulations=5000 --set method=rejection_abc --out out1
expect_ok
expect_eq "$(ran_nodes out1/run.json)" 3 "first run: nodes ran"
expect_out "posterior_samples: 50 samples"

run recipe.lua --set simulations=5000 --set method=rejection_abc --out out2
expect_ok
expect_eq "$(ran_nodes out2/run.json)" 0 "second run: nodes ran"
expect_err "nothing to do"
cmp -s out1/posterior_samples.csv out2/posterior_samples.csv || fail "cached output differs"

# Change only the ABC option: ABC re-runs, simulate and observation are cache hits.
run recipe.lua --set simulations=5000 --set method=rejection_abc --set epsilon_quantile=0.02 --out out3
expect_ok
expect_eq "$(ran_nodes out3/run.json)" 1 "ABC edit: nodes ran"
expect_eq "$(state_of out3/run.json abc.rejection)" ran "ABC edit: abc state"
expect_out "posterior_samples: 100 samples"

# Edit the ABC call in the recipe text itself: same effect.
sed 's/moped_abc and 0.002 or 0.01)/moped_abc and 0.002 or 0.03)/' recipe.lua > r2.lua
cmp -s r2.lua recipe.lua && fail "the edit did not change the recipe"
mv r2.lua recipe.lua
run recipe.lua --set simulations=5000 --set method=rejection_abc --out out4
expect_ok
expect_eq "$(ran_nodes out4/run.json)" 1 "recipe ABC edit: nodes ran"

# A comment added to the simulator does not change its key.
sed 's/^local function simulator(theta, rng)$/local function simulator(theta, rng) -- a comment/' recipe.lua > r2.lua
mv r2.lua recipe.lua
run recipe.lua --set simulations=5000 --set method=rejection_abc --out out5
expect_ok
expect_eq "$(ran_nodes out5/run.json)" 0 "comment edit: nodes ran"

# Changing the simulator's code re-runs the simulations and what depends on them.
sed 's/sigma\[i + 1\] = 0.05 + 0.10 \* grid\[i + 1\]/sigma[i + 1] = 0.05 + 0.11 * grid[i + 1]/' recipe.lua > r2.lua
mv r2.lua recipe.lua
run recipe.lua --set simulations=5000 --set method=rejection_abc --out out6
expect_ok
expect_eq "$(state_of out6/run.json simulate)" ran "simulator edit: simulate state"
expect_eq "$(state_of out6/run.json abc.rejection)" ran "simulator edit: abc state"

# The seed and the number of simulations are part of the key.
run recipe.lua --set simulations=5000 --set method=rejection_abc --set seed=2 --out out7
expect_ok
expect_eq "$(state_of out7/run.json simulate)" ran "seed change: simulate state"
run recipe.lua --set simulations=6000 --set method=rejection_abc --set seed=2 --out out8
expect_ok
expect_eq "$(state_of out8/run.json simulate)" ran "n change: simulate state"

# graph shows the states; clean removes this recipe's entries.
run graph recipe.lua --set simulations=6000 --set method=rejection_abc --set seed=2
expect_ok
expect_out "cached"
run graph recipe.lua --set simulations=6000 --set method=rejection_abc --set seed=2 --format dot
expect_ok
expect_out "digraph sbirun"
run clean recipe.lua --set simulations=6000 --set method=rejection_abc --set seed=2
expect_ok
expect_err "removed"
run graph recipe.lua --set simulations=6000 --set method=rejection_abc --set seed=2
expect_ok
if grep -q " cached " "$OUT"; then fail "nodes still cached after clean"; fi
no_temp_files .sbirun
finish
