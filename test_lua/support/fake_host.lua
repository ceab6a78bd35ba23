-- A fake cluster in one Lua process, for the rpc specs.
--
-- The module under test is one instance; it plays every server. `request_svr(svr_id, ...)`
-- enqueues the request; `host:pump(max_steps)` hands queued requests to `svc.RunMfa(ctx, bytes)`
-- (ctx: an integer naming the reply route) and queued replies to the caller's callback.
-- Everything is bounded (pump takes a step budget) and deterministic (seeded PRNG, fake clock).
--
--   local Host = require("support.fake_host")
--   local host = Host.new{ rr = rr, svc = svc, seed = 7 }
--   host:install{ timeout = 5 }          -- set_transport + configure (fake clock, logger) + disallow_all
--   rr.run_mfa(2, "m", "f", {...}, on_result)
--   host:pump()                          -- deliver until idle (bounded)
--   host:advance(6)                      -- fake clock, then rr.poll()
--
-- Fault injection (`host:fault{...}`), each rule applies `times` times (default 1, math.huge for
-- always) to requests (`on = "request"`) or replies (`on = "reply"`) matching `svr_id` / `match`:
--   drop        the message vanishes (a request is never served, a reply never delivered)
--   delay       held for `hold` pump steps, or until host:release() when hold == true
--   duplicate   delivered twice
--   reorder     put at the head of the queue instead of its tail
--   corrupt     bytes replaced by fn(bytes), or mode "garbage" | "flip" | "truncate"
--   raise       (request) request_svr raises `message`
--   return_false(request) request_svr returns false
--   fail        (request) the callback later gets cb(nil, message)
--   answer      (request) not served: the callback later gets cb(bytes) with rule.bytes
-- `chaos = { drop_request=p, drop_reply=p, duplicate_reply=p, delay_reply=p, reorder=p,
--            corrupt_request=p, corrupt_reply=p }` applies random faults with the host's PRNG.
local Host = {}
Host.__index = Host

Host.SERVICE = "svr.RunLua"
Host.METHOD = "RunMfa"

local unpack = table.unpack or unpack
local floor = math.floor

-- Adds test_lua/fixtures_rpc/?.lua to package.path (the served side requires from there).
function Host.setup_paths()
  local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\]support[/\\][^/\\]*$")) or "test_lua"
  local entry = here .. "/fixtures_rpc/?.lua"
  if not package.path:find(entry, 1, true) then
    package.path = entry .. ";" .. package.path
  end
end

-- The module under test: remote_runner through support.loader (package.loadlib on the .so,
-- so lua/remote_runner.lua on package.path cannot shadow it) and svc_run_lua from the same .so
-- (the same way, for the same reason). Both are left in package.loaded, so the fixtures'
-- require("remote_runner") / require("svc_run_lua") get these. Returns rr, svc.
function Host.modules()
  local loader = require("support.loader")
  local rr = loader.rr()
  local svc = package.loaded.svc_run_lua
  if type(svc) ~= "table" or type(svc.RunMfa) ~= "function" then
    local dir = os.getenv("RR_BUILD_DIR")
    if not dir or dir == "" then dir = "build/" .. loader.interp() end
    local so = dir .. "/remote_runner.so"
    local open, err = package.loadlib(so, "luaopen_svc_run_lua")
    if not open then error("cannot open svc_run_lua in " .. so .. ": " .. tostring(err)) end
    svc = open("svc_run_lua", so)
    if svc == nil then svc = package.loaded.svc_run_lua end
    assert(type(svc) == "table" and type(svc.RunMfa) == "function", so .. ": luaopen_svc_run_lua gave no RunMfa")
    package.loaded.svc_run_lua = svc
  end
  return rr, svc
end

function Host.pack(...)
  return { n = select("#", ...), ... }
end

function Host.unpack(t)
  return unpack(t, 1, t.n or #t)
end

-- Park-Miller minimal standard PRNG: exact in doubles and in integers, so the same seed gives
-- the same sequence on every Lua. rand() -> [0,1); rand(n) -> 1..n; rand(a, b) -> a..b.
function Host.prng(seed)
  local x = floor(seed or 1) % 2147483646 + 1
  return function(a, b)
    x = (x * 16807) % 2147483647
    local r = (x - 1) / 2147483646
    if a == nil then return r end
    if b == nil then a, b = 1, a end
    return a + floor(r * (b - a + 1))
  end
end

-- The fake clock is shared by every host and only moves forward, so a call left over by one
-- test can never see time run backwards in the next one.
local clock_now = 1000

function Host.clock()
  return clock_now
end

-- Module defaults (issue 3), restored by install().
Host.DEFAULTS = {
  self_id = 1,
  timeout = 10,
  max_pending = 10000,
  max_pending_per_server = 1000,
  max_message_bytes = 4 * 1024 * 1024,
  max_depth = 128,
}

function Host.new(opts)
  opts = opts or {}
  assert(opts.rr and opts.svc, "Host.new{ rr = ..., svc = ... }")
  local self = setmetatable({}, Host)
  self.rr = opts.rr
  self.svc = opts.svc
  self.rand = Host.prng(opts.seed or 1)
  self.record = opts.record ~= false
  self.auto_poll = opts.auto_poll ~= false
  self.sync = opts.sync or false
  self.chaos = opts.chaos
  self.max_steps = opts.max_steps or 100000
  self.queue = {}
  self.rules = {}
  self.ctxs = {}          -- ctx -> { svr_id =, cb =, bytes = }
  self.next_ctx = 0
  self.requests = {}      -- recorded requests { svr_id, service, method, bytes, ctx }
  self.replies = {}       -- recorded replies  { ctx, svr_id, bytes }
  self.events = {}        -- ordered log: "request 2", "serve 2 #ctx", "reply #ctx", "deliver 2"
  self.logs = {}          -- logger lines { level, msg }
  self.errors = {}        -- errors raised out of svc.RunMfa or a callback into the host
  self.counts = {
    requests = 0, served = 0, replies = 0, delivered = 0, dropped = 0, duplicated = 0,
    corrupted = 0, delayed = 0, reordered = 0, double_replies = 0, unknown_ctx = 0, logs = 0,
  }
  self.serving = nil      -- the server id whose request is being handed to svc.RunMfa
  -- Calls some earlier test leaked for good (already reported there): not counted again.
  self.start_in_flight = self.rr.stats().in_flight
  return self
end

function Host:event(s)
  if self.record then self.events[#self.events + 1] = s end
end

-- The transport table for rr.set_transport / the c_rpc global.
function Host:transport()
  local host = self
  return {
    request_svr = function(svr_id, service, method, req_bytes, cb)
      return host:_request(svr_id, service, method, req_bytes, cb)
    end,
    reply_to = function(ctx, resp_bytes)
      return host:_reply(ctx, resp_bytes)
    end,
  }
end

function Host:logger()
  local host = self
  return function(level, msg)
    host.counts.logs = host.counts.logs + 1
    if host.record then host.logs[#host.logs + 1] = { level = level, msg = msg } end
  end
end

-- set_transport + configure (defaults, fake clock, capturing logger; `overrides` win) +
-- svc.disallow_all(); takes the stats baseline for delta().
function Host:install(overrides)
  local cfg = {}
  for k, v in pairs(Host.DEFAULTS) do cfg[k] = v end
  cfg.logger = self:logger()
  cfg.clock = Host.clock
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  self.rr.configure(cfg)
  self.rr.set_transport(self:transport())
  self.svc.disallow_all()
  self.base = self.rr.stats()
  return self
end

-- Stats since install() (numbers subtracted; failed by kind too; missing kinds count 0).
function Host:delta()
  local now = self.rr.stats()
  local d = { failed = {} }
  for k, v in pairs(now) do
    if type(v) == "number" then
      if k == "in_flight" then
        d[k] = v - self.start_in_flight
      else
        d[k] = v - (self.base[k] or 0)
      end
    end
  end
  local base_failed = self.base.failed or {}
  for kind, v in pairs(now.failed or {}) do
    local dv = v - (base_failed[kind] or 0)
    if dv ~= 0 then d.failed[kind] = dv end
  end
  setmetatable(d.failed, { __index = function() return 0 end })
  return d
end

-- Calls in flight, not counting what an earlier test leaked for good (reported there).
function Host:in_flight()
  return self.rr.stats().in_flight - self.start_in_flight
end

-- ------------------------------------------------------------------------------------------
-- Fault rules

function Host:fault(rule)
  assert(rule.on == "request" or rule.on == "reply", "fault: on = 'request' | 'reply'")
  assert(type(rule.action) == "string", "fault: action")
  rule.times = rule.times or 1
  rule.hits = 0
  self.rules[#self.rules + 1] = rule
  return rule
end

function Host:clear_faults()
  self.rules = {}
end

local function rule_matches(rule, on, ev)
  if rule.on ~= on or rule.hits >= rule.times then return false end
  if rule.svr_id ~= nil and rule.svr_id ~= ev.svr_id then return false end
  if rule.match and not rule.match(ev) then return false end
  return true
end

function Host:corrupt_bytes(bytes, how)
  self.counts.corrupted = self.counts.corrupted + 1
  if type(how) == "function" then return how(bytes) end
  how = how or "garbage"
  if how == "garbage" then
    -- 0xFF bytes: an over-long varint tag that no protobuf decoder accepts.
    return string.rep("\255", math.max(#bytes, 11))
  elseif how == "flip" then
    if #bytes == 0 then return "\255" end
    local p = self.rand(#bytes)
    local b = (bytes:byte(p) + self.rand(255)) % 256
    return bytes:sub(1, p - 1) .. string.char(b) .. bytes:sub(p + 1)
  elseif how == "truncate" then
    return bytes:sub(1, self.rand(0, math.max(#bytes - 1, 0)))
  end
  error("unknown corrupt mode " .. tostring(how))
end

-- Applies the matching rules (and chaos) to an event; returns the list of events to enqueue
-- (empty: dropped) or raises / returns a special result for request-side failures.
function Host:_apply(on, ev)
  local out = { ev }
  for _, rule in ipairs(self.rules) do
    if rule_matches(rule, on, ev) then
      rule.hits = rule.hits + 1
      local a = rule.action
      if a == "drop" then
        self.counts.dropped = self.counts.dropped + 1
        return {}
      elseif a == "delay" then
        self.counts.delayed = self.counts.delayed + 1
        ev.hold = rule.hold or true
      elseif a == "duplicate" then
        self.counts.duplicated = self.counts.duplicated + 1
        local copy = {}
        for k, v in pairs(ev) do copy[k] = v end
        out[#out + 1] = copy
      elseif a == "reorder" then
        self.counts.reordered = self.counts.reordered + 1
        ev.front = true
      elseif a == "corrupt" then
        ev.bytes = self:corrupt_bytes(ev.bytes, rule.fn or rule.mode)
      elseif a == "raise" or a == "return_false" or a == "fail" or a == "answer" then
        assert(on == "request", a .. " is a request-side fault")
        return nil, a, rule
      else
        error("unknown fault action " .. tostring(a))
      end
    end
  end
  local c = self.chaos
  if c then
    local r = self.rand
    if on == "request" then
      if c.drop_request and r() < c.drop_request then
        self.counts.dropped = self.counts.dropped + 1
        return {}
      end
      if c.corrupt_request and r() < c.corrupt_request then
        ev.bytes = self:corrupt_bytes(ev.bytes, c.corrupt_mode)
      end
    else
      if c.drop_reply and r() < c.drop_reply then
        self.counts.dropped = self.counts.dropped + 1
        return {}
      end
      if c.corrupt_reply and r() < c.corrupt_reply then
        ev.bytes = self:corrupt_bytes(ev.bytes, c.corrupt_mode)
      end
      if c.delay_reply and r() < c.delay_reply then
        self.counts.delayed = self.counts.delayed + 1
        ev.hold = r(1, c.max_hold or 20)
      end
      if c.duplicate_reply and r() < c.duplicate_reply then
        self.counts.duplicated = self.counts.duplicated + 1
        local copy = {}
        for k, v in pairs(ev) do copy[k] = v end
        copy.hold = r(0, c.max_hold or 20)
        out[#out + 1] = copy
      end
    end
    if c.reorder and r() < c.reorder then
      self.counts.reordered = self.counts.reordered + 1
      ev.front = true
    end
  end
  return out
end

function Host:_enqueue(list)
  for _, ev in ipairs(list) do
    if ev.front then
      ev.front = nil
      table.insert(self.queue, 1, ev)
    else
      self.queue[#self.queue + 1] = ev
    end
  end
end

-- ------------------------------------------------------------------------------------------
-- The transport

function Host:_request(svr_id, service, method, req_bytes, cb)
  self.counts.requests = self.counts.requests + 1
  local ev = { kind = "request", svr_id = svr_id, service = service, method = method, bytes = req_bytes, cb = cb }
  if self.record then
    self.requests[#self.requests + 1] = ev
    self:event("request " .. tostring(svr_id))
  end
  local list, special, rule = self:_apply("request", ev)
  if special == "raise" then
    error(rule.message or "transport exploded", 0)
  elseif special == "return_false" then
    return false
  elseif special == "fail" then
    list = { { kind = "fail", svr_id = svr_id, cb = cb, message = rule.message or "down" } }
  elseif special == "answer" then
    list = { { kind = "reply", svr_id = svr_id, cb = cb, bytes = rule.bytes } }
  end
  if self.sync then
    -- A host whose RPC layer answers inline: serve (and deliver) before request_svr returns.
    for _, e in ipairs(list) do self:_deliver(e) end
  else
    self:_enqueue(list)
  end
  return true
end

function Host:_reply(ctx, resp_bytes)
  local c = self.ctxs[ctx]
  if c == nil then
    if type(ctx) == "number" and ctx >= 1 and ctx <= self.next_ctx then
      self.counts.double_replies = self.counts.double_replies + 1
      self.errors[#self.errors + 1] = "reply_to called twice for ctx " .. tostring(ctx)
    else
      self.counts.unknown_ctx = self.counts.unknown_ctx + 1
      self.errors[#self.errors + 1] = "reply_to with an unknown ctx " .. tostring(ctx)
    end
    return
  end
  if type(resp_bytes) ~= "string" then
    self.errors[#self.errors + 1] = "reply_to with " .. type(resp_bytes) .. " instead of bytes"
  end
  self.ctxs[ctx] = nil
  self.counts.replies = self.counts.replies + 1
  local ev = { kind = "reply", ctx = ctx, svr_id = c.svr_id, cb = c.cb, bytes = resp_bytes }
  if self.record then
    self.replies[#self.replies + 1] = ev
    self:event("reply #" .. ctx)
  end
  if c.cb == nil then return end -- injected request without a route back
  local list = self:_apply("reply", ev)
  if self.sync then
    for _, e in ipairs(list) do self:_deliver(e) end
  else
    self:_enqueue(list)
  end
end

-- Hands one request to svc.RunMfa with a fresh ctx (the reply route), or a reply / a failure
-- to the caller's callback. Errors raised into the host are recorded, not propagated.
function Host:_deliver(ev)
  if ev.kind == "request" then
    self.next_ctx = self.next_ctx + 1
    local ctx = self.next_ctx
    self.ctxs[ctx] = { svr_id = ev.svr_id, cb = ev.cb }
    ev.ctx = ctx
    self.counts.served = self.counts.served + 1
    self:event("serve " .. tostring(ev.svr_id) .. " #" .. ctx)
    local prev = self.serving
    self.serving = ev.svr_id
    local ok, err = pcall(self.svc.RunMfa, ctx, ev.bytes)
    self.serving = prev
    if not ok then
      self.errors[#self.errors + 1] = "svc.RunMfa raised: " .. tostring(err)
    end
    return ctx
  end
  self.counts.delivered = self.counts.delivered + 1
  self:event("deliver " .. tostring(ev.svr_id) .. (ev.ctx and (" #" .. ev.ctx) or ""))
  local ok, err
  if ev.kind == "reply" then
    ok, err = pcall(ev.cb, ev.bytes)
  else
    ok, err = pcall(ev.cb, nil, ev.message)
  end
  if not ok then
    self.errors[#self.errors + 1] = "callback raised: " .. tostring(err)
  end
end

-- Serves request bytes built by the test (e.g. a legacy request) as if server `svr_id` got
-- them; cb (optional) receives the reply through the normal queue. Returns the ctx.
function Host:inject(svr_id, bytes, cb)
  local ev = { kind = "request", svr_id = svr_id, service = Host.SERVICE, method = Host.METHOD, bytes = bytes, cb = cb }
  return self:_deliver(ev)
end

-- ------------------------------------------------------------------------------------------
-- Pumping

-- One step: delivers the first event that is not held; if every queued event is held, counts
-- down the numeric holds instead. Returns true when something happened.
function Host:step()
  local q = self.queue
  if #q == 0 then return false end
  for i = 1, #q do
    local ev = q[i]
    if ev.hold == nil or ev.hold == false or (type(ev.hold) == "number" and ev.hold <= 0) then
      table.remove(q, i)
      self:_deliver(ev)
      -- a step passes for everything still held
      for _, e in ipairs(q) do
        if type(e.hold) == "number" then e.hold = e.hold - 1 end
      end
      return true
    end
  end
  local moved = false
  for _, e in ipairs(q) do
    if type(e.hold) == "number" then
      e.hold = e.hold - 1
      moved = true
    end
  end
  return moved
end

-- Delivers until nothing is deliverable or max_steps steps were taken; rr.poll() after each
-- step when auto_poll. Returns the number of steps taken.
function Host:pump(max_steps)
  max_steps = max_steps or self.max_steps
  local steps = 0
  while steps < max_steps do
    if not self:step() then break end
    steps = steps + 1
    if self.auto_poll then self.rr.poll() end
  end
  if self.auto_poll then self.rr.poll() end
  return steps
end

-- Releases held events (all, or those for which pred(ev) is true).
function Host:release(pred)
  local n = 0
  for _, ev in ipairs(self.queue) do
    if ev.hold ~= nil and (pred == nil or pred(ev)) then
      ev.hold = nil
      n = n + 1
    end
  end
  return n
end

-- Removes and returns the first queued event of `kind` ("request" | "reply"), undelivered.
function Host:take(kind)
  for i, ev in ipairs(self.queue) do
    if ev.kind == kind then return table.remove(self.queue, i) end
  end
  return nil
end

-- Shuffles the queue with the host's PRNG (Fisher-Yates).
function Host:shuffle()
  local q = self.queue
  for i = #q, 2, -1 do
    local j = self.rand(i)
    q[i], q[j] = q[j], q[i]
  end
end

function Host:queued(kind)
  local n = 0
  for _, ev in ipairs(self.queue) do
    if kind == nil or ev.kind == kind then n = n + 1 end
  end
  return n
end

-- Requests served whose reply has not been sent yet.
function Host:unreplied()
  local n = 0
  for _ in pairs(self.ctxs) do n = n + 1 end
  return n
end

-- Moves the fake clock forward (seconds), then rr.poll() when auto_poll.
function Host:advance(seconds)
  assert(seconds >= 0, "the clock only moves forward")
  clock_now = clock_now + seconds
  if self.auto_poll then self.rr.poll() end
end

-- For after_each: pumps what is deliverable (bounded) and polls; returns a report of what is
-- left behind: { in_flight =, unreplied =, errors = {...} }.
function Host:settle(max_steps)
  self:pump(max_steps or 10000)
  self.rr.poll()
  return {
    in_flight = self.rr.stats().in_flight,
    unreplied = self:unreplied(),
    errors = self.errors,
    double_replies = self.counts.double_replies,
  }
end

-- For after_each, after settle(): forgets the queue, lets every leftover call time out (so
-- a failing test does not leak into the next one) and detaches the transport.
function Host:teardown()
  self.queue = {}
  self.rules = {}
  self.chaos = nil
  self.auto_poll = true
  clock_now = clock_now + 1e6
  self.rr.poll()
  self.queue = {}
  self.rr.poll()
  self.rr.set_transport(nil)
  self.rr.configure({ logger = function() end }) -- drop the reference to this host
  self.svc.disallow_all()
end

-- Whether any logged line at `level` contains `needle` (plain find).
function Host:logged(level, needle)
  for _, l in ipairs(self.logs) do
    if (level == nil or l.level == level) and (needle == nil or tostring(l.msg):find(needle, 1, true)) then
      return true
    end
  end
  return false
end

-- Issues run_mfa with recording callbacks; returns the call id and a record
-- { results = packed | nil, err = errobj | nil, fired = count }.
function Host:call(svr_id, module_name, func, args, opts)
  local rec = { fired = 0 }
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.on_error = function(err)
    rec.fired = rec.fired + 1
    rec.err = err
  end
  rec.id = self.rr.run_mfa(svr_id, module_name, func, args, function(...)
    rec.fired = rec.fired + 1
    rec.results = Host.pack(...)
  end, o)
  return rec
end

-- Runs fn(...) in a coroutine (for rr.call). Returns a record
-- { done = bool, ok = bool|nil, results = packed, err = ..., co = thread }; fields fill in
-- when the coroutine finishes (the module resumes it when the reply comes).
-- Runs body(rec) in a new coroutine up to its first yield; a failure there ends the record.
local function start(body)
  local rec = { done = false }
  rec.co = coroutine.create(function() body(rec) end)
  local ok, err = coroutine.resume(rec.co)
  if not ok then
    rec.done = true
    rec.ok = false
    rec.err = err
  end
  return rec
end

function Host.spawn(fn, ...)
  local args = Host.pack(...)
  return start(function(rec)
    rec.results = Host.pack(fn(Host.unpack(args)))
    rec.done = true
    rec.ok = true
  end)
end

-- PUC Lua 5.1 cannot yield across pcall; 5.2+ and LuaJIT can.
Host.YIELD_ACROSS_PCALL = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil)

-- Like spawn, but fn runs under pcall inside the coroutine, so an error raised by rr.call is
-- caught: rec.ok = false, rec.err = the error value. Needs Host.YIELD_ACROSS_PCALL.
function Host.spawn_catch(fn, ...)
  local args = Host.pack(...)
  return start(function(rec)
    local r = Host.pack(pcall(fn, Host.unpack(args)))
    rec.ok = r[1]
    if r[1] then
      rec.results = Host.pack(unpack(r, 2, r.n))
    else
      rec.err = r[2]
    end
    rec.done = true
  end)
end

-- The after_each check shared by the rpc specs: settles the host, tears it down, and returns
-- a list of problems (empty when nothing was left behind).
function Host:finish()
  local left = self:settle()
  self:teardown()
  local problems = {}
  for _, e in ipairs(left.errors) do problems[#problems + 1] = e end
  if left.in_flight > self.start_in_flight then
    local note = ""
    if self.start_in_flight > 0 then
      note = " (" .. self.start_in_flight .. " of them leaked by an earlier test)"
    end
    problems[#problems + 1] = "stats().in_flight == " .. tostring(left.in_flight) .. " after the test (want 0)" .. note
  end
  if left.unreplied ~= 0 then
    problems[#problems + 1] = left.unreplied .. " served request(s) never got a reply_to"
  end
  return problems
end

return Host
