-- The service side for tests/host/rpc_out_of_memory.c: requests straight from the host
-- (svc.RunMfa(ctx, bytes)) to functions that return, nest an rr.call, raise or return what
-- cannot be sent. With allocations failing, a request may go unanswered (its caller then
-- times out), but never answered twice; a served call never stays counted as running; and
-- once memory is back, every request is answered exactly once.
local build_dir = ...
package.cpath = build_dir .. "/?.so;" .. package.cpath
local rr = require("remote_runner")
local svc = require("svc_run_lua")

local H = {}
local QUEUE = 64
local fake_time = 1000.0
local NAMES = { "echo", "nested", "boom", "unsendable", "nested2" }
local replies = {}
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
local q = dofile(here .. "queue_transport.lua").new(svc, QUEUE)
for _, name in ipairs(NAMES) do replies[name] = 0 end

rr.set_transport({
  request_svr = function(_, _, _, bytes, callback)
    q.request(bytes, callback)
    return true
  end,
  -- The host's own requests have their name as ctx; the nested calls' are queued.
  reply_to = function(ctx, bytes)
    if type(ctx) == "string" then
      replies[ctx] = replies[ctx] + 1
      return
    end
    q.reply(ctx, bytes)
  end,
})
rr.configure({ self_id = 1, timeout = 5, clock = function() return fake_time end, logger = function() end })

local target = {}
function target.echo(...) return ... end
function target.nested(x) return rr.call(2, "target", "echo", { x }) + 1 end
function target.boom() error("boom", 0) end
function target.unsendable() return print end
package.loaded.target = target
svc.allow("target")

-- A request of the legacy fields (module 1, function 2, arguments 3), written by hand.
local function len_field(tag, bytes)
  assert(#bytes < 128)
  return string.char(tag, #bytes) .. bytes
end
local function request(func, args)
  return len_field(10, "target") .. len_field(18, func) .. len_field(26, args)
end
local REQUESTS = { echo = request("echo", "{1,2,n=2}"), nested = request("nested", "{5}"),
  boom = request("boom", "{}"), unsendable = request("unsendable", "{}"), nested2 = request("nested", "{7}") }

local pump, deliver = q.pump, q.deliver

local function serve(name)
  return function() svc.RunMfa(name, REQUESTS[name]) end
end

H.steps = { serve("echo"), serve("nested"), serve("boom"), serve("unsendable"), serve("nested2"), pump, deliver,
  pump, deliver, function() rr.poll() end, function() fake_time = fake_time + 1; rr.poll() end }

function H.reset()
  q.reset()
  for _, name in ipairs(NAMES) do replies[name] = 0 end
  collectgarbage()
end

function H.drain()
  q.drain(rr, function(seconds)
    fake_time = fake_time + seconds
    rr.poll()
  end)
end

function H.check()
  local problems = {}
  local function problem(...) problems[#problems + 1] = string.format(...) end
  for _, name in ipairs(NAMES) do
    if replies[name] > 1 then problem("request %s: answered %d times", name, replies[name]) end
  end
  local serving = rr._internal.books.get("serving")
  if serving ~= 0 then problem("%d served calls still counted as running", serving) end
  if rr.stats().in_flight ~= 0 then problem("%d calls in flight", rr.stats().in_flight) end
  -- With memory back, every request is answered once.
  for _, name in ipairs(NAMES) do replies[name] = 0 end
  for _, name in ipairs(NAMES) do serve(name)() end
  H.drain()
  for _, name in ipairs(NAMES) do
    if replies[name] ~= 1 then problem("with memory back, request %s answered %d times", name, replies[name]) end
  end
  if #problems > 0 then return table.concat(problems, "; ") end
  return nil
end

return H
