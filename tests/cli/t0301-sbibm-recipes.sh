#!/bin/bash
# The sbibm recipes (recipes/sbibm/*.lua) run from a plain copy of recipes/
# (no ../shared beside it: their observations and simulator constants ship
# in recipes/sbibm/data) on small budgets and write the expected posterior
# samples; the shipped data is complete; gaussian_linear's simulator is
# checked against the analytic posterior mean; bad --set values fail with
# clear messages.
. "$(dirname "$0")/lib.sh"
# A clone's recipes/, alone in a fresh folder: nothing beside it to fall back on.
mkdir clone
cp -R "$SRCDIR/recipes" clone/recipes
R=$T/clone/recipes/sbibm
DATA=$R/data

# The shipped data: ten observations and true parameters per task (one
# header line and one row each), the simulator constants, the license.
for task in gaussian_linear gaussian_linear_uniform slcp slcp_distractors bernoulli_glm \
	bernoulli_glm_raw gaussian_mixture two_moons sir lotka_volterra; do
	for n in $(seq 10); do
		for f in observation true_parameters; do
			file=$DATA/$task/obs$n/$f.csv
			[ "$(awk 'END { print NR }' "$file" 2>/dev/null)" = 2 ] || fail "$file: missing or not 2 lines"
		done
	done
done
for f in bernoulli_glm/simulator_data/design_matrix.csv bernoulli_glm/simulator_data/prior_precision.csv \
	slcp_distractors/simulator_data/gmm_loc.csv slcp_distractors/simulator_data/gmm_scale_tril.csv \
	slcp_distractors/simulator_data/permutation_idx.csv LICENSE-sbibm README.md; do
	[ -s "$DATA/$f" ] || fail "$DATA/$f missing"
done
# Small enough for the repository: no reference posteriors (65 MB) in it.
size=$(du -sk --apparent-size "$DATA" | awk '{ print $1 }')
in_range "$size" 1 4096 "size of recipes/sbibm/data in KB"
if find "$DATA" -name 'reference_posterior*' | grep -q .; then
	fail "reference posteriors in recipes/sbibm/data: they belong to the benchmarks"
fi

# check_samples FILE ROWS COLS LOW HIGH: FILE has a header of COLS names and
# ROWS rows of COLS finite numbers in [LOW, HIGH].
check_samples() {
	local bad
	[ -f "$1" ] || { fail "$1 missing"; return; }
	expect_eq "$(awk 'END { print NR - 1 }' "$1")" "$2" "$1: data rows"
	expect_eq "$(head -1 "$1" | awk -F, '{ print NF }')" "$3" "$1: header columns"
	bad=$(awk -F, -v d="$3" -v lo="$4" -v hi="$5" '
		NR > 1 { if (NF != d) { n++; next }
		         for (i = 1; i <= NF; i++) { v = $i + 0; if ($i !~ /^-?[0-9]/ || v < lo || v > hi) { n++; next } } }
		END { print n + 0 }' "$1")
	expect_eq "$bad" 0 "$1: rows with a wrong length or a value outside [$4, $5]"
}

# Every recipe, 2000 simulations, 500 samples; run from the copy's root with
# a relative recipe path (the observation is found beside the recipe).
cd "$T/clone" || exit 1
for spec in "gaussian_linear 10 -1e9 1e9" "two_moons 2 -1 1" "slcp 5 -3 3" "gaussian_mixture 2 -10 10" \
	"gaussian_linear_uniform 10 -1 1" "slcp_distractors 5 -3 3" "bernoulli_glm 10 -1e9 1e9" \
	"bernoulli_glm_raw 10 -1e9 1e9" "sir 2 0 1e9" "lotka_volterra 4 0 1e9"; do
	# shellcheck disable=SC2086 # split the spec into its fields
	set -- $spec
	run "recipes/sbibm/$1.lua" --cache "$T/cache" --out "$T/$1" --set simulations=2000 --set num_samples=500
	expect_ok
	expect_out "posterior_samples: 500 samples (rejection ABC, 100 of "
	check_samples "$T/$1/posterior_samples.csv" 500 "$2" "$3" "$4"
done
# Observation 10.
run recipes/sbibm/two_moons.lua --cache "$T/cache" --out "$T/tm10" --set simulations=2000 --set num_samples=500 \
	--set observation=10
expect_ok
check_samples "$T/tm10/posterior_samples.csv" 500 2 -1 1
cd "$T" || exit 1

# gaussian_linear, observation 1: the exact posterior mean is x_obs/2. With
# 10^5 simulations rejection ABC keeps the 100 nearest in a 10-D ball
# (radius ~2.2 standard deviations), which pulls the mean toward the prior
# mean 0: the mean of theta1 comes out at 0.63-0.72 of x_obs[1]/2 over seeds
# 1-8 (0.72 with seed 1; an independent NumPy rejection ABC gives 0.61-0.74).
# Broken simulators, seed 1, fall outside [0.55, 0.90]: noise sd 0.1 instead
# of sqrt(0.1) 1.11, prior std 1 1.44, x = theta/2 + noise 0.51, noise sd 1
# 0.15, prior std 0.1 0.11, x_i = theta_(i+1) 0.15, x ignoring theta -0.19,
# x = -theta + noise -0.68.
run "$R/gaussian_linear.lua" --cache cache --out gl --set observation=1 --set simulations=100000 \
	--set num_samples=2000
expect_ok
ratio=$(awk -F, 'NR == FNR { if (FNR == 2) x = $1; next } FNR > 1 { s += $1; n++ }
	END { if (n > 0 && x != 0) printf "%.3f", (s / n) / (x / 2) }' "$DATA/gaussian_linear/obs1/observation.csv" \
	gl/posterior_samples.csv)
in_range "$ratio" 0.55 0.90 "gaussian_linear obs1: posterior mean of theta1 / (x_obs[1]/2)"

# The same observation given as a path, from another directory.
run "$R/gaussian_linear.lua" --cache cache --out gl_path --set simulations=100000 --set num_samples=2000 \
	--set observation="$DATA/gaussian_linear/obs1/observation.csv"
expect_ok
cmp -s gl/posterior_samples.csv gl_path/posterior_samples.csv || fail "observation=1 and its path differ"

# Unknown method: fails and lists the available ones.
run "$R/two_moons.lua" --cache cache --out bad --set method=smc
expect_fail
expect_err "unknown --set method=smc (available: rejection_abc, npe, nle, nre, snpe, tsnpe, snle, snre, smc_abc)"

# method=smc_abc: the reference package's SMC-ABC by default (sbibm's 100
# particles, 500 of the 1,000 simulations in population 0, a KDE); the
# other scheme with --set scheme=apmc; adjust only with apmc.
run "$R/two_moons.lua" --cache cache --out smc --set method=smc_abc --set simulations=1000 --set num_samples=500
expect_ok
expect_out "500 samples (SMC-ABC (sbi scheme), 100 of 1000 simulations accepted"
expect_err "population 0: epsilon = "
run "$R/two_moons.lua" --cache cache --out smc --set method=smc_abc --set simulations=1000 --set num_samples=500 \
	--set scheme=apmc --set rounds=2
expect_ok
expect_out "500 samples (SMC-ABC, "
run "$R/two_moons.lua" --cache cache --out bad --set method=smc_abc --set scheme=pmc
expect_fail
expect_err "--set scheme=pmc: expected sbi or apmc"
run "$R/two_moons.lua" --cache cache --out bad --set method=smc_abc --set adjust=linear
expect_fail
expect_err "--set adjust applies to --set scheme=apmc only"

# --set nested_validation=true reaches sbi.snpe (methods tsnpe and snpe):
# the training steps' keys and the samples change; false is the default
# (the same bytes); anything else is refused.
tsnpe=(--set method=tsnpe --set rounds=2 --set simulations=600 --set num_samples=300)
run "$R/two_moons.lua" --cache cache --out ts "${tsnpe[@]}"
expect_ok
expect_out "300 samples (TSNPE"
run "$R/two_moons.lua" --cache cache --out ts_nested "${tsnpe[@]}" --set nested_validation=true
expect_ok
[ "$(key_of ts/run.json tsnpe.train)" != "$(key_of ts_nested/run.json tsnpe.train)" ] ||
	fail "nested_validation=true: round 0's training key is the default's"
cmp -s ts/posterior_samples.csv ts_nested/posterior_samples.csv && fail "nested_validation=true: the default's samples"
run "$R/two_moons.lua" --cache cache --out ts_false "${tsnpe[@]}" --set nested_validation=false
expect_ok
expect_eq "$(key_of ts_false/run.json tsnpe.train)" "$(key_of ts/run.json tsnpe.train)" "nested_validation=false: key"
cmp -s ts/posterior_samples.csv ts_false/posterior_samples.csv || fail "nested_validation=false: not the default's samples"
run "$R/two_moons.lua" --cache cache --out bad "${tsnpe[@]}" --set nested_validation=yes
expect_fail
expect_err "--set nested_validation=yes: expected true or false"

# Observations are 1..10.
run "$R/slcp.lua" --cache cache --out bad --set observation=11
expect_fail
expect_err "--set observation=11: sbibm has observations 1..10 for slcp"
run "$R/gaussian_mixture.lua" --cache cache --out bad --set observation=0
expect_fail
expect_err "sbibm has observations 1..10"

# A path that does not exist.
run "$R/gaussian_mixture.lua" --cache cache --out bad --set observation=no_such_file.csv
expect_fail
expect_err "no_such_file.csv"
finish
