#!/bin/bash
# Sequential inference (sbi.snpe) killed with SIGKILL during a late round's
# simulations, or during its training, resumes from the cached steps and
# chunks and writes byte-identical posterior samples, with --jobs 1 and 2;
# raising `rounds` runs only the new rounds and the final sampling.
. "$(dirname "$0")/lib.sh"

# A slow simulator (a busy loop; about 0.5-0.8 s a round of 200 on one
# core) in chunks of 10, so that round 4's chunks reach the cache one by
# one; the training runs every epoch (patience above max_epochs), 1-2 s in
# round 4 (1000 simulations), so a kill lands inside it (the test polls
# every 20 ms and checks that the killed step had not finished).
cat > seq.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -2, -2 }, high = { 2, 2 } }
local work = sbi.param("work", 50000)
local function simulator(theta, rng)
  local s = 0
  for k = 1, work do s = s + math.sin(k * theta[1]) end
  return { theta[1] + 0.2 * rng:normal() + 1e-12 * s, theta[2] + 0.2 * rng:normal() }
end
local post = sbi.snpe { prior = prior, simulator = simulator, observation = sbi.observation { 0.5, -0.3 },
  rounds = sbi.param("rounds", 5), simulations_per_round = 200, chunk_size = 10, seed = 5,
  hidden = 20, transforms = 2, max_epochs = 200, patience = 1000, num_samples = 500 }
sbi.output { posterior_samples = post }
LUA
# Under the sanitizers training is 3-4 times slower: 70 epochs keep round
# 4's training as long as 200 do in the normal build.
if sanitized; then
	sed -i 's/max_epochs = 200/max_epochs = 70/' seq.lua
	grep -q 'max_epochs = 70' seq.lua || fail "seq.lua: no max_epochs = 200 to lower"
fi
SIM4="running simulate (seq.lua:9, round 4)"
TRAIN4="running snpe.train (seq.lua:9, round 4)"

# Rounds 0-3 run once: every run below starts from a copy of this cache
# (raising rounds re-uses the completed rounds), so it runs round 4 only.
run seq.lua --cache base --out base-out --quiet --set rounds=4
expect_ok
expect_eq "$(ran_nodes base-out/run.json)" 13 "steps of 4 rounds (3 propose, 4 simulate, 4 train, sample, observation)"
# Reference: round 4 uninterrupted.
cp -r base ref-cache
run seq.lua --cache ref-cache --out ref --quiet --jobs 2
expect_ok
expect_eq "$(ran_nodes ref/run.json)" 4 "steps of round 4 after rounds 0-3 (propose, simulate, train, sample)"

# wait_log LOG TEXT PID: polls until LOG contains TEXT while PID runs.
wait_log() {
	local end=$((SECONDS + 240))
	until grep -qF -- "$2" "$1" 2>/dev/null; do
		if ! alive "$3"; then
			fail "process $3 ended before '$2' appeared in its stderr"
			return 1
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			fail "'$2' did not appear in 240 s"
			return 1
		fi
		sleep 0.02
	done
}

# start_bg CACHE JOBS LOG: sbirun seq.lua in the background; sets $pid.
start_bg() {
	"$SBIRUN" seq.lua --cache "$1" --out "out-$1" --jobs "$2" >/dev/null 2>"$3" &
	pid=$!
}

kill_now() {
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

for jobs in 1 2; do
	# (1) killed once round 4's simulate step has stored a chunk: the
	# re-run reuses rounds 0-3 and the chunks, and completes.
	c=sim$jobs
	cp -r base "$c"
	start_bg "$c" "$jobs" "$c.log"
	if wait_log "$c.log" "$SIM4" "$pid"; then
		wait_refs "$c" $(($(refs_count "$c") + 1)) "$pid"
	fi
	kill_now
	grep -q 'round 4): 200 simulations in' "$c.log" &&
		fail "jobs $jobs: round 4's simulations completed before the kill"
	run seq.lua --cache "$c" --out "out-$c" --jobs "$jobs"
	expect_ok
	expect_err "simulate (seq.lua:9, round 4): resuming:"
	grep -q '^running .*round [0-3])' "$ERR" && fail "jobs $jobs: rounds 0-3 ran again after the kill in round 4"
	cmp -s "out-$c/posterior_samples.csv" ref/posterior_samples.csv ||
		fail "jobs $jobs: posterior differs after a kill during round 4's simulations"
	no_temp_files "$c"

	# (2) killed during round 4's training: the re-run trains round 4 again.
	c=train$jobs
	cp -r base "$c"
	start_bg "$c" "$jobs" "$c.log"
	wait_log "$c.log" "$TRAIN4" "$pid"
	kill_now
	grep -q 'round 4): maf' "$c.log" && fail "jobs $jobs: round 4's training completed before the kill"
	run seq.lua --cache "$c" --out "out-$c" --jobs "$jobs"
	expect_ok
	expect_eq "$(grep '^running ' "$ERR" | sed 's/ (.*//' | tr '\n' ' ')" "running snpe.train running snpe.sample " \
		"jobs $jobs: steps run after a kill during round 4's training"
	cmp -s "out-$c/posterior_samples.csv" ref/posterior_samples.csv ||
		fail "jobs $jobs: posterior differs after a kill during round 4's training"
	no_temp_files "$c"
done

# Raising rounds from 5 to 7 with the same per-round budget: only rounds 5
# and 6 (propose, simulate, train) and the final sampling run.
run seq.lua --cache ref-cache --out more --set rounds=7
expect_ok
expect_eq "$(grep '^running ' "$ERR" | sed 's/^running //' | tr '\n' ';')" \
	"snpe.propose (seq.lua:9, round 5);simulate (seq.lua:9, round 5);snpe.train (seq.lua:9, round 5);snpe.propose (seq.lua:9, round 6);simulate (seq.lua:9, round 6);snpe.train (seq.lua:9, round 6);snpe.sample (seq.lua:9);" \
	"steps run by rounds=7 after rounds=5"
expect_err "7 nodes ran, "
expect_eq "$(ran_nodes more/run.json)" 7 "run.json's nodes_ran with rounds=7"
finish
