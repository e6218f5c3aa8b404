#!/bin/bash
# Diagnostics' test points and ensemble members over MPI ranks: an NPE
# with expected coverage and SBC (48 test points) and an SNPE whose
# "uncertainty" acquisition trains an ensemble of 3 flows in each of its 2
# rounds, and an SNRE with an ensemble of 2 classifiers, run plain and on 1, 2 and 3 ranks (oversubscribed) and on 2
# ranks with --jobs 2: byte-identical artifacts and output files;
# run.json's "mpi" counts every test point and every trained network
# once, and ranks other than 0 did some of both. A member that fails on
# another rank fails the run with a single process's message.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"
cp "$SRCDIR/tests/cli/mpi_tasks_recipe.lua" recipe.lua

# rank_sum FILE FIELD [RANKS]: FIELD summed over the ranks of run.json FILE
# whose number matches the awk regex RANKS (default: all).
rank_sum() {
	awk -v f="\"$2\"" -v want="${3:-.}" '/"per_rank"/ { on = 1 } on && /"rank":/ { gsub(/,/, "", $2); r = $2 }
		on && $1 == f ":" && r ~ want { gsub(/,/, "", $2); s += $2 } END { print s + 0 }' "$1"
}

run recipe.lua --cache c0 --out o0 --quiet
expect_ok
grep -q '"mpi"' o0/run.json && fail "a plain run's run.json has an mpi entry"
[ "$(artifacts o0/run.json | wc -l)" -ge 8 ] || fail "too few artifacts in the plain run"
for v in "1" "2" "3" "2 --jobs 2"; do
	set -- $v
	n=$1
	shift
	tag="$n${1:+j}"
	mpi_run "$n" recipe.lua --cache "c$tag" --out "o$tag" --quiet "$@"
	expect_ok
	expect_eq "$(artifacts "o$tag/run.json")" "$(artifacts o0/run.json)" "artifacts with $n ranks $*"
	for f in npe snpe snre coverage sbc; do
		for e in csv npy; do
			cmp -s "o0/$f.$e" "o$tag/$f.$e" || fail "$f.$e differs with $n ranks $*"
		done
	done
	# One test-point step of 48 points (coverage and SBC share it); 11
	# networks: NPE's flow, 3 in each of SNPE's 2 rounds, 2 in SNRE's.
	expect_eq "$(rank_sum "o$tag/run.json" test_points)" 48 "test points over the ranks ($n ranks $*)"
	expect_eq "$(rank_sum "o$tag/run.json" models_trained)" 11 "networks trained over the ranks ($n ranks $*)"
	if [ "$n" -ge 2 ]; then
		for r in $(seq 1 $((n - 1))); do
			[ "$(rank_sum "o$tag/run.json" test_points "^$r\$")" -ge 1 ] ||
				fail "rank $r did no test point ($n ranks $*): $(grep -A60 '"mpi"' "o$tag/run.json")"
			[ "$(rank_sum "o$tag/run.json" models_trained "^$r\$")" -ge 1 ] ||
				fail "rank $r trained no network ($n ranks $*): $(grep -A60 '"mpi"' "o$tag/run.json")"
		done
	fi
done

# A network that fails to train on another rank fails the step with the
# message of the lowest failing member, as in a single process (here every
# member fails: too few validation rows; member 1 goes to rank 1 first).
sed 's/max_epochs = 20, num_samples = 200 }/max_epochs = 20, num_samples = 200, validation_fraction = 0.001 }/' \
	recipe.lua > failing.lua
grep -q 'validation_fraction' failing.lua || fail "the failing recipe was not made"
run failing.lua --cache f0 --out f0 --quiet
expect_fail
msg=$(grep 'sbirun: error' "$ERR")
expect_eq "$msg" "sbirun: error: snpe.train (failing.lua:18, round 0): need at least 2 rows and a validation fraction that leaves rows on both sides (300 rows, fraction 0.001)" "the plain run's error"
mpi_run 3 failing.lua --cache f3 --out f3 --quiet
expect_fail
expect_eq "$(grep 'sbirun: error' "$ERR")" "$msg" "the error on 3 ranks"
finish
