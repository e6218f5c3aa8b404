#!/bin/bash
# mpirun -n N sbirun RECIPE: 1, 2 and 3 ranks (oversubscribed), and 2 ranks
# with --jobs 2 each, give byte-identical artifacts and output files to a
# plain run; every rank did some of the work (run.json's "mpi"); a
# simulator error on any rank is reported with its theta; a rank whose
# recipe differs refuses the work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"
cp "$SRCDIR/tests/cli/mpi_recipe.lua" recipe.lua

run recipe.lua --cache c0 --out o0 --quiet
expect_ok
grep -q '"mpi"' o0/run.json && fail "a plain run's run.json has an mpi entry"
[ "$(artifacts o0/run.json | wc -l)" -ge 6 ] || fail "too few artifacts in the plain run"
for v in "1" "2" "3" "2 --jobs 2"; do
	set -- $v
	n=$1
	shift
	tag="$n${1:+j}"
	mpi_run "$n" recipe.lua --cache "c$tag" --out "o$tag" --quiet "$@"
	expect_ok
	expect_eq "$(artifacts "o$tag/run.json")" "$(artifacts o0/run.json)" "artifacts with $n ranks $*"
	for f in rejection.csv smc.csv rejection.npy smc.npy; do
		[ -f "o0/$f" ] || continue
		cmp -s "o0/$f" "o$tag/$f" || fail "$f differs with $n ranks $*"
	done
	expect_eq "$(grep -o '"ranks": [0-9]*' "o$tag/run.json")" "\"ranks\": $n" "ranks in run.json"
	# 6000 prior simulations + 3 populations of 12000: every simulation ran once.
	expect_eq "$(mpi_sims "o$tag/run.json")" "42000" "simulations over the ranks ($n ranks $*)"
done
# With 3 ranks, the others ran chunks too (dynamic: how many each ran may vary).
awk '/"rank": [12]/ { r = 1 } r && /"chunks"/ { gsub(/,/, "", $2); if ($2 + 0 < 1) bad = 1; r = 0 } END { exit bad }' \
	o3/run.json || fail "a rank ran no chunk: $(grep -A40 '"mpi"' o3/run.json)"

# A simulator error on another rank: the run fails with the step, a
# failing simulation and its theta, as in a single process (which one
# depends on which chunk fails first, as with --jobs).
sed 's/return { 0 \/ 0, 0 }/error("boom")/; s/on_failure = "drop"/on_failure = "fail"/' recipe.lua > failing.lua
run failing.lua --set smc=false --cache f0 --out f0 --quiet
expect_fail
grep -q 'simulation [0-9]* at theta = (a = ' "$ERR" || fail "no failing theta in the single-process error: $(cat "$ERR")"
mpi_run 3 failing.lua --set smc=false --cache f3 --out f3 --quiet
expect_fail
expect_err "boom"
grep -q 'simulate (failing.lua:[0-9]*): simulation [0-9]* at theta = (a = ' "$ERR" ||
	fail "no step, simulation and theta in the MPI error: $(cat "$ERR")"
grep -q 'sbirun: error' "$ERR" || fail "no sbirun error line: $(cat "$ERR")"
mpi_run 2 failing.lua --set smc=false --cache f2 --out f2 --quiet --jobs 2
expect_fail
grep -q 'simulate (failing.lua:[0-9]*): simulation [0-9]* at theta = (a = .*boom' "$ERR" ||
	fail "no step, simulation and theta in the MPI error with --jobs 2: $(cat "$ERR")"

# A rank whose recipe loaded differently (here another --set value) refuses
# the job, and the run says why.
OUT="$T/mpmd.out" ERR="$T/mpmd.err"
timeout 600 mpirun --oversubscribe --bind-to none -n 1 "$SBIRUN" recipe.lua --set smc=false --cache d --out d --quiet : \
	-n 1 "$SBIRUN" recipe.lua --set smc=false --set n=7000 --cache d --out d --quiet >"$OUT" 2>"$ERR"
RC=$?
expect_fail
expect_err "rank 1 cannot run this step: the recipe loaded differently on this rank"
finish
