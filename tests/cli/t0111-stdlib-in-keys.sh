#!/bin/bash
# Keys depend on the stdlib that is loaded: the built-in one, or with
# SBI_STDLIB_DIR the files in that folder. An unchanged copy keeps every key;
# an edited file changes them all (`graph` shows stale), and the edited
# stdlib's results are stored under their own keys.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/recipes/tutorial.lua" recipe.lua

keys() { awk 'NR > 1 { print $3 }' "$OUT"; }
states() { awk 'NR > 1 { print $4 }' "$OUT" | sort -u | tr '\n' ' '; }

run recipe.lua --set simulations=3000 --set method=rejection_abc --out ref --quiet
expect_ok
run graph recipe.lua --set simulations=3000 --set method=rejection_abc
expect_ok
builtin=$(keys)
expect_eq "$(states)" "cached " "built-in stdlib"

cp -r "$SRCDIR/stdlib" std
export SBI_STDLIB_DIR="$T/std"
run graph recipe.lua --set simulations=3000 --set method=rejection_abc
expect_ok
expect_err "loading the stdlib from"
expect_eq "$(keys)" "$builtin" "keys with an unchanged copy of the stdlib"
expect_eq "$(states)" "cached " "unchanged copy"

# A comment in one file of the stdlib: every key changes.
echo "-- an edit" >> std/sbi/abc.lua
run graph recipe.lua --set simulations=3000 --set method=rejection_abc
expect_ok
expect_eq "$(states)" "stale " "edited stdlib"
for k in $(keys); do
	if grep -qx "$k" <<<"$builtin"; then fail "key $k did not change with the stdlib"; fi
done
run recipe.lua --set simulations=3000 --set method=rejection_abc --out edited --quiet
expect_ok
expect_eq "$(ran_nodes edited/run.json)" 3 "nodes run with the edited stdlib"
cmp -s edited/posterior_samples.csv ref/posterior_samples.csv || fail "a comment changed the result"

# Back to the built-in stdlib: its results are still cached.
unset SBI_STDLIB_DIR
run recipe.lua --set simulations=3000 --set method=rejection_abc --out again --quiet
expect_ok
expect_eq "$(ran_nodes again/run.json)" 0 "built-in stdlib after the edit"

# The build-time hash of the engine's code (lang/embed.c --hash) follows
# the files' contents, not their location.
EMBED="$(dirname "$SBIRUN")/../sbi-embed"
[ -x "$EMBED" ] || fail "$EMBED not found (meson builds sbi-embed at the build root)"
if [ -x "$EMBED" ]; then
	mkdir -p a b
	printf 'int x;\n' > a/f.c
	printf 'int x;\n' > b/f.c
	"$EMBED" --hash ha.c h a/f.c && "$EMBED" --hash hb.c h b/f.c || fail "embed --hash failed"
	cmp -s ha.c hb.c || fail "the code hash depends on the path"
	printf 'int y;\n' > b/f.c
	"$EMBED" --hash hb.c h b/f.c
	if cmp -s ha.c hb.c; then fail "the code hash ignores the contents"; fi
fi
finish
