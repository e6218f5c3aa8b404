#!/bin/bash
# Replay: a bundle re-run from scratch (empty cache, the bundle's --set
# values) reproduces every bundled artifact bit for bit; a bundle made with
# --without simulations replays too and regenerates them; a bundle whose
# artifact differs from what its recipe produces fails; the temporary folder
# is removed in every case.
. "$(dirname "$0")/lib.sh"
own_tmpdir
abc_helper_recipe "chunk_size = 500,"

no_replay_left() {
	[ -z "$(ls -A "$TMPDIR")" ] || fail "replay left files in TMPDIR: $(ls -A "$TMPDIR")"
}

run recipe.lua --set simulations=3000 --out out1 --quiet
expect_ok

# Usage errors.
run replay
expect_fail 2
expect_err "no bundle file given"
run replay b.tar --set simulations=1
expect_fail 2
expect_err "--set and --cache cannot be given"

# Round trip: identical.
run bundle recipe.lua --set simulations=3000 -o b.sbi.tar.zst
expect_ok
run replay b.sbi.tar.zst --out out2
expect_ok
expect_out "simulate           identical"
expect_out "observation        identical"
expect_out "abc.rejection      identical"
expect_err "all 3 bundled artifacts reproduced bit for bit"
expect_err "3 nodes ran, 0 cache hits"
expect_err "runs restricted"
cmp -s out1/posterior_samples.csv out2/posterior_samples.csv || fail "replay gives other samples"
expect_eq "$(ran_nodes out2/run.json)" 3 "replay: nodes ran"
no_replay_left

# An observation file given with --set from outside the recipe's folder.
printf '0.1,0.1\n' > other.csv
run recipe.lua --set simulations=3000 --set observation="$T/other.csv" --quiet
expect_ok
run bundle recipe.lua --set simulations=3000 --set observation="$T/other.csv" -o ext.tar --compression none
expect_ok
run replay ext.tar --quiet
expect_ok
expect_out "abc.rejection      identical"
no_replay_left

# --without simulations: the simulations are not in the bundle, are
# regenerated, and the later steps are still identical.
run bundle recipe.lua --set simulations=3000 -o small.tar --compression none --without simulations
expect_ok
run replay small.tar --quiet
expect_ok
expect_out "simulate           not in bundle"
expect_out "abc.rejection      identical"
expect_err "all 2 bundled artifacts reproduced bit for bit"
no_replay_left

# A recipe that does not reproduce: it reads the environment (os.getenv,
# allowed while the recipe loads, refused in a simulator), so the bundle,
# made with SHIFT=1, verifies but does not replay without it. The steps
# after it differ too; exit 1.
cat > envrecipe.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local shift = tonumber(os.getenv("SHIFT")) or 0
local sims = sbi.simulate { prior = prior, n = 500, seed = 2,
  simulator = function(theta, rng) return { theta[1] + shift + rng:normal() } end }
sbi.output { post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.5 }, quantile = 0.1 } }
LUA
SHIFT=1 "$SBIRUN" envrecipe.lua --quiet >/dev/null 2>&1 || fail "envrecipe.lua failed"
SHIFT=1 "$SBIRUN" bundle envrecipe.lua -o env.tar --compression none 2>/dev/null || fail "bundle of envrecipe.lua failed"
run verify env.tar
expect_ok
run replay env.tar --quiet
expect_fail 1
expect_err "os.getenv is not available to a recipe from a bundle"
run replay env.tar --quiet --trust
expect_fail 1
expect_out "simulate           differs"
expect_out "observation        identical"
expect_err "2 of 3 bundled artifacts were not reproduced"
no_replay_left
# A bundle made by a build with another stdlib (here: the same stdlib with a
# comment added, so every key differs but no value does) replays as
# identical contents under other keys, and says so.
mkdir stdlib2
cp -r "$SRCDIR/stdlib/sbi" stdlib2/
printf -- '-- another build\n' >> stdlib2/sbi/abc.lua
SBI_STDLIB_DIR="$PWD/stdlib2" "$SBIRUN" recipe.lua --cache c2 --out o2 --quiet >/dev/null 2>&1 || fail "run with stdlib2 failed"
SBI_STDLIB_DIR="$PWD/stdlib2" "$SBIRUN" bundle recipe.lua --cache c2 -o other.tar --compression none >/dev/null 2>&1 ||
	fail "bundle with stdlib2 failed"
run replay other.tar --quiet
expect_ok
expect_out "(its key differs from the bundle's)"
expect_err "reproduced bit for bit ("
expect_err "under another key"
grep -q "differs  " "$OUT" && fail "a step with the same values under another key is reported as differing: $(cat "$OUT")"
no_replay_left
run replay no-such.tar
expect_fail 1
no_replay_left
finish
