#!/bin/bash
# Documentation coverage: every public function of the sbi module is
# mentioned in docs/, every rng method appears as `rng:NAME` in
# docs/recipes.md, and every option printed by `sbirun --help` is in
# docs/cli.md. The lists come from the binary itself, so a new function,
# method or option fails this test until it is documented.
. "$(dirname "$0")/lib.sh"
DOCS=$SRCDIR/docs

# mentioned FILE... -- NAME: NAME occurs in one of the files, not followed by
# a name character (so sbi.simulator does not count for sbi.simulate).
mentioned() {
	local files=() name re
	while [ "$1" != "--" ]; do files+=("$1"); shift; done
	name=$2
	re="$(printf '%s' "$name" | sed 's/[][\.*^$+?(){}|]/\\&/g')([^[:alnum:]_-]|$)"
	grep -qE -- "$re" "${files[@]}"
}

# ---- (a) public functions of the sbi module ----
# Keys of sbi and of its plain sub-tables (sbi.prior, sbi.abc, ...) that are
# functions, skipping private keys (_...), core, version, is_node and the
# metatables of objects (Prior, Simulator, Node: tables with __name).
cat > public.lua <<'EOF'
local sbi = require "sbi"
local skip = { core = true, version = true, is_node = true }
local function walk(prefix, t, depth)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and not (depth == 0 and skip[k]) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "function" then
      print(prefix .. "." .. k)
    elseif type(v) == "table" and getmetatable(v) == nil and rawget(v, "__name") == nil and depth < 2 then
      walk(prefix .. "." .. k, v, depth + 1)
    end
  end
end
walk("sbi", sbi, 0)
EOF
run lua public.lua
expect_ok
cp "$OUT" public.txt
grep -qx "sbi.simulate" public.txt || fail "the list of public functions looks wrong: $(tr '\n' ' ' < public.txt)"
grep -qx "sbi.prior.uniform" public.txt || fail "sbi.prior.uniform not found among: $(tr '\n' ' ' < public.txt)"
grep -qx "sbi.abc.rejection" public.txt || fail "sbi.abc.rejection not found among: $(tr '\n' ' ' < public.txt)"
while read -r f; do
	mentioned "$DOCS"/*.md -- "$f" || fail "public function $f is not mentioned in docs/"
done < public.txt

# ---- (b) rng methods, as rng:NAME in docs/recipes.md ----
cat > rng.lua <<'EOF'
local core = require "sbi.core"
local names = {}
for k in pairs(debug.getmetatable(core.rng(1)).__index) do names[#names + 1] = k end
table.sort(names)
print(table.concat(names, "\n"))
EOF
run lua rng.lua
expect_ok
cp "$OUT" rng.txt
grep -qx "normal" rng.txt || fail "the list of rng methods looks wrong: $(tr '\n' ' ' < rng.txt)"
while read -r m; do
	mentioned "$DOCS/recipes.md" -- "rng:$m" || fail "rng method rng:$m is not documented in docs/recipes.md"
done < rng.txt

# ---- (c) command-line options of --help, in docs/cli.md ----
run --help
expect_ok
grep -E '^  --' "$OUT" | awk '{ print $1 }' > options.txt
grep -qx -- "--set" options.txt || fail "no options parsed from --help: $(head -c 500 "$OUT")"
while read -r o; do
	mentioned "$DOCS/cli.md" -- "$o" || fail "option $o (from sbirun --help) is not documented in docs/cli.md"
done < options.txt
finish
