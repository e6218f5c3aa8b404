#!/bin/bash
# The engine never includes Lua: only lang/ binds the two (docs/architecture.md).
. "$(dirname "$0")/lib.sh"
if grep -rn -E '#include *[<"](lua|lauxlib|lualib)\.h' "$SRCDIR/engine"; then
	fail "engine/ includes a Lua header"
fi
# Public engine headers are all documented with a comment before each declaration block.
for h in "$SRCDIR"/engine/include/sbi/*.h; do
	head -1 "$h" | grep -q '^/\*' || fail "$h does not start with a comment saying what it is"
done
# Every engine source and header is hashed into the cache keys: a file
# missing from the hashed lists would let its edits keep stale results.
for f in "$SRCDIR"/engine/*.c "$SRCDIR"/engine/include/sbi/*.h; do
	b=${f#"$SRCDIR"/engine/}
	grep -q "'$b'" "$SRCDIR/engine/meson.build" ||
		fail "engine/$b is not listed in engine/meson.build (engine_src or engine_headers, hashed into keys)"
done
finish
