#!/bin/bash
# Cheap checks come before expensive work: a simulator whose output length
# differs from the observation's stops at its first simulation; absurd n
# and more memory than the machine has are refused at once; observation
# paths that are not regular files are refused, and a FIFO in the cache
# does not hang a run.
. "$(dirname "$0")/lib.sh"
cat >recipe.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local k = sbi.param("k", 2)
local function sim(t, rng)
  local x = {}
  for i = 1, k do x[i] = t[1] + 0.1 * rng:normal() end
  return x
end
local s = sbi.param("declared", false) and sbi.simulator { fn = sim, dim = k } or sim
local path = sbi.param("obs", "")
local obs
if path == "sim" then obs = sbi.observation { simulator = sim, theta = { 0 } }
elseif path ~= "" then obs = sbi.observation(path)
else obs = sbi.observation { 0.1, 0.2 } end
local sims = sbi.simulate { prior = prior, simulator = s, n = sbi.param("n", 20000), chunk_size = 1000 }
sbi.output { post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.05 } }
LUA
# trun CMD...: run with a time bound (a failure when it hangs).
trun() { run_within 30 "$@"; }

# Lengths: found by the first simulation, or declared; nothing simulated.
trun recipe.lua --cache c1 --out o --set k=1000 --quiet
expect_fail 1
expect_err "the first simulation returned 1000 values but observation (recipe.lua:14) has 2 values"
expect_eq "$(refs_count c1)" 0 "chunks stored before the length check"
trun recipe.lua --cache c1 --out o --set k=1000 --set declared=true --quiet
expect_fail 1
expect_err "the simulator is declared with dim = 1000 but observation (recipe.lua:14) has 2 values"
printf 'a,b,c\n1,2,3\n' >obs3.csv
trun recipe.lua --cache c1 --out o --set obs=obs3.csv --quiet
expect_fail 1
expect_err "the first simulation returned 2 values but observation (recipe.lua:13) has 3 values"
expect_eq "$(refs_count c1)" 0 "chunks stored before the length check"
trun recipe.lua --cache c1 --out o --set obs=obs3.csv --set k=3 --quiet
expect_ok

# n: a limit, and memory (an observation from a simulation: length unknown).
trun recipe.lua --cache c1 --out o --set n=1e12 --quiet
expect_fail 1
expect_err "option 'n' must be an integer from 1 to 1000000000"
trun recipe.lua --cache c1 --out o --set n=1000000000 --set k=1000 --set obs=sim --quiet
expect_fail 1
expect_err "1000000000 simulations of 1 parameters and 1000 values need 8.01e+03 GB of memory"

# Observation files that are not regular files. (The virtual memory bound
# keeps an old binary reading /dev/zero from eating the machine.)
mkfifo fifo.csv
for f in /dev/zero fifo.csv; do
	OUT="$T/out.$CHECKS" ERR="$T/err.$CHECKS"
	CHECKS=$((CHECKS + 1))
	(ldd "$SBIRUN" 2>/dev/null | grep -q libasan || ulimit -v 4000000
	 timeout 30 "$SBIRUN" recipe.lua --cache c1 --out o --set obs=$f --quiet >"$OUT" 2>"$ERR")
	RC=$?
	[ "$RC" -ne 124 ] || fail "observation $f: did not finish within 30 s"
	expect_fail 1
	expect_err "$f: it is not a regular file"
done

# FIFOs in the cache (an artifact, a ref, reads.json) are corrupt entries.
trun recipe.lua --cache c2 --out ref --set n=2000 --quiet
expect_ok
obj=$(find c2/objects -type f | head -1)
ref=$(find c2/refs -type f | head -1)
rm "$obj" "$ref" c2/reads.json
mkfifo "$obj" "$ref" c2/reads.json
trun recipe.lua --cache c2 --out o2 --set n=2000 --quiet
expect_ok
cmp -s ref/post.csv o2/post.csv || fail "posterior differs after FIFOs in the cache"
trun graph recipe.lua --cache c2 --set n=2000
expect_ok
trun clean recipe.lua --cache c2 --set n=2000
expect_ok
finish
