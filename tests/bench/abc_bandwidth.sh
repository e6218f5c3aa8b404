#!/bin/bash
# Benchmark (not a test): seconds of the rejection ABC step whose KDE
# bandwidth is chosen by cross-validation (bandwidth = "cv", quadratic in
# the accepted samples), for 1,000 and 10,000 accepted of 100,000
# simulations (3 parameters).
#
#   bash tests/bench/abc_bandwidth.sh [SBIRUN] [ACCEPTED...]
#
# Prints one line per size: the ABC step's wall and CPU time (run.json's
# "seconds" and "cpu_seconds" of the abc.rejection node; the simulations
# are timed apart). On a shared machine the CPU time is the steadier one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sbirun=${1:-$here/../../build/lang/sbirun}
shift || true
sizes=${*:-1000 10000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for a in $sizes; do
	cmd="$sbirun $here/abc_bandwidth_recipe.lua --set accepted=$a --cache $tmp/cache --out $tmp/out --quiet"
	$cmd >/dev/null
	field() { awk -v k="\"$1\":" '/"kind": "abc.rejection"/ { f = 1 } f && $1 == k { gsub(/,/, "", $2); printf "%.3f", $2; exit }' "$tmp/out/run.json"; }
	echo "accepted=$a: abc.rejection step $(field seconds) s wall, $(field cpu_seconds) s CPU   ($cmd)"
done
