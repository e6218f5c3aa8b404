#!/bin/bash
# The numeric helpers of lib.sh fail on NaN, infinities, empty and non-numeric
# values (awk would read them as numbers and let a broken result pass) and
# pass on good values; wait_refs fails when the process ends first.
. "$(dirname "$0")/lib.sh"

# fails_of CMD...: the number of failures CMD records, run in a subshell so
# the test's own FAILS is untouched.
fails_of() {
	(FAILS=0; "$@" 2>/dev/null; echo "$FAILS")
}

# must_fail CMD...: CMD records exactly one failure; must_pass: none.
must_fail() { expect_eq "$(fails_of "$@")" 1 "$* (should fail)"; }
must_pass() { expect_eq "$(fails_of "$@")" 0 "$* (should pass)"; }

for bad in nan -nan NaN inf -inf +inf infinity "" " " abc 1,5 "1 2" 0x10 1e; do
	must_fail within "$bad" 0 1e9 "value"
	must_fail within 0 "$bad" 1e9 "expected"
	must_fail within 0 0 "$bad" "tolerance"
	must_fail in_range "$bad" -1e9 1e9 "value"
	must_fail in_range 0 "$bad" 1e9 "low"
	must_fail in_range 0 -1e9 "$bad" "high"
done
must_pass within 0.8 0.8 0 "equal"
must_pass within 0.83 0.8 0.05 "close"
must_pass within -0.2632 -0.25 0.05 "negative"
must_pass within 1e-3 0 0.01 "exponent"
must_pass within .5 +0.5 0 "leading dot and sign"
must_fail within 0.9 0.8 0.05 "too far"
must_fail within -0.8 0.8 0.05 "wrong sign"
must_pass in_range 0.7 0.55 0.90 "inside"
must_pass in_range 0.55 0.55 0.90 "on the edge"
must_fail in_range 0.5 0.55 0.90 "below"
must_fail in_range 1 0.55 0.90 "above"

# col_stats: good columns give the mean and sd; a header-only file, a
# missing column and NaN/inf/empty cells give values `within` rejects.
printf 'a,b\n1,10\n2,20\n3,30\n' > good.csv
expect_eq "$(col_stats good.csv 1)" "2.000000 0.816497" "col_stats column 1"
expect_eq "$(col_stats good.csv 2)" "20.000000 8.164966" "col_stats column 2"
printf 'a,b\n' > header.csv
printf 'a,b\n1,nan\n2,3\n' > nan.csv
printf 'a,b\n1,inf\n2,3\n' > inf.csv
printf 'a,b\n1,-nan\n2,3\n' > mnan.csv
printf 'a,b\n1,\n2,3\n' > empty.csv
: > nothing.csv
for spec in "header.csv 1" "nan.csv 2" "inf.csv 2" "mnan.csv 2" "empty.csv 2" "nothing.csv 1" "good.csv 3"; do
	# shellcheck disable=SC2086 # FILE COL
	read -r m s <<<"$(col_stats $spec 2>/dev/null)"
	must_fail within "$m" 0 1e9 "col_stats $spec mean"
	must_fail within "$s" 0 1e9 "col_stats $spec sd"
done
read -r m s <<<"$(col_stats good.csv 1)"
must_pass within "$m" 2 1e-9 "col_stats mean"

# wait_refs: passes once the refs exist, fails when the process has ended.
mkdir -p c/refs/ab
touch c/refs/ab/0123 c/refs/ab/.tmp-x
sleep 30 &
sleeper=$!
must_pass wait_refs c 1 "$sleeper"
kill "$sleeper"
wait "$sleeper" 2>/dev/null
must_fail wait_refs c 2 "$sleeper"
expect_eq "$(refs_count c)" 1 "refs_count ignores temporary files"
finish
