#!/bin/bash
# The same recipe and seed give bit-identical artifacts whatever --jobs is,
# no chunk outlives the complete step, and a crashed worker is reported with its parameters without losing chunks.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/tests/cli/slow_recipe.lua" recipe.lua

artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }

for j in 1 2 3; do
	run recipe.lua --set work=10 --set chunk=700 --jobs $j --cache cache$j --out out$j --quiet
	expect_ok
	# The chunks the workers stored are dropped with the step's artifact.
	expect_eq "$(refs_count cache$j) $(find cache$j/objects -type f | wc -l)" "3 3" "entries after --jobs $j"
done
expect_eq "$(artifacts out2/run.json)" "$(artifacts out1/run.json)" "--jobs 2 vs 1"
expect_eq "$(artifacts out3/run.json)" "$(artifacts out1/run.json)" "--jobs 3 vs 1"
cmp -s out1/posterior_samples.npy out3/posterior_samples.npy || fail "npy differs between --jobs 1 and 3"

# A worker killed by a signal (as the OOM killer does): reported with the theta it was running.
# busy_worker PID: prints a worker (a child of PID) that has used at least two
# clock ticks of CPU, so it is inside its chunk's simulations (a chunk of 5000
# takes far longer), whatever the machine's speed.
busy_worker() {
	local c t
	for c in $(pgrep -P "$1"); do
		t=$(sed 's/.*) //' "/proc/$c/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		[ "${t:-0}" -ge 2 ] && { echo "$c"; return 0; }
	done
	return 1
}
"$SBIRUN" recipe.lua --jobs 2 --set chunk=5000 --cache crash --out crash >"$T/crash.out" 2>"$T/crash.err" &
pid=$!
worker="" end=$((SECONDS + 240))
while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do
	worker=$(busy_worker "$pid") && break
	sleep 0.01
done
if [ -n "$worker" ]; then
	kill -KILL "$worker"
	wait "$pid"
	rc=$?
	[ "$rc" -ne 0 ] || fail "run with a crashed worker exited 0"
	grep -q "killed by signal 9" "$T/crash.err" || fail "no signal report: $(cat "$T/crash.err")"
	grep -q "theta = (" "$T/crash.err" || fail "no theta in the crash report: $(cat "$T/crash.err")"
	run recipe.lua --jobs 2 --set chunk=5000 --cache crash --out crash --quiet
	expect_ok
	run recipe.lua --set chunk=5000 --cache clean --out clean --quiet
	expect_ok
	cmp -s crash/posterior_samples.csv clean/posterior_samples.csv || fail "result after a worker crash differs"
else
	fail "no busy worker process was seen before the run ended (or within 240 s)"
	kill -9 "$pid" 2>/dev/null
	wait "$pid"
fi
finish
