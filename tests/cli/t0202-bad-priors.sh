#!/bin/bash
# Bad prior parameters: each is rejected where the recipe declares the prior,
# with the recipe line, the field and index, and what was expected.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/cli/t02-bad-inputs-lib.sh" || exit 1

# prior NAME BODY: writes NAME.lua declaring `local prior = sbi.prior.BODY` on line 3.
prior() {
	printf 'local sbi = require "sbi"\n-- a bad prior\nlocal prior = sbi.prior.%s\n' "$2" > "$1.lua"
}

# uniform: low >= high.
prior uniform 'uniform { low = { 0, 2 }, high = { 1, 1 }, names = { "a", "b" } }'
bad 1 "uniform.lua:3:" "prior.uniform: high[2] = 1 must be greater than low[2] = 2" -- uniform.lua
prior uniform_eq 'uniform { low = { 1 }, high = { 1 } }'
bad 1 "uniform_eq.lua:3:" "high[1] = 1 must be greater than low[1] = 1" -- uniform_eq.lua

# normal: std <= 0.
prior normal 'normal { mean = { 0, 0 }, std = { 1, 0 } }'
bad 1 "normal.lua:3:" "prior.normal: std[2] = 0 must be positive" -- normal.lua
prior normal_neg 'normal { mean = { 0 }, std = { -1 } }'
bad 1 "normal_neg.lua:3:" "prior.normal: std[1] = -1 must be positive" -- normal_neg.lua

# mvn: covariance not symmetric positive definite, or not square.
prior mvn 'mvn { mean = { 0, 0 }, cov = { { 1, 2 }, { 2, 1 } } }'
bad 1 "mvn.lua:3:" "prior.mvn: cov is not symmetric positive definite" -- mvn.lua
prior mvn_shape 'mvn { mean = { 0, 0 }, cov = { { 1, 0 } } }'
bad 1 "mvn_shape.lua:3:" "prior.mvn: field 'cov' must be a square table of rows" -- mvn_shape.lua

# gamma: shape <= 0.
prior gamma 'gamma { shape = { -1 }, scale = { 1 } }'
bad 1 "gamma.lua:3:" "prior.gamma: shape[1] = -1 must be positive" -- gamma.lua

# names of the wrong length.
prior names 'uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "a" } }'
bad 1 "names.lua:3:" "prior.uniform: 'names' has 1 entries but the prior has dimension 2" -- names.lua

prior dup_names 'uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "a", "a" } }'
bad 1 "dup_names.lua:3:" "prior.uniform: names[2] = \"a\" repeats names[1]" -- dup_names.lua

# Other families: non-positive parameters, non-finite values.
prior beta 'beta { a = { 1, 0 }, b = { 1, 1 } }'
bad 1 "beta.lua:3:" "prior.beta: a[2] = 0 must be positive" -- beta.lua
prior expo 'exponential { rate = { -3 } }'
bad 1 "expo.lua:3:" "prior.exponential: rate[1] = -3 must be positive" -- expo.lua
prior inf 'uniform { low = { 0 }, high = { math.huge } }'
bad 1 "inf.lua:3:" "prior.uniform: high[1] = inf must be a finite number" -- inf.lua

# low and high of different lengths.
prior lengths 'uniform { low = { 0, 0, 0 }, high = { 1, 1 } }'
bad 1 "lengths.lua:3:" "prior.uniform: 'low' has 3 entries but 'high' has 2" -- lengths.lua

# A non-number inside the parameters; a misspelled key.
prior nonnum 'normal { mean = { 0, "x" }, std = { 1, 1 } }'
bad 1 "nonnum.lua:3:" "sbi.prior.normal: option 'mean' must be a non-empty list of numbers" -- nonnum.lua
prior misspelled 'uniform { low = { 0 }, hi = { 1 } }'
bad 1 "misspelled.lua:3:" "sbi.prior.uniform: unknown option 'hi' (accepted: high, low, names)" -- misspelled.lua

# A bad block inside a joint prior points at the line that built it.
cat > joint.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.joint {
  { "a", sbi.prior.normal { mean = { 0 }, std = { 1 } } },
  { "b", sbi.prior.gamma { shape = { 0 }, scale = { 1 } } },
}
EOF
bad 1 "joint.lua:4:" "prior.gamma: shape[1] = 0 must be positive" -- joint.lua
cat > joint_block.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.joint { { "a", 3 } }
EOF
bad 1 "joint_block.lua:2:" "prior.joint: block 1 must be { \"name\", prior }" -- joint_block.lua

final_check
finish
