#!/bin/bash
# Speed benchmark (not a test): seconds of one C2ST of 10,000 against
# 10,000 samples, sbirun's core.c2st against the reference script
# tests/tools/c2st.py (scikit-learn; C2ST_PY names another), in 2 and 10
# dimensions.
#
#   bash tests/bench/c2st_speed.sh            # DIMS="2 10" N=10000 SHIFT=1
#
# The samples are standard normals, b's first coordinate shifted by SHIFT
# (Bayes accuracy Phi(SHIFT/2) = 0.69 for 1), drawn by numpy with seed 1.
# One thread each: OPENBLAS_NUM_THREADS=1 for numpy, and core.c2st trains
# its folds one after another (sbirun lua runs without --jobs). Prints a
# markdown table: dims, the accuracy, wall and CPU seconds (user + system,
# from /usr/bin/time: the fair figure on a shared machine) of each, and the
# speed-up in CPU seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sbirun=${SBIRUN:-$root/build/lang/sbirun}
c2st_py=${C2ST_PY:-$root/tests/tools/c2st.py}
n=${N:-10000}
shift_=${SHIFT:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

cat >"$tmp/c2st.lua" <<'LUA'
local core = require "sbi.core"
local a = assert(core.read_matrix(arg[1]))
local b = assert(core.read_matrix(arg[2]))
print(string.format("%.6f", (core.c2st(a, b, { seed = 1 }))))
LUA

# timed OUT CMD...: runs CMD, stdout to OUT; prints "wall cpu" seconds.
timed() {
	local out=$1
	shift
	local t0 t1
	t0=$(date +%s.%N)
	/usr/bin/time -f "%U %S" -o "$tmp/time" "$@" >"$out"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" '{ printf "%.1f %.1f\n", b - a, $1 + $2 }' "$tmp/time"
}

echo "| dims | n vs n | sbirun accuracy | sbirun wall s | sbirun CPU s | c2st.py accuracy | c2st.py wall s | c2st.py CPU s | speed-up (CPU) |"
echo "|---|---|---|---|---|---|---|---|---|"
for d in ${DIMS:-2 10}; do
	/usr/bin/python3 - "$tmp" "$d" "$n" "$shift_" <<'PY'
import sys, numpy as np
tmp, d, n, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(1)
a = rng.standard_normal((n, d)); b = rng.standard_normal((n, d)); b[:, 0] += s
hdr = ",".join("p%d" % (j + 1) for j in range(d))
for name, x in (("a", a), ("b", b)):
    np.savetxt(f"{tmp}/{name}.csv", x, delimiter=",", header=hdr, comments="", fmt="%.9g")
PY
	read -r we ce < <(timed "$tmp/acc_e" "$sbirun" lua "$tmp/c2st.lua" "$tmp/a.csv" "$tmp/b.csv")
	read -r wp cp < <(timed "$tmp/acc_p" /usr/bin/python3 "$c2st_py" "$tmp/a.csv" "$tmp/b.csv" --n "$n" --first)
	awk -v d="$d" -v n="$n" -v ae="$(cat "$tmp/acc_e")" -v ap="$(cat "$tmp/acc_p")" -v we="$we" -v ce="$ce" \
		-v wp="$wp" -v cp="$cp" 'BEGIN {
		printf "| %d | %d vs %d | %s | %.1f | %.1f | %s | %.1f | %.1f | %.1fx |\n", d, n, n, ae, we, ce, ap, wp, cp,
			cp / (ce > 0 ? ce : 0.01) }'
done
