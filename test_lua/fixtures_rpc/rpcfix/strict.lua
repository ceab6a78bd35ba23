-- Test fixture: a "strict" module (module "rpcfix.strict"), whose __index raises for fields it
-- lacks, as many game servers make their modules to catch typos; one function comes through
-- __index without raising.
local M = {}

function M.present()
  return "present"
end

local function inherited()
  return "inherited"
end

return setmetatable(M, {
  __index = function(_, key)
    if key == "inherited" then return inherited end
    error("undefined field " .. tostring(key), 2)
  end,
})
