#!/bin/bash
# Bundles: bundle -> show -> verify -> unpack -> run is all cache hits with
# the same posterior; a flipped byte is found by verify (plain tar and
# zstd) and makes unpack refuse, leaving nothing behind.
. "$(dirname "$0")/lib.sh"
abc_helper_recipe

run recipe.lua --set simulations=3000 --out out1 --quiet
expect_ok

# Usage errors.
run bundle recipe.lua --set simulations=3000
expect_fail 2
expect_err "no output file given"
run bundle recipe.lua -o x.tar --compression lz4
expect_fail 2
expect_err "--compression lz4"
run bundle recipe.lua -o x.tar --without everything
expect_fail 2

run bundle recipe.lua --set simulations=3000 -o b.sbi.tar.zst
expect_ok
expect_err "3 of 3 steps cached"
run show b.sbi.tar.zst
expect_ok
expect_out "sbirun-bundle 1"
expect_out "simulations=3000"
expect_out "abc.rejection"
run verify b.sbi.tar.zst
expect_ok
expect_out "b.sbi.tar.zst: ok"

run unpack b.sbi.tar.zst u
expect_ok
expect_err "sbirun u/recipe.lua --set simulations=3000"
for f in u/recipe.lua u/helper.lua u/data/obs.csv u/.sbirun/objects u/.sbirun/refs; do
	[ -e "$f" ] || fail "unpack did not create $f"
done
# Run from another folder so that data/obs.csv is found beside the recipe.
mkdir elsewhere
(cd elsewhere && "$SBIRUN" ../u/recipe.lua --set simulations=3000 --out ../out2 --quiet >/dev/null 2>../err.unpacked)
[ $? -eq 0 ] || fail "the unpacked recipe failed: $(cat err.unpacked)"
expect_eq "$(ran_nodes out2/run.json)" 0 "unpacked run: nodes ran"
cmp -s out1/posterior_samples.csv out2/posterior_samples.csv || fail "unpacked run gives other samples"
run unpack b.sbi.tar.zst u
expect_fail 1
expect_err "not an empty folder"

# A flipped byte inside the recipe of a plain tar.
run bundle recipe.lua --set simulations=3000 -o plain.tar --compression none
expect_ok
off=$(grep -obaF 'helper.sim(theta' plain.tar | head -1 | cut -d: -f1)
[ -n "$off" ] || fail "recipe text not found in plain.tar"
cp plain.tar flipped.tar
printf 'H' | dd of=flipped.tar bs=1 seek="$off" conv=notrunc 2>/dev/null
run verify plain.tar
expect_ok
run verify flipped.tar
expect_fail 1
expect_out "recipe/recipe.lua: hash mismatch"
expect_err "failed verification"
run unpack flipped.tar v
expect_fail 1
expect_err "hash mismatch"
ls -a | grep -q '^\.v\.unpack' && fail "unpack left its temporary folder behind"
[ -e v ] && fail "unpack of a damaged bundle created v"

# A flipped byte in the middle of the zstd stream.
size=$(wc -c < b.sbi.tar.zst)
cp b.sbi.tar.zst flipped.zst
byte=$(od -An -tu1 -j $((size / 2)) -N1 b.sbi.tar.zst | tr -d ' ')
printf "\\$(printf '%03o' $(( (byte + 1) % 256 )))" | dd of=flipped.zst bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
run verify flipped.zst
expect_fail 1
run unpack flipped.zst w
expect_fail 1
[ -e w ] && fail "unpack of a damaged bundle created w"

# A truncated bundle.
head -c $((size * 2 / 3)) b.sbi.tar.zst > cut.zst
run verify cut.zst
expect_fail 1

# Without simulations: smaller, and still all cache hits.
run bundle recipe.lua --set simulations=3000 -o small.tar --compression none --without simulations
expect_ok
expect_err "2 of 3 steps cached"
[ "$(wc -c < small.tar)" -lt "$(wc -c < plain.tar)" ] || fail "--without simulations is not smaller"
run show small.tar
expect_out "without   simulations"
run unpack small.tar s
expect_ok
run s/recipe.lua --set simulations=3000 --out out3 --quiet
expect_ok
expect_eq "$(ran_nodes out3/run.json)" 0 "without simulations: nodes ran"
cmp -s out1/posterior_samples.csv out3/posterior_samples.csv || fail "--without simulations gives other samples"
finish
