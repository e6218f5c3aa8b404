#!/bin/bash
# Benchmark (not a test): simulations per second against --jobs 1 and 2,
# for two_moons (a cheap simulator, ~1 us) and the tutorial's simulator
# (~10 us), side by side in one run, with the engine's overhead per
# simulation.
#
#   bash tests/bench/workers_scaling.sh [N_TWO_MOONS] [N_TUTORIAL] [REPS] [SBIRUN]
#
# Each configuration runs REPS times (default 3, interleaved, fresh cache
# each time) and keeps its fastest run:
#  - node s: the simulate step's wall time from run.json (simulations,
#    chunk stores, gathering), sims/s = n / node s;
#  - speedup: sims/s over the same model's --jobs 1;
#  - overhead: (jobs x node s - bare loop s) / n, the core time per
#    simulation spent outside the simulator (prior draws, checks, chunk
#    stores, messaging, idle workers, gathering);
#  - main CPU s: the simulate step's CPU time in the main process (run.json's
#    cpu_seconds): all of it with --jobs 1; with --jobs 2 the part that does
#    not run in parallel (setting up, gathering the chunks);
#  - run CPU s: user + system time of the whole run, workers included
#    (start-up and the ABC step too): what a second worker costs in CPU;
#  - if idle: the speedup that CPU times project for an idle machine,
#    main CPU(1) / ((main CPU(1) - main CPU(2)) / 2 + main CPU(2)), taking
#    the parallel part as split evenly over the 2 workers (they run whole
#    chunks, so a step with few chunks gets less).
# Wall times need an otherwise idle machine: the load average is printed,
# and figures taken under load are flagged; CPU times hold under load.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n_moons=${1:-1000000}
n_tut=${2:-200000}
reps=${3:-3}
sbirun=${4:-$here/../../build/lang/sbirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
TIMEFORMAT='%U %S'

# run MODEL N JOBS -> "node_seconds node_cpu_seconds run_cpu_seconds"
run() {
	rm -rf "$tmp/cache"
	local cpu
	cpu=$( { time "$sbirun" "$here/workers_recipe.lua" --set model="$1" --set simulations="$2" --jobs "$3" \
		--cache "$tmp/cache" --out "$tmp/out" --quiet >/dev/null; } 2>&1 | awk '{ print $1 + $2 }')
	awk -v cpu="$cpu" '/"kind": "simulate"/ { f = 1 } f && /"seconds"/ { gsub(/,/, "", $2); s = $2 }
		f && /"cpu_seconds"/ { gsub(/,/, "", $2); print s, $2, cpu; exit }' "$tmp/out/run.json"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'; }

load0=$(cut -d' ' -f1 /proc/loadavg)
declare -A node main cpu bare
for model in two_moons tutorial; do
	bare[$model]=1e9
	for j in 1 2; do node[$model.$j]=1e9 main[$model.$j]=1e9 cpu[$model.$j]=1e9; done
done
for rep in $(seq "$reps"); do
	for model in two_moons tutorial; do
		n=$n_moons
		[ "$model" = tutorial ] && n=$n_tut
		bare[$model]=$(min "${bare[$model]}" "$("$sbirun" lua "$here/bare_loop.lua" "$n" "$model" | awk '{ print $1 }')")
		for j in 1 2; do
			read -r s p c < <(run "$model" "$n" "$j")
			node[$model.$j]=$(min "${node[$model.$j]}" "$s")
			main[$model.$j]=$(min "${main[$model.$j]}" "$p")
			cpu[$model.$j]=$(min "${cpu[$model.$j]}" "$c")
		done
	done
done
load1=$(cut -d' ' -f1 /proc/loadavg)

printf "workers scaling, best of %d runs, %s cores available (nproc), load average %s at start, %s at end\n" \
	"$reps" "$(nproc)" "$load0" "$load1"
printf "%-10s %8s %4s %8s %9s %8s %12s %11s %10s %8s\n" model n jobs "node s" "sims/s" speedup "overhead us" \
	"main CPU s" "run CPU s" "if idle"
for model in two_moons tutorial; do
	n=$n_moons
	[ "$model" = tutorial ] && n=$n_tut
	for j in 1 2; do
		awk -v m="$model" -v n="$n" -v j="$j" -v s="${node[$model.$j]}" -v s1="${node[$model.1]}" \
			-v b="${bare[$model]}" -v c="${cpu[$model.$j]}" -v p="${main[$model.$j]}" -v p1="${main[$model.1]}" 'BEGIN {
			proj = j == 1 ? 1 : p1 / ((p1 - p) / 2 + p)
			printf "%-10s %8d %4d %8.3f %9.0f %7.2fx %12.3f %11.3f %10.2f %7.2fx\n", m, n, j, s, n / s, s1 / s,
				(j * s - b) / n * 1e6, p, c, proj
		}'
	done
	awk -v m="$model" -v n="$n" -v b="${bare[$model]}" 'BEGIN {
		printf "%-10s %9d bare Lua loop: %.3f s = %.0f sims/s (one core)\n", m, n, b, n / b }'
done
awk -v l0="$load0" -v l1="$load1" 'BEGIN { if (l0 > 0.5 || l1 > 0.5)
	print "warning: the machine was busy (load average above 0.5): wall times and speedups are unreliable" }'
echo "reproduce: bash tests/bench/workers_scaling.sh $n_moons $n_tut $reps"
