#!/bin/bash
# A rank killed mid-run (SIGKILL, as the OOM killer or a failed node does)
# ends the MPI run with a clear message; the chunks stored before are kept,
# and a re-run with another number of ranks resumes from them (they are not
# simulated again) to the plain run's result.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpi_lib.sh"
cp "$SRCDIR/tests/cli/mpi_recipe.lua" recipe.lua
args=(--set smc=false --set work=2000 --set n=8000 --set chunk=200)

# rank_pid N: the pid of this test's sbirun process of rank N (from its
# environment; its working folder tells it from other tests' ranks).
rank_pid() {
	local p
	for p in $(pgrep -f "$SBIRUN recipe.lua"); do
		[ "$(readlink "/proc/$p/cwd")" = "$(pwd -P)" ] || continue
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return 0; }
	done
	return 1
}
# Stored chunks: a rank stopped mid-write leaves its temporary file
# (.tmp-*), which is not a chunk (the next run removes it).
chunks() { find cache/objects -type f ! -name '.tmp-*' 2>/dev/null | wc -l; }

mpirun --oversubscribe --bind-to none -n 3 "$SBIRUN" recipe.lua "${args[@]}" --cache cache --out out --quiet \
	>"$T/kill.out" 2>"$T/kill.err" &
pid=$!
# Progress observed: at least 3 chunks stored, then rank 1 is killed.
end=$((SECONDS + 240))
while kill -0 "$pid" 2>/dev/null && [ "$(chunks)" -lt 3 ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.02; done
victim=$(rank_pid 1) || fail "no rank 1 process found"
[ "$(chunks)" -ge 3 ] || fail "no progress observed within 240 s"
[ -n "$victim" ] && kill -KILL "$victim"
wait "$pid"
rc=$?
[ "$rc" -ne 0 ] || fail "the run with a killed rank exited 0"
grep -q "sbirun: error: the MPI job was stopped (a rank died or was killed" "$T/kill.err" ||
	fail "no clear message: $(cat "$T/kill.err")"
grep -q "are stored in the cache: run again (with any number of ranks) to resume" "$T/kill.err" ||
	fail "the message does not say how to resume: $(cat "$T/kill.err")"
kept=$(chunks)
[ "$kept" -ge 3 ] && [ "$kept" -lt 40 ] || fail "expected some of the 40 chunks stored, found $kept"

# Resume on 2 ranks: only the missing chunks run.
mpi_run 2 recipe.lua "${args[@]}" --cache cache --out out
expect_ok
expect_err "resuming: $kept of 40 chunks already done"
expect_eq "$(mpi_sims out/run.json)" "$((8000 - kept * 200))" "simulations run on resume"
run recipe.lua "${args[@]}" --cache plain --out plain --quiet
expect_ok
expect_eq "$(artifacts out/run.json)" "$(artifacts plain/run.json)" "artifacts after resuming"
cmp -s out/rejection.csv plain/rejection.csv || fail "the resumed result differs from a plain run's"
finish
