#!/bin/bash
# A run killed with SIGKILL resumes from its completed chunks and produces
# artifacts identical to an uninterrupted run; no partial artifact is read.
# Once the step is complete its chunks are gone: simulations are stored once.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/tests/cli/slow_recipe.lua" recipe.lua

# Reference: uninterrupted, in its own cache.
run recipe.lua --cache ref-cache --out ref --quiet
expect_ok

# Kill three times, each time once the run has added chunks to the cache
# (the first, then 5 and 10 more: polling the refs, so the kills land after
# observed progress whatever the machine's speed), then resume. The recipe
# has 40 chunks; the kill follows the observation within one poll, far
# before the rest could finish.
for step in 1 5 10; do
	target=$(($(refs_count cache) + step))
	"$SBIRUN" recipe.lua --cache cache --out out --quiet >/dev/null 2>&1 &
	pid=$!
	wait_refs cache "$target" "$pid"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
done_chunks=$(refs_count cache)
[ "$done_chunks" -ge 16 ] || fail "fewer than 16 chunks were finished before the kills (got $done_chunks refs)"
[ "$done_chunks" -lt 40 ] || fail "the run finished before it was killed ($done_chunks refs)"

run recipe.lua --cache cache --out out
expect_ok
expect_err "resuming:"
expect_eq "$(artifact_of out/run.json simulate)" "$(artifact_of ref/run.json simulate)" "simulate artifact after resume"
expect_eq "$(artifact_of out/run.json abc.rejection)" "$(artifact_of ref/run.json abc.rejection)" "abc artifact after resume"
cmp -s out/posterior_samples.csv ref/posterior_samples.csv || fail "posterior differs after resume"
no_temp_files cache

# Stored once: a complete run keeps the three steps' entries, no chunk (ref
# or object); the resumed run dropped the chunks it had reused.
expect_eq "$(refs_count ref-cache) $(find ref-cache/objects -type f | wc -l)" "3 3" "refs and objects after a complete run"
expect_eq "$(grep -rl '^chunk ' cache/refs | wc -l)" 0 "chunk refs left after the resumed run"
expect_eq "$(refs_count cache)" 3 "refs after the resumed run"
finish
