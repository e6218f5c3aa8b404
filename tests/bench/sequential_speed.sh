#!/bin/bash
# Speed benchmark (not a test): sequential SNPE and SNLE on two_moons,
# 10 rounds of 1,000 simulations, observation 1, seed 1, one BLAS thread,
# end to end (simulations, every round's proposal and training, 10,000 final
# samples), next to the Python sbi package's figures for the same runs
# (shared/benchmarks/BASELINES.md, "Sequential methods"), with C2ST against
# the reference posterior (needs python3-sklearn).
#
#   bash tests/bench/sequential_speed.sh
#   VARIANTS="snpe:warm_start=false snle" bash tests/bench/sequential_speed.sh
#
# SEEDS="1 2 3" runs each variant with each seed. BEFORE=/path/to/sbirun
# times another build side by side (each run right after this build's, so
# both see the same machine), e.g. the build before a speed change:
#   BEFORE=/tmp/old/sbirun SEEDS="1 2 3" VARIANTS="snpe:density=maf snle" bash tests/bench/sequential_speed.sh
# PERF=1 runs each under `perf record` (Debian's linux-perf) and adds the
# share of CPU samples in OpenBLAS (its GEMM kernels and packing) and the
# CPU seconds that share is: the floor no change outside OpenBLAS can
# remove (perf adds a few per cent of CPU time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
shared=${SHARED:-$root/../shared} # SHARED=/work/shared from a worktree
ref=$shared/benchmarks/sbibm/two_moons/obs1/reference_posterior_samples.csv
# A variant is METHOD[:NAME=VALUE,...], e.g. snpe:density=maf. The
# reference runs used a MAF; the sbibm recipes' SNPE default is an NSF (the
# paper's), so the like-for-like SNPE variant names density=maf.
variants=${VARIANTS:-snpe:density=maf snpe:density=maf,warm_start=false snpe snle snle:warm_start=false}
seeds=${SEEDS:-1}
builds="$sbirun${BEFORE:+ $BEFORE}"
export OPENBLAS_NUM_THREADS=1 # sbirun sets one BLAS thread itself; this also keeps OpenBLAS from starting its pool
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
baseline() { # method -> "CPU-s C2ST" of the reference package
	case $1 in snpe*) echo "624.6 0.595" ;; snle*) echo "256.4 0.539" ;; *) echo "- -" ;; esac
}
perf=()
if [ -n "${PERF:-}" ]; then
	command -v perf >/dev/null || { echo "PERF=1 needs perf (Debian's linux-perf)" >&2; exit 2; }
	perf=(perf record -q -F 300 -o "$tmp/perf.data" --)
	echo "| variant | seed | build | CPU s | wall s | ref CPU s | CPU speed-up | C2ST | ref C2ST | OpenBLAS share | OpenBLAS CPU s |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
else
	echo "| variant | seed | build | CPU s | wall s | ref CPU s | CPU speed-up | C2ST | ref C2ST |"
	echo "|---|---|---|---|---|---|---|---|---|"
fi
for v in $variants; do
	m=${v%%:*} sets=()
	if [ "$v" != "$m" ]; then
		IFS=, read -r -a kv <<<"${v#*:}"
		for s in "${kv[@]}"; do sets+=(--set "$s"); done
	fi
	for seed in $seeds; do
		for b in $builds; do
			label=this; [ "$b" = "$sbirun" ] || label=before
			rm -rf "$tmp/cache" "$tmp/out"
			/usr/bin/time -f "%U %S %e" -o "$tmp/time" "${perf[@]}" "$b" "$root/recipes/sbibm/two_moons.lua" --set method="$m" \
				--set rounds=10 --set simulations=10000 --set observation=1 --set seed="$seed" "${sets[@]}" \
				--cache "$tmp/cache" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err" || { echo "$v ($b) failed: $(tail -1 "$tmp/err")" >&2; continue; }
			read -r u s e <"$tmp/time"
			cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }')
			read -r rcpu rc2st <<<"$(baseline "$v")"
			up=$(awk -v r="$rcpu" -v c="$cpu" 'BEGIN { if (r == "-") print "-"; else printf "%.1fx", r / c }')
			c2st=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$shared/tools/c2st.py" "$ref" "$tmp/out/posterior_samples.csv" 2>/dev/null || echo -)
			row="| $v | $seed | $label | $cpu | $e | $rcpu | $up | $c2st | $rc2st |"
			if [ -n "${PERF:-}" ]; then
				share=$(perf report -i "$tmp/perf.data" --sort dso --stdio 2>/dev/null | awk '/libopenblas/ { sub("%", "", $1); print $1; exit }')
				row="$row ${share:-0}% | $(awk -v p="${share:-0}" -v c="$cpu" 'BEGIN { printf "%.1f", p * c / 100 }') |"
			fi
			echo "$row"
		done
	done
done
echo
echo "reproduce: VARIANTS=\"$variants\" SEEDS=\"$seeds\"${BEFORE:+ BEFORE=$BEFORE}${PERF:+ PERF=1} bash tests/bench/sequential_speed.sh"
