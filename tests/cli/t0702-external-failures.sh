#!/bin/bash
# Each failure of an external program (docs/simulators.md#failures): a
# crash, a hang past the timeout, a malformed answer, a wrong-length answer,
# an "error" line and NaN each give a message naming the simulation and its
# theta, follow on_failure (fail stops the run, drop keeps going with a
# restarted program), and leave a cache that later runs use.
. "$(dirname "$0")/lib.sh"
: "${EXAMPLES:?EXAMPLES must point at the built recipes/examples}"
cp "$EXAMPLES"/gauss_program .

# theta_1 > 2.5 fails: 15 of 2000 prior draws (seed 3); the first is
# simulation 102, in chunk 2. Batches of 16 lines, chunks of 50.
recipe() { # recipe MODE ON_FAILURE
	cat > r.lua <<EOF2
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { command = { "./gauss_program", "--fail", "$1", "--above", "2.5" }, dim = 2,
                            batch = 16, timeout = 0.5 }
local sims = sbi.simulate { prior = prior, simulator = sim, n = 2000, seed = 3, on_failure = "$2", chunk_size = 50 }
sbi.output { sims = sims }
EOF2
}
theta="simulation 102 at theta = (a = 2.529838578349934, b = 0.03959320352016233)"
declare -A msg=(
	[crash]="the program was killed by signal 6 (Aborted) without answering"
	[hang]="the program gave no answer within timeout = 0.5 s and was killed"
	[malformed]='the program'"'"'s answer is not a line of numbers: "oops, not numbers"'
	[length]="the program answered 3 values, expected 2"
	[error]="the program answered: error theta_1 is above the threshold"
	[nan]="the program returned NaN or infinite values"
)
declare -A counts=(
	[crash]="15 errors, 0 NaN/inf, 0 wrong length" [hang]="15 errors, 0 NaN/inf, 0 wrong length"
	[malformed]="15 errors, 0 NaN/inf, 0 wrong length" [length]="0 errors, 0 NaN/inf, 15 wrong length"
	[error]="15 errors, 0 NaN/inf, 0 wrong length" [nan]="0 errors, 15 NaN/inf, 0 wrong length"
)
# With one worker (the default is one per core), the first failing chunk
# and the chunks kept before it are the same on every run.
for mode in crash hang malformed length error nan; do
	recipe $mode fail
	run_within 60 r.lua --jobs 1 --quiet --cache c-$mode --out o-$mode
	expect_fail 1
	expect_err "$theta: ${msg[$mode]}"
	expect_err 'pass on_failure = "drop"'
	no_temp_files c-$mode
	# The cache stays usable: the chunks finished before the failure are
	# kept, and the same run resumes from them and fails the same way.
	run_within 60 r.lua --jobs 1 --cache c-$mode --out o-$mode
	expect_fail 1
	expect_err "resuming: 2 of 40 chunks already done"
	expect_err "$theta: ${msg[$mode]}"
	# on_failure = "drop": the run goes on (a program that died or hung is
	# restarted), the failures are counted and the rest kept.
	recipe $mode drop
	run_within 120 r.lua --quiet --cache c-$mode --out o-$mode
	expect_ok
	expect_err "dropped 15 of 2000 simulations (${counts[$mode]}); first: $theta: ${msg[$mode]}"
	expect_eq "$(($(wc -l <o-$mode/sims.csv) - 1))" 1985 "$mode: rows kept"
	awk -F, 'NR > 1 && $1 > 2.5 { bad = 1 } END { exit !bad }' o-$mode/sims.csv &&
		fail "$mode: a failing theta was kept"
	# ... and a re-run is a cache hit.
	run r.lua --cache c-$mode --out o2-$mode
	expect_ok
	expect_eq "$(state_of o2-$mode/run.json simulate)" "cached" "$mode: re-run after drop"
	cmp -s o-$mode/sims.npy o2-$mode/sims.npy || fail "$mode: cached simulations differ"
done
# The kept simulations are those of a program that never fails, minus the
# failed rows: the restarts do not shift anyone's seed.
cat > ok.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { command = { "./gauss_program" }, dim = 2, batch = 16 }
sbi.output { sims = sbi.simulate { prior = prior, simulator = sim, n = 2000, seed = 3, chunk_size = 500 } }
EOF2
run ok.lua --quiet --out ok
expect_ok
awk -F, 'NR == 1 || $1 <= 2.5' ok/sims.csv >ok-filtered.csv
cmp -s ok-filtered.csv o-crash/sims.csv || fail "crash + drop: the kept simulations differ from a working program's"
cmp -s ok-filtered.csv o-hang/sims.csv || fail "hang + drop: the kept simulations differ from a working program's"
# No program outlives its run.
# (A dying program may take a moment to go: wait for it, up to 10 s.)
for _ in $(seq 100); do pgrep -f "$T/gauss_program" >/dev/null || break; sleep 0.1; done
pgrep -f "$T/gauss_program" >/dev/null && fail "a program outlived its run"
# A hanging program dies with the run when the run is SIGKILLed (it gets
# SIGKILL with its parent), with --jobs 1 and in a worker with --jobs 2.
cat > h.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { command = { "./gauss_program", "--fail", "hang", "--above", "-10" }, dim = 2, timeout = 100 }
sbi.output { s = sbi.simulate { prior = prior, simulator = sim, n = 100, seed = 3, chunk_size = 50 } }
EOF2
for j in 1 2; do
	"$SBIRUN" h.lua --quiet --cache hc --out ho --jobs $j >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 100); do pgrep -f "$T/gauss_program --fail hang" >/dev/null && break; sleep 0.1; done
	pgrep -f "$T/gauss_program --fail hang" >/dev/null || fail "--jobs $j: the hanging program did not start"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	for _ in $(seq 100); do pgrep -f "$T/gauss_program --fail hang" >/dev/null || break; sleep 0.1; done
	pgrep -f "$T/gauss_program --fail hang" >/dev/null && fail "--jobs $j: a hanging program outlived its killed run"
done
# A program that cannot start ends the run with its reason.
cat > noexec.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sim = sbi.simulator { command = { "./gauss_program", "--bogus", "1" }, dim = 1 }
sbi.output { sims = sbi.simulate { prior = prior, simulator = sim, n = 10, seed = 3 } }
EOF2
run noexec.lua --quiet
expect_fail 1
expect_err "the program exited with status 2 without answering"
finish
