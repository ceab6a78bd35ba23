-- Test fixture: the served side of the legacy example
--   run_mfa(2, "event.dispatcher", "dispatch", {"Remote.ClientDisconnected", 123})
-- It records every call (with the exact argument count) so specs can check what ran.
local M = { calls = {} }

function M.dispatch(...)
  M.calls[#M.calls + 1] = { n = select("#", ...), ... }
  return true
end

-- Not served (never allowed by the specs); called directly by the specs.
function M.reset()
  M.calls = {}
end

return M
