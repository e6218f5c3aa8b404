#!/bin/bash
# Data files a recipe reads with sbi.core.read_matrix are bundled: read at
# load time from ../data/x.csv (relative to sbi.recipe_dir()), the tree can
# go away and the unpacked recipe finds the bundled copy (restricted) with
# all cache hits and the same output. A file read only while a step runs is
# packed from the cache's record of that run (outside the recipe's folder
# only with --include); a step that never ran with the cache is named in
# bundle's report.
. "$(dirname "$0")/lib.sh"
mkdir -p tree/proj tree/data
printf 'a,b\n0.3,-0.2\n' > tree/data/x.csv
printf 'c\n0.5\n' > tree/data/y.csv
cat > tree/proj/recipe.lua <<'LUA'
local sbi = require "sbi"
local m = sbi.core.read_matrix(sbi.recipe_dir() .. "/../data/x.csv")
assert(m, "cannot read x.csv")
local x1, x2 = m:get(1, 1), m:get(1, 2)
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 } }
local sims = sbi.simulate { prior = prior, n = 2000, seed = 1,
  simulator = function(theta, rng) return { theta[1] + 0.1 * rng:normal(), theta[2] + 0.1 * rng:normal() } end }
sbi.output { post = sbi.abc.rejection { sims = sims, observation = sbi.observation { x1, x2 }, quantile = 0.05 } }
LUA

run tree/proj/recipe.lua --out out1 --quiet
expect_ok
run bundle tree/proj/recipe.lua -o b.tar --compression none
expect_ok
expect_err "3 of 3 steps cached"
grep -qF '"rel": "../data/x.csv"' b.tar || fail "the manifest has no map entry for ../data/x.csv"
run show b.tar
expect_out "1 data"
mv tree gone
run unpack b.tar /tmp/sbirun-t0505-$$
expect_ok
mv /tmp/sbirun-t0505-$$ u
[ -f u/external/x.csv ] || fail "unpack did not write u/external/x.csv"
[ -f u/.sbirun-bundle-paths ] || fail "unpack did not write u/.sbirun-bundle-paths"
rm -rf gone
run u/recipe.lua --out out2
expect_ok
expect_err "runs restricted"
expect_err "nothing to do"
expect_eq "$(ran_nodes out2/run.json)" 0 "unpacked run: nodes ran"
cmp -s out1/post.csv out2/post.csv || fail "unpacked run gives other samples"
# A path the bundle does not map is still refused outside the folder.
printf '1\n' > other.csv
cat > u/probe.lua <<'LUA'
local sbi = require "sbi"
local m, msg = sbi.core.read_matrix(sbi.recipe_dir() .. "/../other.csv")
assert(not m and msg:find("outside the bundle folder", 1, true), tostring(msg))
assert(sbi.core.file_exists(sbi.recipe_dir() .. "/../data/x.csv"), "mapped file_exists")
assert(sbi.core.file_hash(sbi.recipe_dir() .. "/../data/x.csv"), "mapped file_hash")
sbi.output { o = sbi.observation { 1 } }
LUA
run u/probe.lua --out out3 --quiet
expect_ok

# Read only inside a step: packed from the cache's record of the run.
mkdir -p t2/proj t2/data
printf 'v\n0.25\n' > t2/data/y.csv
cat > t2/proj/recipe.lua <<'LUA'
local sbi = require "sbi"
local dir = sbi.recipe_dir()
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, n = 1000, seed = 3,
  simulator = function(theta, rng) return { theta[1] + 0.1 * rng:normal() } end }
local obs = require("sbi.graph").node("observation", "recipe.lua:6", { file = "y" }, {}, function()
  local m = sbi.core.read_matrix(dir .. "/../data/y.csv")
  return { x = m }
end)
sbi.output { post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 } }
LUA
run bundle t2/proj/recipe.lua -o early.tar --compression none
expect_ok
expect_err "never ran with the cache"
run t2/proj/recipe.lua --out o4 --quiet
expect_ok
# The record is re-checked: a file outside the recipe's folder that only
# the cache's record names is packed only when given with --include.
run bundle t2/proj/recipe.lua -o late.tar --compression none
expect_fail 1
expect_err "records that the step observation (recipe.lua:6) read"
expect_err "outside the recipe's folder"
expect_err "--include PATH"
[ -e late.tar ] && fail "a refused bundle was written"
run bundle t2/proj/recipe.lua -o late.tar --compression none --include t2/data
expect_ok
grep -qF 'never ran' "$ERR" && fail "bundle after the run still reports unknown steps: $(cat "$ERR")"
grep -qF '"rel": "../data/y.csv"' late.tar || fail "the file read at run time was not bundled"
rm -rf t2
run unpack late.tar u4
expect_ok
run u4/recipe.lua --out o5 --quiet
expect_ok
expect_eq "$(ran_nodes o5/run.json)" 0 "unpacked run-time read: nodes ran"
cmp -s o4/post.csv o5/post.csv || fail "run-time read: other samples"
finish
