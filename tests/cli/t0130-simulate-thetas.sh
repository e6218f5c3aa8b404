#!/bin/bash
# sbi.simulate{ thetas = NODE }: simulations at the rows of a node's matrix.
# Simulation i of round r depends only on (seed, r, i): the thetas are the
# given rows; --jobs and chunk sizes give identical artifacts; a run killed
# with SIGKILL resumes to the same artifact; another round gives other
# noise; round 0 keeps a prior simulation's key; a posterior's samples work
# end to end; bad inputs are errors naming the option.
. "$(dirname "$0")/lib.sh"

cat > nodes.lua <<'EOF2'
local graph = require "sbi.graph"
local core = require "sbi.core"
local M = {}
-- A node whose artifact holds a fixed matrix of rows under `field`.
function M.fixed(rows, field)
  local function run() return { [field] = core.mat(rows), names = { "a", "b", "c" } } end
  return graph.node("fixed", graph.where(2), { rows = rows, field = field, impl = run }, {}, run)
end
-- theta and x of a simulate node side by side, as samples to write.
function M.dump(sims)
  local function run(node, inp)
    local t, x = inp[1].theta, inp[1].x
    local d, k = t:cols(), x:cols()
    local m, names = core.mat(t:rows(), d + k), {}
    for i = 1, t:rows() do
      for j = 1, d do m:set(i, j, t:get(i, j)) end
      for j = 1, k do m:set(i, d + j, x:get(i, j)) end
    end
    for j = 1, d do names[j] = "t" .. j end
    for j = 1, k do names[d + j] = "x" .. j end
    return { samples = m, names = names }
  end
  return graph.node("dump", graph.where(2), { impl = run }, { sims }, run)
end
return M
EOF2
cat > recipe.lua <<'EOF2'
local sbi = require "sbi"
local nodes = require "nodes"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local work = sbi.param("work", 10)
local function simulator(theta, rng)
  local s = 0
  for k = 1, work do s = s + math.sin(k * theta.a) end
  return { theta.a + 0.1 * rng:normal() + 1e-12 * s, theta.b + 0.1 * rng:normal() }
end
local rows, ncol = {}, sbi.param("ncol", 2)
for i = 1, sbi.param("rows", 600) do
  rows[i] = { -0.9 + 1.8 * ((i - 1) % 600) / 599, 0.9 * math.sin(i), 0.5 }
  for j = ncol + 1, 3 do rows[i][j] = nil end
end
if sbi.param("outside", false) then rows[3][1] = 1.5 end
local mode = sbi.param("mode", "fixed")
local round = sbi.param("round", -1)
round = round >= 0 and math.tointeger(round) or nil
local n = sbi.param("n", 0)
n = n > 0 and math.tointeger(n) or nil
if mode == "fixed" then
  local fixed = nodes.fixed(rows, sbi.param("field", "samples"))
  local sims = sbi.simulate { prior = prior, simulator = simulator, thetas = fixed, n = n, seed = 7, round = round,
                              chunk_size = sbi.param("chunk", 50) }
  sbi.output { dump = nodes.dump(sims), fixed = sbi.param("field", "samples") == "samples" and fixed or nil }
elseif mode == "prior" then
  local sims = sbi.simulate { prior = prior, simulator = simulator, n = 600, seed = 7, round = round, chunk_size = 50 }
  sbi.output { dump = nodes.dump(sims) }
elseif mode == "posterior" then
  local sims = sbi.simulate { prior = prior, simulator = simulator, n = 5000, seed = 7 }
  local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.2, -0.3 }, quantile = 0.04 }
  local pred = sbi.simulate { prior = prior, simulator = simulator, thetas = post, seed = 8, round = 1 }
  sbi.output { posterior_samples = post, predictive = pred }
elseif mode == "notnode" then
  sbi.simulate { prior = prior, simulator = simulator, thetas = rows }
elseif mode == "non" then
  sbi.simulate { prior = prior, simulator = simulator }
end
EOF2

# first_cols FILE: columns 1-2 (the thetas) of a CSV, header dropped.
first_cols() { tail -n +2 "$1" | cut -d, -f1-2; }
x_cols() { tail -n +2 "$1" | cut -d, -f3-4; }

# The thetas are the given rows, in order.
run recipe.lua --out ref --quiet
expect_ok
expect_eq "$(first_cols ref/dump.csv | md5sum)" "$(tail -n +2 ref/fixed.csv | md5sum)" "thetas equal the given rows"
expect_eq "$(tail -n +2 ref/dump.csv | wc -l)" 600 "rows simulated"

# --jobs and chunk sizes: the same artifact (new caches, so all run again).
for v in "--jobs 2 --set chunk=50" "--jobs 1 --set chunk=70" "--jobs 2 --set chunk=1000"; do
	# shellcheck disable=SC2086
	run recipe.lua $v --cache "c-${v// /}" --out "o-${v// /}" --quiet
	expect_ok
	expect_eq "$(artifact_of "o-${v// /}/run.json" simulate)" "$(artifact_of ref/run.json simulate)" "artifact with $v"
done

# Round 0 is the default; another round draws other noise at the same thetas.
run recipe.lua --set round=0 --out r0 --quiet
expect_ok
expect_eq "$(key_of r0/run.json simulate)" "$(key_of ref/run.json simulate)" "key with round = 0"
run recipe.lua --set round=1 --out r1 --quiet
expect_ok
expect_eq "$(first_cols r1/dump.csv | md5sum)" "$(first_cols ref/dump.csv | md5sum)" "thetas of round 1"
[ "$(x_cols r1/dump.csv | md5sum)" != "$(x_cols ref/dump.csv | md5sum)" ] || fail "round 1 has round 0's noise"
# The round shows in the step's label (sbirun graph), round 0 does not.
run graph recipe.lua --set round=1
expect_out "simulate (recipe.lua:23, round 1)"
run graph recipe.lua --set round=0
grep -q ", round " "$OUT" && fail "round 0 shows in the label"
# n, when given, must be the row count; the field may be 'theta'.
run recipe.lua --set n=600 --out n600 --quiet
expect_ok
run recipe.lua --set field=theta --out th --quiet
expect_ok
cmp -s th/dump.csv ref/dump.csv || fail "field 'theta' gives other simulations than 'samples'"

# A prior simulation: round 0 keeps the key and the streams; round 1 does not.
run recipe.lua --set mode=prior --out p --quiet
expect_ok
run recipe.lua --set mode=prior --set round=0 --out p0 --quiet
expect_ok
expect_eq "$(key_of p0/run.json simulate)" "$(key_of p/run.json simulate)" "prior key with round = 0"
run recipe.lua --set mode=prior --set round=2 --out p2 --quiet
expect_ok
[ "$(first_cols p2/dump.csv | md5sum)" != "$(first_cols p/dump.csv | md5sum)" ] || fail "prior round 2 has round 0's thetas"

# Resume: killed with SIGKILL after observed chunks (20000 slow simulations
# in 40 chunks), then run to the end: the artifact of an uninterrupted run.
big="--set rows=20000 --set work=2000 --set chunk=500"
# shellcheck disable=SC2086
run recipe.lua $big --cache big-ref --out big-ref --quiet
expect_ok
for step in 2 5; do
	target=$(($(refs_count big) + step))
	# shellcheck disable=SC2086
	"$SBIRUN" recipe.lua $big --cache big --out big --quiet >/dev/null 2>&1 &
	pid=$!
	wait_refs big "$target" "$pid"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
[ "$(refs_count big)" -lt 40 ] || fail "the run finished before it was killed ($(refs_count big) refs)"
# shellcheck disable=SC2086
run recipe.lua $big --jobs 2 --cache big --out big
expect_ok
expect_err "resuming:"
expect_eq "$(artifact_of big/run.json simulate)" "$(artifact_of big-ref/run.json simulate)" "artifact after resume"
cmp -s big/dump.csv big-ref/dump.csv || fail "simulations differ after resume"

# At a posterior's samples: a posterior predictive, end to end.
run recipe.lua --set mode=posterior --out post
expect_ok
expect_eq "$(first_cols post/predictive.csv | md5sum)" "$(tail -n +2 post/posterior_samples.csv | md5sum)" \
	"predictive thetas are the posterior samples"
read -r m _ <<<"$(col_stats post/predictive.csv 3)"
within "$m" 0.2 0.1 "posterior predictive mean of x1"

# Bad inputs name the option.
run recipe.lua --set mode=notnode --out e1
expect_fail 1
expect_err "sbi.simulate: option 'thetas' must be a node"
run recipe.lua --set mode=non --out e2
expect_fail 1
expect_err "option 'n' is required (an integer from 1 to 1000000000) unless 'thetas' is given"
run recipe.lua --set ncol=3 --out e3
expect_fail 1
expect_err "thetas: fixed (recipe.lua:22)'s 'samples' has 3 columns but the prior has 2 parameters"
run recipe.lua --set n=10 --out e4
expect_fail 1
expect_err "n = 10 but thetas has 600 rows"
run recipe.lua --set outside=true --out e5
expect_fail 1
expect_err "thetas row 3 = (a = 1.5, b = "
expect_err "lies outside the prior's support"
finish
