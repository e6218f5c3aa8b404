#!/bin/bash
# Benchmark (not a test): the expected-coverage curves of NPE, NLE and NRE
# on the tutorial model (recipes/tutorial.lua) at 10,000 simulations, 200
# test points each, drawn in one SVG by the engine's core.plot_curve
# (tests/bench/coverage_tutorial_plot.lua), with the diagonal and each
# method's binomial band. Prints a markdown table of the largest deviation
# from the diagonal, its level and direction, and the CPU seconds of the
# coverage step, per method.
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

printf "| method | largest deviation | at level | direction | levels inside the band | coverage CPU s |\n"
printf "|---|---|---|---|---|---|\n"
for m in npe nle nre; do
	out=$work/$m
	"$sbirun" "$root/recipes/tutorial.lua" --set method=$m --set simulations=10000 --set coverage="$tests" \
		--jobs "${JOBS:-1}" --cache "$work/cache" --out "$out" >"$work/log-$m" 2>"$work/err-$m" || {
		echo "sbirun failed ($m):" >&2
		cat "$work/err-$m" >&2
		exit 1
	}
	python3 - "$out/run.json" "$m" <<'PY'
import json, re, sys
j = json.load(open(sys.argv[1]))
d = next(d for d in j["diagnostics"] if d["summary"].startswith("coverage"))
level = re.search(r"at level ([0-9.]+)", d["summary"]).group(1)
inside = re.search(r"([0-9]+ of [0-9]+) levels inside", d["summary"]).group(1)
cpu = next(n["cpu_seconds"] for n in j["nodes"] if n["kind"] == "diagnose.ranks")
print("| %s | %.3f | %s | %s | %s | %.1f |" % (sys.argv[2].upper(), d["value"], level, d["direction"], inside, cpu))
PY
done
"$sbirun" lua "$here/coverage_tutorial_plot.lua" "$svg" "$work/npe/coverage.csv" "$work/nle/coverage.csv" \
	"$work/nre/coverage.csv"
echo "wrote $svg" >&2
