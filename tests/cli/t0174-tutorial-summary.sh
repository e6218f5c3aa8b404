#!/bin/bash
# The tutorial's --set summary=none|moped|score|pca: every method but the
# exact likelihood (in method=compare: NPE) declares the compressor and applies it to its
# simulations and the observation (checked on `sbirun graph`); rejection ABC
# on MOPED's 5 summaries is narrower than on the 50 raw values with the same
# simulations; autoencoder and regression add their compressor and its
# applications and run; an unknown summary and method=likelihood with a
# summary are clear errors;
# rejection ABC on MOPED's default configuration (a two-stage pilot
# fiducial point, the neural adjustment with 5 networks, 20%, 10,000
# covariance simulations per MOPED) and the
# options that change it; without summary=, the recipe's graph has no summary steps; every recipe
# example of docs/summaries.md runs and writes samples.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" t.lua
for m in compare rejection_abc npe nle nre snpe tsnpe snle snre smc_abc; do
	run graph t.lua --set method=$m --set summary=moped
	expect_ok
	expect_out "summary.moped"
	expect_out "summary.apply"
	expect_out "summary.obs"
	run graph t.lua --set method=$m --set summary=pca
	expect_ok
	expect_out "summary.pca"
	run graph t.lua --set method=$m
	expect_ok
	if grep -q "summary" "$OUT"; then fail "$m without summary=: the graph has summary steps"; fi
done
run t.lua --set method=rejection_abc --set simulations=20000 --set summary=moped --out moped
expect_ok
expect_eq "$(grep -c 'mean network' "$ERR")" 5 "summary=moped: 5 mean networks"
expect_eq "$(grep -c 'log residual scale network' "$ERR")" 5 "summary=moped: 5 scale networks"
# ... and 10,000 covariance simulations in each of its two MOPED stages
# (a 1,000-simulation covariance loses up to 0.2 prior sd: docs/benchmarks-summaries.md)
expect_eq "$(grep -c 'MOPED compression of 50 values to 5; 11000 simulations (10000 at the fiducial point' "$ERR")" 2 \
	"summary=moped: 10,000 covariance simulations per MOPED stage"
run t.lua --quiet --set method=rejection_abc --set simulations=20000 --out raw
expect_ok
# Parameter b (the background's offset; the exact posterior sd is 0.023):
# raw data leave it near its prior (sd 0.29), MOPED's summaries do not.
read -r _ s_raw <<<"$(col_stats raw/posterior_samples.csv 5)"
read -r _ s_moped <<<"$(col_stats moped/posterior_samples.csv 5)"
in_range "$s_moped" 0 "$(awk -v s="$s_raw" 'BEGIN { print 0.7 * s }')" "b: MOPED's ABC posterior sd against raw data's ($s_raw)"
for k in autoencoder regression; do
	run graph t.lua --set method=npe --set summary=$k
	expect_ok
	expect_out "summary.$k"
	expect_out "summary.apply"
	expect_out "summary.obs"
done
# Regression summaries (the predicted theta) on the same 20,000
# simulations: b's ABC posterior is narrower than raw data's too.
run t.lua --quiet --set method=rejection_abc --set simulations=20000 --set summary=regression --out regression
expect_ok
read -r _ s_reg <<<"$(col_stats regression/posterior_samples.csv 5)"
in_range "$s_reg" 0 "$(awk -v s="$s_raw" 'BEGIN { print 0.85 * s }')" "b: regression ABC posterior sd against raw data's ($s_raw)"
# Rejection ABC on MOPED defaults to a two-stage pilot fiducial point, the
# neural adjustment (5 networks) and 20% (docs/tutorial.md): two MOPED
# compressors, a pilot ABC step on the first one's summaries (linear
# adjustment, 0.2%), and an adjusted final step keeping 4,000 of the
# 20,000 simulations; adjust=linear keeps the previous default's 0.2%;
# giving the three options restores plain MOPED at the prior's mean (one
# compressor, 1%: 200 samples).
run graph t.lua --set method=rejection_abc --set summary=moped
expect_ok
expect_eq "$(grep -c 'summary.moped ' "$OUT")" 2 "summary=moped with rejection ABC: MOPED compressors in the graph"
expect_eq "$(grep -c 'abc.rejection ' "$OUT")" 2 "summary=moped with rejection ABC: the pilot and the final ABC steps"
expect_eq "$(($(wc -l <moped/posterior_samples.csv) - 1))" 4000 "summary=moped: 20% of 20,000 accepted"
run t.lua --quiet --set method=rejection_abc --set simulations=20000 --set summary=moped --out moped
expect_ok
expect_out "(rejection ABC, neural adjustment, 4000 of 20000 simulations accepted"
run t.lua --set method=rejection_abc --set simulations=20000 --set summary=moped --set adjust=linear --out lin
expect_ok
expect_out "(rejection ABC, linear adjustment, 40 of 20000 simulations accepted"
expect_eq "$(grep -c '2000 simulations (1000 at the fiducial point' "$ERR")" 2 "adjust=linear: 1,000 covariance simulations"
# (Not under the sanitizers: a second run of the 10 adjustment networks,
# a third of the test's time there, through the same code.)
if ! sanitized; then
	run t.lua --quiet --set method=rejection_abc --set simulations=20000 --set summary=moped --set covariance_sims=1000 \
		--out moped1k
	expect_ok
	expect_out "(rejection ABC, neural adjustment, 4000 of 20000 simulations accepted"
	if cmp -s moped/posterior_samples.csv moped1k/posterior_samples.csv; then
		fail "summary=moped: covariance_sims=1000 gave the same samples as the default (10,000)"
	fi
fi
run t.lua --quiet --set method=rejection_abc --set simulations=20000 --set summary=moped --set fiducial=prior_mean \
	--set adjust=none --set epsilon_quantile=0.01 --out plain
expect_ok
expect_eq "$(($(wc -l <plain/posterior_samples.csv) - 1))" 200 "summary=moped, plain: 1% of 20,000 accepted"
expect_eq "$(grep -c '"kind": "summary.moped"' plain/run.json)" 1 "summary=moped, plain: one MOPED compressor"
run graph t.lua --set method=npe --set summary=moped --set fiducial=moped_pilot
expect_ok
expect_eq "$(grep -c 'summary.moped ' "$OUT")" 2 "fiducial=moped_pilot with NPE: MOPED compressors in the graph"
run t.lua --quiet --set method=npe --set adjust=linear
expect_fail
expect_err "--set adjust=linear: the regression adjustment applies to method=rejection_abc only"
run t.lua --quiet --set fiducial=exact
expect_fail
expect_err "unknown --set fiducial=exact (available: prior_mean, pilot, moped_pilot)"
run t.lua --quiet --set method=rejection_abc --set adjust=cubic
expect_fail
expect_err "unknown --set adjust=cubic (available: none, linear, quadratic, neural)"
run t.lua --quiet --set method=rejection_abc --set summary=moped --set networks=0
expect_fail
expect_err "networks"
run t.lua --quiet --set summary=fisher
expect_fail
expect_err "unknown --set summary=fisher (available: none, moped, score, pca, autoencoder, regression)"
run t.lua --quiet --set summary=pca --set method=likelihood
expect_fail
expect_err "method=likelihood uses the exact likelihood of the 50 values"

awk '/^```lua$/ { n++; f = sprintf("doc%02d.lua", n); inblock = 1; next }
	/^```$/ && inblock { inblock = 0; close(f); next }
	inblock { print > f }' "$SRCDIR/docs/summaries.md"
count=0
for f in doc*.lua; do
	[ -f "$f" ] || break
	count=$((count + 1))
	run "$f" --quiet
	expect_ok
	[ -s "sbirun-out/${f%.lua}/posterior_samples.csv" ] || fail "docs/summaries.md example $f wrote no samples"
done
[ "$count" -ge 4 ] || fail "docs/summaries.md: only $count recipe examples found"
finish
