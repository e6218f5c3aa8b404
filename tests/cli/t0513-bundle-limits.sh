#!/bin/bash
# Limits on what reading a bundle may cost (issue 9 item 5): the total
# size the entries unpack to (--max-unpacked-size, default 8G) and the size
# of manifest.json (--max-manifest-size, default 8M) are checked before any
# entry is read; past them show, verify, unpack and replay refuse with a
# message naming the option, leaving nothing behind. A small gzip bundle
# of zeros stands for a decompression bomb.
. "$(dirname "$0")/lib.sh"
own_tmpdir
bundle_setup
nothing_left() { # DIR
	[ -e "$1" ] && fail "$1 was created"
	ls -A | grep -q "^\.$1\.unpack" && fail "the temporary folder of $1 was left"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "files left in TMPDIR: $(ls -A "$TMPDIR")"
}

# 8 MB of zeros in a ~8 KB archive.
edit_bundle b.tar bomb.tar.gz zeros:data/zeros.bin:8000000 gz
[ "$(stat -c %s bomb.tar.gz)" -lt 100000 ] || fail "bomb.tar.gz is not small"
run unpack --max-unpacked-size 1M bomb.tar.gz u1
expect_fail 1
expect_err "its entries unpack to 8"
expect_err "over the limit of 1048576 bytes (--max-unpacked-size)"
nothing_left u1
run verify bomb.tar.gz --max-unpacked-size 1048576
expect_fail 1
expect_out "over the limit of 1048576 bytes (--max-unpacked-size)"
run replay bomb.tar.gz --max-unpacked-size 1m --quiet
expect_fail 1
expect_err "over the limit of 1048576 bytes (--max-unpacked-size)"
nothing_left u1
# Within the limit (the default, or a raised one): unpacked.
run unpack bomb.tar.gz u2
expect_ok
run unpack bomb.tar.gz u3 --max-unpacked-size 9M
expect_ok
[ "$(stat -c %s u3/zeros.bin)" -eq 8000000 ] || fail "zeros.bin not unpacked whole"
rm -rf u2 u3

# A large manifest: 200 KB, and 9 MB (over the default).
edit_bundle b.tar m200k.tar pad:200000
run show --max-manifest-size 100K m200k.tar
expect_fail 1
expect_err "manifest.json is larger than 102400 bytes (--max-manifest-size)"
run verify --max-manifest-size 100K m200k.tar
expect_fail 1
expect_out "manifest.json is larger than 102400 bytes (--max-manifest-size)"
run unpack m200k.tar u4 --max-manifest-size 100k
expect_fail 1
expect_err "manifest.json is larger than 102400 bytes (--max-manifest-size)"
nothing_left u4
run show m200k.tar
expect_ok
edit_bundle b.tar m9m.tar pad:9000000
run show m9m.tar
expect_fail 1
expect_err "manifest.json is larger than 8388608 bytes (--max-manifest-size)"
run unpack m9m.tar u5
expect_fail 1
nothing_left u5
run replay m9m.tar --quiet
expect_fail 1
expect_err "manifest.json is larger than 8388608 bytes (--max-manifest-size)"
nothing_left u5
run verify m9m.tar --max-manifest-size 16M
expect_ok

# Bad values and misplaced options.
for v in 0 abc 1X 10KB -5 99999999999999999999; do
	run verify b.tar --max-unpacked-size "$v"
	expect_fail 2
	expect_err "expected a size in bytes"
done
run verify b.tar --max-manifest-size
expect_fail 2
run proj/r.lua --max-unpacked-size 1M
expect_fail 2
expect_err "an option of show, verify, unpack and replay"
finish
