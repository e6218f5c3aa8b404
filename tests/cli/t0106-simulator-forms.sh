#!/bin/bash
# Simulator forms and failure policies: batched simulators, theta by name,
# on_failure = "drop" counting failures, observations from .npy and CSV files.
. "$(dirname "$0")/lib.sh"

rows() { echo $(( $(wc -l < "$1") - 1 )); }

# A batched simulator fills x from theta; rows left NaN are failures.
cat > batched.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1, -1 }, high = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { dim = 2, batched = true, fn = function(theta, x, rng)
  for i = 1, theta:rows() do
    local a, b = theta:get(i, 1), theta:get(i, 2)
    if a > 0.9 then
      -- leave the row NaN: a failure
    else
      x:set(i, 1, a + 0.1 * rng:normal())
      x:set(i, 2, b + 0.1 * rng:normal())
    end
  end
end }
local sims = sbi.simulate { prior = prior, simulator = sim, n = 4000, seed = 2, chunk_size = 1000,
                            on_failure = sbi.param("policy", "drop") }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 0.1, 0.2 }, quantile = 0.05 }
sbi.output { posterior_samples = post }
EOF2
run batched.lua --out b1
expect_ok
expect_err "dropped"
expect_err "NaN/inf"
run batched.lua --out b2 --jobs 2 --cache c2
expect_ok
cmp -s b1/posterior_samples.csv b2/posterior_samples.csv || fail "batched: --jobs 2 differs from --jobs 1"
# About 5% of 4000 draws have a > 0.9; all dropped, the rest kept.
n_drop=$(grep -o 'dropped [0-9]*' "$ERR" | grep -o '[0-9]*')
[ "${n_drop:-0}" -gt 120 ] && [ "${n_drop:-0}" -lt 280 ] || fail "batched: dropped $n_drop, expected about 200"
run batched.lua --set policy=fail --out b3
expect_fail 1
expect_err "theta = (a = 0.9"

# Per-simulation simulator using theta by name; errors and wrong lengths dropped.
cat > named.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "mu", "sd" } }
local function simulator(theta, rng)
  if theta.mu > 0.95 then error("mu too large") end
  if theta.sd < 0.02 then return { 1 } end
  return { theta.mu + theta.sd * rng:normal(), theta.sd }
end
local sims = sbi.simulate { prior = prior, simulator = simulator, n = 3000, seed = 4, on_failure = "drop" }
local obs = sbi.observation(sbi.param("observation", "obs.csv"))
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 }
sbi.output { posterior_samples = post }
EOF2
printf 'data_1,data_2\n0.4,0.2\n' > obs.csv
run named.lua --out n1
expect_ok
expect_err "errors"
expect_err "wrong length"
expect_err "first: simulation 15 at theta = (mu = "
n_drop=$(grep -o 'dropped [0-9]*' "$ERR" | grep -o '[0-9]*')
# Header optional, one value per line also accepted as one observation.
printf '0.4\n0.2\n' > obs_column.csv
run named.lua --set observation=obs_column.csv --out n2
expect_ok
cmp -s n1/posterior_samples.csv n2/posterior_samples.csv || fail "column CSV observation differs"
# The same observation as .npy (float64, shape (1, 2)).
python3 - <<'EOF2'
import struct
hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }"
pad = 64 - (10 + len(hdr) + 1) % 64
hdr = hdr + " " * pad + "\n"
with open("obs.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<2d", 0.4, 0.2))
EOF2
run named.lua --set observation=obs.npy --out n3
expect_ok
cmp -s n1/posterior_samples.csv n3/posterior_samples.csv || fail ".npy observation differs"
# The quantile applies to the simulations that succeeded.
expect_eq "$(rows n1/posterior_samples.csv)" $(( (3000 - n_drop + 9) / 10 )) "posterior rows (10% of kept simulations)"
finish
