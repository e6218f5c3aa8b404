#!/bin/bash
# Smaller robustness fixes (issue 9 item 14): a recipe path that is not
# UTF-8 runs and is escaped in run.json; graph and clean report a read-only
# cache truthfully; a simulator's strings are not numbers; error({...}) in
# a simulator names its place; a UTF-8 BOM in an observation CSV is skipped.
. "$(dirname "$0")/lib.sh"
recipe() { # recipe FILE SIM_BODY [SIMULATE_OPTS] [OBSERVATION]
	cat >"$1" <<LUA
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
local function sim(t, rng)
  $2
end
local sims = sbi.simulate { prior = prior, simulator = sim, n = 500 ${3:-} }
local obs = sbi.observation(${4:-{ 0.2 \}})
sbi.output { post = sbi.abc.rejection { sims = sims, observation = obs, quantile = 0.1 } }
LUA
}
GOOD='return { t[1] + 0.1 * rng:normal() }'

# A recipe path that is not UTF-8: the run works, run.json is valid JSON.
dir=$'d\xff'
mkdir "$dir"
recipe "$dir/r.lua" "$GOOD"
run "$dir/r.lua" --out bytes --quiet
expect_ok
expect_eq "$(jget bytes/run.json "j['recipe']")" 'd\xff/r.lua' "recipe path in run.json (valid JSON)"
expect_eq "$(jget bytes/run.json "j['ok']")" true "run.json ok"

# A read-only cache: graph shows the cached steps, clean says why it cannot.
recipe ro.lua "$GOOD"
run ro.lua --cache ro-cache --out ro-out --quiet
expect_ok
chmod -R a-w ro-cache
as=()
if [ "$(id -u)" -eq 0 ]; then # root writes anywhere: run these as nobody
	if command -v setpriv >/dev/null; then
		chmod 755 "$T"
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	else
		echo "skipping the read-only cache checks: running as root without setpriv" >&2
	fi
fi
if [ "$(id -u)" -ne 0 ] || [ ${#as[@]} -gt 0 ]; then
	OUT="$T/ro.graph.out" ERR="$T/ro.graph.err"
	"${as[@]}" "$SBIRUN" graph ro.lua --cache ro-cache >"$OUT" 2>"$ERR"
	RC=$?
	expect_ok
	[ "$(grep -c ' cached ' "$OUT")" -eq 3 ] || fail "graph of a read-only cache: $(cat "$OUT" "$ERR")"
	OUT="$T/ro.clean.out" ERR="$T/ro.clean.err"
	"${as[@]}" "$SBIRUN" clean ro.lua --cache ro-cache >"$OUT" 2>"$ERR"
	RC=$?
	expect_fail 1
	expect_err "ro-cache is not writable: Permission denied"
fi
chmod -R u+w ro-cache

# Strings are not numbers, under either failure policy, also for an
# observation from a simulation.
recipe str.lua 'return { "1" }'
run str.lua --quiet
expect_fail 1
expect_err "simulation 0 at theta = (theta1 = "
expect_err "the simulator returned a non-number at position 1 (a string)"
recipe str_drop.lua 'if t[1] > 0 then return { tostring(t[1]) } end return { t[1] }' ', on_failure = "drop"'
run str_drop.lua
expect_ok
expect_err "simulations (" # the dropped report
expect_err "the simulator returned a non-number at position 1 (a string)"
recipe str_obs.lua "$GOOD" "" '{ simulator = function() return { "0.5" } end, theta = { 0 } }'
run str_obs.lua --quiet
expect_fail 1
expect_err "the simulator returned a non-number at position 1 (a string)"

# error({...}) in a simulator: where, and the value's type.
recipe errtab.lua 'error({ code = 1 })'
run errtab.lua --quiet
expect_fail 1
expect_err "errtab.lua:4: (error object is a table value)"
recipe errtab_drop.lua 'if t[1] > 0 then error({}) end return { t[1] }' ', on_failure = "drop"'
run errtab_drop.lua --quiet
expect_ok
expect_err "errtab_drop.lua:4: (error object is a table value)"

cat >errll.lua <<'LUA'
local sbi = require "sbi"
local prior = sbi.prior.uniform { low = { -1 }, high = { 1 } }
sbi.output { post = sbi.likelihood { prior = prior, observation = sbi.observation { 0.2 },
                                     loglik = function(theta, x) error({}) end } }
LUA
run errll.lua --quiet
expect_fail 1
expect_err "the log-likelihood raised: errll.lua:4: (error object is a table value)"

# A UTF-8 byte order mark before the header or the first row.
recipe bom.lua "$GOOD" "" 'sbi.param("obs", "plain.csv")'
printf 'x\n0.2\n' >plain.csv
run bom.lua --cache bom-cache --out plain --quiet
expect_ok
for body in 'x\n0.2\n' '0.2\n'; do
	printf "\xef\xbb\xbf$body" >bom.csv
	run bom.lua --cache bom-cache --out bom --set obs=bom.csv --quiet
	expect_ok
	cmp -s plain/post.csv bom/post.csv || fail "a BOM changes the posterior"
done
finish
