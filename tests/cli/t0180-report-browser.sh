#!/bin/bash
# report.html in a real browser (headless Chromium, Debian's `chromium`,
# which .ci/bootstrap installs): a screenshot that is not blank, every SVG
# laid out with a non-zero size, no network request, no error. A probe
# script goes into the test's copy of the page only (the product has no
# script): it writes the SVGs' sizes, the Resource Timing entries (every
# fetch the page made) and the errors caught into the DOM, which
# --dump-dom prints. A negative control (the copy plus an <img> on the
# network) shows that the probe sees a fetch. Skips (exit 77) without
# Chromium.
. "$(dirname "$0")/lib.sh"
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
	echo "SKIP: chromium is not installed (bash .ci/bootstrap test installs it: apt-get install chromium)"
	exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read the screenshot"; exit 77; }
cp "$SRCDIR/tests/cli/report_recipe.lua" r.lua
run r.lua --quiet --out o
expect_ok
[ -s o/report.html ] || { fail "no report.html"; finish; }

# chrome ARGS...: headless Chromium with a private profile; as root it
# needs --no-sandbox. Console messages go to stderr (--enable-logging).
chrome() {
	local extra=()
	[ "$(id -u)" -eq 0 ] && extra+=(--no-sandbox)
	timeout 120 "$CHROME" --headless "${extra[@]}" --disable-gpu --hide-scrollbars --no-first-run \
		--user-data-dir="$T/profile" --enable-logging=stderr --v=0 --virtual-time-budget=3000 "$@"
}

# ---- screenshot: not blank ----
chrome --window-size=1100,2600 --screenshot="$T/shot.png" "file://$T/o/report.html" >/dev/null 2>shot.log
[ -s shot.png ] || { fail "no screenshot: $(tail -5 shot.log)"; finish; }
read -r colours dark < <(python3 - shot.png <<'EOF2'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), (depth, ctype)
bpp = 4 if ctype == 6 else 3
raw, stride, prev, colours, dark = zlib.decompress(idat), w * bpp, bytearray(w * bpp), set(), 0
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 2):
        px = bytes(line[x:x + 3])
        colours.add(px)
        dark += sum(px) < 600
    prev = line
print(len(colours), dark)
EOF2
)
in_range "${colours:-0}" 50 100000000 "distinct colours in the screenshot (a blank page has 1)"
in_range "${dark:-0}" 5000 100000000 "non-white pixels in the screenshot (every 2nd column)"

# ---- the probe: SVG sizes, fetches, errors ----
probe='<script>
var sbiErrors = [];
window.addEventListener("error", function (e) { sbiErrors.push(String(e.message || e.type)); }, true);
window.addEventListener("load", function () {
  var o = [];
  document.querySelectorAll("svg").forEach(function (s) {
    var r = s.getBoundingClientRect(); o.push(Math.round(r.width) + "x" + Math.round(r.height)); });
  var p = document.createElement("pre");
  p.textContent = "PROBE svgs=" + o.join(",") + " resources=" + performance.getEntriesByType("resource").length +
    " errors=" + sbiErrors.length + " END";
  document.body.appendChild(p);
  console.log("PROBE-CONSOLE-WORKS");
});
</script>'
python3 - o/report.html probe.html "$probe" <<'EOF2'
import sys
s = open(sys.argv[1]).read()
assert "<script" not in s, "the product page has a script"
open(sys.argv[2], "w").write(s.replace("<head>\n", "<head>\n" + sys.argv[3] + "\n", 1))
EOF2
chrome --dump-dom "file://$T/probe.html" >dom.txt 2>console.log
line=$(grep -o 'PROBE svgs=[^ ]* resources=[0-9]* errors=[0-9]* END' dom.txt | grep -v '" +' | head -1)
[ -n "$line" ] || { fail "the probe wrote nothing: $(tail -5 console.log)"; finish; }
sizes=$(sed 's/.*svgs=\([^ ]*\) .*/\1/' <<<"$line")
expect_eq "$(tr ',' '\n' <<<"$sizes" | grep -c .)" "$(grep -c '<svg' o/report.html)" "SVGs laid out (probe: $line)"
for s in $(tr ',' ' ' <<<"$sizes"); do
	w=${s%x*} h=${s#*x}
	[ "$w" -gt 50 ] && [ "$h" -gt 50 ] || fail "an SVG rendered at $s"
done
expect_eq "$(sed 's/.*resources=\([0-9]*\).*/\1/' <<<"$line")" 0 "resources the page fetched"
expect_eq "$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")" 0 "errors in the page"
grep -q 'PROBE-CONSOLE-WORKS' console.log || fail "console messages are not captured, so errors would go unseen: $(tail -3 console.log)"
if grep 'CONSOLE' console.log | grep -v 'PROBE-CONSOLE-WORKS' | grep -q .; then
	fail "the page logged to the console: $(grep CONSOLE console.log | grep -v PROBE | head -3)"
fi

# ---- negative control: the probe sees a fetch ----
sed 's|</body>|<img src="http://127.0.0.1:9/x.png" alt="">\n</body>|' probe.html >bad.html
chrome --dump-dom "file://$T/bad.html" >dom-bad.txt 2>console-bad.log
bad=$(grep -o 'PROBE svgs=[^ ]* resources=[0-9]* errors=[0-9]* END' dom-bad.txt | head -1)
r=$(sed 's/.*resources=\([0-9]*\).*/\1/' <<<"$bad") e=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$bad")
[ "${r:-0}" -gt 0 ] || [ "${e:-0}" -gt 0 ] || fail "the probe did not see a page fetching from the network: '$bad'"
finish
