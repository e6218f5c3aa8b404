-- Small dense linear algebra on Lua tables, for the few d x d matrices
-- (d = the number of parameters) that the stdlib factors when it builds
-- proposal kernels and Gaussian likelihoods. Anything with a dimension
-- that grows with the data goes through `core` (OpenBLAS) instead.
local M = {}

-- The lower Cholesky factor of the symmetric d x d table c (c[a][b] read for
-- b <= a only), as a table of rows: l[a][b] for b <= a, c = l l'.
-- A pivot that is not positive and finite makes it return nil, unless floor
-- is given: then the pivot is raised to floor, so a direction without
-- spread keeps a tiny width instead of stopping the caller.
function M.cholesky(c, d, floor)
  local l = {}
  for a = 1, d do
    l[a] = {}
    for b = 1, a do
      local v = c[a][b]
      for k = 1, b - 1 do v = v - l[a][k] * l[b][k] end
      if a == b then
        if floor then
          v = math.max(v, floor)
        elseif not (v > 0 and v < math.huge) then
          return nil
        end
        l[a][a] = math.sqrt(v)
      else
        l[a][b] = v / l[b][b]
      end
    end
  end
  return l
end

return M
