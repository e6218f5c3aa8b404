#!/bin/bash
# Accuracy benchmark of the summary compressors (issue 12; not run in CI).
#
# The tutorial model (recipes/tutorial.lua), observations simulated at
# theta = (0.5, 0.6, 0.2, -0.2, 0.1) with noise seeds SEEDS (--set obs_seed=S).
# For every observation:
#   reference:  sbirun recipes/tutorial.lua --set method=likelihood --set num_samples=REF_SAMPLES
#               (the exact likelihood sampled by the engine's MCMC; 100,000 samples
#               by default: at 10,000 its 20 chains are short, max R-hat up to 1.13)
#   each VARIANT: sbirun recipes/tutorial.lua --set method=rejection_abc --set simulations=100000
#               --set summary=... (the recipe's quantile: 1% accepted, 1,000 samples;
#               20%, 20,000 samples, for summary=moped with its default neural
#               adjustment and 10,000 covariance simulations, 0.2% with another
#               adjustment)
# all sharing one --cache, so the 100,000 simulations (their seed does not
# depend on the observation) and every fitted compressor are made once.
# Per (variant, observation): C2ST against the reference (shared/tools/c2st.py,
# reference first, --n = the ABC sample count, so the reference is subsampled
# to it with the script's fixed seed 1) and the error of each posterior mean
# in prior standard deviations (the prior is uniform: sd = (high - low)/sqrt(12)).
# Prints a markdown table: mean C2ST, the largest |mean error| over parameters
# and observations, whether it meets the issue's target (every mean within
# 0.15 prior sd on every observation), the simulations the compressor spends
# beyond the 100,000, and CPU seconds; then the per-observation errors and the
# steps each run executed (to check that the cache re-ran only what changed).
#
# Usage:  tests/bench/summaries_accuracy.sh
# Environment (all optional):
#   SEEDS        observation noise seeds (default "2024 2025 2026 2027 2028")
#   VARIANTS     space-separated NAME=SETS, SETS a comma-separated list of
#                recipe parameters, given after simulations=100000 (so they
#                may override it). Default: none; moped (the tutorial's
#                default for rejection ABC on MOPED: a two-stage pilot
#                fiducial point, the neural adjustment with 5 networks,
#                20% accepted, MOPED's covariance from 10,000 simulations);
#                moped_cov1k (the same with 1,000: the previous default);
#                moped_linear (the linear adjustment, 0.2%, 1,000
#                covariance simulations) and the same at 1% and 0.1%;
#                moped_quadratic (the quadratic adjustment at 1%); MOPED at
#                the prior's mean without adjustment at 1% (the plain
#                form); score, pca, autoencoder, regression (1%, no
#                adjustment)
#   SIM_SEEDS    simulation seeds: every variant is run with --set seed=S for
#                each (default "1"); a variant's rows for seed S > 1 are
#                named NAME_seedS
#   C2ST_N       the most samples C2ST compares (--n = the smaller of it and
#                the variant's sample count; default: no limit)
#   REF_SAMPLES  --set num_samples= of the reference (default 100000)
#   TARGET       the largest allowed |mean error| in prior sd (default 0.15)
#   JOBS         sbirun --jobs (default 2)
#   PARALLEL     C2ST processes at once (default 2; each single-threaded)
#   SBIRUN       the sbirun binary (default build/lang/sbirun in the source tree)
#   C2ST         the C2ST script (default tests/tools/c2st.py, else <source root>/../shared/tools/c2st.py)
#   PYTHON       Python with numpy and scikit-learn (default /usr/bin/python3)
#   WORKDIR      where the cache, samples and results go (default: a new
#                temporary folder, kept and named at the end)
#   REPORT_ONLY  1: only print the tables from an earlier run's WORKDIR
set -eu

SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
SBIRUN=${SBIRUN:-$SRCDIR/build/lang/sbirun}
C2ST_DEFAULT=$SRCDIR/tests/tools/c2st.py
[ -e "$C2ST_DEFAULT" ] || C2ST_DEFAULT=$SRCDIR/../shared/tools/c2st.py
C2ST=${C2ST:-$C2ST_DEFAULT}
PYTHON=${PYTHON:-/usr/bin/python3}
SEEDS=${SEEDS:-2024 2025 2026 2027 2028}
SIM_SEEDS=${SIM_SEEDS:-1}
C2ST_N=${C2ST_N:-}
VARIANTS=${VARIANTS:-none=summary=none moped=summary=moped moped_cov1k=summary=moped,covariance_sims=1000 \
moped_linear=summary=moped,adjust=linear \
moped_linear_1%=summary=moped,adjust=linear,epsilon_quantile=0.01 \
moped_linear_0.1%=summary=moped,adjust=linear,epsilon_quantile=0.001 \
moped_quadratic=summary=moped,adjust=quadratic,epsilon_quantile=0.01 \
moped_plain=summary=moped,fiducial=prior_mean,adjust=none,epsilon_quantile=0.01 \
score=summary=score pca=summary=pca autoencoder=summary=autoencoder regression=summary=regression}
REF_SAMPLES=${REF_SAMPLES:-100000}
TARGET=${TARGET:-0.15}
JOBS=${JOBS:-2}
PARALLEL=${PARALLEL:-2}
# sbirun runs from the source tree with the recipe's relative path, as the
# documented command lines do: a cache's keys depend on the recipe's path,
# so runs of those commands with the same --cache are re-used.
# (Paths given relative to the caller's directory are made absolute first.)
RECIPE=recipes/tutorial.lua
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
SBIRUN=$(absolute "$SBIRUN")
C2ST=$(absolute "$C2ST")
[ -z "${WORKDIR:-}" ] || WORKDIR=$(absolute "$WORKDIR")
cd "$SRCDIR"

for f in "$SBIRUN" "$C2ST" "$RECIPE"; do
	if [ ! -e "$f" ]; then
		echo "summaries_accuracy.sh: $f not found" >&2
		exit 1
	fi
done
if ! "$PYTHON" -c 'import numpy, sklearn' 2>/dev/null; then
	echo "summaries_accuracy.sh: $PYTHON lacks numpy or scikit-learn (Debian: python3-numpy python3-sklearn)" >&2
	exit 1
fi

WORKDIR=${WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/summaries-accuracy.XXXXXX")}
mkdir -p "$WORKDIR"
RUNS=$WORKDIR/runs.tsv     # variant seed dir cpu_seconds steps_ran sets
RESULTS=$WORKDIR/c2st.tsv  # variant seed c2st
if [ "${REPORT_ONLY:-0}" != 1 ]; then
: >"$RUNS"
: >"$RESULTS"

# run NAME SEED OUTDIR SETS...: one sbirun, its CPU seconds (user + system,
# children included) and the kinds of the steps that ran, appended to RUNS.
run() {
	local name=$1 seed=$2 out=$3
	shift 3
	local args=() s
	for s in "$@"; do args+=(--set "$s"); done
	mkdir -p "$out"
	echo "sbirun $name obs_seed=$seed" >&2
	if ! /usr/bin/time -f '%U %S' -o "$out/time" "$SBIRUN" "$RECIPE" --jobs "$JOBS" --cache "$WORKDIR/cache" \
		--out "$out" --set obs_seed="$seed" "${args[@]}" >"$out/sbirun.log" 2>&1; then
		echo "summaries_accuracy.sh: sbirun failed for $name obs_seed=$seed:" >&2
		cat "$out/sbirun.log" >&2
		exit 1
	fi
	local cpu ran
	cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$out/time")
	ran=$("$PYTHON" -c 'import json, sys, collections
d = json.load(open(sys.argv[1]))
c = collections.Counter(n["kind"] for n in d["nodes"] if n["state"] == "ran")
print(",".join(f"{k}x{v}" if v > 1 else k for k, v in c.items()) or "-")' "$out/run.json")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$seed" "$out" "$cpu" "$ran" "$*" >>"$RUNS"
}

# 1. Samples: the reference and every variant, sequentially.
for seed in $SEEDS; do
	run reference "$seed" "$WORKDIR/reference/$seed" method=likelihood num_samples="$REF_SAMPLES"
	for v in $VARIANTS; do
		for sim_seed in $SIM_SEEDS; do
			name=${v%%=*}
			IFS=, read -r -a sets <<<"${v#*=}"
			if [ "$sim_seed" != 1 ]; then
				name=${name}_seed$sim_seed
				sets+=(seed="$sim_seed")
			fi
			run "$name" "$seed" "$WORKDIR/$name/$seed" method=rejection_abc simulations=100000 "${sets[@]}"
		done
	done
done

# 2. C2ST, PARALLEL at a time; a failed comparison is recorded as "fail".
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
c2st_one() { # NAME SEED DIR
	local ref=$WORKDIR/reference/$2/posterior_samples.csv samples=$3/posterior_samples.csv n acc
	n=$(($(wc -l <"$samples") - 1))
	if [ -n "$C2ST_N" ] && [ "$n" -gt "$C2ST_N" ]; then n=$C2ST_N; fi
	if ! acc=$("$PYTHON" "$C2ST" "$ref" "$samples" --n "$n" --seed 1 2>"$3/c2st.err"); then
		echo "c2st failed for $1 obs_seed=$2: $(tail -3 "$3/c2st.err")" >&2
		acc=fail
	fi
	printf '%s\t%s\t%s\n' "$1" "$2" "$acc" >>"$RESULTS"
	echo "c2st $1 obs_seed=$2: $acc" >&2
}
running=0
while IFS=$'\t' read -r name seed dir _ _ _; do
	[ "$name" = reference ] && continue
	c2st_one "$name" "$seed" "$dir" &
	running=$((running + 1))
	if [ "$running" -ge "$PARALLEL" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done <"$RUNS"
wait
fi

# 3. Mean errors in prior sd and the tables.
"$PYTHON" - "$RUNS" "$RESULTS" "$RECIPE" "$TARGET" "$SEEDS" "$REF_SAMPLES" <<'EOF'
import collections, math, re, sys
import numpy as np

runs_path, c2st_path, recipe, target, seeds, ref_samples = sys.argv[1:]
target = float(target)
seeds = seeds.split()
# The prior's bounds, read from the recipe's sbi.prior.uniform.
text = open(recipe).read()
def bounds(key):
    m = re.search(r"\b" + key + r"\s*=\s*\{([^}]*)\}", text)
    return np.array([float(v) for v in m.group(1).split(",")])
low, high = bounds("low"), bounds("high")
prior_sd = (high - low) / math.sqrt(12)
names = re.search(r"names\s*=\s*\{([^}]*)\}", text).group(1).replace('"', "").replace(" ", "").split(",")

def load(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)

runs = collections.OrderedDict()
for line in open(runs_path):
    name, seed, d, cpu, ran, sets = line.rstrip("\n").split("\t")
    runs.setdefault(name, {})[seed] = (d, float(cpu), ran, sets)
c2st = collections.defaultdict(dict)
for line in open(c2st_path):
    name, seed, acc = line.rstrip("\n").split("\t")
    c2st[name][seed] = acc

ref = {s: load(runs["reference"][s][0] + "/posterior_samples.csv") for s in seeds}
ref_mean = {s: ref[s].mean(axis=0) for s in seeds}

def extra_sims(name):
    # The compressor's own simulations over all the observations, from its
    # step's report (printed when it ran: once when it does not depend on
    # the observation, once per observation with a pilot fiducial point).
    total = 0
    for s in seeds:
        log = open(runs[name][s][0] + "/sbirun.log").read()
        total += sum(int(n) for n in re.findall(r"summary\.moped \(.*?\): .*?; (\d+) simulations", log))
    if total == 0 and re.search(r"summary=(moped|score)", runs[name][seeds[0]][3]):
        return "as the row that fitted it"  # its compressor came from the cache
    return f"{total:,}"

def budget(name):
    m = re.findall(r"(?:^|\s)simulations=(\d+)", runs[name][seeds[0]][3])  # the last one given wins
    return f"{int(m[-1]):,}" if m else "?"

print(f"| summaries | simulations | samples | C2ST (mean of {len(seeds)}) | max \\|mean error\\| (prior sd) | "
      f"within {target} on every observation | extra simulations ({len(seeds)} observations) | CPU s |")
print("|---|---|---|---|---|---|---|---|")
errs = {}
for name, per in runs.items():
    if name == "reference":
        continue
    e = np.array([np.abs(load(per[s][0] + "/posterior_samples.csv").mean(axis=0) - ref_mean[s]) / prior_sd
                  for s in seeds])
    errs[name] = e
    n = load(per[seeds[0]][0] + "/posterior_samples.csv").shape[0]
    accs = [c2st[name].get(s, "fail") for s in seeds]
    mean_c2st = "—" if "fail" in accs else f"{np.mean([float(a) for a in accs]):.3f}"
    worst = np.unravel_index(np.argmax(e), e.shape)
    cpu = sum(per[s][1] for s in seeds)
    print(f"| {name} | {budget(name)} | {n:,} | {mean_c2st} | {e.max():.2f} ({names[worst[1]]}, obs_seed {seeds[worst[0]]}) | "
          f"{'yes' if e.max() <= target else 'no'} | {extra_sims(name)} | {cpu:.0f} |")
ref_cpu = sum(runs["reference"][s][1] for s in seeds)
print(f"\nreference: method=likelihood, num_samples={ref_samples}, {ref_cpu:.0f} CPU s in all")
for s in seeds:
    log = open(runs["reference"][s][0] + "/sbirun.log").read()
    m = re.search(r"max R-hat ([0-9.]+), min ESS (\d+)", log)
    print(f"  obs_seed {s}: mean " + " ".join(f"{v:.3f}" for v in ref_mean[s])
          + (f"; max R-hat {m.group(1)}, min ESS {m.group(2)}" if m else ""))

print("\n| summaries | obs_seed | C2ST | " + " | ".join(names) + " |")
print("|---|---|---|" + "---|" * len(names))
for name, e in errs.items():
    for i, s in enumerate(seeds):
        acc = c2st[name].get(s, "fail")
        acc = acc if acc == "fail" else f"{float(acc):.3f}"
        print(f"| {name} | {s} | {acc} | " + " | ".join(f"{v:.2f}" for v in e[i]) + " |")

print("\nsteps that ran (name obs_seed: kinds):")
for name, per in runs.items():
    for s in seeds:
        print(f"  {name} {s}: {per[s][2]}")
EOF
echo
echo "samples, logs, runs.tsv and c2st.tsv in $WORKDIR" >&2
