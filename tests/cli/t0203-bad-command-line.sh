#!/bin/bash
# Bad command lines: --set keys and values, unknown options, --jobs, a missing
# recipe, and cache or output folders that cannot be written (for root too:
# paths below a regular file or in /proc, since chmod does not stop root).
# Usage errors exit 2, other errors 1; nothing runs and the cache is intact.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/cli/t02-bad-inputs-lib.sh" || exit 1

# ---- --set ----
# An unknown key lists the recipe's parameters.
bad 1 "unknown --set nn: good.lua has parameters n, seed" -- good.lua --set nn=3
bad 1 "unknown --set bogus, nn:" "parameters n, seed" -- good.lua --set nn=3 --set bogus=1 --set n=500
cat > noparams.lua <<'EOF'
local sbi = require "sbi"
local obs = sbi.observation { 1 }
sbi.output { o = obs }
EOF
bad 1 "unknown --set n: noparams.lua has no parameters" -- noparams.lua --set n=3

# A non-number for a numeric parameter names the sbi.param line.
bad 1 "good.lua:6: --set n=many: expected a number (the recipe's default is 500)" -- good.lua --set n=many
bad 1 "good.lua:6: --set seed=: expected a number" -- good.lua --set seed=
cat > boolparam.lua <<'EOF'
local sbi = require "sbi"
local kde = sbi.param("kde", true)
EOF
bad 1 "boolparam.lua:2: --set kde=maybe: expected true or false" -- boolparam.lua --set kde=maybe

# A parameter value that passes as a number but not as an option.
bad 1 "good.lua:6:" "sbi.simulate: option 'n' must be an integer from 1 to 1000000000, got -5" -- good.lua --set n=-5

# --set without '=' or without a name: usage errors.
bad 2 "--set n: expected name=value" -- good.lua --set n
bad 2 "--set =3: expected name=value" -- good.lua --set =3
bad 2 "option needs a value: --set" -- good.lua --set

# ---- options ----
bad 2 "unknown option: --frobnicate" "sbirun --help" -- good.lua --frobnicate
bad 2 "unknown option: -x" -- good.lua -x
bad 2 "--jobs expects an integer from 1 to 256, got: 0" -- good.lua --jobs 0
bad 2 "--jobs expects an integer from 1 to 256, got: many" -- good.lua --jobs many
bad 2 "--jobs expects an integer from 1 to 256, got: 1000" -- good.lua --jobs 1000
bad 2 "unexpected argument: other.lua" -- good.lua other.lua
run graph good.lua --format svg
expect_fail 2
expect_err "--format svg: expected text or dot"
no_crash

# graph and clean check the recipe and --set the same way.
cat > graph_bad.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 1 }, high = { 0 } }
EOF
run graph graph_bad.lua --cache "$CACHE"
expect_fail 1
expect_err "graph_bad.lua:2: prior.uniform: high[1] = 0 must be greater than low[1] = 1"
no_crash
run clean good.lua --cache "$CACHE" --set nn=1
expect_fail 1
expect_err "unknown --set nn: good.lua has parameters n, seed"
no_crash
cache_ok

# ---- the recipe ----
run --jobs 2
expect_fail 2
expect_err "no recipe given"
no_crash
bad 1 "cannot open recipe missing.lua: No such file or directory" -- missing.lua
mkdir adir
bad 1 "cannot open recipe adir: it is a directory, expected a .lua file" -- adir

# ---- the cache folder ----
echo "not a folder" > afile
bad 1 "cannot use cache directory afile/sub" "choose another with --cache DIR" "Not a directory" \
	-- good.lua --cache afile/sub
bad 1 "cannot use cache directory afile" "afile exists and is not a directory" -- good.lua --cache afile
bad 1 "cannot use cache directory /proc/sbirun-test-cache" "No such file or directory" \
	-- good.lua --cache /proc/sbirun-test-cache
expect_eq "$(cat afile)" "not a folder" "the file given as --cache is untouched"
if [ "$(id -u)" != 0 ]; then
	# Not root: a read-only cache folder is refused before anything runs.
	mkdir ro-cache
	chmod a-w ro-cache
	bad 1 "cannot use cache directory ro-cache" -- good.lua --cache ro-cache --set seed=5
	expect_eq "$(ls ro-cache)" "" "read-only cache stays empty"
	chmod u+w ro-cache
fi

# ---- the output folder ----
# Checked before any node runs (seed=5 needs new simulations): nothing runs,
# nothing is added to the cache.
refs_before=$(find "$CACHE" -type f | wc -l)
bad 1 "cannot write the output folder afile/sub" "choose another with --out DIR" "afile is not a directory" \
	-- good.lua --out afile/sub --set seed=5
if grep -q "^running" "$ERR"; then fail "nodes ran although the output folder is unusable"; fi
bad 1 "cannot write the output folder afile" "afile is not a directory" -- good.lua --out afile --set seed=5
bad 1 "cannot write the output folder /proc/sbirun-test-out/x" "choose another with --out DIR" \
	-- good.lua --out /proc/sbirun-test-out/x --set seed=5
if grep -q "^running" "$ERR"; then fail "nodes ran although the output folder cannot be created"; fi
expect_eq "$(find "$CACHE" -type f | wc -l)" "$refs_before" "cache files after output-folder failures"
expect_eq "$(cat afile)" "not a folder" "the file given as --out is untouched"

final_check
finish
