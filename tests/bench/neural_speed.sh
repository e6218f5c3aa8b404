#!/bin/bash
# Benchmark (not a test): NPE, NLE and NRE on sbibm two_moons, observation 1,
# 10,000 simulations, seed 1, the reference package's network size (5 MAF
# transforms of 50 hidden units; NRE classifier of 50 hidden units), on one
# thread and on two (sbirun pins OpenBLAS to one thread; SBI_BLAS_THREADS=2
# lifts the pin to measure what a second thread would give). Prints training CPU seconds, sampling seconds for 10,000
# posterior samples and (with C2ST=1) the C2ST against the reference
# posterior, next to the Python sbi 0.22 figures in shared/benchmarks/BASELINES.md.
#
#   bash tests/bench/neural_speed.sh            # timings only
#   C2ST=1 bash tests/bench/neural_speed.sh     # also C2ST (needs python3-sklearn)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
shared=$root/../shared
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Reference figures (BASELINES.md): train CPU s (quiet machine for NPE,
# shared machine for NLE/NRE), sample 10k wall s, C2ST of obs 1.
declare -A REF_TRAIN=([npe]=130.0 [nle]=101.9 [nre]=43.8)
declare -A REF_SAMPLE=([npe]=0.18 [nle]=18.42 [nre]=7.16)
declare -A REF_C2ST=([npe]=0.648 [nle]=0.641 [nre]=0.651)

node_field() { # RUN_JSON KIND FIELD
	awk -v kind="\"$2\"" -v f="\"$3\":" '
		/"kind":/ { k = $2; sub(/,$/, "", k) }
		$1 == f { v = $2; sub(/,$/, "", v); if (k == kind) { print v; exit } }' "$1"
}

printf "| method | threads | epochs | train CPU s | ref CPU s | speed-up | train wall s | sample 10k s | ref sample s | speed-up | C2ST | ref C2ST |\n"
printf "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
for threads in 1 2; do
	for m in npe nle nre; do
		out=$tmp/$m-$threads
		SBI_BLAS_THREADS=$threads "$sbirun" "$root/recipes/sbibm/two_moons.lua" --set method=$m --set density=maf --set simulations=10000 --set seed=1 \
			--set observation=1 --jobs $threads --cache "$tmp/cache-$m-$threads" --out "$out" \
			>"$tmp/log" 2>"$tmp/err"
		epochs=$(grep -o "[0-9]* epochs" "$tmp/err" | head -1 | grep -o "[0-9]*")
		[ "$m-$threads" = npe-1 ] && echo "$epochs" > "$tmp/npe-epochs"
		cpu=$(node_field "$out/run.json" "$m.train" cpu_seconds)
		wall=$(node_field "$out/run.json" "$m.train" seconds)
		samp=$(node_field "$out/run.json" "$m.sample" seconds)
		c2st="-"
		if [ "${C2ST:-0}" = 1 ]; then
			c2st=$(/usr/bin/python3 "$shared/tools/c2st.py" \
				"$shared/benchmarks/sbibm/two_moons/obs1/reference_posterior_samples.csv" \
				"$out/posterior_samples.csv")
		fi
		awk -v m=$m -v t=$threads -v e="$epochs" -v c="$cpu" -v rc="${REF_TRAIN[$m]}" -v w="$wall" \
			-v s="$samp" -v rs="${REF_SAMPLE[$m]}" -v q="$c2st" -v rq="${REF_C2ST[$m]}" 'BEGIN {
			printf "| %s | %d | %s | %.2f | %.1f | %.0fx | %.2f | %.3f | %.2f | %.0fx | %s | %s |\n",
				toupper(m), t, e, c, rc, rc / c, w, s, rs, rs / s, q, rq }'
	done
done

# The default NPE (density = "auto": a MAF and an NSF, the better kept), whose
# two flows train in two threads with --jobs 2.
echo
printf "| NPE default (auto) | --jobs | train wall s | train CPU s | kept | sample 10k s |\n"
printf "|---|---|---|---|---|---|\n"
for jobs in 1 2; do
	out=$tmp/auto-$jobs
	"$sbirun" "$root/recipes/sbibm/two_moons.lua" --set method=npe --set simulations=10000 --set seed=1 \
		--set observation=1 --jobs $jobs --cache "$tmp/cache-auto-$jobs" --out "$out" >"$tmp/log" 2>"$tmp/err"
	kept=$(grep -o "kept the [a-z]*" "$tmp/err" | awk '{ print $3 }')
	printf "| | %d | %.2f | %.2f | %s | %.3f |\n" $jobs "$(node_field "$out/run.json" npe.train seconds)" \
		"$(node_field "$out/run.json" npe.train cpu_seconds)" "$kept" "$(node_field "$out/run.json" npe.sample seconds)"
done
echo
echo "reproduce: C2ST=1 bash tests/bench/neural_speed.sh   (machine: $(nproc) cores; $(date -u +%Y-%m-%d))"

# Where the training time goes: the fraction of single-thread GEMM peak that
# NPE training reaches, and a profile.
cc -O2 -o "$tmp/gemm_peak" "$here/gemm_peak.c" $(pkg-config --cflags --libs openblas) 2>/dev/null || exit 0
read -r _ peak <<<"$("$tmp/gemm_peak" | grep peak)"
read -r _ small <<<"$("$tmp/gemm_peak" | grep batch)"
# MAF, 5 transforms, 50 hidden, 2 blocks, D = 2 parameters, C = 2 data, batch B = 50
# (9,000 training rows: 180 steps per epoch):
# forward GEMM FLOPs per transform = 2 * B * (2*50 + 2*50 + 2*50*50 + 50*4); backward ~2x.
batch=50
flop_step=$(( 3 * 5 * 2 * batch * (2 * 50 + 2 * 50 + 2 * 50 * 50 + 50 * 4) ))
npe_cpu=$(node_field "$tmp/npe-1/run.json" npe.train cpu_seconds)
awk -v cpu="$npe_cpu" -v f="$flop_step" -v b="$batch" -v peak="$peak" -v small="$small" -v ep="$(cat "$tmp/npe-epochs" 2>/dev/null || echo 0)" 'BEGIN {
	steps = ep * int(9000 / b)
	if (steps == 0) exit
	rate = f * steps / cpu / 1e9
	printf "\nNPE training: %.1f GFLOP/s of GEMM work (%d steps of %.1f MFLOP in %.2f CPU s)\n", rate, steps, f / 1e6, cpu
	printf "single-thread SGEMM: peak %.1f GFLOP/s (1024^3), %.1f GFLOP/s at the %d x 50 x 50 training shape\n", peak, small, b
	printf "the training loop reaches %.0f%% of peak and %.0f%% of what GEMM alone achieves at these shapes\n", 100 * rate / peak, 100 * rate / small
}'
if command -v perf >/dev/null && perf record -q -o "$tmp/perf.data" "$sbirun" "$root/recipes/sbibm/two_moons.lua" \
	--set method=npe --set density=maf --set simulations=10000 --cache "$tmp/perf-cache" --out "$tmp/perf-out" --quiet >/dev/null 2>&1; then
	echo
	echo "profile of a whole NPE run (perf, top symbols):"
	perf report -i "$tmp/perf.data" --no-children --sort dso,symbol 2>/dev/null | grep '%' | head -10
fi
