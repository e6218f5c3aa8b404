#!/bin/bash
# docs/core.md, the reference of sbi.core and sbi.check: every function of
# both modules and every method of their objects (Mat, Rng, Prior, Flow,
# Classifier, MLP) has its entry, and every Lua example in it runs (they check
# their claims with assert). The lists come from the binary, so a new
# primitive fails this test until it is documented.
. "$(dirname "$0")/lib.sh"
DOC=$SRCDIR/docs/core.md
[ -f "$DOC" ] || { fail "$DOC is missing"; finish; }

# ---- every name is documented ----
cat > names.lua <<'EOF2'
local core = require "sbi.core"
local check = require "sbi.check"
local function keys(prefix, t)
  local out = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then out[#out + 1] = prefix .. k end
  end
  table.sort(out)
  for _, k in ipairs(out) do print(k) end
end
keys("core.", core)
keys("check.", check)
local y = core.mat(40, 1)
for i = 1, 40 do y:set(i, 1, i) end
local t = { kind = "maf", transforms = 1, hidden = 4, layers = 1, activation = "tanh", residual = true,
  seed = 1, batch_size = 10, learning_rate = 5e-4, validation_fraction = 0.1, patience = 1, max_epochs = 1,
  clip = 5, label = "train" }
t.y = y
local flow = core.flow_load(core.flow_train(t))
t.theta, t.x, t.atoms = y, y, 2 -- atoms: a flow's would ask for the atomic loss
local clsf = core.classifier_load(core.classifier_train(t))
local net = core.mlp_load(core.linear_train { x = y, y = y })
for prefix, obj in pairs { ["m:"] = core.mat(1, 1), ["rng:"] = core.rng(1), ["f:"] = flow, ["c:"] = clsf, ["net:"] = net,
                           ["p:"] = core.prior("normal", { mean = { 0 }, std = { 1 } }) } do
  keys(prefix, debug.getmetatable(obj).__index) -- locked to recipes
end
EOF2
run lua names.lua
expect_ok
cp "$OUT" names.txt
for n in core.mat core.flow_train check.options m:select_rows m:copy rng:normal p:filter f:log_prob c:log_ratio net:encode; do
	grep -qx -- "$n" names.txt || fail "the list of names looks wrong ($n missing): $(tr '\n' ' ' < names.txt)"
done
while read -r n; do
	# As code: `core.mat(`, `core.FLOW_FORMAT`, `m:get(i, j)`, `rng:uniform(`, ...
	re="\`$(printf '%s' "$n" | sed 's/[][\.*^$+?(){}|]/\\&/g')([^[:alnum:]_]|\`)"
	grep -qE -- "$re" "$DOC" || fail "$n is not documented in docs/core.md"
done < names.txt

# ---- every example runs ----
awk '/^```lua$/ { n++; f = sprintf("example%02d.lua", n); inblock = 1; next }
	/^```$/ && inblock { inblock = 0; close(f); next }
	inblock { print > f }' "$DOC"
count=0
for f in example*.lua; do
	[ -f "$f" ] || break
	count=$((count + 1))
	mkdir "dir-$f" && cp "$f" "dir-$f/x.lua"
	if head -1 "$f" | grep -q '^-- recipe'; then
		(cd "dir-$f" && "$SBIRUN" x.lua --quiet >out 2>err)
	else
		(cd "dir-$f" && "$SBIRUN" lua x.lua >out 2>err)
	fi || fail "docs/core.md example $count ($(head -1 "$f")) failed: $(head -c 1500 "dir-$f/err")"
done
in_range "$count" 20 1000 "number of Lua examples in docs/core.md"
finish
