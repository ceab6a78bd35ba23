-- Test fixture: served functions for the rpc specs (module "rpcfix.echo").
local M = { VERSION = "1" }

local unpack = table.unpack or unpack

-- Returns every argument, nils and trailing nils included.
function M.echo(...)
  return ...
end

-- Returns nothing at all.
function M.noop()
end

-- How many arguments arrived (select("#")).
function M.count(...)
  return select("#", ...)
end

-- Several results with nil holes and trailing nils: 1, nil, "three", nil, nil
function M.multi()
  return 1, nil, "three", nil, nil
end

-- The argument count followed by the type of each argument (to check holes without unpacking
-- them through a second round trip).
function M.shape(...)
  local n = select("#", ...)
  local out = { n = n + 1, n }
  for i = 1, n do
    out[i + 1] = type((select(i, ...)))
  end
  return unpack(out, 1, out.n)
end

function M.raise(msg)
  error(msg or "boom", 1)
end

-- Raises from a nested local function, so the traceback has several frames.
local function inner_failure(what)
  local t = nil
  local v = t[what] -- attempt to index a nil value
  return v
end
function M.deep_raise(what)
  local v = inner_failure(what or "field") -- not a tail call: keeps the frame in the traceback
  return v
end

function M.raise_table()
  error({ code = 42 })
end

-- An error object that even tostring cannot describe.
M.UNPRINTABLE = setmetatable({}, { __tostring = function() error("no tostring for this one") end })
function M.raise_unprintable()
  error(M.UNPRINTABLE)
end

-- Returns something that cannot be sent.
function M.bad_return()
  return 1, function() end
end

-- svc.caller() from inside a served function.
function M.caller()
  local svc = require("svc_run_lua")
  return svc.caller()
end

-- Yields without rr.call (nothing will ever resume it): the service must still answer once.
function M.yield_bare()
  coroutine.yield("not from rr.call")
  return "resumed"
end

-- Keeps its coroutine in M.kept, as a scheduler that tracks tasks would, and returns.
function M.keep_coroutine(...)
  M.kept = coroutine.running()
  return ...
end

-- n results, each true.
function M.values(n)
  local out = {}
  for i = 1, n do out[i] = true end
  return unpack(out, 1, n)
end

-- Raises a message of n bytes.
function M.raise_big(n)
  error(string.rep("x", n), 0)
end

-- A string of n bytes.
function M.big(n)
  return string.rep("x", n)
end

return M
