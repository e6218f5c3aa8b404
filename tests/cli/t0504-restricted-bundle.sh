#!/bin/bash
# A recipe in an unpacked bundle runs restricted: reading a file outside
# the bundle folder (through sbi.observation or sbi.core.read_matrix in a
# module, on a path the bundle does not map to a bundled copy) or writing outside the output folder is refused with a clear
# message, unless --trust is given; show says so.
. "$(dirname "$0")/lib.sh"
mkdir proj
printf '0.3\n' > outside.csv
cat > proj/recipe.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 500, seed = 2,
  simulator = function(theta, rng) return { theta[1] + 0.1 * rng:normal() } end }
local obs = sbi.observation(sbi.param("observation", "../outside.csv"))
sbi.output { post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 } }
LUA
run proj/recipe.lua --quiet
expect_ok
run bundle proj/recipe.lua -o b.tar --compression none
expect_ok
run show b.tar
expect_ok
expect_out "runs restricted"
run unpack b.tar u
expect_ok
[ -f u/.sbirun-bundle ] || fail "unpack did not write the marker u/.sbirun-bundle"

# The hard-coded ../outside.csv was read while bundling: the bundle maps it
# to its copy inside u (u/external/outside.csv), so it is allowed.
run u/recipe.lua --out o0
expect_ok
expect_err "u is an unpacked bundle: its recipe runs restricted"
# Another path resolving to a real file outside u: refused.
cp outside.csv outside2.csv
run u/recipe.lua --out o1 --set observation=../outside2.csv
expect_fail 1
expect_err "u is an unpacked bundle: its recipe runs restricted"
expect_err "u/recipe.lua:5: sbi.observation: cannot read observation file '../outside2.csv'"
expect_err "is outside the bundle folder"
expect_err "run it with --trust to lift this"
run graph u/recipe.lua --set observation=../outside2.csv
expect_fail 1
expect_err "is outside the bundle folder"
run u/recipe.lua --out o1 --quiet --trust --set observation=../outside2.csv
expect_ok
# Its bundled copy, inside the folder, is allowed.
run u/recipe.lua --out o2 --quiet --set observation=external/outside.csv
expect_ok
# A symbolic link inside the folder pointing outside is refused too.
ln -s ../outside.csv u/link.csv
run u/recipe.lua --out o3 --quiet --set observation=u/link.csv
expect_fail 1
expect_err "is outside the bundle folder"

# sbi.core.read_matrix in a module, and sbi.core.write_samples elsewhere.
mkdir proj2
cat > proj2/data.lua <<'LUA'
local core = require "sbi.core"
local M = {}
function M.load(path)
  local m, msg = core.read_matrix(path)
  if not m then error("data.load: " .. msg, 2) end
  return m
end
return M
LUA
cat > proj2/recipe.lua <<'LUA'
local sbi = require "sbi"
local data = require "data"
local m = data.load(sbi.param("file", "../outside.csv"))
if sbi.param("write", false) then sbi.core.write_samples("../written", "x", m, { "a" }) end
sbi.output { obs = sbi.observation { m:get(1, 1) } }
LUA
# read_matrix reads relative to the current directory: run from proj2.
(cd proj2 && "$SBIRUN" recipe.lua --quiet >/dev/null 2>&1) || fail "proj2/recipe.lua failed"
(cd proj2 && "$SBIRUN" bundle recipe.lua -o ../b2.tar --compression none 2>/dev/null) || fail "bundle of proj2 failed"
run unpack b2.tar u2
expect_ok
# ../outside.csv was read while bundling: it is bundled, and the path the
# recipe gave is mapped to the copy inside the folder.
[ -f u2/external/outside.csv ] || fail "read_matrix's file was not bundled"
(cd u2 && "$SBIRUN" recipe.lua --quiet >/dev/null 2>&1) || fail "the bundled copy of ../outside.csv was not used"
# A path the bundle does not map, outside the folder, is refused.
cp outside.csv outside2.csv
(cd u2 && "$SBIRUN" recipe.lua --quiet --set file=../outside2.csv >../out.u2 2>../err.u2)
[ $? -eq 1 ] || fail "read_matrix outside the folder was not refused"
grep -qF "data.load: ../outside2.csv is outside the bundle folder" err.u2 || fail "read_matrix message: $(cat err.u2)"
(cd u2 && "$SBIRUN" recipe.lua --quiet --trust >/dev/null 2>&1) || fail "read_matrix with --trust failed"
(cd u2 && "$SBIRUN" recipe.lua --quiet --trust --set write=true >/dev/null 2>&1) || fail "write with --trust failed"
[ -f written/x.csv ] || fail "--trust: write_samples did not write"
rm -rf written
cp outside.csv u2/inside.csv
(cd u2 && "$SBIRUN" recipe.lua --quiet --set file=inside.csv --set write=true >/dev/null 2>../err.u2w)
[ $? -eq 1 ] || fail "write_samples outside the output folder was not refused"
grep -qF "writes only to its output folder" err.u2w || fail "write_samples message: $(cat err.u2w)"
[ -e written ] && fail "a restricted recipe wrote ../written"

finish
