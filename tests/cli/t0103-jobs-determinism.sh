#!/bin/bash
# The same recipe and seed give bit-identical artifacts whatever --jobs is,
# and a crashed worker is reported with its parameters without losing chunks.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/tests/cli/slow_recipe.lua" recipe.lua

artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }

for j in 1 2 3; do
	run recipe.lua --set work=10 --set chunk=700 --jobs $j --cache cache$j --out out$j --quiet
	expect_ok
done
expect_eq "$(artifacts out2/run.json)" "$(artifacts out1/run.json)" "--jobs 2 vs 1"
expect_eq "$(artifacts out3/run.json)" "$(artifacts out1/run.json)" "--jobs 3 vs 1"
cmp -s out1/posterior_samples.npy out3/posterior_samples.npy || fail "npy differs between --jobs 1 and 3"

# A worker killed by a signal (as the OOM killer does): reported with the theta it was running.
"$SBIRUN" recipe.lua --jobs 2 --set chunk=5000 --cache crash --out crash >"$T/crash.out" 2>"$T/crash.err" &
pid=$!
sleep 0.7
worker=$(pgrep -P "$pid" | head -1)
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
	fail "no worker process found to crash"
	wait "$pid"
fi
finish
