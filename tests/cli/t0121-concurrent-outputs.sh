#!/bin/bash
# Two runs writing into the same output folder at the same time leave the
# files of one of them (outputs and run.json agree), never a mix; run.json
# records the files written (content hashes) and a failed output write.
. "$(dirname "$0")/lib.sh"
cat >recipe.lua <<'LUA'
local sbi = require "sbi"
local tag = sbi.param("tag", 1)
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t, rng) return { t[1] + 0.1 * rng:normal(), t[2] } end,
                            n = 2000, seed = tag }
local obs = sbi.observation { 0.1, 0.2 }
sbi.output { a = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 },
             b = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.2 } }
LUA
files="a.csv a.npy b.csv b.npy"
for tag in 1 2; do
	run recipe.lua --set tag=$tag --cache "cache$tag" --out "ref$tag" --quiet
	expect_ok
done
cmp -s ref1/a.csv ref2/a.csv && fail "the two settings give the same outputs"

# The files of run.json's outputs record match the folder.
for f in $files; do
	expect_eq "$(jget ref1/run.json "[o['files']['$f'] for o in j['outputs'] if '$f' in o['files']][0]")" \
		"$(b2sum -l 256 "ref1/$f" | cut -d' ' -f1)" "run.json hash of $f"
done
expect_eq "$(jget ref1/run.json "j['ok']")" true "run.json ok"

mixed=0
for i in $(seq 30); do
	rm -rf out
	"$SBIRUN" recipe.lua --set tag=1 --cache cache1 --out out --quiet >/dev/null 2>"err1.$i" &
	p1=$!
	"$SBIRUN" recipe.lua --set tag=2 --cache cache2 --out out --quiet >/dev/null 2>"err2.$i" &
	p2=$!
	wait $p1 || fail "try $i: run 1 failed: $(cat "err1.$i")"
	wait $p2 || fail "try $i: run 2 failed: $(cat "err2.$i")"
	tag=$(jget out/run.json "j['params']['tag']")
	for f in $files; do
		if ! cmp -s "out/$f" "ref$tag/$f"; then
			mixed=$((mixed + 1))
			fail "try $i: out/$f is not from the run recorded in run.json (tag $tag)"
		fi
	done
	[ "$mixed" -eq 0 ] || break
done
no_temp_files out

# A failed output write: exit 1, and run.json says which and why.
rm -rf out && mkdir -p out/b.csv
run recipe.lua --cache cache1 --out out --quiet
expect_fail 1
expect_err "cannot write output 'b'"
expect_eq "$(jget out/run.json "j['ok']")" false "run.json ok after a failed write"
jget out/run.json "[o['error'] for o in j['outputs'] if o['name'] == 'b'][0]" | grep -qF "cannot write output 'b'" ||
	fail "run.json does not record the failed write: $(jget out/run.json "j['outputs']")"
finish
