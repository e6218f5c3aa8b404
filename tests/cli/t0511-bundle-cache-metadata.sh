#!/bin/bash
# Nothing in a bundle can forge the list of files a recipe read (issue 9
# item 3): entries that would unpack into the cache folder .sbirun (its
# reads.json) other than the cache/ entries, or onto the marker or the
# map, are refused by verify and unpack; and `sbirun bundle` re-checks the
# cache's record: a file it names outside the recipe's folder is packed
# only when given with --include.
. "$(dirname "$0")/lib.sh"
printf 'top secret\n' > secret.txt
bundle_setup
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"][0]["key"])' \
	<(tar -xOf b.tar manifest.json))
[ ${#KEY} -eq 64 ] || fail "no node key in the manifest"
printf '{"format": "sbirun-reads 1", "nodes": {"%s": [{"path": "/etc/passwd", "found": "/etc/passwd"}]}}\n' \
	"$KEY" > forged.json

# Planted cache metadata in a bundle: refused.
i=0
for name in recipe/.sbirun/reads.json data/.sbirun/reads.json recipe/sub/.sbirun/reads.json \
	recipe/.sbirun/refs/ab/cd recipe/.sbirun-bundle-paths data/.sbirun-bundle; do
	i=$((i + 1))
	edit_bundle b.tar p$i.tar "add:$name:forged.json"
	verify_refused p$i.tar "refused name"
	unpack_refused p$i.tar u$i "$name"
done

# A forged record in the cache (copied from elsewhere, or written by hand):
# bundle refuses to pack a file outside the recipe's folder it names.
python3 - "$KEY" "$T" <<'PY' || fail "cannot write the forged record"
import json, sys
key, t = sys.argv[1], sys.argv[2]
rec = {"format": "sbirun-reads 1", "nodes": {key: [
    {"path": t + "/secret.txt", "found": t + "/secret.txt"},
    {"path": "/etc/passwd", "found": "/etc/passwd"}]}}
json.dump(rec, open("proj/.sbirun/reads.json", "w"))
PY
run bundle proj/r.lua -o f.tar --compression none
expect_fail 1
expect_err "proj/.sbirun/reads.json records that the step observation"
expect_err "$T/secret.txt, which is outside the recipe's folder $T/proj"
expect_err "--include PATH"
[ -e f.tar ] && fail "bundle wrote f.tar from a forged record"
run bundle proj/r.lua -o f.tar --compression none --include secret.txt
expect_fail 1
expect_err "read /etc/passwd, which is outside the recipe's folder"
[ -e f.tar ] && fail "bundle wrote f.tar from a forged record"
# Both given explicitly: packed.
run bundle proj/r.lua -o f.tar --compression none --include secret.txt --include /etc/passwd
expect_ok
grep -qF "top secret" f.tar || fail "an --include file was not bundled"
run bundle proj/r.lua -o g.tar --include nothing-here
expect_fail 1
expect_err "--include nothing-here: no such file or folder"
# A recorded file inside the recipe's folder needs no --include.
printf 'x\n1\n' > proj/inside.csv
python3 - "$KEY" "$T" <<'PY' || fail "cannot write the record"
import json, sys
key, t = sys.argv[1], sys.argv[2]
rec = {"format": "sbirun-reads 1", "nodes": {key: [{"path": "inside.csv", "rel": "inside.csv",
    "found": t + "/proj/inside.csv"}]}}
json.dump(rec, open("proj/.sbirun/reads.json", "w"))
PY
run bundle proj/r.lua -o h.tar --compression none
expect_ok
tar -tf h.tar | grep -qx "data/inside.csv" || fail "a recorded file inside the recipe's folder was not bundled"
finish
