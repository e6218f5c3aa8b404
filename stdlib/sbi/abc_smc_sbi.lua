-- sbi.abc.smc{ scheme = "sbi" }: SMC-ABC as the reference package `sbi`
-- runs it (its SMCABC, variant C of Beaumont et al. 2009), the algorithm
-- behind the sbibm paper's SMC-ABC figures ("SMC-ABC (ours)"), with the
-- final KDE of sbibm's "KDE" variant. abc.lua declares the options; this
-- module builds the graph.
--
-- The algorithm. Population 0: n0 = initial_round_factor x N prior
-- simulations (clipped to [N, max(simulations / 2, N)]); the N nearest
-- the observation are the particles (equal weights), epsilon_0 the
-- largest of their distances. Population t: epsilon_t from population
-- t-1's distances (distance_based_decay: the smallest of its distinct
-- distances whose cumulative sum reaches epsilon_decay of their total;
-- else epsilon_{t-1} x epsilon_decay); proposals are a particle of t-1
-- drawn by weight plus Gaussian noise of covariance kernel_scale x the
-- weighted covariance of t-1 (numpy's unbiased weighted covariance; the
-- identity when that is not positive definite), redrawn until inside the
-- prior's support; they are simulated one after the other and the first N
-- within epsilon_t (d <= epsilon_t) form population t, with weights
-- prior(theta) / sum_j w_j K(theta | theta_j), normalized, the particles
-- sorted by distance. When the budget ends inside a population, the
-- missing particles are the nearest of population t-1 (their weights
-- recomputed as new ones; use_last_pop_samples) or population t is
-- dropped. With ess_min, a population whose ESS / N falls below it is
-- resampled by weight to equal weights (its distances are kept, as sbi
-- does). Populations follow one another until the budget is spent.
--
-- In the graph. sbi simulates a population in batches of the number of
-- particles still missing, so it never simulates past the N-th
-- acceptance. Here the proposals of a population form one stream (the
-- proposal distribution is fixed within a population) and the population
-- is its first N acceptances in stream order, which is the same
-- population; the budget counts the stream up to the N-th acceptance, as
-- sbi's would. The stream is simulated in blocks, each block three cached
-- nodes (propose, simulate, step) sized from the acceptance rate seen so
-- far, so a population takes one to a few blocks; simulations of a block
-- past the N-th acceptance are run but not used (n_simulated counts
-- them). The chain of steps is declared when the recipe loads (3 x
-- populations steps); once the budget or a stopping rule ends the run,
-- later steps pass the state on unchanged.
local core = require "sbi.core"
local graph = require "sbi.graph"
local simulate = require "sbi.simulate"
local summary = require "sbi.summary"
local linalg = require "sbi.linalg"

local M = {}

-- The streams of this scheme's own draws (engine/include/sbi/rng.h):
-- perturbations of step s: (seed, 8, s); ESS resampling of population t:
-- (seed, 8, 2^40 + t).
local PURPOSE = 8
local RESAMPLE = 1 << 40

-- The history columns, as for the default scheme.
M.HISTORY = { "epsilon", "accepted", "simulations", "acceptance", "ess" }

-- Row indices of d (an n x 1 Mat) by increasing distance, ties by index.
local function order_by_distance(d)
  local idx = {}
  for i = 1, d:rows() do idx[i] = i end
  table.sort(idx, function(a, b)
    local da, db = d:get(a, 1), d:get(b, 1)
    if da ~= db then return da < db end
    return a < b
  end)
  return idx
end

local function column(values)
  local m = core.mat(#values, 1)
  for i, v in ipairs(values) do m:set(i, 1, v) end
  return m
end

-- The proposal kernel's Cholesky factor: kernel_scale x the weighted
-- covariance of the particles with numpy's aweights normalization
-- (sum w (x - m)(x - m)' / (v1 - v2 / v1), v1 = sum w, v2 = sum w^2),
-- or kernel_scale x the identity when that is singular (as sbi does).
local function kernel_factor(p, w, scale)
  local n, d = p:rows(), p:cols()
  local mean, row, v1, v2 = {}, {}, 0, 0
  for j = 1, d do mean[j] = 0 end
  for i = 1, n do
    local wi = w:get(i, 1)
    v1, v2 = v1 + wi, v2 + wi * wi
    p:row(i, row)
    for j = 1, d do mean[j] = mean[j] + wi * row[j] end
  end
  for j = 1, d do mean[j] = mean[j] / v1 end
  local c = {}
  for a = 1, d do c[a] = {} for b = 1, d do c[a][b] = 0 end end
  for i = 1, n do
    local wi = w:get(i, 1)
    p:row(i, row)
    for a = 1, d do
      for b = 1, a do c[a][b] = c[a][b] + wi * (row[a] - mean[a]) * (row[b] - mean[b]) end
    end
  end
  local norm = v1 - v2 / v1
  for a = 1, d do for b = 1, a do c[a][b] = scale * c[a][b] / norm; c[b][a] = c[a][b] end end
  local l = linalg.cholesky(c, d)
  if l then return l, false end
  l = {}
  for a = 1, d do
    l[a] = {}
    for b = 1, a do l[a][b] = a == b and math.sqrt(scale) or 0 end
  end
  return l, true
end

local function factor_mat(l, d)
  local rows = {}
  for a = 1, d do
    rows[a] = {}
    for b = 1, d do rows[a][b] = b <= a and l[a][b] or 0 end
  end
  return core.mat(rows)
end

local function factor_table(m)
  local d, l = m:rows(), {}
  for a = 1, d do
    l[a] = {}
    for b = 1, a do l[a][b] = m:get(a, b) end
  end
  return l
end

local function cumulative(w)
  local cum, s = {}, 0
  for i = 1, w:rows() do s = s + w:get(i, 1); cum[i] = s end
  for i = 1, #cum do cum[i] = cum[i] / s end
  cum[#cum] = 1
  return cum
end

-- The row of cum's categorical draw for u in [0, 1).
local function pick(cum, u)
  local lo, hi = 1, #cum
  while lo < hi do
    local mid = (lo + hi) // 2
    if cum[mid] <= u then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- m proposals from the particles p and kernel factor l: the particle
-- draw(u) picks for a uniform u, plus l z, both redrawn until inside the
-- prior's support. Both SMC-ABC schemes perturb this way (each with its
-- own categorical draw).
function M.perturb(p, draw, l, m, prior, rng, label)
  local d = p:cols()
  local out, row, z = core.mat(m, d), {}, {}
  for i = 1, m do
    local ok = false
    for _ = 1, 1000 do
      p:row(draw(rng:uniform()), row)
      for a = 1, d do z[a] = rng:normal(0, 1) end
      for a = 1, d do
        local v = 0
        for b = 1, a do v = v + l[a][b] * z[b] end
        row[a] = row[a] + v
      end
      ok = prior:in_support(row)
      if ok then break end
    end
    if not ok then
      error(label .. ": 1000 perturbed particles in a row fell outside the prior's support", 0)
    end
    out:set_row(i, row)
  end
  return out
end

-- m proposals from population (particles p, weights w) and kernel factor l.
local function propose(p, w, l, m, prior, rng, label)
  local cum = cumulative(w)
  return M.perturb(p, function(u) return pick(cum, u) end, l, m, prior, rng, label)
end

-- The normalized importance weights of thetas, proposed from population
-- (p, w) with kernel factor l: prior(theta) / sum_j w_j K(theta | theta_j).
-- The kernel's constant is left out: it is the same for every particle of
-- a population and cancels. The sums are in C (sbi_abc_smc_kernel_sums).
local function new_weights(thetas, p, w, l, prior, label)
  local n, d = thetas:rows(), thetas:cols()
  local den = core.abc_smc_kernel_sums(thetas, p, w, factor_mat(l, d))
  local lw, top, th = {}, -math.huge, {}
  for i = 1, n do
    local di = den:get(i, 1)
    lw[i] = di > 0 and prior:log_density(thetas:row(i, th)) - math.log(di) or -math.huge
    if lw[i] > top then top = lw[i] end
  end
  if not (top > -math.huge and top < math.huge) then error(label .. ": the importance weights are degenerate", 0) end
  local total = 0
  for i = 1, n do lw[i] = math.exp(lw[i] - top); total = total + lw[i] end
  for i = 1, n do lw[i] = lw[i] / total end
  return column(lw)
end

-- epsilon_t from population t-1's distances (sorted): the smallest
-- distinct distance whose cumulative sum reaches q of the total (sbi's
-- distance-based decay), else the largest.
local function next_epsilon(d, q)
  local u, last = {}, nil
  for i = 1, d:rows() do
    local v = d:get(i, 1)
    if v ~= last then u[#u + 1] = v; last = v end
  end
  table.sort(u)
  local total = 0
  for _, v in ipairs(u) do total = total + v end
  local s = 0
  for _, v in ipairs(u) do
    s = s + v
    if s / total >= q then return v end
  end
  return u[#u]
end

local function ess(w)
  local s = 0
  for i = 1, w:rows() do s = s + w:get(i, 1) ^ 2 end
  return 1 / s
end

local function history_with(prev, row)
  if prev == nil then return core.mat { row } end
  return core.vstack { prev, core.mat { row } }
end

-- ---- the state passed from step to step (a flat artifact) ----
-- pop_*: the last complete population (particles, weights, distances,
-- x, epsilon, index t, simulations it used); cur_*: the population being
-- filled (index, epsilon, kernel factor, accepted theta/x/distances,
-- simulations used so far); used: simulations counted against the budget;
-- simulated: simulations run; history; stop_reason ("" while running).

local function copy_state(s)
  local out = {}
  for k, v in pairs(s) do out[k] = v end
  return out
end

-- The stopping rule after population t completes, or "".
local function stop_after(k, st)
  if st.used >= k.simulations then return "simulations" end
  if st.pop_t >= k.populations - 1 then return "populations" end
  if k.epsilon and st.pop_epsilon <= k.epsilon then return "epsilon" end
  if k.min_acceptance and k.particles / st.pop_used < k.min_acceptance then return "min_acceptance" end
  return ""
end

local function report(label, st, new)
  core.stderr(string.format("%s: population %d: epsilon = %.4g, %d particles (%d new), %d simulations (%d of "
                            .. "the budget used, %d run), ESS %.0f\n", label, math.tointeger(st.pop_t),
                            st.pop_epsilon, st.pop_particles:rows(), new, math.tointeger(st.pop_used),
                            math.tointeger(st.used), math.tointeger(st.simulated), ess(st.pop_weights)))
end

-- Population 0 from the prior simulations s.
local function initial(node, k, s, o, nsim)
  if s.x:rows() > 0 and o.x:cols() ~= s.x:cols() then
    error(string.format("%s: the observation has %d values but the simulator produces %d", node.label,
                        o.x:cols(), s.x:cols()), 0)
  end
  local one = {}
  for j = 1, o.x:cols() do one[j] = 1 end
  local scales = core.mat { k.scale == "none" and one or core.scales(s.x, k.scale) }
  local d = core.abc_distances(s.x, o.x, scales:row(1))
  local idx = order_by_distance(d)
  local keep = {}
  for i = 1, math.min(k.particles, #idx) do
    if d:get(idx[i], 1) < math.huge then keep[#keep + 1] = idx[i] end
  end
  if #keep < k.particles then
    error(string.format("%s: only %d of the %d initial simulations have a finite distance; %d particles are needed",
                        node.label, #keep, nsim, k.particles), 0)
  end
  local w = {}
  for i = 1, #keep do w[i] = 1 / #keep end
  local st = {
    pop_particles = s.theta:select_rows(keep), pop_x = s.x:select_rows(keep),
    pop_distances = d:select_rows(keep), pop_weights = column(w), pop_t = 0,
    pop_epsilon = d:get(keep[#keep], 1), pop_used = nsim,
    used = nsim, simulated = nsim, scales = scales, names = s.names, steps = 0,
  }
  st.history = history_with(nil, { st.pop_epsilon, #keep, nsim, #keep / nsim, #keep })
  st.stop_reason = stop_after(k, st)
  report(node.label, st, #keep)
  return st
end

-- The proposals of step `step`: a block continuing the current population
-- or starting population pop_t + 1. Returns the artifact of the propose
-- node: theta, and the population's epsilon and kernel factor.
local function propose_block(node, k, st, p, step)
  if st.stop_reason ~= "" then return { theta = core.mat(0, p:dim()) } end
  local d = p:dim()
  local t, eps, l, acc, m
  if st.cur_t then
    t, eps, l = st.cur_t, st.cur_epsilon, factor_table(st.cur_factor)
    acc = st.cur_theta and st.cur_theta:rows() or 0
    -- The rate seen so far, with a margin; none accepted yet: four times
    -- the simulations so far.
    m = acc > 0 and math.ceil(1.2 * (k.particles - acc) * st.cur_used / acc) or 4 * st.cur_used
  else
    t = st.pop_t + 1
    eps = k.distance_based_decay and next_epsilon(st.pop_distances, k.epsilon_decay)
      or st.pop_epsilon * k.epsilon_decay
    local singular
    l, singular = kernel_factor(st.pop_particles, st.pop_weights, k.kernel_scale)
    if singular then
      core.stderr(string.format("%s: the particles' covariance is singular; the kernel uses the identity\n",
                                node.label))
    end
    acc = 0
    m = st.pop_used -- the previous population's rate
  end
  m = math.min(math.max(k.particles - acc, m), k.simulations - st.used)
  local theta = propose(st.pop_particles, st.pop_weights, l, m, p, core.rng(k.seed, PURPOSE, step), node.label)
  return { theta = theta, epsilon = eps, population = t, factor = factor_mat(l, d) }
end

-- Maps the simulations kept (s.theta, in order) to their rows among the
-- proposals (failed ones were dropped): a list of proposal indices.
local function kept_rows(proposals, s)
  local at, rows, a, b = 1, {}, {}, {}
  for i = 1, s.theta:rows() do
    s.theta:row(i, a)
    while true do
      if at > proposals:rows() then error("the simulations do not match their proposals", 0) end
      proposals:row(at, b)
      local same = true
      for j = 1, #a do if a[j] ~= b[j] then same = false; break end end
      at = at + 1
      if same then rows[i] = at - 1; break end
    end
  end
  return rows
end

-- Completes population t: weights, sort by distance, ESS resampling.
local function complete(node, k, st, prop, p, theta, x, d, nnew)
  local l = factor_table(prop.factor)
  local w = new_weights(theta, st.pop_particles, st.pop_weights, l, p, node.label)
  local idx = order_by_distance(d)
  theta, x, d, w = theta:select_rows(idx), x:select_rows(idx), d:select_rows(idx), w:select_rows(idx)
  local out = copy_state(st)
  local e = ess(w)
  if k.ess_min and e / theta:rows() < k.ess_min then
    -- Resampled by weight to equal weights; the distances and data stay
    -- (as sbi does: the next epsilon comes from them).
    local n, cum, rng = theta:rows(), cumulative(w), core.rng(k.seed, PURPOSE, RESAMPLE + prop.population)
    local pick_rows, eq = {}, {}
    for i = 1, n do pick_rows[i] = pick(cum, rng:uniform()); eq[i] = 1 / n end
    theta, w = theta:select_rows(pick_rows), column(eq)
    core.stderr(string.format("%s: ESS %.1f of %d below ess_min: resampled\n", node.label, e, n))
  end
  out.pop_particles, out.pop_x, out.pop_distances, out.pop_weights = theta, x, d, w
  out.pop_t, out.pop_epsilon, out.pop_used = prop.population, prop.epsilon, st.cur_used
  out.cur_t, out.cur_epsilon, out.cur_factor, out.cur_theta, out.cur_x, out.cur_d, out.cur_used =
    nil, nil, nil, nil, nil, nil, nil
  out.history = history_with(st.history, { prop.epsilon, nnew, out.pop_used, nnew / out.pop_used, e })
  out.stop_reason = stop_after(k, out)
  report(node.label, out, nnew)
  return out
end

-- One step: the block's simulations s (proposals prop) added to the
-- current population.
local function step_run(node, k, st, prop, s, o, p)
  if st.stop_reason ~= "" then return st end
  local m = prop.theta:rows()
  if s.x:rows() > 0 and o.x:cols() ~= s.x:cols() then
    error(string.format("%s: the observation has %d values but the simulator produces %d", node.label,
                        o.x:cols(), s.x:cols()), 0)
  end
  local st2 = copy_state(st)
  st2.steps = st.steps + 1
  local acc_theta, acc_x, acc_d = st.cur_theta, st.cur_x, st.cur_d
  local have = acc_theta and acc_theta:rows() or 0
  local d = core.abc_distances(s.x, o.x, st.scales:row(1))
  local rows = kept_rows(prop.theta, s)
  -- Walk the block in stream order until the N-th acceptance.
  local take, used = {}, m
  for i = 1, s.theta:rows() do
    if d:get(i, 1) <= prop.epsilon then
      take[#take + 1] = i
      if have + #take == k.particles then used = rows[i]; break end
    end
  end
  st2.cur_t, st2.cur_epsilon, st2.cur_factor = prop.population, prop.epsilon, prop.factor
  st2.cur_used = (st.cur_used or 0) + used
  st2.used, st2.simulated = st.used + used, st.simulated + m
  if #take > 0 then
    local parts_t, parts_x, parts_d = { s.theta:select_rows(take) }, { s.x:select_rows(take) }, { d:select_rows(take) }
    if acc_theta then
      table.insert(parts_t, 1, acc_theta); table.insert(parts_x, 1, acc_x); table.insert(parts_d, 1, acc_d)
    end
    acc_theta, acc_x, acc_d = core.vstack(parts_t), core.vstack(parts_x), core.vstack(parts_d)
  end
  st2.cur_theta, st2.cur_x, st2.cur_d = acc_theta, acc_x, acc_d
  local n = acc_theta and acc_theta:rows() or 0
  if n == k.particles then return complete(node, k, st2, prop, p, acc_theta, acc_x, acc_d, n) end
  if st2.used < k.simulations then return st2 end
  -- The budget ended inside the population.
  if not k.use_last_pop_samples then
    core.stderr(string.format("%s: the budget ended with %d of %d particles of population %d: the previous "
                              .. "population is the result\n", node.label, n, k.particles, prop.population))
    st2.cur_t, st2.cur_epsilon, st2.cur_factor, st2.cur_theta, st2.cur_x, st2.cur_d, st2.cur_used =
      nil, nil, nil, nil, nil, nil, nil
    st2.stop_reason = "simulations"
    return st2
  end
  local fill = {}
  for i = 1, k.particles - n do fill[i] = i end
  local parts_t = { st.pop_particles:select_rows(fill) }
  local parts_x = { st.pop_x:select_rows(fill) }
  local parts_d = { st.pop_distances:select_rows(fill) }
  if n > 0 then
    table.insert(parts_t, 1, acc_theta); table.insert(parts_x, 1, acc_x); table.insert(parts_d, 1, acc_d)
  end
  core.stderr(string.format("%s: the budget ended with %d of %d particles of population %d: filled up with the "
                            .. "nearest of population %d\n", node.label, n, k.particles, prop.population,
                            prop.population - 1))
  return complete(node, k, st2, prop, p, core.vstack(parts_t), core.vstack(parts_x), core.vstack(parts_d), n)
end

-- ---- the final draws: sbibm's KDE ----

-- numpy's linspace(a, b, 10).
local function linspace(a, b, n)
  local v, step = {}, (b - a) / (n - 1)
  for i = 1, n do v[i] = a + (i - 1) * step end
  v[n] = b
  return v
end

-- Squared distances between the rows of p (a table of tables).
local function pair_sq(p)
  local n, d = p:rows(), p:cols()
  local rows, sq = {}, {}
  for i = 1, n do rows[i] = p:row(i) end
  for i = 1, n do
    sq[i] = {}
    local a = rows[i]
    for j = 1, n do
      local b, s = rows[j], 0
      for c = 1, d do local t = a[c] - b[c]; s = s + t * t end
      sq[i][j] = s
    end
  end
  return sq
end

-- The K-fold cross-validated score of an isotropic Gaussian KDE of
-- bandwidth h, as scikit-learn's GridSearchCV computes it: folds of
-- consecutive rows (KFold without shuffling), a fold's score the summed
-- log density of its rows under the KDE of the others, the mean over
-- folds. -inf for h <= 0 (scikit-learn cannot fit those).
local function cv_score(sq, n, d, h, folds)
  if not (h > 0) then return -math.huge end
  local total, start = 0, 1
  local log_norm = -0.5 * d * math.log(2 * math.pi * h * h)
  for f = 1, folds do
    local size = n // folds + (f <= n % folds and 1 or 0)
    local stop = start + size - 1
    local ntrain = n - size
    local score = 0
    for i = start, stop do
      local row, top = sq[i], -math.huge
      local lv = {}
      for j = 1, n do
        if j < start or j > stop then
          local v = -row[j] / (2 * h * h)
          lv[#lv + 1] = v
          if v > top then top = v end
        end
      end
      local s = 0
      for _, v in ipairs(lv) do s = s + math.exp(v - top) end
      score = score + top + math.log(s) - math.log(ntrain) + log_norm
    end
    total = total + score
    start = stop + 1
  end
  return total / folds
end

-- sbibm's cross-validated bandwidth (sbibm/utils/kde.py, get_kde with
-- bandwidth = "cv"): a grid of 10 bandwidths from 0.1 to 0.5 x the
-- standard deviation of all the particles' entries, 20-fold CV, and up to
-- 4 refinements between the best and the second best bandwidth, stopping
-- when the best score moves by at most 0.001. Its re-centring when the
-- smallest bandwidth wins (a grid around 0, whose non-positive values
-- cannot win) is kept.
local function sbibm_cv_bandwidth(p)
  local n, d = p:rows(), p:cols()
  local mean, m2 = 0, 0
  for i = 1, n do for j = 1, d do mean = mean + p:get(i, j) end end
  mean = mean / (n * d)
  for i = 1, n do for j = 1, d do m2 = m2 + (p:get(i, j) - mean) ^ 2 end end
  local sd = math.sqrt(m2 / (n * d))
  if not (sd > 0) or n < 2 then return 0 end
  local folds, steps = math.min(20, n), 10
  local sq = pair_sq(p)
  local lower, upper, current = 0.1 * sd, 0.5 * sd, -10000000
  local grid, best
  for _ = 1, 5 do
    grid = linspace(lower, upper, steps)
    local scores = {}
    best = 1
    for i = 1, steps do
      scores[i] = cv_score(sq, n, d, grid[i], folds)
      if scores[i] > scores[best] then best = i end
    end
    if math.abs(current - scores[best]) > 0.001 then current = scores[best] else break end
    local second
    for i = 1, steps do
      if i ~= best and scores[i] < scores[best] and (second == nil or scores[i] > scores[second]) then second = i end
    end
    if second == nil then break end
    if best == 1 then
      local diff = (lower - upper) / steps
      lower, upper = 0 - diff, 0 + diff
    else
      upper, lower = grid[second], grid[best]
      if upper < lower then upper, lower = lower, upper end
    end
  end
  return grid[best]
end

-- The KDE bandwidth h (absolute, the same in every direction): "cv"
-- (sbibm's), "scott" (n^(-1/(d+4)), sbibm's rule, not scaled by the
-- spread) or a number.
local function bandwidth(p, how)
  if type(how) == "number" then return how end
  if how == "scott" then return p:rows() ^ (-1 / (p:cols() + 4)) end
  return sbibm_cv_bandwidth(p)
end

-- The final draws from the last complete population: with kde, a particle
-- (drawn by weight when weighted, else uniformly, as sbibm) plus N(0, h^2 I),
-- redrawn until inside the prior's support (after 1000 tries, the
-- particle); without, the particles drawn by weight (weighted) or uniformly.
local function final_draws(st, key, p, seed)
  local pts, n, dim = st.pop_particles, st.pop_particles:rows(), st.pop_particles:cols()
  local w = st.pop_weights
  if not key.weighted then
    local eq = {}
    for i = 1, n do eq[i] = 1 / n end
    w = column(eq)
  end
  local cum, rng = cumulative(w), core.rng(seed, 3, 0)
  local h = key.kde and bandwidth(pts, key.bandwidth) or nil
  local out, row = core.mat(key.num_samples, dim), {}
  for i = 1, key.num_samples do
    local ok = false
    for _ = 1, key.kde and 1000 or 1 do
      pts:row(pick(cum, rng:uniform()), row)
      if h then for j = 1, dim do row[j] = row[j] + h * rng:normal(0, 1) end end
      ok = not h or p:in_support(row)
      if ok then break end
    end
    if not ok then pts:row(pick(cum, rng:uniform()), row) end
    out:set_row(i, row)
  end
  return out, h
end

-- Declares the graph. k: the options in every step's key; final: the
-- final node's extra options (num_samples, kde, bandwidth, weighted).
function M.declare(opts, k, final, where)
  local p = opts.prior
  local _, obs = summary.inputs("sbi.abc.smc", opts.summary, nil, opts.observation, where, 3)
  local function sim_opts(n, thetas, round)
    return { prior = p, simulator = opts.simulator, seed = k.seed, on_failure = opts.on_failure, n = n,
             thetas = thetas, round = round }
  end
  local at0 = string.format("%s, population 0", where)
  local sims0 = simulate.declare(sim_opts(k.initial), 3, at0)
  graph.pair(sims0, opts.observation)
  local state = graph.node("abc.smc.population", at0, { population = 0, keys = k, prior = p },
    { summary.inputs("sbi.abc.smc", opts.summary, sims0, nil, at0, 3), obs }, function(node, inp)
      local s = inp[1]
      return initial(node, k, s, inp[2], s.x:rows() + s.n_error + s.n_nan + s.n_length)
    end)
  for step = 1, 3 * k.populations do
    local at = string.format("%s, step %d", where, step)
    local key = { step = step, keys = k, prior = p }
    local prop = graph.node("abc.smc.propose", at, key, { state }, function(node, inp)
      return propose_block(node, k, inp[1], p, step)
    end)
    local sims = simulate.declare(sim_opts(nil, prop, step), 3, at)
    local run = sims.run
    sims.run = function(node, inp)
      if inp[1].theta:rows() == 0 then -- a stopped run simulates nothing
        local none = core.mat(0, p:dim())
        return { theta = none, x = none, names = p.names, n_kept = 0, n_error = 0, n_nan = 0, n_length = 0 }
      end
      return run(node, inp)
    end
    graph.pair(sims, opts.observation)
    local inputs = { state, prop, summary.inputs("sbi.abc.smc", opts.summary, sims, nil, at, 3), obs }
    state = graph.node("abc.smc.step", at, key, inputs, function(node, inp)
      return step_run(node, k, inp[1], inp[2], inp[3], inp[4], p)
    end)
  end
  return graph.node("abc.smc", where, final, { state }, function(node, inp)
    local st = inp[1]
    local reason = st.stop_reason ~= "" and st.stop_reason or "steps"
    if reason == "steps" then
      core.stderr(string.format("%s: the %d declared steps ended before the budget; raise 'populations'\n",
                                node.label, 3 * k.populations))
    end
    core.stderr(string.format("%s: %d populations, stopped by '%s'\n", node.label, st.history:rows(), reason))
    local samples, h = final_draws(st, final, p, k.seed)
    if h then core.stderr(string.format("%s: KDE bandwidth %.4g (%s)\n", node.label, h, tostring(final.bandwidth))) end
    local h_row = nil
    if h then
      h_row = {}
      for j = 1, p:dim() do h_row[j] = h end
    end
    return { samples = samples, names = st.names, particles = st.pop_particles, weights = st.pop_weights,
             epsilon = st.pop_epsilon, history = st.history, history_columns = M.HISTORY,
             n_accepted = st.pop_particles:rows(), n_simulations = st.used, n_simulated = st.simulated,
             populations = st.history:rows(), stop_reason = reason,
             kde_bandwidths = h_row and core.mat { h_row } or nil, method = "SMC-ABC (sbi scheme)" }
  end)
end

return M
