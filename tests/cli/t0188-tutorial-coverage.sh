#!/bin/bash
# The tutorial's --set coverage=N writes coverage.csv (header
# level,coverage,lower,upper, 99 levels) beside the posterior samples, and
# --set max_coverage_deviation=D gates it: exit code 3 when the curve strays
# further, after writing every output. Coverage needs an amortized method;
# the gate needs coverage. Without --set coverage, only method=compare (the
# default; t0183) writes coverage.csv.
. "$(dirname "$0")/lib.sh"

cp "$SRCDIR/recipes/tutorial.lua" .
run tutorial.lua --set method=npe --set simulations=1000 --set num_samples=500 --set coverage=30
expect_ok
f=sbirun-out/tutorial/coverage.csv
expect_eq "$(head -1 "$f")" "level,coverage,lower,upper" "coverage.csv header"
expect_eq "$(awk 'END { print NR }' "$f")" "100" "coverage.csv: 99 levels"
awk -F, 'NR > 1 { if ($1 <= 0 || $1 >= 1 || $2 < 0 || $2 > 1 || $3 > $1 || $4 < $1) bad = 1 } END { exit bad }' "$f" ||
	fail "coverage.csv: a level outside (0, 1), a coverage outside [0, 1] or a band that misses its level"
[ -s sbirun-out/tutorial/posterior_samples.csv ] || fail "posterior_samples.csv written"
expect_out "coverage: expected coverage over 30 tests"
dev=$(jget sbirun-out/tutorial/run.json 'j["diagnostics"][0]["value"]')
in_range "$dev" 0.0001 0.6 "tutorial NPE: max coverage deviation"

# A gate below the deviation: exit 3, outputs written; above it: success. All cached.
rm -f "$f" sbirun-out/tutorial/posterior_samples.csv
run tutorial.lua --set method=npe --set simulations=1000 --set num_samples=500 --set coverage=30 \
	--set max_coverage_deviation=0.0001
expect_fail 3
expect_err "gate failed: coverage (coverage) ="
expect_err "required <= 0.0001"
[ -s "$f" ] && [ -s sbirun-out/tutorial/posterior_samples.csv ] || fail "gate: outputs written before exit 3"
expect_eq "$(ran_nodes sbirun-out/tutorial/run.json)" "0" "gate: nothing re-ran"
run tutorial.lua --set method=npe --set simulations=1000 --set num_samples=500 --set coverage=30 \
	--set max_coverage_deviation=0.9
expect_ok

run tutorial.lua --set method=rejection_abc --set coverage=10
expect_fail 1
expect_err "needs method compare, npe, nle, nre or likelihood (got rejection_abc"
run tutorial.lua --set method=npe --set max_coverage_deviation=0.1
expect_fail 1
expect_err "--set max_coverage_deviation needs --set coverage=N"
finish
