#!/bin/bash
# The tutorial's default run (method=compare), with small settings: the
# exact-likelihood posterior and NPE's in separate files, the observation
# (one row x[1..50]) and NPE's posterior predictive (a row per NPE draw,
# ending in x[1..50]), NPE's expected coverage (coverage.csv); report.html
# overlays both posteriors in one corner plot and draws the predictive and
# the coverage curve. NPE's means and spreads agree with the likelihood's.
. "$(dirname "$0")/lib.sh"

cp "$SRCDIR/recipes/tutorial.lua" .
run tutorial.lua --quiet --set simulations=3000 --set coverage=50 --set num_samples=2000
expect_ok
O=sbirun-out/tutorial
for f in likelihood npe predictive observation coverage; do
	[ -s "$O/$f.csv" ] || fail "$f.csv written"
done
[ -e "$O/posterior_samples.csv" ] && fail "compare mode writes no posterior_samples.csv"
expect_eq "$(head -1 "$O/coverage.csv")" "level,coverage,lower,upper" "coverage.csv header"
expect_eq "$(awk 'END { print NR }' "$O/coverage.csv")" "100" "coverage.csv: 99 levels"
expect_eq "$(jget "$O/run.json" 'j["diagnostics"][0]["name"]')" "coverage" "the diagnostic in run.json"
expect_out "coverage: expected coverage over 50 tests"
expect_eq "$(awk 'END { print NR }' "$O/observation.csv")" "2" "observation.csv: one row"
expect_eq "$(head -1 "$O/observation.csv" | awk -F, '{ print NF, $1, $NF }')" "50 x[1] x[50]" "observation.csv header"
expect_eq "$(awk 'END { print NR }' "$O/predictive.csv")" "2001" "predictive.csv: a series per NPE draw"
expect_eq "$(head -1 "$O/predictive.csv" | awk -F, '{ print NF, $1, $NF }')" "55 l x[50]" "predictive.csv header"
for f in likelihood npe; do
	expect_eq "$(awk 'END { print NR }' "$O/$f.csv")" "2001" "$f.csv: num_samples rows"
done

# The report: a corner plot of both posteriors, the predictive against the
# observation, the coverage curve, the likelihood's MCMC traces (and NPE's
# loss curves).
H=$O/report.html
n=$(grep -c '<svg' "$H")
in_range "$n" 3 10 "plots in report.html"
grep -q '<figcaption>Posterior samples: likelihood, npe, overlaid' "$H" ||
	fail "one corner plot overlays likelihood and npe"
P='<figcaption>Output predictive (predictive.csv, 2000 predicted series).*the observation (output observation)'
grep -q "$P" "$H" || fail "predictive plot with the observation"
grep -q '<figcaption>Expected coverage of coverage (coverage.csv)' "$H" || fail "coverage curve"
# The exact likelihood's MCMC chains (the first 4 of 20, 100 draws each at
# 2,000 samples) as traces.
expect_eq "$(head -1 "$O/likelihood.trace.csv")" "chain,l,m,s,a,b" "likelihood.trace.csv header"
expect_eq "$(awk 'END { print NR }' "$O/likelihood.trace.csv")" "401" "likelihood.trace.csv: 4 chains x 100 draws"
grep -q '<figcaption>MCMC traces of likelihood (likelihood.trace.csv)' "$H" || fail "MCMC traces of likelihood"
[ ! -e "$O/npe.trace.csv" ] || fail "npe (no MCMC) has no traces"

# NPE against the exact posterior, per parameter: means within 1.5 of the
# exact posterior's standard deviations, spreads within a factor 2. At 3,000
# simulations NPE is off by at most 1.1 sd (parameter l; 0.5 sd or less for
# the others) and 1.0-1.5x as wide. The prior's means are 4 sd off for m and
# b (2.3 for s) and its spreads 11-15x wider: an NPE that learnt nothing,
# or one conditioned on another observation, fails.
for c in 1 2 3 4 5; do
	read -r ml sl <<<"$(col_stats "$O/likelihood.csv" $c)"
	read -r mn sn <<<"$(col_stats "$O/npe.csv" $c)"
	numbers "column $c: posterior statistics" "$ml" "$sl" "$mn" "$sn" || continue
	within "$mn" "$ml" "$(awk -v s="$sl" 'BEGIN { print 1.5 * s }')" "column $c: NPE mean against the likelihood's"
	in_range "$sn" "$(awk -v s="$sl" 'BEGIN { print 0.5 * s }')" "$(awk -v s="$sl" 'BEGIN { print 2 * s }')" \
		"column $c: NPE sd against the likelihood's ($sl)"
done
# The exact posterior holds the true parameters (0.5, 0.6, 0.2, -0.2, 0.1)
# within 3 sd: the observation is the recipe's.
read -r ml sl <<<"$(col_stats "$O/likelihood.csv" 2)"
within "$ml" 0.6 "$(awk -v s="$sl" 'BEGIN { print 3 * s }')" "likelihood: mean of m"
finish
