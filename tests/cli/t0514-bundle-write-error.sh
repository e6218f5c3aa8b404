#!/bin/bash
# A write that fails while unpacking (issue 9 item 14: a full disk was
# reported as "File exists") is reported with its real cause and leaves
# nothing behind. A file size limit (ulimit -f, unprivileged) stands for
# the full disk: the write comes back short, then fails with EFBIG, as it
# does with ENOSPC; sbirun ignores SIGXFSZ so the error is reported.
. "$(dirname "$0")/lib.sh"
own_tmpdir
bundle_setup
edit_bundle b.tar big.tar zeros:data/big.bin:3000000

limited() { # at most 1,024,000 bytes per file: not a multiple of the 64 KiB blocks, so a write comes back short first
	OUT="$T/out.$CHECKS" ERR="$T/err.$CHECKS"
	CHECKS=$((CHECKS + 1))
	(ulimit -f 1000 && exec "$SBIRUN" "$@") >"$OUT" 2>"$ERR"
	RC=$?
}
limited unpack big.tar u
expect_fail 1
expect_err "data/big.bin: cannot write: File too large"
grep -qF "File exists" "$ERR" && fail "a write error was reported as 'File exists'"
[ -e u ] && fail "a failed unpack created u"
ls -A | grep -q '^\.u\.unpack' && fail "a failed unpack left its temporary folder"
limited replay big.tar --quiet
expect_fail 1
expect_err "data/big.bin: cannot write: File too large"
[ -z "$(ls -A "$TMPDIR")" ] || fail "replay left files in TMPDIR: $(ls -A "$TMPDIR")"
# Without the limit it unpacks.
run unpack big.tar u
expect_ok
finish
