# Shared by the t02* bad-input tests (sourced after lib.sh): a small valid
# recipe, a shared cache, and `bad`, which runs one bad input and checks the
# exit code, the message, that the failure is clean (no crash, no traceback,
# no stdlib position) and that the cache is still consistent and usable.
CACHE="$T/cache"
cat > good.lua <<'EOF'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { 0, 0 }, high = { 1, 1 }, names = { "a", "b" } }
local function sim(theta, rng)
  return { theta.a + 0.1 * rng:normal(), theta.b + 0.1 * rng:normal() }
end
local sims = sbi.simulate { prior = prior, simulator = sim, n = sbi.param("n", 500), seed = sbi.param("seed", 1) }
local obs = sbi.observation { 0.5, 0.5 }
local post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 }
sbi.output { posterior_samples = post }
EOF

# no_crash: the last run failed cleanly: exit 1 or 2, no C-level crash, no
# Lua traceback and no position inside the stdlib.
no_crash() {
	case "$RC" in
	1 | 2) ;;
	*) fail "exit code $RC is not 1 or 2: $(head -c 2000 "$ERR")" ;;
	esac
	if grep -qE 'stack traceback|internal error|assertion|Segmentation|core dumped|\[stdlib\]/|\[C\]' "$ERR"; then
		fail "crash or stdlib position in the message: $(head -c 2000 "$ERR")"
	fi
	if [ ! -s "$ERR" ]; then fail "no message on stderr"; fi
}

# cache_ok: no temporary files in the shared cache, and the valid recipe
# still runs with it, entirely from cache hits (no entry was damaged).
cache_ok() {
	local save_out=$OUT save_err=$ERR save_rc=$RC
	no_temp_files "$CACHE"
	run good.lua --cache "$CACHE" --out "$T/good-out"
	expect_ok
	expect_eq "$(ran_nodes "$T/good-out/run.json")" 0 "valid run after a bad input: nodes ran"
	if grep -q "warning" "$ERR"; then fail "valid run after a bad input warns: $(head -c 2000 "$ERR")"; fi
	OUT=$save_out ERR=$save_err RC=$save_rc
}

# bad CODE TEXT... -- ARGS...: runs sbirun with the shared cache and ARGS
# (a later --cache in ARGS wins); expects exit CODE, every TEXT on stderr, a
# clean failure and a usable cache.
bad() {
	local code=$1 texts=()
	shift
	while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
		texts+=("$1")
		shift
	done
	shift
	run --cache "$CACHE" "$@"
	expect_fail "$code"
	for t in "${texts[@]}"; do expect_err "$t"; done
	no_crash
	cache_ok
}

# final_check: the shared cache gives the same posterior as a fresh cache.
final_check() {
	run good.lua --cache "$T/fresh-cache" --out "$T/fresh-out" --quiet
	expect_ok
	cmp -s "$T/good-out/posterior_samples.csv" "$T/fresh-out/posterior_samples.csv" ||
		fail "the shared cache gives a different posterior than a fresh one"
}

# Fill the shared cache with the valid recipe's nodes.
run good.lua --cache "$CACHE" --out "$T/good-out" --quiet
expect_ok
