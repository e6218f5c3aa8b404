#!/bin/bash
# A flipped byte or a truncation in a cached artifact is detected, reported
# and recomputed, with results identical to the original.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" recipe.lua

object_path() { echo ".sbirun/objects/${1:0:2}/${1:2}"; }
flip() { # flip FILE OFFSET
	printf "$(printf '\\%03o' $(( $(od -An -tu1 -j "$2" -N1 "$1") ^ 64 )))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

run recipe.lua --set simulations=4000 --set method=rejection_abc --out ref --quiet
expect_ok
abc=$(artifact_of ref/run.json abc.rejection)
sim=$(artifact_of ref/run.json simulate)

# Flip a byte in the middle of the posterior artifact.
f=$(object_path "$abc")
flip "$f" $(( $(stat -c %s "$f") / 2 ))
run recipe.lua --set simulations=4000 --set method=rejection_abc --out out1
expect_ok
expect_err "corrupt"
expect_eq "$(state_of out1/run.json abc.rejection)" ran "abc after corruption"
expect_eq "$(state_of out1/run.json simulate)" cached "simulate after abc corruption"
cmp -s out1/posterior_samples.csv ref/posterior_samples.csv || fail "recomputed posterior differs"

# Truncate the simulations; an ABC edit needs them: detected, recomputed from chunks.
f=$(object_path "$sim")
truncate -s $(( $(stat -c %s "$f") - 100 )) "$f"
run recipe.lua --set simulations=4000 --set method=rejection_abc --set epsilon_quantile=0.02 --out out2
expect_ok
expect_err "corrupt"
expect_eq "$(state_of out2/run.json simulate)" ran "simulate after truncation"
expect_eq "$(artifact_of out2/run.json simulate)" "$sim" "recomputed simulations"
no_temp_files .sbirun
finish
