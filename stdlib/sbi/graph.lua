-- The declared graph: every sbi declaration adds a node to the engine's
-- graph, which is the one list of steps (lang/l_graph.c); the node table
-- made here keeps the Lua parts (options, run function). Nothing runs at
-- declaration; the engine keys and runs the nodes after the recipe has
-- loaded (lang/l_run.c).
local core = require "sbi.core"

-- What only the stdlib may call, from the loader (lang/l_state.c): a
-- recipe never sees it.
local internal = select(3, ...)
core.register_library(internal, "sbi.graph.internal")

local M = {}

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
  n._id, n.label = internal.node(n) -- the label as printed: control characters escaped
  return n
end

-- Declares that the run writes node's artifact as name.
function M.output(name, node)
  internal.output(name, node)
end

-- The number of outputs declared.
function M.noutputs()
  return internal.noutputs()
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
