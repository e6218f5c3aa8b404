-- The declared graph: every sbi declaration appends a node here. Nothing
-- runs at declaration; the engine keys and runs the nodes after the recipe
-- has loaded (lang/l_session.c).
local core = require "sbi.core"

local M = { nodes = {}, outputs = {} }

local Node = { __name = "sbi.Node" }
Node.__index = Node
Node.__tostring = function(n) return "sbi node " .. n.label end
M.Node = Node

-- "file:line" of the recipe line that called the declaring function;
-- level counts from the caller of where().
function M.where(level)
  return core.where(level + 1)
end

-- Declares a node.
--   kind    "simulate", "abc.rejection", ...
--   where   recipe location for messages
--   opts    everything that determines the artifact (hashed into the key)
--   inputs  list of nodes whose artifacts run() receives, in order
--   run     function(node, input_artifacts) -> artifact table
function M.node(kind, where, opts, inputs, run)
  local n = setmetatable({ kind = kind, label = kind .. " (" .. where .. ")", opts = opts,
                           inputs = inputs or {}, run = run }, Node)
  M.nodes[#M.nodes + 1] = n
  n._id = #M.nodes
  return n
end

-- Records that a method compares the simulations of node sims with the
-- observation node obs: the simulate step then checks its first
-- simulation's length against obs.dim (when known before running) rather
-- than failing after all the simulations.
function M.pair(sims, obs)
  sims.observations = sims.observations or {}
  sims.observations[#sims.observations + 1] = obs
end

function M.is_node(v, kind)
  return getmetatable(v) == Node and (kind == nil or v.kind == kind)
end

return M
