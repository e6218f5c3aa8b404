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
for f in "$SRCDIR"/engine/*.c "$SRCDIR"/engine/*/*.c "$SRCDIR"/engine/include/sbi/*.h; do
	[ -e "$f" ] || continue
	b=${f#"$SRCDIR"/engine/}
	grep -q "'$b'" "$SRCDIR/engine/meson.build" ||
		fail "engine/$b is not listed in engine/meson.build (engine_src or engine_headers, hashed into keys)"
done
# The engine's folders are layers (docs/architecture.md#the-engines-folders):
# a module includes only headers of its own folder and of earlier ones.
layers="base numerics store nn infer exec plot"
layer_of() { # NAME -> index of the folder holding engine/*/NAME.c
	local i=0 l
	for l in $layers; do
		[ -e "$SRCDIR/engine/$l/$1.c" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo 99
}
for f in "$SRCDIR"/engine/*/*.c "$SRCDIR"/engine/include/sbi/*.h; do
	case $f in
	*/include/sbi/*) me=$(layer_of "$(basename "$f" .h)") ;;
	*) me=$(layer_of "$(basename "$f" .c)") ;;
	esac
	[ "$me" = 99 ] && fail "$f belongs to no engine folder ($layers)"
	for h in $(sed -n 's/^#include "sbi\/\([a-z_]*\)\.h".*/\1/p' "$f"); do
		[ "$(layer_of "$h")" -le "$me" ] ||
			fail "${f#"$SRCDIR"/} includes sbi/$h.h from a later engine folder"
	done
done
finish
