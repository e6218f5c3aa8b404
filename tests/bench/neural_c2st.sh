#!/bin/bash
# Accuracy benchmark (not a test): C2ST of 10,000 posterior samples against
# sbibm's reference posteriors, for sbirun's NPE, NLE and NRE, next to the
# published figures of the sbibm paper (shared/benchmarks/PUBLISHED.md).
#
#   TASKS="two_moons slcp" METHODS="npe nle nre" BUDGETS="1000 10000" OBS="1 2 3 4 5" \
#     bash tests/bench/neural_c2st.sh > table.md
# A method "npe_nsf" (or nle_nsf) runs that method with --set density=nsf.
#
# Every run writes one line "task method budget obs c2st seconds" to
# $RESULTS (default tests/bench/neural_c2st.results, appended, so a long run
# can be resumed and split); the table is built from that file at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
shared=$root/../shared
results=${RESULTS:-$here/neural_c2st.results}
tasks=${TASKS:-two_moons slcp gaussian_linear gaussian_mixture bernoulli_glm sir lotka_volterra}
methods=${METHODS:-npe nle nre}
budgets=${BUDGETS:-1000 10000}
obs=${OBS:-1 2 3 4 5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$results"

# TABLE_ONLY=1: only print the table of what $RESULTS holds.
[ "${TABLE_ONLY:-0}" = 1 ] && tasks=""
for task in $tasks; do for m in $methods; do for b in $budgets; do for o in $obs; do
	if grep -q "^$task $m $b $o " "$results"; then continue; fi
	out=$tmp/out
	start=$(date +%s.%N)
	# A method may name its density: npe_nsf = NPE with a neural spline flow,
	# snle_auto = SNLE with density=auto.
	extra=() method=$m
	case $m in *_maf | *_nsf | *_mdn | *_auto) extra=(--set density=${m##*_}) method=${m%_*} ;; esac
	# SETS: more --set NAME=VALUE for every run (e.g. "rounds=10 warm_start=true").
	for s in ${SETS:-}; do extra+=(--set "$s"); done
	if ! "$sbirun" "$root/recipes/sbibm/$task.lua" --set method=$method "${extra[@]}" --set simulations=$b --set observation=$o \
		--set seed=$o --cache "$tmp/cache" --out "$out" --quiet >/dev/null 2>"$tmp/err"; then
		echo "$task $m $b $o failed: $(tail -1 "$tmp/err")" >&2
		continue
	fi
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	# One BLAS thread: two benchmark streams share the 2-core machine.
	c=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 "$shared/tools/c2st.py" "$shared/benchmarks/sbibm/$task/obs$o/reference_posterior_samples.csv" \
		"$out/posterior_samples.csv")
	echo "$task $m $b $o $c $secs" >> "$results"
	echo "$task $m $b obs$o: C2ST $c ($secs s)" >&2
	rm -rf "$tmp/cache"
done; done; done; done

# Published mean C2ST (PUBLISHED.md): NPE / NLE / NRE rows of the paper, and the best of any algorithm.
# The paper's row of a method: TSNPE is compared with SNPE (the paper has
# no TSNPE), smc_abc is SMC-ABC.
published() { # task method budget -> figure or "-"
	local m=$2
	case $m in tsnpe) m=snpe ;; smc_abc) m=smc-abc ;; esac
	awk -v t="$1" -v m="$m" -v b="$3" -f "$here/published.awk" "$shared/benchmarks/PUBLISHED.md"
}

# One line per run (a run repeated by two streams counts once); mean over
# observations; the published figure of the same method, the target at
# 10,000 simulations (published + 0.02), and the distance to the best
# published figure of any algorithm at that budget.
echo "| task | method | simulations | observations | mean C2ST | sd | published | target met | best published | minus best | runs s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
awk '!seen[$1 " " $2 " " $3 " " $4]++ { k = $1 " " $2 " " $3; n[k]++; s[k] += $5; q[k] += $5 * $5; t[k] += $6 }
	END { for (k in n) { m = s[k] / n[k]; v = n[k] > 1 ? (q[k] - n[k] * m * m) / (n[k] - 1) : 0
		printf "%s %d %.3f %.3f %.0f\n", k, n[k], m, (v > 0 ? sqrt(v) : 0), t[k] } }' \
	"$results" | sort -k1,1 -k3,3n -k2,2 | while read -r task m b n mean sd secs; do
	base=$m
	case $m in *_maf | *_nsf | *_mdn | *_auto) base=${m%_*} ;; esac
	read -r pub best <<<"$(published "$task" "$base" "$b")"
	met="-"
	if [ "$b" = 10000 ] && [ -n "$pub" ]; then
		met=$(awk -v x="$mean" -v p="$pub" 'BEGIN { print (x <= p + 0.02) ? "yes" : "**no**" }')
	fi
	minus="-"
	[ -n "$best" ] && minus=$(awk -v x="$mean" -v p="$best" 'BEGIN { printf "%+.3f", x - p }')
	echo "| $task | $(echo "$m" | tr a-z A-Z) | $b | $n | $mean | $sd | ${pub:--} | $met | ${best:--} | $minus | $secs |"
done
echo
echo "reproduce: TASKS=\"$tasks\" METHODS=\"$methods\" BUDGETS=\"$budgets\" OBS=\"$obs\" SETS=\"${SETS:-}\" bash $0"
