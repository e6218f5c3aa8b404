#!/bin/bash
# Accuracy of sequential NPE against an exact posterior (not a test): on
# the tutorial (exact: method=likelihood, 100,000 MCMC draws) and on
# snpe_linear_gaussian.lua (analytic), each method with 10 rounds of 1,000
# simulations (NPE: 10,000 from the prior), seeds 1-5; per run z = (mean -
# exact mean) / exact sd of each parameter, their rms, the sd ratios and
# the CPU seconds (docs/benchmarks-sequential.md, "The tutorial model").
#
#   bash tests/bench/snpe_accuracy.sh > table.md
#   MODELS=linear RUNS="snpe snpe:nested_validation=true" SEEDS="1 2" bash tests/bench/snpe_accuracy.sh
#
# A run is METHOD[:NAME=VALUE,...]; the names are the recipes' --set
# parameters (the tutorial's: warm_start, acquisition, density; both:
# seed is set here), and nested_validation=true, which this script
# passes to sbi.snpe through a copy of the recipe.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
models=${MODELS:-tutorial linear}
runs=${RUNS:-npe tsnpe snpe snpe:nested_validation=true snpe:warm_start=false}
seeds=${SEEDS:-1 2 3 4 5}
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The recipes, with nested_validation = true passed through by --set nested=1.
sed "s/    warm_start = warm_start, density = density,/&\n    nested_validation = sbi.param('nested', 0) == 1 or nil,/" \
	"$root/recipes/tutorial.lua" >"$tmp/tutorial.lua"
sed "s/    warm_start = warm_start, num_samples = num_samples, seed = seed,/&\n    nested_validation = sbi.param('nested', 0) == 1 or nil,/" \
	"$here/snpe_linear_gaussian.lua" >"$tmp/linear.lua"
stats() { # CSV -> "mean sd mean sd ..." per column
	awk -F, 'NR > 1 { for (c = 1; c <= NF; c++) { s[c] += $c; ss[c] += $c * $c }; n++; nc = NF }
		END { for (c = 1; c <= nc; c++) { m = s[c] / n; printf "%.6f %.6f ", m, sqrt(ss[c] / n - m * m) } }' "$1"
}
echo "| model | run | seed | z per parameter | rms z | sd ratios | CPU s |"
echo "|---|---|---|---|---|---|---|"
for model in $models; do
	if [ "$model" = tutorial ]; then
		"$sbirun" "$tmp/tutorial.lua" --set method=likelihood --set num_samples=100000 --quiet \
			--cache "$tmp/cache" --out "$tmp/exact" >/dev/null 2>&1
		exact=$(stats "$tmp/exact/posterior_samples.csv")
	else
		exact=$("$sbirun" "$tmp/linear.lua" --set method=npe --set simulations=10 --quiet --cache "$tmp/cache" \
			--out "$tmp/probe" 2>/dev/null | awk '/^EXACT/ { $1 = ""; print }')
	fi
	for run in $runs; do
		m=${run%%:*} sets=()
		if [ "$run" != "$m" ]; then
			IFS=, read -r -a kv <<<"${run#*:}"
			for s in "${kv[@]}"; do
				[ "$s" = nested_validation=true ] && s=nested=1
				sets+=(--set "$s")
			done
		fi
		for seed in $seeds; do
			rm -rf "$tmp/out"
			/usr/bin/time -f "%U %S" -o "$tmp/time" "$sbirun" "$tmp/$model.lua" --set method="$m" --set rounds=10 \
				--set simulations=10000 --set num_samples=10000 --set seed="$seed" "${sets[@]}" \
				--cache "$tmp/cache" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err" ||
				{ echo "$model $run $seed failed: $(tail -1 "$tmp/err")" >&2; continue; }
			awk -v ex="$exact" -v got="$(stats "$tmp/out/posterior_samples.csv")" -v cpu="$(awk '{ print $1 + $2 }' "$tmp/time")" \
				-v head="| $model | $run | $seed |" 'BEGIN {
				n = split(ex, e, " "); split(got, g, " "); zs = ""; rs = ""; t = 0
				for (c = 1; 2 * c <= n; c++) {
					z = (g[2 * c - 1] - e[2 * c - 1]) / e[2 * c]; t += z * z
					zs = zs sprintf("%s%.2f", c > 1 ? " " : "", z); rs = rs sprintf("%s%.2f", c > 1 ? " " : "", g[2 * c] / e[2 * c])
				}
				printf "%s %s | %.3f | %s | %.1f |\n", head, zs, sqrt(t / (n / 2)), rs, cpu }'
		done
	done
done
