-- Test fixture: a module that must never be loaded by a denied call. The specs check
-- package.loaded["rpcfix.sentinel"] after calling it without svc.allow.
local M = {}

function M.f()
  return "sentinel ran"
end

return M
