#!/bin/bash
# The tutorial's sequential methods (--set method=snpe|tsnpe|snle|snre and
# smc_abc) run on a tiny budget (2 rounds of 200 simulations, at most 30
# epochs a round: the plumbing, not the accuracy, t0163's subject) and write
# their posterior samples; `sbirun graph` lists every round's steps,
# labelled with their round, all cached after the run.
. "$(dirname "$0")/lib.sh"
# The line of the tutorial's sequential call (labels name it).
line=$(grep -n 'posterior = sbi\[method == "tsnpe"' "$SRCDIR/recipes/tutorial.lua" | cut -d: -f1)
smc_line=$(grep -n 'posterior = sbi.abc.smc {' "$SRCDIR/recipes/tutorial.lua" | cut -d: -f1)
[ -n "$line" ] && [ -n "$smc_line" ] || fail "the tutorial's sequential calls were not found"
cp "$SRCDIR/recipes/tutorial.lua" tutorial.lua
TINY=(--set rounds=2 --set simulations=400 --set num_samples=200 --set max_epochs=30)

# samples_ok WHAT: the run wrote 200 samples of the 5 parameters.
samples_ok() {
	local f=sbirun-out/tutorial/posterior_samples.csv
	expect_eq "$(wc -l < "$f" 2>/dev/null)" 201 "$1: lines of posterior_samples.csv"
	expect_eq "$(head -1 "$f" 2>/dev/null)" "l,m,s,a,b" "$1: header of posterior_samples.csv"
}

# graph_has KIND LABEL: `sbirun graph`'s last output lists a cached step of
# KIND labelled LABEL (after the file:line).
graph_has() {
	awk -v kind="$1" -v label="$2" '$2 == kind && $4 == "cached" && index($0, label) { found = 1 }
		END { exit !found }' "$OUT" || fail "graph has no cached $1 step labelled '$2': $(cat "$OUT")"
}

for m in snpe tsnpe snle snre; do
	run tutorial.lua --set method=$m "${TINY[@]}" --jobs 2
	expect_ok
	samples_ok "$m"
	expect_err "$m.propose (tutorial.lua:$line, round 1): 200 theta"
	expect_err "simulate (tutorial.lua:$line, round 1): 200 simulations in"
	[ $m != tsnpe ] || expect_err "tsnpe.propose (tutorial.lua:$line, round 1): truncated prior"
	run graph tutorial.lua --set method=$m "${TINY[@]}"
	expect_ok
	expect_eq "$(grep -c ' cached ' "$OUT")" 7 "$m: cached steps in the graph"
	graph_has simulate "tutorial.lua:$line, round 0)"
	graph_has "$m.train" "tutorial.lua:$line, round 0)"
	graph_has "$m.propose" "tutorial.lua:$line, round 1)"
	graph_has simulate "tutorial.lua:$line, round 1)"
	graph_has "$m.train" "tutorial.lua:$line, round 1)"
	graph_has "$m.sample" "$m.sample (tutorial.lua:$line)"
done

# An acquisition from the command line: "uncertainty" trains an ensemble.
run tutorial.lua --set method=snpe --set acquisition=uncertainty "${TINY[@]}" --jobs 2
expect_ok
samples_ok "snpe, uncertainty"
expect_err "snpe.propose (tutorial.lua:$line, round 1): 200 theta (uncertainty)"

# SMC-ABC: populations of 200 (the default 10,000 is above this budget);
# max_epochs is named as not applying to it.
SMC=(--set rounds=2 --set simulations=400 --set num_samples=200)
run tutorial.lua --set method=smc_abc "${SMC[@]}" --set max_epochs=30
expect_fail
expect_err "--set max_epochs=30: applies to methods compare, npe, nle, nre, snpe, tsnpe, snle and snre (got smc_abc)"
run tutorial.lua --set method=smc_abc "${SMC[@]}" --set sims_per_population=200 --jobs 2
expect_ok
samples_ok "smc_abc"
run graph tutorial.lua --set method=smc_abc "${SMC[@]}" --set sims_per_population=200
expect_ok
graph_has abc.smc.population "tutorial.lua:$smc_line, population 0)"
graph_has abc.smc.propose "tutorial.lua:$smc_line, population 1)"
graph_has simulate "tutorial.lua:$smc_line, population 1)"
graph_has abc.smc.population "tutorial.lua:$smc_line, population 1)"
graph_has abc.smc "abc.smc (tutorial.lua:$smc_line)"
finish
