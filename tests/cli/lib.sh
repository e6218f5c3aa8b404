# Shared helpers for the CLI tests. Each test script sources this file, runs
# sbirun in a fresh temporary directory and calls the check functions; the
# script fails (non-zero exit) when any check failed.
#
# Environment (set by meson): SBIRUN = the binary, SRCDIR = the source root.
set -u
: "${SBIRUN:?SBIRUN must point at the sbirun binary}"
: "${SRCDIR:?SRCDIR must point at the source root}"

T=$(mktemp -d "${TMPDIR:-/tmp}/sbirun-test.XXXXXX")
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
FAILS=0
CHECKS=0

fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*" >&2
}

# run CMD...: runs sbirun with arguments; sets $RC, $OUT (stdout file), $ERR (stderr file).
run() {
	OUT="$T/out.$CHECKS" ERR="$T/err.$CHECKS"
	CHECKS=$((CHECKS + 1))
	"$SBIRUN" "$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# run_within SECONDS CMD...: run, bounded by timeout(1); a failure when it
# did not end in time ($RC is then 124).
run_within() {
	OUT="$T/out.$CHECKS" ERR="$T/err.$CHECKS"
	CHECKS=$((CHECKS + 1))
	local secs=$1
	shift
	timeout "$secs" "$SBIRUN" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	[ "$RC" -ne 124 ] || fail "sbirun $* did not finish within $secs s (it hung)"
}

# expect_ok: the last run exited 0.
expect_ok() {
	if [ "$RC" -ne 0 ]; then
		fail "expected success, got exit $RC: $(head -c 2000 "$ERR")"
	fi
}

# expect_fail [CODE]: the last run exited non-zero (with CODE when given).
expect_fail() {
	if [ "$RC" -eq 0 ]; then
		fail "expected failure, got exit 0"
	elif [ -n "${1:-}" ] && [ "$RC" -ne "$1" ]; then
		fail "expected exit $1, got $RC: $(head -c 2000 "$ERR")"
	fi
}

# expect_err TEXT: stderr of the last run contains TEXT (fixed string).
expect_err() {
	if ! grep -qF -- "$1" "$ERR"; then
		fail "stderr does not contain '$1'; it was: $(head -c 2000 "$ERR")"
	fi
}

# expect_out TEXT: stdout of the last run contains TEXT.
expect_out() {
	if ! grep -qF -- "$1" "$OUT"; then
		fail "stdout does not contain '$1'; it was: $(head -c 2000 "$OUT")"
	fi
}

# ran_nodes FILE: the number of nodes that ran according to run.json FILE.
ran_nodes() {
	grep -o '"nodes_ran": [0-9]*' "$1" | grep -o '[0-9]*$'
}

# node_field FILE KIND FIELD: the string FIELD (state, key, artifact, ...)
# of the first node of KIND in run.json FILE (written with one field a line).
node_field() {
	awk -v kind="\"$2\"" -v field="\"$3\":" '
		/"kind":/ { k = $2; sub(/,$/, "", k) }
		$1 == field { v = $2; gsub(/[",]/, "", v); if (k == kind) { print v; exit } }
	' "$1"
}

# state_of FILE KIND: the state ("ran", "cached", ...) of the first node of KIND in run.json.
state_of() { node_field "$1" "$2" state; }
# key_of / artifact_of FILE KIND: that node's key / artifact hash.
key_of() { node_field "$1" "$2" key; }
artifact_of() { node_field "$1" "$2" artifact; }

# jget FILE EXPR: the Python expression EXPR over j, the JSON in FILE
# (python3, not jq: it is in .ci/bootstrap's packages); '' on any error.
jget() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1], "rb"))
r = eval(sys.argv[2])
print("" if r is None else str(r).lower() if isinstance(r, bool) else r)' "$1" "$2" 2>/dev/null
}

# expect_eq A B WHAT
expect_eq() {
	if [ "$1" != "$2" ]; then
		fail "$3: got '$1', expected '$2'"
	fi
}

# cache_consistent DIR: every ref in the cache names an object that exists and
# every object verifies (checked by a second run being able to read them is
# too slow; here we check structure: no temporary files left behind).
no_temp_files() {
	if find "$1" -name '.tmp-*' 2>/dev/null | grep -q .; then
		fail "temporary files left in $1: $(find "$1" -name '.tmp-*' | head -3)"
	fi
}

# sanitized: true in the sanitizer build (tests/meson.build sets
# SBI_SANITIZE). Statistical tests then run a smaller budget through the
# same code and leave their accuracy checks to the normal build.
sanitized() { # (Meson from 1.8 gives the option as a list: "[]" for none)
	case ${SBI_SANITIZE:-none} in none | "[]") return 1 ;; esac
}

# is_number V: V is one finite decimal number ("1", "-0.5", "2e-3"); NaN, inf,
# empty and anything else are not (awk would read "nan" or "" as a number).
is_number() {
	[[ $1 =~ ^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ ]]
}

# col_stats FILE COL: mean and standard deviation of a CSV column (header
# skipped). Prints "none none" (which `within` rejects) and a message on
# stderr when there is no data row or a cell is not a finite number.
col_stats() {
	awk -F, -v c="$2" -v f="$1" '
		NR > 1 { if ($c !~ /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/) { bad = NR; exit }
		         s += $c; ss += $c * $c; n++ }
		END { if (bad) { printf "col_stats: %s line %d column %d is not a finite number\n", f, bad, c > "/dev/stderr"; print "none none"; exit }
		      if (n == 0) { printf "col_stats: %s has no data row\n", f > "/dev/stderr"; print "none none"; exit }
		      m = s / n; v = ss / n - m * m; if (v < 0) v = 0
		      printf "%.6f %.6f\n", m, sqrt(v) }' "$1"
}

# numbers WHAT V...: every V is a finite number, else a failure WHAT (and 1).
numbers() {
	local what=$1 v
	shift
	for v; do
		is_number "$v" || { fail "$what (not a finite number)"; return 1; }
	done
}

# within A B TOL WHAT: |A - B| <= TOL, else a failure naming WHAT; A, B and
# TOL must be finite numbers.
within() {
	numbers "$4: got '$1', expected '$2' +- '$3'" "$1" "$2" "$3" || return
	awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' ||
		fail "$4: got $1, expected $2 +- $3"
}

# in_range V LO HI WHAT: LO <= V <= HI, all finite numbers, else a failure naming WHAT.
in_range() {
	numbers "$4: got '$1', expected a number in ['$2', '$3']" "$1" "$2" "$3" || return
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
		fail "$4: got $1, expected $2..$3"
}

# refs_count CACHE: the number of finished artifacts (refs) in the cache CACHE.
refs_count() {
	find "$1/refs" -type f ! -name '.tmp-*' 2>/dev/null | wc -l
}

# alive PID: the process exists and is not a zombie (kill -0 succeeds on a
# zombie, which an orphan stays where PID 1 does not reap, as in containers).
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $1 }')
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_refs CACHE N PID: polls until CACHE holds at least N refs while the
# process PID runs, so a test acts on observed progress, not on a delay.
# Returns 1 with a failure when PID ends first or after 240 s without it.
wait_refs() {
	local end=$((SECONDS + 240))
	while [ "$(refs_count "$1")" -lt "$2" ]; do
		if ! kill -0 "$3" 2>/dev/null; then
			fail "process $3 ended with $(refs_count "$1") refs in $1, before $2 existed"
			return 1
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			fail "no progress: $(refs_count "$1") refs in $1 after 240 s, waiting for $2"
			return 1
		fi
		sleep 0.02
	done
}

# bundle_setup [LUA]: TOOL (tests/cli/bundle_tool.py, which edits bundles),
# the recipe proj/r.lua (LUA, by default one observation as the output),
# run once (into o0) so that its cache holds every step, and bundled
# uncompressed into b.tar; each step is a check.
bundle_setup() {
	TOOL="$SRCDIR/tests/cli/bundle_tool.py"
	mkdir -p proj
	local one_obs='local sbi = require "sbi"
sbi.output { obs = sbi.observation { 0.5 } }'
	printf '%s\n' "${1:-$one_obs}" > proj/r.lua
	run proj/r.lua --quiet --out o0
	expect_ok
	run bundle proj/r.lua -o b.tar --compression none
	expect_ok
}

# edit_bundle IN OUT EDIT...: bundle_tool.py writes OUT, the bundle IN edited.
edit_bundle() {
	python3 "$TOOL" "$@" || fail "bundle_tool.py $* failed"
}

# verify_refused BUNDLE TEXT: verify fails (exit 1) with TEXT on stdout.
verify_refused() {
	run verify "$1"
	expect_fail 1
	expect_out "$2"
}

# unpack_refused BUNDLE DIR TEXT: unpack fails (exit 1) with TEXT on stderr,
# leaving neither DIR nor its temporary folder (.DIR.unpack*).
unpack_refused() {
	run unpack "$1" "$2"
	expect_fail 1
	expect_err "$3"
	[ -e "$2" ] && fail "unpack of $1 created $2"
	ls -A | grep -q "^\.$2\.unpack" && fail "unpack of $1 left its temporary folder"
}

# abc_helper_recipe [OPTS]: data/obs.csv and recipe.lua, a rejection ABC whose
# simulator lives in the module helper.lua (so that a bundle must carry it);
# OPTS (e.g. "chunk_size = 500,") go into the sbi.simulate options.
abc_helper_recipe() {
	mkdir data
	cat > helper.lua <<'LUA'
local M = {}
function M.sim(theta, rng) return { theta[1] + 0.1 * rng:normal(), theta[2] + 0.1 * rng:normal() } end
return M
LUA
	cat > recipe.lua <<LUA
local sbi = require "sbi"
local helper = require "helper"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local sims = sbi.simulate { prior = prior, n = sbi.param("simulations", 2000), seed = 1,${1:+ $1}
  simulator = function(theta, rng) return helper.sim(theta, rng) end }
local obs = sbi.observation(sbi.param("observation", "data/obs.csv"))
sbi.output { posterior_samples = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.05 } }
LUA
	printf '0.3,-0.2\n' > data/obs.csv
}

# own_tmpdir: TMPDIR is a new empty folder of the test (replay makes its
# folders there; a test can check that none is left).
own_tmpdir() {
	export TMPDIR="$T/tmp"
	mkdir "$TMPDIR"
}

finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$FAILS of $CHECKS checks failed" >&2
		exit 1
	fi
	echo "ok ($CHECKS runs)"
	exit 0
}
