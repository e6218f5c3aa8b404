#!/bin/bash
# Resume across machines: a simulation killed (SIGKILL) after some chunks,
# bundled from what is cached (the chunks, though the simulate step itself
# is not cached), unpacked in another folder, continues there with only the
# missing chunks and gives the same artifacts as an uninterrupted run.
. "$(dirname "$0")/lib.sh"
mkdir machine1
cp "$SRCDIR/tests/cli/slow_recipe.lua" machine1/recipe.lua

# Reference: uninterrupted, in its own cache.
run machine1/recipe.lua --cache ref-cache --out ref --quiet
expect_ok

# Kill once at least 3 of the 40 chunks are done (observed by polling the refs).
"$SBIRUN" machine1/recipe.lua --quiet >/dev/null 2>&1 &
pid=$!
wait_refs machine1/.sbirun 3 "$pid"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
done_chunks=$(refs_count machine1/.sbirun)
[ "$done_chunks" -ge 3 ] || fail "fewer than 3 chunks were finished before the kill ($done_chunks)"
[ "$done_chunks" -lt 40 ] || fail "the run finished before it was killed ($done_chunks refs)"

run bundle machine1/recipe.lua -o b.tar --compression none
expect_ok
expect_err "0 of 3 steps cached"
tar -xOf b.tar manifest.json > manifest.json || fail "cannot read the manifest"
grep -q "\"chunks\": $done_chunks\\b" manifest.json || fail "the manifest does not list $done_chunks chunks: $(grep chunks manifest.json)"
run verify b.tar
expect_ok

# "Another machine": a new folder; the original cache is removed.
rm -rf machine1
run unpack b.tar machine2
expect_ok
run machine2/recipe.lua --out out
expect_ok
expect_err "resuming: $done_chunks of 40 chunks already done"
missing=$(( (40 - done_chunks) * 500 ))
expect_err "$missing simulations in"
expect_eq "$(state_of out/run.json simulate)" "ran" "simulate state after resume"
expect_eq "$(artifact_of out/run.json simulate)" "$(artifact_of ref/run.json simulate)" "simulate artifact after resume"
expect_eq "$(artifact_of out/run.json abc.rejection)" "$(artifact_of ref/run.json abc.rejection)" "abc artifact after resume"
cmp -s out/posterior_samples.csv ref/posterior_samples.csv || fail "posterior differs after resume"
no_temp_files machine2/.sbirun

# And now everything is cached there.
run machine2/recipe.lua --out out2 --quiet
expect_ok
expect_eq "$(ran_nodes out2/run.json)" 0 "second run: nodes ran"
finish
