-- The RPC flow that tests/host/rpc_out_of_memory.c runs with a failing allocator: calls to
-- another server (answered, nested, raising, never answered), to this server itself, an
-- rr.call in a coroutine, serving, delivery and timeouts over a queue transport. What this
-- harness does while the allocator may fail only assigns to existing table slots, so that a
-- failure inside a step is the module's (or the served code's).
local build_dir = ...
package.cpath = build_dir .. "/?.so;" .. package.cpath
local rr = require("remote_runner")
local svc = require("svc_run_lua")

local QUEUE = 64
local CALLS = 5 -- run_mfa calls per round; slot 6 is the rr.call's

local fake_time = 1000.0
local H = {}
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local q = dofile(here .. "queue_transport.lua").new(svc, QUEUE)
local co_done = 0
local ids, fired = {}, {}
for s = 1, CALLS do ids[s], fired[s] = false, 0 end

local on_result, opts = {}, {}
for s = 1, CALLS do
  on_result[s] = function() fired[s] = fired[s] + 1 end
  opts[s] = { on_error = function() fired[s] = fired[s] + 1 end }
end
opts[4].timeout = 0.5

rr.set_transport({
  request_svr = function(svr_id, _, _, bytes, callback)
    if svr_id == 3 then return true end -- taken, never answered
    q.request(bytes, callback)
    return true
  end,
  reply_to = q.reply,
})
rr.configure({ self_id = 1, timeout = 5, clock = function() return fake_time end, logger = function() end })

local target = {}
function target.echo(...) return ... end
function target.nested(x) return rr.call(2, "target", "echo", { x }) + 1 end
function target.boom() error("boom", 0) end
package.loaded.target = target
svc.allow("target")

local args = { { 1, "a", n = 2 }, { 41 }, {}, { "x" }, { "self" }, { 7 } }

local function co_body()
  pcall(rr.call, 2, "target", "echo", args[6])
  co_done = co_done + 1
end
local co = false

local pump, deliver = q.pump, q.deliver

H.steps = {
  function() ids[1] = rr.run_mfa(2, "target", "echo", args[1], on_result[1], opts[1]) end,
  function() ids[2] = rr.run_mfa(2, "target", "nested", args[2], on_result[2], opts[2]) end,
  function() ids[3] = rr.run_mfa(2, "target", "boom", args[3], on_result[3], opts[3]) end,
  function() ids[4] = rr.run_mfa(3, "target", "echo", args[4], on_result[4], opts[4]) end,
  function() ids[5] = rr.run_mfa(1, "target", "echo", args[5], on_result[5], opts[5]) end,
  function() coroutine.resume(co) end,
  pump, deliver, pump, deliver,
  function() rr.poll() end,
  function() fake_time = fake_time + 1; rr.poll() end,
}

-- Before each round, with the allocator working.
function H.reset()
  q.reset()
  co_done = 0
  for s = 1, CALLS do ids[s], fired[s] = false, 0 end
  co = coroutine.create(co_body)
  collectgarbage()
end

-- After each round, with the allocator working again: answers and timeouts all come through.
function H.drain()
  q.drain(rr, function(seconds)
    fake_time = fake_time + seconds
    rr.poll()
  end)
end

-- nil, or what went wrong: every call that run_mfa started ended exactly once, and none that
-- it refused (by raising); the rr.call ended; nothing is left in flight; and the next calls
-- work as usual (answered at once when the reply comes, nested calls included).
function H.check()
  local problems = {}
  local function problem(...) problems[#problems + 1] = string.format(...) end
  for s = 1, CALLS do
    if ids[s] and fired[s] ~= 1 then
      problem("call %d: its callbacks fired %d times", s, fired[s])
    elseif not ids[s] and fired[s] ~= 0 then
      problem("call %d: run_mfa raised, yet a callback fired %d times", s, fired[s])
    end
  end
  if coroutine.status(co) == "suspended" then problem("the rr.call coroutine is still waiting") end
  if co_done > 1 then problem("rr.call ended %d times", co_done) end
  local in_flight = rr.stats().in_flight
  if in_flight ~= 0 then problem("%d calls in flight", in_flight) end
  local got
  rr.run_mfa(2, "target", "echo", { 99 }, function(x) got = x end)
  pump()
  deliver()
  if got ~= 99 then problem("a new call was not answered when its reply came (got %s)", tostring(got)) end
  local nested = coroutine.create(function() return rr.call(2, "target", "nested", { 1 }) end)
  coroutine.resume(nested)
  pump(); deliver(); pump(); deliver()
  if coroutine.status(nested) ~= "dead" then problem("a new nested rr.call did not finish") end
  if rr.stats().in_flight ~= 0 then problem("new calls left %d in flight", rr.stats().in_flight) end
  if #problems > 0 then return table.concat(problems, "; ") end
  return nil
end

return H
