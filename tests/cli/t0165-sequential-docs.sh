#!/bin/bash
# Every recipe example (6) of docs/sequential.md and the sequential section of
# docs/recipes.md runs and writes its outputs.
. "$(dirname "$0")/lib.sh"
extract() { # FILE PREFIX [FROM_HEADING TO_HEADING]
	awk -v p="$2" -v from="${3:-}" -v to="${4:-}" '
		from != "" && index($0, from) == 1 { on = 1 } from != "" && to != "" && index($0, to) == 1 { on = 0 }
		from == "" { on = 1 }
		/^```lua$/ && on { n++; f = sprintf("%s%02d.lua", p, n); inblock = 1; next }
		/^```$/ && inblock { inblock = 0; close(f); next }
		inblock { print > f }' "$1"
}
extract "$SRCDIR/docs/sequential.md" seq
extract "$SRCDIR/docs/recipes.md" rec "## Sequential methods" "## sbi.output"
count=0
for f in seq*.lua rec*.lua; do
	[ -f "$f" ] || continue
	count=$((count + 1))
	mkdir "dir-$f" && cp "$f" "dir-$f/x.lua"
	(cd "dir-$f" && "$SBIRUN" x.lua --quiet >out 2>err) ||
		fail "example $f failed: $(head -c 1500 "dir-$f/err")"
	[ -n "$(ls "dir-$f/sbirun-out/x/"*.csv 2>/dev/null)" ] || fail "example $f wrote no samples"
done
expect_eq "$count" 7 "examples found (6 in sequential.md, 1 in recipes.md)"
finish
