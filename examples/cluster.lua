-- A small cluster simulated in one Lua process, for examples/demo.lua.
--
-- Stands in for the host's RPC layer (c_rpc): `request_svr(svr_id, service, method, bytes, cb)`
-- queues the request; `cluster:run()` hands each request to `svc.RunMfa(ctx, bytes)` (this one
-- process plays every server id) and each reply (`reply_to(ctx, bytes)`) to the caller's
-- callback, calling `rr.poll()` as a host's main loop tick would. A server marked down drops
-- what is sent to it. The clock is fake: `cluster:advance(seconds)` moves it.
--
--   local Cluster = require("cluster")
--   local cluster = Cluster.new{ rr = rr, svc = svc, names = { [1] = "gate", [2] = "world" } }
--   rr.configure{ self_id = 1, clock = cluster:clock() }
--   rr.set_transport(cluster:transport())
local Cluster = {}
Cluster.__index = Cluster

function Cluster.new(opts)
  local self = setmetatable({}, Cluster)
  self.rr = assert(opts.rr, "rr")
  self.svc = assert(opts.svc, "svc")
  self.names = opts.names or {}
  self.down = {}
  self.queue = {}
  self.routes = {}     -- ctx -> { svr_id =, cb = }
  self.next_ctx = 0
  self.now = 0
  self.serving = nil   -- the server whose request is being handed to svc.RunMfa
  self.trace = opts.trace or function() end
  self.max_steps = opts.max_steps or 10000
  return self
end

function Cluster:name(svr_id)
  local n = self.names[svr_id]
  if n then return "server " .. tostring(svr_id) .. " (" .. n .. ")" end
  return "server " .. tostring(svr_id)
end

function Cluster:clock()
  return function() return self.now end
end

function Cluster:set_down(svr_id, is_down)
  self.down[svr_id] = is_down ~= false
end

function Cluster:transport()
  local cluster = self
  return {
    request_svr = function(svr_id, service, method, bytes, cb)
      if cluster.down[svr_id] then
        cluster.trace(string.format("  %s is down: the %d-byte %s/%s request is lost",
          cluster:name(svr_id), #bytes, service, method))
        return true -- the RPC layer took it; nothing will ever answer
      end
      cluster.trace(string.format("  -> %s: %s/%s request, %d bytes", cluster:name(svr_id), service, method, #bytes))
      cluster.queue[#cluster.queue + 1] = { kind = "request", svr_id = svr_id, bytes = bytes, cb = cb }
      return true
    end,
    reply_to = function(ctx, bytes)
      local route = cluster.routes[ctx]
      if not route then error("reply_to: unknown or already answered ctx " .. tostring(ctx)) end
      cluster.routes[ctx] = nil
      cluster.trace(string.format("  <- %s: reply, %d bytes", cluster:name(route.svr_id), #bytes))
      cluster.queue[#cluster.queue + 1] = { kind = "reply", svr_id = route.svr_id, bytes = bytes, cb = route.cb }
    end,
  }
end

-- Delivers queued requests and replies until there are none (bounded by max_steps).
function Cluster:run()
  local steps = 0
  while #self.queue > 0 and steps < self.max_steps do
    steps = steps + 1
    local ev = table.remove(self.queue, 1)
    if ev.kind == "request" then
      self.next_ctx = self.next_ctx + 1
      self.routes[self.next_ctx] = { svr_id = ev.svr_id, cb = ev.cb }
      local prev = self.serving
      self.serving = ev.svr_id
      self.svc.RunMfa(self.next_ctx, ev.bytes)
      self.serving = prev
    else
      ev.cb(ev.bytes)
    end
    self.rr.poll()
  end
  self.rr.poll()
  return steps
end

-- Moves the fake clock and ticks (rr.poll fires what has expired).
function Cluster:advance(seconds)
  self.now = self.now + seconds
  self.rr.poll()
end

-- Requests served that have not been answered yet.
function Cluster:unanswered()
  local n = 0
  for _ in pairs(self.routes) do n = n + 1 end
  return n
end

return Cluster
