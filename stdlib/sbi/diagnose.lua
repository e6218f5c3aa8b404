-- sbi.diagnose: diagnostics of posteriors. (Minimal: only the classifier
-- two-sample test, whose step lives in sbi.c2st.)
local M = {}

-- The classifier two-sample test lives in its own module (sbi.c2st).
M.c2st = function(opts) return require("sbi.c2st").node(opts) end

return M
