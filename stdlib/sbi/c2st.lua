-- sbi.diagnose.c2st: the classifier two-sample test between two sets of
-- posterior samples (docs/c2st.md). Each set is a step with samples (a
-- posterior: sbi.npe, sbi.abc.rejection, ...) or a file of samples (CSV
-- with a header line, or .npy), such as a reference posterior. The test
-- itself is core.c2st (engine/nn/c2st.c): sbibm's C2ST, scikit-learn's
-- MLP classifier with 5-fold cross-validation, as tools/c2st.py runs it.
local core = require "sbi.core"
local check = require "sbi.check"
local graph = require "sbi.graph"
local observation = require "sbi.observation"
-- What only the stdlib may call, from the loader (lang/l_state.c).
local internal = select(3, ...)

local M = {}

M.DEFAULTS = { samples = 10000, seed = 1, folds = 5 }

-- A file of samples as a step of its own: its content hash is its key, the
-- file goes into bundles like an observation file.
local function file_node(path, what, where)
  local found, refused = observation.resolve(path, observation.recipe_dir)
  if not found then
    error(string.format("sbi.diagnose.c2st: option '%s': cannot read samples file '%s'%s", what, path,
                        refused and (": " .. refused) or " (not found)"), 4)
  end
  local hash, msg = core.file_hash(found)
  if not hash then error("sbi.diagnose.c2st: option '" .. what .. "': " .. msg, 4) end
  internal.data_file(path, found) -- provenance, for bundles
  return graph.node("c2st.samples", where, { file_hash = hash, npy = found:sub(-4) == ".npy" }, {}, function(node)
    local m, names = core.read_matrix(found)
    if not m then error(node.label .. ": " .. names, 0) end
    return { samples = m, names = names }
  end)
end

-- (No tail call to file_node: its errors count stack levels up to the
-- recipe.)
local function as_input(v, what, where)
  if type(v) == "string" then
    local node = file_node(v, what, where)
    return node
  end
  return v
end

-- n rows of m spread evenly over it (rows 1 + floor((i - 1) N / n)), in
-- their order; all of them when n = N. Not the first n: a rejection-ABC
-- posterior lists its samples by distance, so its first rows are its
-- closest ones.
local function spread_rows(m, n)
  local N = m:rows()
  if N == n then return m end
  local idx = {}
  for i = 1, n do idx[i] = 1 + (i - 1) * N // n end
  return m:select_rows(idx)
end

local function samples_of(art, label, what)
  local m = art.samples
  if m == nil then
    error(string.format("%s: input '%s' has no samples (expected a posterior step or a file of samples)", label,
                        what), 0)
  end
  return m
end

-- sbi.diagnose.c2st{ a = step | "file", b = step | "file", samples = 10000, seed = 1, folds = 5 }:
-- a step whose artifact holds the accuracy (`value`, `accuracy`) and a
-- table of the folds (`table`, `columns`: fold, accuracy, epochs,
-- test_rows). It compares n rows of each set, spread evenly over it, n =
-- min(samples, rows of a, rows of b). a is the reference: its column means and
-- standard deviations z-score both sets.
function M.node(opts)
  -- sbi.diagnose.c2st tail-calls this function: the recipe is level 2.
  local where = graph.where(2)
  check.options("sbi.diagnose.c2st", opts, {
    a = { check.any(check.string(), check.is(graph.Node, "a step")), required = true },
    b = { check.any(check.string(), check.is(graph.Node, "a step")), required = true },
    samples = { check.integer(2, 1 << 30) },
    seed = { check.integer(0, 4294967295) },
    folds = { check.integer(2, 100) },
  })
  local a, b = as_input(opts.a, "a", where), as_input(opts.b, "b", where)
  local key = { samples = math.tointeger(opts.samples or M.DEFAULTS.samples),
                seed = math.tointeger(opts.seed or M.DEFAULTS.seed),
                folds = math.tointeger(opts.folds or M.DEFAULTS.folds) }
  return graph.node("diagnose.c2st", where, key, { a, b }, function(node, inp)
    -- As many rows from each (sbibm compares 10,000 with 10,000): with
    -- unequal sets, always guessing the larger one would beat 0.5.
    local sa, sb = samples_of(inp[1], node.label, "a"), samples_of(inp[2], node.label, "b")
    local n = math.min(key.samples, sa:rows(), sb:rows())
    local ma, mb = spread_rows(sa, n), spread_rows(sb, n)
    if ma:cols() ~= mb:cols() then
      error(string.format("%s: a has %d parameters but b has %d", node.label, ma:cols(), mb:cols()), 0)
    end
    if ma:rows() + mb:rows() < key.folds then
      error(string.format("%s: %d samples in all, fewer than the %d folds", node.label, ma:rows() + mb:rows(),
                          key.folds), 0)
    end
    local t0 = core.clock()
    local ok, acc, folds = pcall(core.c2st, ma, mb, { seed = key.seed, folds = key.folds })
    if not ok then error(node.label .. ": " .. tostring(acc), 0) end
    local tab = core.mat(#folds, 4)
    for i, f in ipairs(folds) do tab:set_row(i, { i, f.accuracy, f.epochs, f.ntest }) end
    local summary = string.format("C2ST accuracy %.4f (%d folds, %d against %d samples; 0.5 = indistinguishable)",
                                  acc, key.folds, ma:rows(), mb:rows())
    core.stderr(string.format("%s: %s in %.2f s\n", node.label, summary, core.clock() - t0))
    return { diagnostic = "c2st", value = acc, accuracy = acc, table = tab,
             columns = { "fold", "accuracy", "epochs", "test_rows" }, samples_a = ma:rows(),
             samples_b = mb:rows(), folds = key.folds, summary = summary }
  end)
end

return M
