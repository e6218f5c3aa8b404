-- The two_moons simulator (sbibm), shared by the overhead benchmark's recipe
-- and its bare loop so both call exactly the same function.
local sqrt2 = math.sqrt(2)
local pi = math.pi
return function(theta, rng)
  local a = rng:uniform(-pi / 2, pi / 2)
  local r = rng:normal(0.1, 0.01)
  local p1, p2 = r * math.cos(a) + 0.25, r * math.sin(a)
  local z0, z1 = (theta[1] + theta[2]) / sqrt2, (theta[2] - theta[1]) / sqrt2
  return { p1 - math.abs(z0), p2 + z1 }
end
