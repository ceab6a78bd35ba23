-- Test fixture: served functions that call further servers with rr.call (nested calls).
local M = {}

local unpack = table.unpack or unpack

local function pack(...)
  return { n = select("#", ...), ... }
end

-- relay(target, module, func, args...) -> the results of rr.call(target, module, func, args)
function M.relay(target, module_name, func, ...)
  local rr = require("remote_runner")
  return rr.call(target, module_name, func, pack(...))
end

-- Keeps its coroutine in M.kept (as a scheduler that tracks tasks would), then relays.
function M.kept_relay(target, module_name, func, ...)
  M.kept = coroutine.running()
  return M.relay(target, module_name, func, ...)
end

-- Two nested calls one after the other; returns both results.
function M.relay_twice(target, module_name, func, ...)
  local rr = require("remote_runner")
  local first = pack(rr.call(target, module_name, func, pack(...)))
  local second = pack(rr.call(target, module_name, func, pack(...)))
  return first, second
end

-- Like relay, with a per-call timeout (seconds).
function M.relay_timeout(timeout, target, module_name, func, ...)
  local rr = require("remote_runner")
  return rr.call(target, module_name, func, pack(...), { timeout = timeout })
end

-- Records svc.caller() before and after the nested call (it must not change across the
-- yield), and returns { before = {id, call_id}, after = {...}, results = {...} }.
function M.relay_info(target, module_name, func, ...)
  local rr = require("remote_runner")
  local svc = require("svc_run_lua")
  local before = pack(svc.caller())
  local results = pack(rr.call(target, module_name, func, pack(...)))
  local after = pack(svc.caller())
  return { before = before, after = after, results = results }
end

-- Catches the error of the nested call and returns its fields (needs pcall across a yield:
-- Lua 5.2+ and LuaJIT only).
function M.relay_caught(target, module_name, func, ...)
  local rr = require("remote_runner")
  local ok, err = pcall(rr.call, target, module_name, func, pack(...))
  if ok then return "no error" end
  return rr.is_error(err), err.kind, err.message, err.svr_id, err.module, err.func
end

-- Two nested calls in sequence, to two servers; returns both results.
function M.fan(a, b)
  local rr = require("remote_runner")
  local r1 = pack(rr.call(a, "rpcfix.echo", "echo", { "from", a }))
  local r2 = pack(rr.call(b, "rpcfix.echo", "echo", { "from", b }))
  return unpack({ r1[1], r1[2], r2[1], r2[2] }, 1, 4)
end

-- A nested call through run_mfa with callbacks (no yield): returns at once; the nested
-- result is recorded in M.seen when it arrives.
M.seen = {}
function M.fire(target)
  local rr = require("remote_runner")
  rr.run_mfa(target, "rpcfix.echo", "echo", { "fired" }, function(...)
    M.seen[#M.seen + 1] = pack(...)
  end)
  return "fired"
end

return M
