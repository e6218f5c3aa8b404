#!/bin/bash
# Simulators as C plugins and external programs (docs/simulators.md): the
# same conjugate Gaussian model as a Lua function, a plugin and a program
# gives the same thetas and, where the code is the same, the same x, so
# the same posterior; --jobs, chunks, resume after SIGKILL, thetas from a
# node, the cache key (the file's content hash), the plugin ABI's checks
# and failures, and bundles (sources carried, native code refused without
# --allow-native).
. "$(dirname "$0")/lib.sh"
: "${EXAMPLES:?EXAMPLES must point at the built recipes/examples}"
: "${TEST_PLUGINS:?TEST_PLUGINS must point at the built test plugins}"
cp "$EXAMPLES"/gauss_native.lua "$EXAMPLES"/gauss_plugin.c "$EXAMPLES"/gauss_program.c \
	"$EXAMPLES"/libgauss_plugin.so "$EXAMPLES"/gauss_program .

# 1. The example recipe with each simulator. Posterior N(0.8 x_obs, 0.2 I),
# x_obs = (1, -0.5): means (0.8, -0.4), sd 0.4472; 1000 accepted samples.
for k in lua plugin command; do
	run gauss_native.lua --set simulator=$k --set simulations=100000 --out $k --cache c-$k --quiet
	expect_ok
	read -r m1 s1 <<<"$(col_stats $k/posterior.csv 1)"
	read -r m2 s2 <<<"$(col_stats $k/posterior.csv 2)"
	within "$m1" 0.8 0.05 "$k: posterior mean 1"
	within "$m2" -0.4 0.05 "$k: posterior mean 2"
	within "$s1" 0.4472 0.04 "$k: posterior sd 1"
	within "$s2" 0.4472 0.04 "$k: posterior sd 2"
done
# The plugin draws its noise with the host's normal() from the same streams
# as the Lua function's rng:normal(0, 0.5): identical simulations.
cmp -s lua/simulations.npy plugin/simulations.npy || fail "plugin simulations differ from the Lua simulator's"
cmp -s lua/posterior.csv plugin/posterior.csv || fail "plugin posterior differs from the Lua simulator's"
# The program has its own generator: the same thetas (same prior streams), other noise.
cut -d, -f1,2 lua/simulations.csv >lua.theta
cut -d, -f1,2 command/simulations.csv >command.theta
cmp -s lua.theta command.theta || fail "the program's simulations have other thetas than the Lua simulator's"
cmp -s lua/simulations.csv command/simulations.csv && fail "the program's noise equals the Lua simulator's"

# Where the model code is the same (no noise: x = theta), the program's x
# equals the Lua function's exactly (%.17g round-trips doubles).
cat > noiseless.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local kind = sbi.param("simulator", "lua")
local sim = kind == "lua" and sbi.simulator { dim = 2, fn = function(t) return { t[1], t[2] } end }
  or sbi.simulator { command = { "./gauss_program", "--sigma", "0" }, dim = 2, batch = 100 }
sbi.output { sims = sbi.simulate { prior = prior, simulator = sim, n = 3000, seed = 4, chunk_size = 700 } }
EOF2
run noiseless.lua --out nl-lua --quiet
expect_ok
run noiseless.lua --set simulator=command --out nl-cmd --quiet
expect_ok
cmp -s nl-lua/sims.npy nl-cmd/sims.npy || fail "noiseless program's x differs from the Lua function's"

# 2. --jobs 2 (chunks in forked workers) gives the same bytes.
for k in plugin command; do
	run gauss_native.lua --set simulator=$k --set simulations=30000 --out j1-$k --cache cj1-$k --quiet
	expect_ok
	run gauss_native.lua --set simulator=$k --set simulations=30000 --out j2-$k --cache cj2-$k --quiet --jobs 2
	expect_ok
	cmp -s j1-$k/simulations.npy j2-$k/simulations.npy || fail "$k: --jobs 2 differs from --jobs 1"
done
# The plugin's batch size does not change the results (a stream per simulation).
sed 's/plugin = "libgauss_plugin.so", dim = 2,/plugin = "libgauss_plugin.so", dim = 2, batch = 7,/' gauss_native.lua >batch7.lua
run batch7.lua --set simulator=plugin --set simulations=30000 --out b7 --quiet
expect_ok
cmp -s j1-plugin/simulations.npy b7/simulations.npy || fail "plugin batch = 7 differs from the default batch"

# 3. The cache key holds the file's content hash, not its path or time.
run gauss_native.lua --set simulator=plugin --set simulations=100000 --out plugin2 --cache c-plugin --quiet
expect_ok
expect_eq "$(state_of plugin2/run.json simulate)" "cached" "untouched plugin: simulate"
touch -d '2001-01-01' libgauss_plugin.so
run gauss_native.lua --set simulator=plugin --set simulations=100000 --out plugin3 --cache c-plugin --quiet
expect_ok
expect_eq "$(state_of plugin3/run.json simulate)" "cached" "plugin with a new time only: simulate"
cp libgauss_plugin.so keep.so
printf 'rebuilt' >>libgauss_plugin.so # still loads; other bytes, as a rebuild would give
run gauss_native.lua --set simulator=plugin --set simulations=100000 --out plugin4 --cache c-plugin --quiet
expect_ok
expect_eq "$(state_of plugin4/run.json simulate)" "ran" "rebuilt plugin: simulate"
cmp -s plugin/simulations.npy plugin4/simulations.npy || fail "rebuilt (same code) plugin gives other simulations"
cp keep.so libgauss_plugin.so
printf 'rebuilt' >>gauss_program
run gauss_native.lua --set simulator=command --set simulations=100000 --out command2 --cache c-command --quiet
expect_ok
expect_eq "$(state_of command2/run.json simulate)" "ran" "rebuilt program: simulate"
run gauss_native.lua --set simulator=command --set simulations=100000 --out command3 --cache c-command --quiet
expect_ok
expect_eq "$(state_of command3/run.json simulate)" "cached" "untouched program: simulate"
# A source file enters the key too.
echo '/* edited */' >>gauss_plugin.c
run gauss_native.lua --set simulator=plugin --set simulations=100000 --out plugin5 --cache c-plugin --quiet
expect_ok
expect_eq "$(state_of plugin5/run.json simulate)" "ran" "edited plugin source: simulate"
cp "$EXAMPLES"/gauss_plugin.c .

# 4. Resume after SIGKILL: a slow program (5 ms a simulation, 12 chunks of
# 40); killed once 3 chunks are stored, the re-run resumes and gives the
# uninterrupted run's bytes.
cat > slow.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { command = { "./gauss_program", "--delay", "5" }, dim = 2, batch = 8 }
sbi.output { sims = sbi.simulate { prior = prior, simulator = sim, n = 480, seed = 9, chunk_size = 40 } }
EOF2
run slow.lua --out slow-ref --cache slow-ref-cache --quiet
expect_ok
"$SBIRUN" slow.lua --out slow --cache slow-cache --quiet >/dev/null 2>&1 &
pid=$!
wait_refs slow-cache 3 "$pid"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
n=$(refs_count slow-cache)
in_range "$n" 3 11 "chunks stored before the kill"
run slow.lua --out slow --cache slow-cache
expect_ok
expect_err "resuming:"
cmp -s slow/sims.npy slow-ref/sims.npy || fail "resumed program run differs from the uninterrupted one"
# No program is left running after a kill (each ends with its worker's EOF).
# (A dying program may take a moment to go: wait for it, up to 10 s.)
for _ in $(seq 100); do pgrep -f "$T/gauss_program" >/dev/null || break; sleep 0.1; done
pgrep -f "$T/gauss_program" >/dev/null && fail "a program outlived the killed run"

# 5. Thetas from a node (the sequential proposals' path): plugin == Lua.
cat > thetas.lua <<'EOF2'
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local lua = sbi.simulator { dim = 2, fn = function(t, rng) return { t[1] + rng:normal(0, 0.5), t[2] + rng:normal(0, 0.5) } end }
local plugin = sbi.simulator { plugin = "libgauss_plugin.so", dim = 2 }
local sims = sbi.simulate { prior = prior, simulator = lua, n = 20000, seed = 2 }
local post = sbi.abc.rejection { sims = sims, observation = sbi.observation { 1, -0.5 }, quantile = 0.05 }
local kind = sbi.param("simulator", "lua")
sbi.output { round2 = sbi.simulate { prior = prior, simulator = kind == "lua" and lua or plugin, thetas = post,
                                     round = 1, seed = 2 } }
EOF2
run thetas.lua --out th-lua --quiet
expect_ok
run thetas.lua --set simulator=plugin --out th-plugin --quiet
expect_ok
cmp -s th-lua/round2.npy th-plugin/round2.npy || fail "thetas from a node: plugin differs from Lua"

# 6. The plugin ABI: checks and failures, named.
plug() { # plug SYMBOL ON_FAILURE [JOBS]
	cat > p.lua <<EOF2
local sbi = require "sbi"
local prior = sbi.prior.normal { mean = { 0, 0 }, std = { 1, 1 }, names = { "a", "b" } }
local sim = sbi.simulator { plugin = "$TEST_PLUGINS", symbol = "$1", dim = 2, batch = 32 }
sbi.output { sims = sbi.simulate { prior = prior, simulator = sim, n = 2000, seed = 3, on_failure = "$2",
                                   chunk_size = 500 } }
EOF2
	run p.lua --quiet --out p-$1-$2 --cache p-cache --jobs "${3:-1}"
}
plug future fail
expect_fail 1
expect_err "was built for ABI version 999"
plug nosuch fail
expect_fail 1
expect_err "has no symbol 'nosuch'"
plug bad_init fail
expect_fail 1
expect_err "init failed: cannot open the detector geometry (dtheta 2, dx 2)"
plug failing fail
expect_fail 1
expect_err "simulation 102 at theta = (a = 2.529838578349934, b = 0.03959320352016233): theta_1 is above 2.2"
plug failing drop
expect_ok
expect_err "dropped 28 of 2000 simulations (28 errors, 0 NaN/inf, 0 wrong length)"
expect_eq "$(($(wc -l <p-failing-drop/sims.csv) - 1))" 1972 "rows kept by on_failure = drop"
plug nan_rows drop
expect_ok
expect_err "dropped 28 of 2000 simulations (0 errors, 28 NaN/inf, 0 wrong length)"
plug crashing fail 2
expect_fail 1
expect_err "was killed by signal 6"
expect_err "at theta = "
# Bad declarations.
cat > bad.lua <<'EOF2'
local sbi = require "sbi"
local which = sbi.param("which", "nodim")
if which == "nodim" then sbi.simulator { plugin = "libgauss_plugin.so" } end
if which == "two" then sbi.simulator { plugin = "libgauss_plugin.so", fn = print, dim = 2 } end
if which == "missing" then sbi.simulator { plugin = "nosuch.so", dim = 2 } end
if which == "timeout" then sbi.simulator { plugin = "libgauss_plugin.so", dim = 2, timeout = 3 } end
if which == "path" then sbi.simulator { command = { "no-such-program-xyz" }, dim = 2 } end
if which == "exec" then sbi.simulator { command = { "./gauss_plugin.c" }, dim = 2 } end
EOF2
for w in nodim two missing timeout path exec; do
	run bad.lua --set which=$w --quiet
	expect_fail 1
	expect_err "bad.lua:"
done
run bad.lua --set which=nodim --quiet; expect_err "a plugin simulator needs 'dim'"
run bad.lua --set which=two --quiet; expect_err "give exactly one of 'fn'"
run bad.lua --set which=missing --quiet; expect_err "plugin file 'nosuch.so' not found"
run bad.lua --set which=timeout --quiet; expect_err "'timeout' is for command simulators"
run bad.lua --set which=path --quiet; expect_err "command 'no-such-program-xyz' is not on PATH"
run bad.lua --set which=exec --quiet; expect_err "is not executable"

# 7. Bundles carry the source, not the binary; native code is refused to a
# recipe from a bundle without --allow-native, replay refuses it.
run gauss_native.lua --set simulations=20000 --quiet
expect_ok
run bundle gauss_native.lua --set simulations=20000 -o g.sbi --quiet
expect_ok
run show g.sbi
expect_ok
expect_out "native    plugin libgauss_plugin.so, blake2b $(b2sum -l 256 keep.so | cut -c1-12): not in the bundle (build it from: gauss_plugin.c)"
run unpack g.sbi u
expect_ok
expect_err "its simulator plugin libgauss_plugin.so is not in the bundle"
[ -f u/gauss_plugin.c ] || fail "the bundle does not carry the plugin's source"
[ -e u/libgauss_plugin.so ] && fail "the bundle carries the plugin's binary"
run u/gauss_native.lua --set simulations=20000 --quiet
expect_fail 1
expect_err "may not run native code"
expect_err "--allow-native"
run u/gauss_native.lua --set simulations=20000 --quiet --trust
expect_fail 1
expect_err "may not run native code"
run u/gauss_native.lua --set simulations=20000 --quiet --allow-native
expect_fail 1
expect_err "build it from gauss_plugin.c into that path"
# Built again from the carried source (here: the same bytes), it runs, and
# the bundled simulations are a cache hit.
cp libgauss_plugin.so u/
run u/gauss_native.lua --set simulations=20000 --quiet --allow-native --out ub
expect_ok
expect_eq "$(state_of ub/run.json simulate)" "cached" "bundled simulations after a rebuild"
run replay g.sbi --quiet
expect_fail
expect_err "may not run native code"
finish
