#!/bin/bash
# Checks that a change leaves results byte-identical (not run in CI: about
# ten minutes on 2 cores). Builds two revisions of this repository in
# temporary worktrees, runs the same recipes with each (every run with a
# fresh cache), and compares every output file but run.json (which holds
# keys and times) byte for byte.
#
# Usage:  tests/bench/same_outputs.sh BASE_REV [NEW_REV]
#         (NEW_REV defaults to the working tree and its build/lang/sbirun)
# The recipes: the tutorial with each method (rejection_abc, npe, nle, nre
# at 20,000 simulations; likelihood) and sbibm two_moons with npe, nle, nre
# at 10,000 and rejection ABC (with the cross-validated KDE) at 10,000.
# Prints one line per file, "same" or "DIFF", and exits 1 on any DIFF.
# Environment: WORKDIR (default: a new temporary folder, kept and named).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BASE_REV [NEW_REV]" >&2; exit 2; }
work=${WORKDIR:-$(mktemp -d)}
mkdir -p "$work"

# build REV DIR: a worktree of REV at DIR, built without tests.
build() {
	git -C "$root" worktree add -q --detach "$2" "$1"
	(cd "$2" && meson setup build -Dtests=false >/dev/null && ninja -C build >/dev/null)
}

# outputs TREE DIR: runs TREE's recipes with TREE's build/lang/sbirun,
# each into DIR/NAME/out.
outputs() {
	local tree=$1 dir=$2 m
	one() {
		local name=$1
		shift
		rm -rf "${dir:?}/$name"
		echo "  $name: sbirun $*" >&2
		(cd "$tree" && build/lang/sbirun "$@" --quiet --cache "$dir/$name/cache" --out "$dir/$name/out" >/dev/null)
	}
	for m in rejection_abc npe nle nre; do
		one "tut_$m" recipes/tutorial.lua --set method=$m --set simulations=20000
	done
	one tut_likelihood recipes/tutorial.lua --set method=likelihood
	for m in npe nle nre rejection_abc; do
		one "two_moons_$m" recipes/sbibm/two_moons.lua --set method=$m --set simulations=10000
	done
}

trap 'git -C "$root" worktree remove --force "$work/base" 2>/dev/null;
      git -C "$root" worktree remove --force "$work/new" 2>/dev/null; git -C "$root" worktree prune' EXIT
build "$1" "$work/base"
new=$root
if [ $# -ge 2 ]; then
	build "$2" "$work/new"
	new=$work/new
fi
echo "base $1:" >&2
outputs "$work/base" "$work/runs-base"
echo "new ${2:-working tree}:" >&2
outputs "$new" "$work/runs-new"

rc=0
for d in "$work"/runs-base/*/; do
	n=$(basename "$d")
	for f in "$d"out/*; do
		b=$(basename "$f")
		[ "$b" = run.json ] && continue
		if cmp -s "$f" "$work/runs-new/$n/out/$b"; then
			echo "same  $n/$b"
		else
			echo "DIFF  $n/$b"
			rc=1
		fi
	done
done
echo "outputs in $work (command: $0 $*)"
exit $rc
