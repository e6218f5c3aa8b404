# Reads shared/benchmarks/PUBLISHED.md; prints "<figure for method> <best of any algorithm>"
# for task t, method m (npe, nle, nre, rej-abc, ...) and budget b (1000, 10000, 100000),
# from the first table under "### t" (the paper's); for gaussian_mixture, from the rerun
# after sbibm's v1.1.0 simulator fix (PUBLISHED.md: the right comparison for the corrected
# simulator, which is the one recipes/sbibm implements).
BEGIN { col = b == 1000 ? 3 : b == 10000 ? 4 : 5; best = 2; want = toupper(m) }
/^### / { insec = ($2 == t) && !done && ((t != "gaussian_mixture") == ($4 != "rerun")); if (!insec && seen) done = 1; next }
insec && /^\| [A-Z]/ && $0 !~ /algorithm/ {
	seen = 1
	split($0, f, "|")
	alg = f[2]; gsub(/ /, "", alg)
	v = f[col]; sub(/^ */, "", v); split(v, parts, " ")
	if (parts[1] + 0 < best) best = parts[1] + 0
	if (alg == want) mine = parts[1]
}
END { printf "%s %s\n", (mine == "" ? "-" : mine), (best == 2 ? "-" : sprintf("%.3f", best)) }
