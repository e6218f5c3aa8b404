#!/bin/bash
# Killing only the parent of a --jobs run (SIGKILL or SIGTERM) takes its
# workers with it, even when they are stuck in a simulator, and the cache
# is not left locked: graph and clean return at once.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/tests/cli/hang_recipe.lua" recipe.lua

for sig in KILL TERM; do
	cache="cache-$sig"
	"$SBIRUN" recipe.lua --jobs 2 --cache "$cache" --out "out-$sig" --quiet >/dev/null 2>&1 &
	pid=$!
	# Wait (bounded) until a chunk is stored and both workers are stuck.
	workers=""
	for _ in $(seq 600); do
		w=$(pgrep -P "$pid" | tr '\n' ' ')
		if [ "$(refs_count "$cache")" -ge 1 ] && [ "$(echo $w | wc -w)" -eq 2 ]; then
			workers=$w
			break
		fi
		sleep 0.1
	done
	[ -n "$workers" ] || fail "$sig: never saw a stored chunk and two running workers"
	kill "-$sig" "$pid"
	wait "$pid" 2>/dev/null
	left=""
	for _ in $(seq 100); do
		left=""
		for p in $workers; do alive "$p" && left="$left $p"; done
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || fail "$sig: workers$left still running 10 s after their parent was killed"
	# (Leftover workers, if any, are still running here: the cache must not
	# be locked by them either.)
	# A hang here is a wait for a lock held by a dead run.
	run_within 20 graph recipe.lua --cache "$cache"
	expect_ok
	expect_out "simulate"
	run_within 20 clean recipe.lua --cache "$cache"
	expect_ok
	expect_err "removed"
	for p in $left; do kill -9 "$p" 2>/dev/null; done
done
finish
