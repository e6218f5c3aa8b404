#!/bin/bash
# replay (issue 9 item 14): interrupted by SIGTERM, SIGHUP or SIGINT, it removes
# its temporary folder ($TMPDIR/sbirun-replay-<pid>-XXXXXX) and dies of
# the signal; a folder left by a replay whose process is gone (SIGKILL) is
# removed by the next replay; a bundle without artifacts fails (nothing to
# compare) without running anything. Signals are sent once the unpacked
# folder is observed, never after a fixed delay.
. "$(dirname "$0")/lib.sh"
own_tmpdir
mkdir proj
# obs is cheap and is what the run caches; slow runs only in replay, which
# runs every step, and takes minutes.
cat > proj/r.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local slow = sbi.simulate { prior = prior, n = 1000000, seed = 1, chunk_size = 100,
  simulator = function(theta, rng)
    local x = 0
    for i = 1, 20000 do x = x + i % 7 end
    return { theta[1] + x * 0 }
  end }
sbi.output { obs = sbi.observation { 0.5 } }
LUA
run bundle proj/r.lua -o empty.tar --compression none
expect_ok
# No artifacts: fails at once.
run replay empty.tar
expect_fail 1
expect_err "the bundle holds no artifacts, so there is nothing to compare"
grep -qF "replaying" "$ERR" && fail "replay ran a bundle without artifacts"
[ -z "$(ls -A "$TMPDIR")" ] || fail "replay left files in TMPDIR: $(ls -A "$TMPDIR")"

run proj/r.lua --quiet --out o0
expect_ok
run bundle proj/r.lua -o b.tar --compression none
expect_ok

# wait_for GLOB: until a path matching GLOB exists (at most 60 s).
wait_for() {
	for _ in $(seq 600); do
		compgen -G "$1" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# Background jobs of a script start with SIGINT ignored, and under nohup
# SIGHUP is ignored too; replay keeps a signal ignored, as it should, so
# the test resets them (env --default-signal, coreutils >= 8.31).
for sig in TERM HUP INT; do
	env --default-signal=HUP,INT "$SBIRUN" replay b.tar >replay.out 2>replay.err &
	pid=$!
	# The cache appears when the session starts running steps.
	wait_for "$TMPDIR/sbirun-replay-$pid-*/cache" || fail "replay never started its run"
	kill -$sig $pid
	wait $pid
	rc=$?
	[ $rc -eq $((128 + $(kill -l $sig))) ] || fail "replay killed by SIG$sig exited $rc: $(cat replay.err)"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "replay interrupted by SIG$sig left $(ls -A "$TMPDIR")"
done

# A folder left by a replay killed with SIGKILL is removed by the next one.
"$SBIRUN" replay b.tar >replay.out 2>replay.err &
pid=$!
wait_for "$TMPDIR/sbirun-replay-$pid-*/cache" || fail "replay never started its run"
child=$(pgrep -P $pid)
[ -n "$child" ] || fail "replay has no child process"
kill -KILL $pid
wait $pid 2>/dev/null
# The child dies with its parent.
for _ in $(seq 600); do alive "$child" || break; sleep 0.1; done
alive "$child" && { fail "the replay's child outlived its parent"; kill -KILL $child; }
stale=$(ls -A "$TMPDIR")
[ -n "$stale" ] || fail "SIGKILL left no folder (the test needs one)"
mkdir "$TMPDIR/sbirun-replay-1-keep" "$TMPDIR/other" # not ours: kept
run replay empty.tar
expect_fail 1
expect_err "removed $TMPDIR/$stale, left by an interrupted replay (process $pid)"
[ -e "$TMPDIR/$stale" ] && fail "the stale replay folder was not removed"
[ -d "$TMPDIR/sbirun-replay-1-keep" ] && [ -d "$TMPDIR/other" ] || fail "replay removed folders that are not stale replays"
finish
