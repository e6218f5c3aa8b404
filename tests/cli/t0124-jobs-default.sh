#!/bin/bash
# --jobs defaults to the cores the process may run on (its affinity mask),
# and the default, --jobs 1 and --jobs 3 give the same artifacts, counts
# and first-failure message when chunks with and without dropped
# simulations mix (a chunk without failures reaches the main process
# through shared memory, one with failures through the cache).
. "$(dirname "$0")/lib.sh"

cat > recipe.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "mu", "sd" } }
local function simulator(theta, rng)
  if theta.mu > 0.997 then error("mu too large") end
  return { theta.mu + theta.sd * rng:normal(), theta.sd + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 6000, seed = 5, chunk_size = 250,
                            on_failure = "drop" }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.4, 0.2 }, quantile = 0.05 }
sbi.output { posterior_samples = post }
EOF2

artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }
drop_line() { grep -o 'dropped [0-9]*.*' "$1"; }

run --help
expect_out "default: the number of cores"

run recipe.lua --cache c0 --out o0
expect_ok
# (nproc follows the affinity mask too, but also OMP_NUM_THREADS: unset here.)
expect_eq "$(jget o0/run.json 'j["jobs"]')" "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" "default --jobs"
d0=$(drop_line "$ERR")
n_drop=$(echo "$d0" | grep -o '^dropped [0-9]*' | grep -o '[0-9]*')
# 24 chunks of 250, each simulation failing with probability 0.003: about
# 18 failures, so some chunks have failures and most have none.
[ "${n_drop:-0}" -ge 5 ] && [ "${n_drop:-0}" -le 40 ] || fail "dropped ${n_drop:-none}, expected about 18"
for j in 1 3; do
	run recipe.lua --jobs $j --cache c$j --out o$j
	expect_ok
	expect_eq "$(drop_line "$ERR")" "$d0" "failure counts and first failure, --jobs $j vs default"
	expect_eq "$(artifacts o$j/run.json)" "$(artifacts o0/run.json)" "artifacts, --jobs $j vs default"
	cmp -s o$j/posterior_samples.npy o0/posterior_samples.npy || fail "posterior differs, --jobs $j vs default"
done

# A narrower affinity mask narrows the default.
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
	taskset -c 0 "$SBIRUN" recipe.lua --cache c0 --out ot --quiet >/dev/null 2>&1 || fail "taskset run failed"
	expect_eq "$(jget ot/run.json 'j["jobs"]')" 1 "default --jobs under taskset -c 0"
fi
finish
