#!/bin/bash
# Text from a bundle is never printed raw (issue 9 item 4): control
# characters in the manifest's sets, labels and paths and in entry names
# are escaped by show, verify, unpack and replay (no ESC byte reaches the
# terminal), and the command unpack suggests quotes every argument, so
# pasting it cannot run anything else.
. "$(dirname "$0")/lib.sh"
own_tmpdir
bundle_setup 'local sbi = require "sbi"
sbi.output { obs = sbi.observation { sbi.param("v", 0.5) } }'
ESC=$(printf '\033')
no_esc() { # FILE WHAT
	grep -q "$ESC" "$1" && fail "$2 printed an ESC byte: $(cat -v "$1" | head -c 500)"
	grep -q "$(printf '\a')" "$1" && fail "$2 printed a BEL byte"
}
python3 "$TOOL" b.tar t.tar \
	'set:sets:["v=1 && touch pwned1 | sh", "w=$(touch pwned2)", "q=it'"'"'s; touch pwned3", "e=\u001b[2J\u001b]0;title\u0007"]' \
	'set:nodes.0.label:"obs \u001b[31mred\u001b[0m"' 'set:recipe.path:"/x/\u001b[1mr.lua"' \
	'set:platform.sysname:"\u009b31m"' || fail "bundle_tool.py failed"
run show t.tar
expect_ok
no_esc "$OUT" show
expect_out 'obs \x1b[31mred\x1b[0m'
expect_out 'e=\x1b[2J\x1b]0;title\x07'
expect_out '/x/\x1b[1mr.lua'
expect_out '\xc2\x9b31m'

run unpack t.tar u
expect_ok
no_esc "$ERR" unpack
expect_err "--set 'v=1 && touch pwned1 | sh'"
expect_err "--set 'w=\$(touch pwned2)'"
expect_err "--set 'q=it'\\''s; touch pwned3'"
expect_err "--set 'e=\\x1b[2J\\x1b]0;title\\x07'"
# Pasting the suggested command runs sbirun with exactly the four --set values.
line=$(grep '^  sbirun ' "$ERR" | sed 's/^  //')
[ -n "$line" ] || fail "unpack printed no command"
(
	sbirun() { printf '%s\n' "$@" > args.txt; }
	eval "$line"
)
[ -e pwned1 ] || [ -e pwned2 ] || [ -e pwned3 ] && fail "the suggested command ran something else: $line"
expect_eq "$(grep -c '^--set$' args.txt)" 4 "arguments of the suggested command"
grep -qxF 'q=it'"'"'s; touch pwned3' args.txt || fail "the suggested command changed a --set value: $(cat args.txt)"

# Replay's table: the label is escaped.
run replay t.tar --quiet
no_esc "$OUT" replay
expect_out 'obs \x1b[31mred\x1b[0m'

# Entry names with control characters, in verify's and unpack's messages.
printf 'x\n' > x.txt
edit_bundle b.tar n.tar "add:recipe/$(printf '\033')[2Jx.lua:x.txt"
run verify n.tar
expect_fail 1
no_esc "$OUT" verify
no_esc "$ERR" verify
expect_out 'recipe/\x1b[2Jx.lua'
run unpack n.tar u2
expect_fail 1
no_esc "$ERR" unpack
expect_err 'recipe/\x1b[2Jx.lua'

# A recipe choosing its labels: escaped wherever sbirun prints them
# (progress, the replay table), so also when a bundle's recipe runs.
mkdir proj2
cat > proj2/r.lua <<'LUA'
local sbi = require "sbi"
local obs = require("sbi.graph").node("observation", "\27[2J\27]0;t\7here", { v = 1 }, {}, function()
  return { x = sbi.core.matrix and nil or nil }
end)
sbi.output { obs = sbi.observation { 0.5 }, other = obs }
LUA
run proj2/r.lua --out o2
no_esc "$ERR" "a run"
expect_err 'observation (\x1b[2J\x1b]0;t\x07here)'
# Error messages a recipe raises, too (newlines and tabs kept).
printf 'error("bad\\27[2J\\n\\tnext \\194\\155x \\195\\169")\n' > proj2/e.lua
run proj2/e.lua
expect_fail 1
no_esc "$ERR" "an error"
expect_err 'bad\x1b[2J'
expect_err "$(printf '\tnext \\xc2\\x9bx \303\251')"
# A message of more than a screenful of invalid UTF-8 (no character
# starts in a piece of it) is escaped too, not looped over forever.
printf 'error(string.rep("\\128", 3000))\n' > proj2/u.lua
run_within 30 proj2/u.lua
expect_fail 1
expect_err '\x80\x80\x80'
# A --set value that is not UTF-8 cannot be put in the manifest (JSON):
# refused, not left out (replay would run without it and differ).
mkdir proj3
printf 'local sbi = require "sbi"\nsbi.output { obs = sbi.observation { string.byte(sbi.param("name", "a")) } }\n' \
	> proj3/r.lua
run proj3/r.lua --quiet --out o3 --set name=$'\xff'
expect_ok
run bundle proj3/r.lua -o x.tar --compression none --set name=$'\xff'
expect_fail 1
expect_err '--set name=\xff: not valid UTF-8'
[ -e x.tar ] && fail "a bundle was written without a --set value"
run bundle proj2/r.lua -o l.tar --compression none
no_esc "$ERR" bundle
run replay l.tar
no_esc "$OUT" replay
no_esc "$ERR" replay
finish
