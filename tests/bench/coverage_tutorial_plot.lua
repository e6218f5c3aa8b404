-- The figure of tests/bench/coverage_tutorial.sh: the expected-coverage
-- curves of NPE, NLE and NRE (each a coverage.csv with columns
-- level,coverage,lower,upper) in one frame with the diagonal and each
-- curve's binomial band.
--   sbirun lua coverage_tutorial_plot.lua OUT.svg NPE.csv NLE.csv NRE.csv
local core = require "sbi.core"
local out = assert(arg[1], "usage: OUT.svg NPE.csv NLE.csv NRE.csv")
local names = { "NPE", "NLE", "NRE" }
local series = {}
for i, name in ipairs(names) do
  local path = assert(arg[i + 1], "missing the coverage.csv of " .. name)
  local m, header = core.read_matrix(path)
  if not m then error(header) end
  local col = {}
  for j, h in ipairs(header) do col[h] = j end
  for _, h in ipairs { "level", "coverage", "lower", "upper" } do
    assert(col[h], path .. ": no column '" .. h .. "'")
  end
  local level, cov, lo, hi = {}, {}, {}, {}
  for r = 1, m:rows() do
    level[r], cov[r] = m:get(r, col.level), m:get(r, col.coverage)
    lo[r], hi[r] = m:get(r, col.lower), m:get(r, col.upper)
  end
  series[i] = { x = level, y = cov, lo = lo, hi = hi, name = name }
end
local svg = core.plot_curve { series = series, diagonal = true, xmin = 0, xmax = 1, ymin = 0, ymax = 1,
  title = "Expected coverage, tutorial model, 10,000 simulations", xlabel = "credibility level",
  ylabel = "empirical coverage" }
local f = assert(io.open(out, "w"))
f:write(svg)
f:close()
