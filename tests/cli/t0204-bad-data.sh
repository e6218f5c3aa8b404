#!/bin/bash
# Bad data: observation files that are missing, malformed or of the wrong
# length; simulators that raise, return NaN, the wrong length or a non-table
# (with on_failure = "fail", the default, and "drop"); an epsilon so small
# nothing is accepted. Messages name the recipe line, the file:line and
# column or the failing theta; the cache stays consistent.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/cli/t02-bad-inputs-lib.sh" || exit 1

# ---- observations ----
# obs_recipe NAME SPEC: a recipe whose simulator gives 2 values and whose
# observation (line 5) is sbi.observation(SPEC).
obs_recipe() {
	cat > "$1.lua" <<EOF
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 } }
local function sim(theta, rng) return { theta[1], theta[2] } end
local sims = sbi.simulate { prior = prior, simulator = sim, n = 300 }
local obs = sbi.observation($2)
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 }
sbi.output { post = post }
EOF
}

obs_recipe missing '"no_such_obs.csv"'
bad 1 "missing.lua:5:" "observation file 'no_such_obs.csv' not found (looked in the current directory)" \
	-- missing.lua
mkdir -p sub
obs_recipe sub/missing '"no_such_obs.csv"'
bad 1 "sub/missing.lua:5:" "not found (looked in the current directory and in sub)" -- sub/missing.lua

# Wrong length: the file has 3 values, the simulator gives 2 (found by the
# first simulation, before the others).
printf '0.1,0.2,0.3\n' > three.csv
obs_recipe wrong_len '"three.csv"'
bad 1 "simulate (wrong_len.lua:4): the first simulation returned 2 values but observation (wrong_len.lua:5) has 3 values" \
	-- wrong_len.lua
obs_recipe wrong_len_inline '{ 0.5 }'
bad 1 "wrong_len_inline.lua:4" "returned 2 values but observation (wrong_len_inline.lua:5) has 1 values" \
	-- wrong_len_inline.lua
# ... and by the method when the observation's length is known only when it runs.
obs_recipe wrong_len_sim '{ simulator = function() return { 1, 2, 3 } end, theta = { 0 } }'
bad 1 "abc.rejection (wrong_len_sim.lua:6): the observation has 3 values but the simulator produces 2" \
	-- wrong_len_sim.lua

# A non-number in the CSV: file, line and column.
printf 'x,y\n0.5,0.5\n' > header.csv # a header row is fine
printf '0.5,abc\n' > nonnum.csv
obs_recipe nonnum '"nonnum.csv"'
bad 1 "observation (nonnum.lua:5): nonnum.csv:1: column 2: expected a number, got 'abc'" -- nonnum.lua
printf '0.5,0.5\n0.1\n' > ragged.csv
obs_recipe ragged '"ragged.csv"'
bad 1 "observation (ragged.lua:5):" "ragged.csv:2: 1 values, expected 2" -- ragged.lua
printf '0.5,0.5\n0.1,0.2\n' > tworows.csv
obs_recipe tworows '"tworows.csv"'
bad 1 "observation (tworows.lua:5):" "tworows.csv has 2 rows of 2 values; an observation is one row" -- tworows.lua
: > empty.csv
obs_recipe empty '"empty.csv"'
bad 1 "observation (empty.lua:5): empty.csv: no rows of numbers" -- empty.lua
printf 'not numpy' > bad.npy
obs_recipe npy '"bad.npy"'
bad 1 "observation (npy.lua:5): bad.npy:" -- npy.lua

# NaN in the observation: in a file and inline.
printf '0.5,nan\n' > nan.csv
obs_recipe nan_file '"nan.csv"'
bad 1 "observation (nan_file.lua:5): observation file nan.csv: value 2 is NaN" "must be finite" -- nan_file.lua
obs_recipe nan_inline '{ 0.5, 0/0 }'
bad 1 "nan_inline.lua:5: sbi.observation: value 2 is NaN" -- nan_inline.lua
obs_recipe bad_obs '42'
bad 1 "bad_obs.lua:5: sbi.observation: expected a file path, a list of numbers or { simulator = ..., theta = {...} }, got 42" \
	-- bad_obs.lua

# ---- simulators ----
# sim_recipe NAME BODY [EXTRA]: the simulator body is on line 4, sbi.simulate
# on line 6 (EXTRA is added to its options).
sim_recipe() {
	cat > "$1.lua" <<EOF
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "a", "b" } }
local function sim(theta, rng)
  $2
end
local sims = sbi.simulate { prior = prior, simulator = sim, n = 400 ${3:-} }
local obs = sbi.observation { 0.5, 0.5 }
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 }
sbi.output { post = post }
EOF
}

# A simulator that raises: the node, the simulation's theta by name and the
# simulator's own file:line.
sim_recipe raises 'if theta.a > 0.5 then error("negative rate") end return { theta.a, theta.b }'
bad 1 "simulate (raises.lua:6): simulation" "at theta = (a = 0." ", b = " "raises.lua:4: negative rate" \
	"on_failure = \"drop\"" -- raises.lua
# With --jobs 3 and several chunks the failure is the same.
sim_recipe raises_jobs 'if theta.a > 0.99 then error("negative rate") end return { theta.a, theta.b }' \
	', chunk_size = 50'
bad 1 "simulate (raises_jobs.lua:6): simulation" "at theta = (a = 0.99" "raises_jobs.lua:4: negative rate" \
	-- raises_jobs.lua --jobs 3

# NaN: the default policy stops with the parameters that failed...
sim_recipe nan 'if theta.a > 0.5 then return { 0/0, theta.b } end return { theta.a, theta.b }'
bad 1 "simulate (nan.lua:6): simulation" "at theta = (a = 0." "the simulator returned NaN or infinite values" \
	-- nan.lua
# ... and on_failure = "drop" runs, reporting how many were dropped.
sim_recipe nan_drop 'if theta.a > 0.5 then return { 0/0, theta.b } end return { theta.a, theta.b }' \
	', on_failure = "drop"'
run nan_drop.lua --cache "$CACHE" --out drop-out
expect_ok
expect_err "simulate (nan_drop.lua:6): dropped"
expect_err "of 400 simulations (0 errors,"
expect_err "NaN/inf, 0 wrong length); first: simulation"
expect_out "post:"
no_temp_files "$CACHE"
# Every simulation failing and dropped is an error, not an empty posterior.
sim_recipe all_nan 'return { 0/0, 1 }' ', on_failure = "drop"'
bad 1 "simulate (all_nan.lua:6): every one of the 400 simulations failed and was dropped" \
	"the simulator returned NaN or infinite values" -- all_nan.lua
bad 1 "every one of the 400 simulations failed" -- all_nan.lua # again, from the cached chunks

# Wrong length, a non-table, a non-number inside the table, an empty table.
sim_recipe wrong_len 'if theta.a > 0.5 then return { theta.a } end return { theta.a, theta.b }'
bad 1 "simulate (wrong_len.lua:6): simulation" "at theta = (a = 0." "the simulator returned 1 values, expected 2" \
	-- wrong_len.lua
# ... the expected length comes from simulation 0 unless the simulator declares it
# (an observation from a simulation: its length is not known before running).
sim_recipe wrong_len0 'if theta.a < 0.5 then return { theta.a } end return { theta.a, theta.b }'
sed -i 's/sbi.observation { 0.5, 0.5 }/sbi.observation { simulator = function() return { 0.5, 0.5 } end, theta = { 0 } }/' \
	wrong_len0.lua
bad 1 "the simulator returned 2 values, expected 1" "the expected length was taken from the first simulation" \
	"sbi.simulator{ fn = ..., dim = K }" -- wrong_len0.lua
sed -i 's/simulator = sim,/simulator = sbi.simulator { fn = sim, dim = 2 },/' wrong_len0.lua
bad 1 "simulate (wrong_len0.lua:6): simulation 0 at theta = (a = 0." "the simulator returned 1 values, expected 2" \
	-- wrong_len0.lua
sim_recipe not_table 'if theta.a > 0.5 then return theta.a end return { theta.a, theta.b }'
bad 1 "simulate (not_table.lua:6): simulation" "the simulator returned a number, expected a table of numbers" \
	-- not_table.lua
sim_recipe never_table 'return "data"'
bad 1 "simulate (never_table.lua:6): simulation 0 at theta = (a = 0." \
	"the simulator returned a string, expected a table of numbers" -- never_table.lua
sim_recipe non_number 'return { theta.a, "x" }'
bad 1 "simulate (non_number.lua:6):" "the simulator returned a non-number at position 2" -- non_number.lua
sim_recipe empty 'return {}'
bad 1 "simulate (empty.lua:6):" "the simulator returned an empty table" -- empty.lua

# ---- ABC ----
# An epsilon so small that nothing is accepted.
cat > tiny_eps.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = 200 }
local obs = sbi.observation { 5 }
local post = sbi.abc.rejection { sims = sims, observation = obs, epsilon = 1e-9 }
sbi.output { post = post }
EOF
bad 1 "abc.rejection (tiny_eps.lua:5): no simulation is within epsilon = 1e-09 of the observation" \
	"(the nearest is at " "increase 'epsilon' or give 'quantile' instead" -- tiny_eps.lua
# A distance function returning a non-number.
sed -i 's/epsilon = 1e-9/distance = function(x, o) return "far" end/' tiny_eps.lua
bad 1 "abc.rejection (tiny_eps.lua:5): the distance function must return a number, got \"far\"" -- tiny_eps.lua

final_check
finish
