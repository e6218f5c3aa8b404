#!/bin/bash
# Accuracy benchmark of rejection ABC on sbibm tasks (not run in CI).
#
# For every task, budget and observation 1..NOBS, runs
#   sbirun recipes/sbibm/<task>.lua --set method=rejection_abc
#          --set observation=<obs> --set simulations=<budget>
# (10,000 posterior samples: the 100 nearest simulations plus a KDE, as
# sbibm's REJ-ABC) and computes the C2ST accuracy against sbibm's 10,000
# reference posterior samples with shared/tools/c2st.py (reference first).
# Prints a markdown table: mean C2ST over the observations next to the
# published REJ-ABC figure (mean over sbibm's 10 observations) from
# shared/benchmarks/PUBLISHED.md.
#
# Usage:  tests/bench/abc_c2st.sh
# Environment (all optional):
#   TASKS     tasks to run (default "gaussian_linear two_moons slcp gaussian_mixture")
#   BUDGETS   simulation budgets (default "1000 10000 100000")
#   NOBS      observations 1..NOBS (default 3; sbibm has 10)
#   SEED      --set seed= for every run (default 1)
#   PARALLEL  C2ST processes run at once (default 2; each is single-threaded)
#   SBIRUN    the sbirun binary (default build/lang/sbirun in the source tree)
#   SHARED    the shared folder (default <source root>/../shared)
#   WORKDIR   where the cache, the samples and results.tsv go (default: a new
#             temporary folder, kept and named at the end)
#   PYTHON    Python with numpy and scikit-learn (default /usr/bin/python3)
#
# Runtime on 2 cores: sbirun takes seconds; the C2ST classifier dominates
# (from a few seconds to about 7 CPU-minutes per comparison, longest when the
# two sample sets are hard to tell apart).
set -eu

SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$SRCDIR/../shared}
SBIRUN=${SBIRUN:-$SRCDIR/build/lang/sbirun}
PYTHON=${PYTHON:-/usr/bin/python3}
TASKS=${TASKS:-gaussian_linear two_moons slcp gaussian_mixture}
BUDGETS=${BUDGETS:-1000 10000 100000}
NOBS=${NOBS:-3}
SEED=${SEED:-1}
PARALLEL=${PARALLEL:-2}
C2ST=$SHARED/tools/c2st.py
BENCH=$SHARED/benchmarks

for f in "$SBIRUN" "$C2ST" "$BENCH/PUBLISHED.md"; do
	if [ ! -e "$f" ]; then
		echo "abc_c2st.sh: $f not found" >&2
		exit 1
	fi
done
if ! "$PYTHON" -c 'import numpy, sklearn' 2>/dev/null; then
	echo "abc_c2st.sh: $PYTHON lacks numpy or scikit-learn (Debian: python3-numpy python3-sklearn)" >&2
	exit 1
fi

WORKDIR=${WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/abc-c2st.XXXXXX")}
mkdir -p "$WORKDIR"
RESULTS=$WORKDIR/results.tsv
: >"$RESULTS"

# published TASK BUDGET: the REJ-ABC "mean ± sd" cell of PUBLISHED.md, or "—".
# gaussian_mixture uses the rerun after sbibm's v1.1.0 simulator fix (our
# simulator is the fixed one) and also names the paper's figure.
published() {
	local col
	case $2 in
	1000) col=3 ;;
	10000) col=4 ;;
	100000) col=5 ;;
	*) echo "—"; return ;;
	esac
	local section="### $1"
	[ "$1" = gaussian_mixture ] && section="### gaussian_mixture — rerun after the v1.1.0 simulator fix"
	local cell paper
	cell=$(awk -F'|' -v s="$section" -v c="$col" '
		/^### / { in_s = (index($0, s) == 1 && (length($0) == length(s) || substr($0, length(s) + 1, 1) == " ")) }
		in_s && $2 ~ /^ *REJ-ABC *$/ { gsub(/^ +| +$/, "", $c); print $c; exit }' "$BENCH/PUBLISHED.md")
	if [ "$1" = gaussian_mixture ]; then
		paper=$(awk -F'|' -v c="$col" '
			/^### / { in_s = ($0 == "### gaussian_mixture") }
			in_s && $2 ~ /^ *REJ-ABC *$/ { gsub(/^ +| +$/, "", $c); print $c; exit }' "$BENCH/PUBLISHED.md")
		echo "${cell:-—} (rerun; paper: ${paper:-—})"
	else
		echo "${cell:-—}"
	fi
}

# 1. Posterior samples (fast, sequential: each run uses one process).
JOBLIST=$WORKDIR/c2st-jobs
: >"$JOBLIST"
for task in $TASKS; do
	for budget in $BUDGETS; do
		for obs in $(seq 1 "$NOBS"); do
			out=$WORKDIR/$task/$budget/obs$obs
			ref=$BENCH/sbibm/$task/obs$obs/reference_posterior_samples.csv
			mkdir -p "$out"
			echo "sbirun $task budget=$budget obs=$obs" >&2
			if ! "$SBIRUN" "$SRCDIR/recipes/sbibm/$task.lua" --quiet --cache "$WORKDIR/cache" --out "$out" \
				--set method=rejection_abc --set observation="$obs" --set simulations="$budget" \
				--set seed="$SEED" >"$out/sbirun.log" 2>&1; then
				echo "abc_c2st.sh: sbirun failed for $task budget=$budget obs=$obs:" >&2
				cat "$out/sbirun.log" >&2
				exit 1
			fi
			printf '%s\t%s\t%s\t%s\t%s\n' "$task" "$budget" "$obs" "$ref" "$out/posterior_samples.csv" >>"$JOBLIST"
		done
	done
done

# 2. C2ST, PARALLEL at a time, each single-threaded (BLAS threads only
# contend on a small machine). A failed comparison is recorded as "fail".
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
c2st_one() { # TASK BUDGET OBS REFERENCE SAMPLES
	local start acc
	start=$(date +%s)
	if ! acc=$("$PYTHON" "$C2ST" "$4" "$5" 2>"$5.c2st.err"); then
		echo "c2st failed for $1 budget=$2 obs=$3: $(tail -3 "$5.c2st.err")" >&2
		acc=fail
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$acc" "$(($(date +%s) - start))" >>"$RESULTS"
	echo "c2st $1 budget=$2 obs=$3: $acc ($(($(date +%s) - start)) s)" >&2
}
running=0
while IFS=$'\t' read -r task budget obs ref samples; do
	c2st_one "$task" "$budget" "$obs" "$ref" "$samples" &
	running=$((running + 1))
	if [ "$running" -ge "$PARALLEL" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done <"$JOBLIST"
wait

# 3. The table.
echo "| task | budget | C2ST mean (obs 1..$NOBS) | per observation | published REJ-ABC (10 obs, mean ± sd) | regenerate |"
echo "|---|---|---|---|---|---|"
for task in $TASKS; do
	for budget in $BUDGETS; do
		per=$(awk -F'\t' -v t="$task" -v b="$budget" '$1 == t && $2 == b { print $3, $4 }' "$RESULTS" |
			sort -n | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), ($2 == "fail" ? $2 : sprintf("%.3f", $2)) }')
		mean=$(awk -F'\t' -v t="$task" -v b="$budget" '$1 == t && $2 == b { if ($4 == "fail") bad = 1; else { s += $4; n++ } }
			END { if (n && !bad) printf "%.3f", s / n; else printf "—" }' "$RESULTS")
		# shellcheck disable=SC2016 # the backquotes are markdown, not a substitution
		printf '| %s | %s | %s | %s | %s | `TASKS=%s BUDGETS=%s NOBS=%s tests/bench/abc_c2st.sh` |\n' \
			"$task" "$budget" "$mean" "$per" "$(published "$task" "$budget")" "$task" "$budget" "$NOBS"
	done
done
echo
echo "samples, logs and results.tsv in $WORKDIR" >&2
