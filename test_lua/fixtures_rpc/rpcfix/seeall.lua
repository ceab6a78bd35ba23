-- Test fixture: a module made the package.seeall way (module "rpcfix.seeall"): its metatable's
-- __index is the global table, so every global is visible through it.
local M = setmetatable({}, { __index = _G })

function M.own()
  return "own"
end

return M
