#!/bin/bash
# The manifest's recipe.file (issue 9 item 2): a nested recipe/sub/r.lua
# still runs restricted, because the restriction follows the unpacked
# folder (the marker is looked for in the recipe's folder and its
# parents), and finds the bundle's cache; a recipe.file with "..", outside
# recipe/ or naming no entry is refused alike by verify, unpack, show and
# replay, leaving nothing behind.
. "$(dirname "$0")/lib.sh"
own_tmpdir
printf 'a\n0.7\n' > secret.csv
bundle_setup 'local sbi = require "sbi"
local probe = sbi.param("probe", "")
if probe ~= "" then
  local m, msg = sbi.core.read_matrix(probe)
  if m then error("read the secret: " .. m:get(1, 1)) end
  error("probe refused: " .. msg)
end
sbi.output { obs = sbi.observation { 0.5 } }'

# Nested: accepted, and restricted.
edit_bundle b.tar n.tar rename:recipe/r.lua:recipe/sub/r.lua 'set:recipe.file:"recipe/sub/r.lua"'
run verify n.tar
expect_ok
run unpack n.tar u
expect_ok
expect_err "sbirun u/sub/r.lua"
run u/sub/r.lua --out o1
expect_ok
expect_err "is an unpacked bundle: its recipe runs restricted"
expect_eq "$(ran_nodes o1/run.json)" 0 "nested recipe: nodes ran (the bundle's cache u/.sbirun is used)"
run u/sub/r.lua --out o2 --set probe="$T/secret.csv"
expect_fail 1
expect_err "is outside the bundle folder"
grep -qF "read the secret" "$ERR" && fail "a nested recipe read a file outside the unpacked folder"
run u/sub/r.lua --out o3 --set probe="$T/u/sub/../../secret.csv"
expect_fail 1
expect_err "is outside the bundle folder"
# So does a symbolic link to it from elsewhere.
mkdir elsewhere
ln -s ../u/sub/r.lua elsewhere/link.lua
run elsewhere/link.lua --out o4 --set probe="$T/secret.csv"
expect_fail 1
expect_err "is outside the bundle folder"
# Replay runs it restricted too.
edit_bundle n.tar np.tar "set:sets:[\"probe=$T/secret.csv\"]"
run replay np.tar
expect_fail 1
expect_err "runs restricted"
expect_err "is outside the bundle folder"
grep -qF "read the secret" "$ERR" && fail "replay of a nested recipe read a file outside the unpacked folder"
[ -z "$(ls -A "$TMPDIR")" ] || fail "replay left files in TMPDIR: $(ls -A "$TMPDIR")"

# Refused recipe.file values: refused by every reader, nothing left.
printf 'error("outside")\n' > evil.lua
i=0
for bad in recipe/../evil.lua recipe/sub/../../../evil.lua ../evil.lua "$T/evil.lua" data/x.csv recipe/none.lua; do
	i=$((i + 1))
	edit_bundle b.tar e$i.tar "set:recipe.file:\"$bad\""
	verify_refused e$i.tar "recipe.file"
	unpack_refused e$i.tar v$i "recipe.file"
	run show e$i.tar
	expect_fail 1
	expect_err "recipe.file"
	run replay e$i.tar
	expect_fail 1
	expect_err "recipe.file"
	grep -qF "outside" "$ERR" && fail "replay ran $bad"
done
[ -z "$(ls -A "$TMPDIR")" ] || fail "replay left files in TMPDIR: $(ls -A "$TMPDIR")"
finish
