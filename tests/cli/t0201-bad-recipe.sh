#!/bin/bash
# Bad recipes: syntax and runtime errors, misspelled, missing and mistyped
# options, bad outputs and contradictory ABC options. Each must exit 1 with a
# message naming the recipe file and line, the option and what was expected,
# and leave the cache usable.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/cli/t02-bad-inputs-lib.sh" || exit 1

# 1. Lua syntax error: file and line.
cat > syntax.lua <<'EOF'
local sbi = require "sbi"
local n = 10
local x = = 3
EOF
bad 1 "syntax.lua:3:" "unexpected symbol near '='" -- syntax.lua

# 2. Runtime error in the recipe body.
cat > runtime.lua <<'EOF'
local sbi = require "sbi"
local cfg = nil
local n = cfg.n
EOF
bad 1 "runtime.lua:3:" "attempt to index a nil value (local 'cfg')" -- runtime.lua

# 3. error() with a non-string value still names the line.
cat > errobj.lua <<'EOF'
local sbi = require "sbi"

error({ code = 3 })
EOF
bad 1 "errobj.lua:3:" "error object is a table value" -- errobj.lua

# 4. Misspelled option in sbi.simulate lists the accepted keys.
cat > unknown_opt.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate {
  prior = prior, simulator = function(t) return { t[1] } end,
  n = 100, sed = 3 }
EOF
bad 1 "unknown_opt.lua:3:" "sbi.simulate: unknown option 'sed'" \
	"(accepted: chunk_size, n, on_failure, prior, round, seed, simulator, thetas)" -- unknown_opt.lua

# 5. Misspelled option in sbi.abc.rejection.
cat > unknown_abc.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = 100 }
local obs = sbi.observation { 0.5 }
local post = sbi.abc.rejection { sims = sims, observation = obs, quantil = 0.1 }
sbi.output { post = post }
EOF
bad 1 "unknown_abc.lua:5:" "sbi.abc.rejection: unknown option 'quantil'" \
	"accepted: adjust, bandwidth, distance, epsilon, kde, networks, num_samples, observation, quantile, scale, seed, sims" -- unknown_abc.lua

# 6. Misspelled option in sbi.simulator and in sbi.observation{ simulator = }.
cat > unknown_sim.lua <<'EOF'
local sbi = require "sbi"
local s = sbi.simulator { fn = function(t) return t end, dimm = 3 }
EOF
bad 1 "unknown_sim.lua:2:" "sbi.simulator: unknown option 'dimm' (accepted: batch, batched, command, dim, fn, plugin, source, symbol, timeout)" -- unknown_sim.lua
cat > unknown_obs.lua <<'EOF'
local sbi = require "sbi"

local obs = sbi.observation { simulator = function(t) return t end, theta = { 1 }, sed = 1 }
EOF
bad 1 "unknown_obs.lua:3:" "sbi.observation: unknown option 'sed' (accepted: names, seed, simulator, theta)" \
	-- unknown_obs.lua

# 7. Missing required option.
cat > missing_opt.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end }
EOF
bad 1 "missing_opt.lua:3:" "sbi.simulate: option 'n' is required (an integer from 1 to 1000000000)" -- missing_opt.lua

# 8. Wrong option types and values.
cat > wrong_type.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = "many" }
EOF
bad 1 "wrong_type.lua:3:" "sbi.simulate: option 'n' must be an integer from 1 to 1000000000, got \"many\"" -- wrong_type.lua
sed -i 's/n = "many"/n = 10.5/' wrong_type.lua
bad 1 "wrong_type.lua:3:" "option 'n' must be an integer from 1 to 1000000000, got 10.5" -- wrong_type.lua
sed -i 's/n = 10.5/n = 10, on_failure = "skip"/' wrong_type.lua
bad 1 "wrong_type.lua:3:" "option 'on_failure' must be one of \"fail\", \"drop\", got \"skip\"" -- wrong_type.lua
sed -i 's/prior = prior,/prior = { low = 0 },/; s/, on_failure = "skip"//' wrong_type.lua
bad 1 "wrong_type.lua:3:" "option 'prior' must be a prior (sbi.prior.*), got a table" -- wrong_type.lua
cat > not_table.lua <<'EOF'
local sbi = require "sbi"
local sims = sbi.simulate "everything"
EOF
bad 1 "not_table.lua:2:" "sbi.simulate: expected an option table { ... }, got \"everything\"" -- not_table.lua

# 9. A recipe without sbi.output.
cat > no_output.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = 100 }
EOF
bad 1 "no_output.lua: the recipe declares no outputs" "add sbi.output{" -- no_output.lua

# 10. sbi.output with something that is not a step.
cat > output_prior.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
sbi.output { post = prior }
EOF
bad 1 "output_prior.lua:3:" "sbi.output: 'post' must be a step such as sbi.abc.rejection{...}, got sbi.Prior" \
	-- output_prior.lua
cat > output_num.lua <<'EOF'
local sbi = require "sbi"
sbi.output { post = 3 }
EOF
bad 1 "output_num.lua:2:" "'post' must be a step" "got 3" -- output_num.lua

# 11. abc.rejection with both quantile and epsilon; with sims that are not simulations.
cat > both.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = 100 }
local obs = sbi.observation { 0.5 }
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1, epsilon = 0.1 }
sbi.output { post = post }
EOF
bad 1 "both.lua:5:" "sbi.abc.rejection: give either 'quantile' or 'epsilon', not both" -- both.lua
sed -i 's/quantile = 0.1, epsilon = 0.1/epsilon = -1/' both.lua
bad 1 "both.lua:5:" "option 'epsilon' must be a positive number, got -1" -- both.lua
sed -i 's/epsilon = -1/quantile = 1.5/' both.lua
bad 1 "both.lua:5:" "option 'quantile' must be a number in (0, 1], got 1.5" -- both.lua
sed -i 's/sims = sims, observation = obs, quantile = 1.5/sims = obs, observation = obs/' both.lua
bad 1 "both.lua:5:" "sbi.abc.rejection: 'sims' must come from sbi.simulate" -- both.lua

# 12. A module the recipe requires does not exist.
cat > req.lua <<'EOF'
local sbi = require "sbi"
local helpers = require "no_such_helpers"
EOF
bad 1 "req.lua:2:" "module 'no_such_helpers' not found" -- req.lua

# 13. A step's result holds a table that is not a list: refused, not stored half.
cat > maptab.lua <<'EOF'
local sbi = require "sbi"
local graph = require "sbi.graph"
local prior = sbi.prior.uniform { low = { 0 }, high = { 1 } }
local sims = sbi.simulate { prior = prior, simulator = function(t) return { t[1] } end, n = 10 }
local function run(node, inputs) return { tags = { "a", extra = "b" } } end
sbi.output { tagged = graph.node("tag", graph.where(1), { impl = run }, { sims }, run) }
EOF
bad 1 "tag (maptab.lua:6)" "field 'tags' is a table with keys other than 1..1; artifacts hold lists of strings" -- maptab.lua
sed -i 's/{ "a", extra = "b" }/{ maf = 1.5 }/' maptab.lua
bad 1 "field 'tags' is a table with keys other than 1..0" -- maptab.lua

final_check
finish
