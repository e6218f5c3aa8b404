#!/bin/bash
# report.html (docs/report.md): every output of a recipe with three
# posteriors goes to its own files; the report holds their summary tables
# (numbers checked against the CSV files), one corner plot overlaying the
# three, the loss curve of the trained estimator, the predictive plot with
# the observation; it is self-contained; two cold runs give the same bytes
# but for times, and the same SVG bytes; `sbirun report OUTDIR` rewrites the
# very same file from the folder alone; diagnostics and warnings of
# run.json show generically (name, value, threshold, pass/FAIL), escaped;
# an output name given twice is an error.
. "$(dirname "$0")/lib.sh"
cp "$SRCDIR/tests/cli/report_recipe.lua" r.lua

run r.lua --quiet --cache c1 --out o1
expect_ok
for f in abc exact npe predictive observation; do
	[ -s "o1/$f.csv" ] && [ -s "o1/$f.npy" ] || fail "output $f.csv/.npy missing: $(ls o1)"
done
[ -s o1/npe.loss.csv ] || fail "the NPE output's loss curve npe.loss.csv is missing"
expect_eq "$(head -1 o1/npe.loss.csv)" "epoch,train,validation" "npe.loss.csv header"
expect_eq "$(head -1 o1/observation.csv | cut -d, -f1,8)" "x[1],x[8]" "observation.csv header"
expect_eq "$(sort -u <(md5sum o1/abc.csv o1/exact.csv o1/npe.csv | cut -d' ' -f1) | wc -l)" 3 \
	"three posteriors, three different files"
expect_eq "$(jget o1/run.json '[o["name"] for o in j["outputs"]]')" \
	"['abc', 'exact', 'npe', 'observation', 'predictive']" "outputs in run.json"
H=o1/report.html
[ -s "$H" ] || { fail "no report.html"; finish; }

# ---- contents ----
for s in '<h3>abc <small>' '<h3>exact <small>' '<h3>npe <small>' '>exact</text>' '>npe</text>' \
	'Posterior samples: abc, exact, npe, overlaid' 'Loss curves of the estimator behind npe' '>validation</text>' \
	'Posterior predictive' 'points: the observation (output observation)' '<td class="l">likelihood.sample</td>' \
	'No diagnostics in this run.' '<code>npe.loss.csv</code>' 'MCMC traces of exact (exact.trace.csv)'; do
	grep -qF -- "$s" "$H" || fail "report.html lacks '$s'"
done
expect_eq "$(grep -c '<svg' "$H")" 4 "plots in report.html (corner, loss, predictive, the exact posterior's MCMC traces)"
# The summary numbers are those of the CSV files (mean, and the median by sorting).
python3 - "$H" o1/exact.csv <<'EOF2' || fail "report.html's summary of exact disagrees with exact.csv"
import re, sys
html, rows = open(sys.argv[1]).read(), [l.split(",") for l in open(sys.argv[2]).read().split("\n")[1:] if l]
table = html.split("<h3>exact <small>")[1].split("</table>")[0]
for j, name in enumerate(["mu", "nu"]):
    cells = re.search(r'<td class="l">%s</td>((?:<td>[^<]*</td>)+)' % name, table).group(1)
    v = [float(x) for x in re.findall(r"<td>([^<]*)</td>", cells)]
    col = sorted(float(r[j]) for r in rows)
    n = len(col)
    mean = sum(col) / n
    sd = (sum((c - mean) ** 2 for c in col) / (n - 1)) ** 0.5
    med = (col[n // 2 - 1] + col[n // 2]) / 2 if n % 2 == 0 else col[n // 2]
    for got, want in ((v[0], mean), (v[1], sd), (v[4], med)):
        assert abs(got - want) <= 1e-3 * max(1, abs(want)), (name, got, want)
    assert v[2] < v[3] < v[4] < v[5] < v[6], v
EOF2
# Self-contained: nothing to fetch (the SVG namespace is a name, not a fetch).
if grep -qiE '<(script|link|img|iframe|object|embed)|url\(|@import|(src|href) *= *"?(https?:)?//' "$H"; then
	fail "report.html refers to something outside itself: $(grep -oiE '<(script|link|img)[^>]*|url\([^)]*|(src|href)=[^ >]*' "$H" | head -3)"
fi
expect_eq "$(grep -oE 'https?://[^"]*' "$H" | sort -u)" "http://www.w3.org/2000/svg" "URLs in report.html"

# ---- determinism ----
strip_times() { sed 's|<span class="t">[^<]*</span>|T|g' "$1"; }
svgs() { awk '/^<svg /,/^<\/svg>$/' "$1"; }
run r.lua --quiet --cache c2 --out o2
expect_ok
cmp -s <(strip_times o1/report.html) <(strip_times o2/report.html) ||
	fail "two cold runs wrote different reports (times aside): $(diff <(strip_times o1/report.html) <(strip_times o2/report.html) | head -5)"
cmp -s <(svgs o1/report.html) <(svgs o2/report.html) || fail "two cold runs drew different SVG bytes"
[ "$(svgs o1/report.html | wc -c)" -gt 20000 ] || fail "the SVGs extracted for the comparison are suspiciously small"
cp o1/report.html first.html
run report o1
expect_ok
cmp -s first.html o1/report.html || fail "sbirun report OUTDIR did not rewrite the run's report byte for byte"
run r.lua --quiet --cache c1 --out o1
expect_ok
hits=$(jget o1/run.json 'j["cache_hits"]')
in_range "$hits" 1 7 "cache hits of the re-run"
grep -qF "0 steps ran, $hits cache hits" o1/report.html || fail "a cached re-run's report does not say so"
cmp -s <(svgs first.html) <(svgs o1/report.html) || fail "a cached re-run drew different SVG bytes"

# ---- diagnostics and warnings, whatever run.json holds ----
mkdir o3 && cp o1/* o3/
python3 - o3/run.json <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
j["diagnostics"] = [
    {"name": "coverage npe", "value": 0.031, "threshold": 0.05, "pass": True, "direction": "calibrated"},
    {"name": "sbc <exact>", "value": 0.001, "threshold": 0.01, "pass": False, "per_parameter": [0.5, 0.001]},
    {"name": "c2st", "value": 0.52},
]
j["warnings"] = ["likelihood.sample: R-hat 1.35 > 1.05 <b>", {"message": "ESS 48 < 100"}]
json.dump(j, open(sys.argv[1], "w"))
EOF2
truncate -s 70M o3/big.csv # sparse: larger than the report reads, never read
python3 - o3/run.json <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
j["outputs"].append({"name": "big", "files": {"big.csv": "0"}})
json.dump(j, open(sys.argv[1], "w"))
EOF2
run report o3
expect_ok
grep -qF '<code>big.csv</code>: not read for the report (70 MB, more than the 64 MB it reads)' o3/report.html ||
	fail "a 70 MB output was not left out of the report"
for s in '<td class="l">coverage npe</td><td>0.031</td><td>0.05</td><td class="pass">pass</td><td class="l">direction = calibrated</td>' \
	'<td class="l">sbc &lt;exact&gt;</td><td>0.001</td><td>0.01</td><td class="fail">FAIL</td>' \
	'per_parameter = [0.5,0.001]' '<td class="l">c2st</td><td>0.52</td><td></td><td class=""></td>' \
	'R-hat 1.35 &gt; 1.05 &lt;b&gt;</li>' '<li class="warn">ESS 48 &lt; 100</li>'; do
	grep -qF -- "$s" o3/report.html || fail "report with diagnostics lacks '$s'"
done

# ---- the example of docs/report.md: a predictive over its observation ----
mkdir ex && awk '/^```lua$/ { f = 1; next } /^```$/ { f = 0 } f' "$SRCDIR/docs/report.md" > ex/r.lua
run ex/r.lua --quiet --out ex/o
expect_ok
expect_eq "$(grep -c '<circle' ex/o/report.html)" 10 "observed points in the docs example's predictive plot"
grep -qF 'points: the observation (output observation)' ex/o/report.html || fail "the docs example has no predictive plot"

# ---- bad use ----
run report
expect_fail 2
expect_err "report expects one output folder"
run report nowhere
expect_fail 1
expect_err "nowhere/run.json: no such file (not the output folder of an sbirun run?)"
cat > dup.lua <<'EOF2'
local sbi = require "sbi"
sbi.output { post = sbi.observation { 1 } }
sbi.output { post = sbi.observation { 2 } }
EOF2
run dup.lua --quiet
expect_fail 1
expect_err "dup.lua:3: sbi.output: the name 'post' is already used by another output (observation (dup.lua:2)); give each output its own name"
finish
