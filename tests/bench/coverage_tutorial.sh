#!/bin/bash
# Benchmark (not a test): the expected-coverage curves of NPE, NLE and NRE
# on the tutorial model (recipes/tutorial.lua) at 10,000 simulations, 200
# test points each, drawn in one SVG by the engine's core.plot_curve
# (tests/bench/coverage_tutorial_plot.lua), with the diagonal and each
# method's binomial band. Prints a markdown table per method: the largest
# deviation from the diagonal, its level and direction, the test-set
# MCMC's R-hat warning and the CPU seconds of the coverage step; then NLE
# and NRE again with 20 chains and 200 warm-up sweeps per test point
# (coverage_tutorial_recipe.lua, the tutorial's model; LONG=0 skips them).
# Takes about 10 CPU minutes (LONG=0: about 4).
#
#   bash tests/bench/coverage_tutorial.sh                 # writes docs/img/coverage-tutorial.svg
#   SVG=/tmp/c.svg TESTS=50 bash tests/bench/coverage_tutorial.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
tests=${TESTS:-200}
svg=${SVG:-$root/docs/img/coverage-tutorial.svg}
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$svg")"

row() { # RUN_JSON METHOD MCMC: one table row from run.json
	python3 - "$@" <<'PY'
import json, re, sys
j = json.load(open(sys.argv[1]))
d = next(d for d in j["diagnostics"] if d["summary"].startswith("coverage"))
level = re.search(r"at level ([0-9.]+)", d["summary"]).group(1)
inside = re.search(r"([0-9]+ of [0-9]+) levels inside", d["summary"]).group(1)
node = next(n for n in j["nodes"] if n["kind"] == "diagnose.ranks")
cpu = "%.1f" % node["cpu_seconds"] if node["state"] == "ran" else "cached"
rhat = "-"
for w in j.get("warnings", []):
    r = re.search(r"test-set posteriors of coverage: .*R-hat ([0-9.]+)", w)
    if r: rhat = r.group(1)
print("| %s | %s | %.3f | %s | %s | %s | %s | %s |" % (sys.argv[2].upper(), sys.argv[3], d["value"], level,
      d["direction"], inside, rhat, cpu))
PY
}
run() { # NAME RECIPE ARGS...: one sbirun run into $work/NAME
	local name=$1 recipe=$2
	shift 2
	"$sbirun" "$recipe" "$@" --jobs "${JOBS:-1}" --cache "$work/cache" --out "$work/$name" >"$work/log-$name" \
		2>"$work/err-$name" || {
		echo "sbirun failed ($name):" >&2
		cat "$work/err-$name" >&2
		exit 1
	}
}

printf "| method | test-set MCMC | largest deviation | at level | direction | levels inside the band | median R-hat warning | coverage CPU s |\n"
printf "|---|---|---|---|---|---|---|---|\n"
for m in npe nle nre; do
	run $m "$root/recipes/tutorial.lua" --set method=$m --set simulations=10000 --set coverage="$tests"
	row "$work/$m/run.json" $m "$([ $m = npe ] && echo - || echo "10 chains, 50 warm-up (default)")"
done
# The tutorial leaves the test-set MCMC at the diagnostic's defaults; the
# same model with the reference package's sampler settings (LONG=0 skips).
if [ "${LONG:-1}" != 0 ]; then
	for m in nle nre; do
		run $m-long "$here/coverage_tutorial_recipe.lua" --set method=$m --set tests="$tests" --set chains=20 \
			--set warmup=200
		row "$work/$m-long/run.json" $m "20 chains, 200 warm-up"
	done
fi
"$sbirun" lua "$here/coverage_tutorial_plot.lua" "$svg" "$work/npe/coverage.csv" "$work/nle/coverage.csv" \
	"$work/nre/coverage.csv"
echo "wrote $svg" >&2
