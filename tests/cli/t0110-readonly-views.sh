#!/bin/bash
# Matrices a step receives from its inputs' artifacts are read-only views:
# a step that negates its input in place fails naming the method, and the
# cached result stays the same across runs. m:copy() gives a writable copy.
# A view also keeps its artifact alive when a step keeps it for later.
. "$(dirname "$0")/lib.sh"

cat > neg.lua <<'EOF2'
local graph = require "sbi.graph"
local M = {}
local kept
local function run(node, inputs)
  local s = inputs[1].samples
  if node.opts.mode == "copy" then s = s:copy() end
  if node.opts.mode == "set_row" then
    s:set_row(1, { -s:get(1, 1) })
  elseif node.opts.mode == "keep" then
    kept = s -- read by a later step
  else
    for i = 1, s:rows() do s:set(i, 1, -s:get(i, 1)) end
  end
  return { samples = s, names = inputs[1].names }
end
local function read_kept(node, inputs)
  local s = kept:copy()
  for i = 1, s:rows() do s:set(i, 1, s:get(i, 1) + 0) end
  return { samples = s, names = inputs[1].names }
end
function M.negate(post, mode)
  return graph.node("negate", graph.where(2), { mode = mode, impl = run }, { post }, run)
end
function M.reread(post, after)
  return graph.node("reread", graph.where(2), { impl = read_kept }, { post, after }, read_kept)
end
return M
EOF2
cat > recipe.lua <<'EOF2'
local sbi = require "sbi"
local neg = require "neg"
local prior = sbi.prior.normal { mean = { 0 }, std = { 1 } }
local sims = sbi.simulate { prior = prior, n = 4000,
  simulator = function(theta, rng) return { theta[1] + 0.5 * rng:normal() } end }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.6 }, quantile = 0.05 }
local mode = sbi.param("mode", "none")
if mode == "none" then
  sbi.output { posterior = post }
elseif mode == "keep" then
  local n = neg.negate(post, "keep")
  sbi.output { posterior = post, reread = neg.reread(post, n) }
else
  sbi.output { posterior = post, negated = neg.negate(post, mode) }
end
EOF2

run recipe.lua --out ref --quiet
expect_ok

# In place: refused, naming the method and the way out.
run recipe.lua --set mode=inplace --out o1
expect_fail 1
expect_err "Mat:set: this matrix is a read-only view of a cached artifact; copy it first with m:copy()"
run recipe.lua --set mode=set_row --out o2
expect_fail 1
expect_err "Mat:set_row: this matrix is a read-only view of a cached artifact"

# The cached posterior is unchanged, from the cache and recomputed.
run recipe.lua --out o3 --quiet
expect_ok
expect_eq "$(state_of o3/run.json abc.rejection)" cached "abc after the refused step"
cmp -s o3/posterior.csv ref/posterior.csv || fail "cached posterior changed"

# With a copy: the negated result, and the posterior itself unchanged,
# both when ABC is cached and when it runs in the same process.
for cache in .sbirun fresh; do
	run recipe.lua --set mode=copy --cache $cache --out o4-$cache --quiet
	expect_ok
	cmp -s o4-$cache/posterior.csv ref/posterior.csv || fail "posterior changed by a copying step ($cache)"
	read -r m _ <<<"$(col_stats o4-$cache/negated.csv 1)"
	read -r r _ <<<"$(col_stats ref/posterior.csv 1)"
	within "$m" "$(awk -v r="$r" 'BEGIN { print -r }')" 1e-9 "negated mean ($cache)"
	run recipe.lua --cache $cache --out o5-$cache --quiet
	expect_ok
	cmp -s o5-$cache/posterior.csv ref/posterior.csv || fail "posterior changed in the cache ($cache)"
done

# A view kept by one step and read by a later one stays valid.
run recipe.lua --set mode=keep --cache keep --out o6 --quiet
expect_ok
tail -n +2 o6/reread.csv | cmp -s - <(tail -n +2 ref/posterior.csv) || fail "kept view differs"
finish
