#!/bin/bash
# The tutorial recipe runs valgrind-clean: no invalid access, no leak. It runs
# rejection ABC: the default (method=compare) trains NPE, far too slow under
# valgrind for the suite (docs/testing.md).
# Skipped (exit 77) for sanitizer builds, which valgrind cannot run.
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
if ldd "$SBIRUN" | grep -q libasan; then echo "sanitizer build: skipped"; exit 77; fi
valgrind --error-exitcode=9 --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --log-file="$T/vg.log" \
	"$SBIRUN" "$SRCDIR/recipes/tutorial.lua" --set method=rejection_abc --set simulations=5000 \
	--cache cache --out out --quiet >/dev/null
rc=$?
[ "$rc" -eq 0 ] || fail "valgrind exit $rc: $(grep -E 'ERROR SUMMARY|lost:' "$T/vg.log")"
grep -q "ERROR SUMMARY: 0 errors" "$T/vg.log" || fail "valgrind errors: $(grep 'ERROR SUMMARY' "$T/vg.log")"
# A cached re-run takes the other paths (loading artifacts).
valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
	--log-file="$T/vg2.log" "$SBIRUN" "$SRCDIR/recipes/tutorial.lua" --set method=rejection_abc --set simulations=5000 \
	--set epsilon_quantile=0.05 --cache cache --out out --quiet >/dev/null
rc=$?
[ "$rc" -eq 0 ] || fail "valgrind (cached run) exit $rc: $(grep -E 'ERROR SUMMARY|lost:' "$T/vg2.log")"
finish
