-- remote_runner.run_mfa / rr.call / svc.RunMfa over the fake host (test_lua/support/fake_host.lua):
-- the legacy example, results and arguments with nils, values kept exactly, never synchronous,
-- transport selection (set_transport / the c_rpc global), svc.caller(), stats, bad arguments.
local Host = require("support.fake_host")
Host.setup_paths()
local exact = require("support.exact")
local legacy = require("support.legacy_proto")
local rr, svc = Host.modules()

local pack = Host.pack
local unpack = table.unpack or unpack

local host

local function new_host(opts)
  opts = opts or {}
  opts.rr, opts.svc = rr, svc
  host = Host.new(opts)
  return host
end

before_each(function()
  new_host({ seed = 11 }):install()
  require("event.dispatcher").reset()
end)

after_each(function()
  local problems = host:finish()
  assert.same({}, problems)
end)

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

describe("run_mfa: the legacy example", function()
  it("runs require('event.dispatcher').dispatch('Remote.ClientDisconnected', 123) on server 2", function()
    svc.allow("event.dispatcher", "dispatch")
    local dispatcher = require("event.dispatcher")
    local rec = host:call(2, "event.dispatcher", "dispatch", { "Remote.ClientDisconnected", 123 })
    assert.is_true(is_integer(rec.id), "run_mfa returns an integer call id")
    assert.equal(0, rec.fired)
    assert.equal(1, #host.requests)
    local req = host.requests[1]
    assert.equal(2, req.svr_id)
    assert.equal("svr.RunLua", req.service)
    assert.equal("RunMfa", req.method)
    assert.equal("string", type(req.bytes))
    assert.equal(0, #dispatcher.calls, "nothing runs before the host delivers the request")

    host:pump()
    assert.equal(1, #dispatcher.calls)
    assert.same({ n = 2, "Remote.ClientDisconnected", 123 }, dispatcher.calls[1])
    assert.equal(1, rec.fired)
    assert.is_nil(rec.err)
    assert.same({ n = 1, true }, rec.results)
  end)

  it("is fire-and-forget without on_result", function()
    svc.allow("event.dispatcher", "dispatch")
    local dispatcher = require("event.dispatcher")
    local id = rr.run_mfa(2, "event.dispatcher", "dispatch", { "Remote.ClientDisconnected", 123 })
    assert.is_true(is_integer(id))
    host:pump()
    assert.same({ n = 2, "Remote.ClientDisconnected", 123 }, dispatcher.calls[1])
    assert.is_false(host:logged("warn"), "a successful fire-and-forget call logs no warning")
    assert.equal(0, host:in_flight())
  end)

  it("gives every call its own id", function()
    svc.allow("rpcfix.echo")
    local seen = {}
    for i = 1, 50 do
      local id = rr.run_mfa(2 + i % 3, "rpcfix.echo", "noop", {})
      assert.is_nil(seen[id], "call id " .. tostring(id) .. " given twice")
      seen[id] = true
    end
    host:pump()
  end)

  it("accepts a string server id and hands it to the transport unchanged", function()
    svc.allow("rpcfix.echo")
    local rec = host:call("gate-1", "rpcfix.echo", "echo", { "hi" })
    assert.equal("gate-1", host.requests[1].svr_id)
    host:pump()
    assert.same({ n = 1, "hi" }, rec.results)
  end)
end)

describe("results", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("on_result gets every result, nil holes and trailing nils included", function()
    local rec = host:call(2, "rpcfix.echo", "multi", {})
    host:pump()
    assert.equal(1, rec.fired)
    assert.same({ n = 5, 1, nil, "three", nil, nil }, rec.results)
  end)

  it("on_result is called with no values when the function returns nothing", function()
    local rec = host:call(2, "rpcfix.echo", "noop", {})
    host:pump()
    assert.equal(1, rec.fired)
    assert.same({ n = 0 }, rec.results)
  end)

  it("only nils come back as that many nils", function()
    local rec = host:call(2, "rpcfix.echo", "echo", { n = 3 })
    host:pump()
    assert.same({ n = 3 }, rec.results)
  end)

  it("rr.call returns every result, trailing nils included", function()
    local co = Host.spawn(function()
      return rr.call(2, "rpcfix.echo", "multi", {})
    end)
    assert.is_false(co.done, "rr.call yields until the reply")
    host:pump()
    assert.is_true(co.done)
    assert.same({ n = 5, 1, nil, "three", nil, nil }, co.results)
  end)

  it("values survive the round trip exactly (subtypes, -0.0, inf, nan, bytes, sharing)", function()
    local shared = { x = 1 }
    local args = {
      0.5, -1 / math.huge, 1 / 0, -1 / 0, "\0\1\255 \226\130\172 \"q\" \\ \n",
      { a = { 1, 2, { deep = true } }, [true] = false, [1.5] = "f" },
      shared, shared, 2 ^ 53, -(2 ^ 53),
      n = 10,
    }
    if math.type then
      args[11], args[12], args[13], args[14] = 1, 1.0, math.maxinteger, math.mininteger
      args[15] = 9007199254740993 -- 2^53 + 1, not a double
      args.n = 15
    end
    local rec = host:call(2, "rpcfix.echo", "echo", args)
    host:pump()
    assert.equal(1, rec.fired, rec.err and tostring(rec.err))
    local ok, why = exact.equal(args, rec.results, "results")
    assert(ok, why)
    assert.is_true(rawequal(rec.results[7], rec.results[8]), "a table shared between arguments stays shared")
    local co = Host.spawn(function()
      return rr.call(2, "rpcfix.echo", "echo", { 0 / 0 })
    end)
    host:pump()
    assert.is_true(co.done)
    assert.equal(1, co.results.n)
    assert.is_true(co.results[1] ~= co.results[1], "nan comes back as nan")
  end)
end)

describe("arguments", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("keeps nil holes and trailing nils (arguments.n)", function()
    local rec = host:call(2, "rpcfix.echo", "shape", { 1, nil, 3, nil, n = 4 })
    host:pump()
    assert.same({ n = 5, 4, "number", "nil", "number", "nil" }, rec.results)
    local rec2 = host:call(2, "rpcfix.echo", "echo", { nil, "b", nil, n = 3 })
    host:pump()
    assert.same({ n = 3, nil, "b", nil }, rec2.results)
  end)

  it("arguments.n wins over #arguments", function()
    local a = host:call(2, "rpcfix.echo", "count", { 1, 2, 3, n = 1 })
    local b = host:call(2, "rpcfix.echo", "count", { n = 3 })
    local c = host:call(2, "rpcfix.echo", "count", { n = 0 })
    local d = host:call(2, "rpcfix.echo", "count", {})
    local e = host:call(2, "rpcfix.echo", "count", { "x", "y" })
    host:pump()
    assert.same({ n = 1, 1 }, a.results)
    assert.same({ n = 1, 3 }, b.results)
    assert.same({ n = 1, 0 }, c.results)
    assert.same({ n = 1, 0 }, d.results)
    assert.same({ n = 1, 2 }, e.results)
  end)

  it("does not send a value it cannot send: raises at the call site naming the path", function()
    local before = rr.stats()
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { 1, { cb = function() end } }, function() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("arguments[2].cb: cannot send a function", 1, true), tostring(err))
    ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { coroutine.create(function() end) })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("arguments[1]", 1, true), tostring(err))
    assert.is_truthy(tostring(err):find("thread", 1, true), tostring(err))
    ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { n = 2, nil, { io.stdout } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("arguments[2][1]", 1, true), tostring(err))
    assert.equal(0, #host.requests, "nothing was sent")
    local after = rr.stats()
    assert.equal(before.sent, after.sent)
    assert.equal(0, after.in_flight - host.start_in_flight)
  end)

  it("words an unsendable argument as a bad argument #4, with the caller's position", function()
    local function call_here() rr.run_mfa(2, "rpcfix.echo", "echo", { 1, { cb = print } }) end
    local ok, err = pcall(call_here)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find(
      "rpc_calls_spec.lua:%d+: bad argument #4 to 'run_mfa' %(arguments%[2%]%.cb: cannot send a function%)$"),
      tostring(err))
    local outcome
    Host.spawn(function()
      outcome = { pcall(rr.call, 2, "rpcfix.echo", "echo", { n = 1, print }) }
    end)
    assert.is_false(outcome[1])
    assert.equal("bad argument #4 to 'call' (arguments[1]: cannot send a function)", outcome[2])
  end)

  it("refuses arguments nested deeper than max_depth, at the call site", function()
    host:install({ max_depth = 8 })
    local deep = {}
    local t = deep
    for _ = 1, 20 do
      t[1] = {}
      t = t[1]
    end
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { deep })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("tables nest deeper than the depth limit (max_depth = 8)", 1, true),
      tostring(err))
    assert.equal(0, #host.requests)
    assert.equal(0, host:in_flight())
  end)
end)

describe("max_depth", function()
  -- `levels` tables, the innermost holding negative numbers (a '-' is no level either).
  local function nest(levels)
    local root = {}
    local t = root
    for _ = 2, levels do
      t[1] = {}
      t = t[1]
    end
    t[1], t[2], t.x = -1, -2.5, -3
    return root
  end

  it("counts the tables of each argument and result, as rr.dump's maxdepth counts a value's", function()
    host:install({ max_depth = 8 })
    svc.allow("rpcfix.echo")
    local loaded_ok, loaded = rr.load(rr.dump(nest(8), { maxdepth = 8 }), { maxdepth = 8 })
    assert.is_true(loaded_ok, loaded)
    assert.same(nest(8), loaded)
    local rec = host:call(2, "rpcfix.echo", "echo", { "x", nest(8) })
    host:pump()
    assert.is_nil(rec.err, rec.err and tostring(rec.err))
    assert.same({ n = 2, "x", nest(8) }, rec.results)
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { nest(9) }, function() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("(max_depth = 8)", 1, true), tostring(err))
  end)
end)

describe("never synchronously inside run_mfa", function()
  before_each(function()
    new_host({ seed = 5, sync = true }):install()
    svc.allow("rpcfix.echo")
  end)

  it("a transport that answers inside request_svr: on_result fires on the next poll", function()
    local rec = host:call(2, "rpcfix.echo", "echo", { "sync" })
    assert.equal(1, host.counts.served, "the sync host served the request inline")
    assert.equal(1, host.counts.delivered, "and delivered the reply inline")
    assert.equal(0, rec.fired, "the callback must not run inside run_mfa")
    rr.poll()
    assert.equal(1, rec.fired)
    assert.same({ n = 1, "sync" }, rec.results)
    rr.poll()
    assert.equal(1, rec.fired)
  end)

  it("rr.call with a synchronous transport yields and resumes on the next poll", function()
    local co = Host.spawn(function()
      return rr.call(2, "rpcfix.echo", "echo", { 1, nil, n = 2 })
    end)
    assert.is_false(co.done)
    assert.equal("suspended", coroutine.status(co.co))
    rr.poll()
    assert.is_true(co.done)
    assert.same({ n = 2, 1 }, co.results)
  end)

  it("an error answered inside request_svr fires on the next poll too", function()
    local rec = host:call(2, "rpcfix.nothere", "f", {})
    assert.equal(0, rec.fired)
    rr.poll()
    assert.equal(1, rec.fired)
    assert.equal("not_allowed", rec.err.kind)
  end)
end)

describe("rr.call", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("outside a coroutine raises a usage error that says so", function()
    local ok, err = pcall(rr.call, 2, "rpcfix.echo", "echo", { 1 })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("coroutine", 1, true), tostring(err))
    assert.equal(0, #host.requests, "nothing was sent")
    assert.equal(0, host:in_flight())
  end)

  it("concurrent coroutines each get their own results", function()
    local cos = {}
    for i = 1, 10 do
      cos[i] = Host.spawn(function()
        local a, b = rr.call(2 + i % 3, "rpcfix.echo", "echo", { i, i * 10 })
        local c = rr.call(2, "rpcfix.echo", "echo", { a + b })
        return c
      end)
    end
    host:shuffle()
    host:pump()
    for i = 1, 10 do
      assert.is_true(cos[i].done)
      assert.same({ n = 1, i * 11 }, cos[i].results)
    end
  end)

  it("a call whose yield failed (C-call boundary) does not hijack the coroutine's next rr.call", function()
    -- rr.call inside a table.sort comparator cannot yield on any Lua version; the pcall around
    -- it catches that. The coroutine then makes a second call: it must get its own results,
    -- not those of the first (abandoned) call, whose reply comes back first.
    local first_err
    local co = Host.spawn(function()
      local ok, e = pcall(table.sort, { 2, 1 }, function(x, y)
        rr.call(2, "rpcfix.echo", "echo", { "first" })
        return x < y
      end)
      assert(not ok)
      first_err = e
      return rr.call(3, "rpcfix.echo", "echo", { "second" })
    end)
    assert.is_truthy(tostring(first_err):find("yield", 1, true), tostring(first_err))
    host:pump()
    host:advance(11) -- whatever was left of the abandoned call times out
    assert.is_true(co.done)
    assert.same({ n = 1, "second" }, co.results)
  end)

  it("the answer to a call whose yield failed does not resume the coroutine's own later yield", function()
    -- 5.3+ and LuaJIT refuse the call before sending it; 5.1 and 5.2 send it, then the yield
    -- fails. Either way the coroutine then parks in its own coroutine.yield, and whatever comes
    -- back for the failed call must leave it there.
    local co = coroutine.create(function()
      local ok = pcall(table.sort, { 2, 1 }, function(x, y)
        rr.call(2, "rpcfix.echo", "echo", { "first" })
        return x < y
      end)
      assert(not ok)
      return "resumed with", coroutine.yield("parked")
    end)
    local _, parked = assert(coroutine.resume(co))
    assert.equal("parked", parked)
    host:pump()
    host:advance(11)
    host:pump()
    assert.equal("suspended", coroutine.status(co))
    assert.same({ true, "resumed with", "mine" }, { coroutine.resume(co, "mine") })
    -- Where the request went out, dropping its answer is logged.
    local sent = host.counts.requests > 0
    assert.equal(sent, host:logged("warn", "could not yield there"))
  end)

  it("the answer to a call whose failed yield ended the coroutine is dropped with a warning", function()
    -- Without pcall around table.sort, the failed yield (5.1, 5.2) kills the coroutine; its
    -- answer must not try to resume a dead coroutine and log that as an error.
    local co = coroutine.create(function()
      table.sort({ 2, 1 }, function(x, y)
        rr.call(2, "rpcfix.echo", "echo", { "first" })
        return x < y
      end)
    end)
    assert.is_false((coroutine.resume(co)))
    assert.equal("dead", coroutine.status(co))
    host:pump()
    host:advance(11)
    local sent = host.counts.requests > 0
    assert.equal(sent, host:logged("warn", "could not yield there"))
    assert.is_false(host:logged("error"), host.logs[1] and tostring(host.logs[1].msg))
    assert.equal(0, rr.stats().in_flight)
  end)

  it("woken by someone else's coroutine.resume, it raises and cancels the call", function()
    -- A scheduler may resume a coroutine for its own reasons while it waits in rr.call. The
    -- call then fails there, and its answer must not resume the coroutine's later yield.
    local outcome
    local co = coroutine.create(function()
      if Host.YIELD_ACROSS_PCALL then
        outcome = { pcall(rr.call, 2, "rpcfix.echo", "echo", { "first" }) }
      else
        rr.call(2, "rpcfix.echo", "echo", { "first" }) -- 5.1: its error ends the coroutine
      end
      return "resumed with", coroutine.yield("parked")
    end)
    assert.is_true((coroutine.resume(co)))
    local ok, parked = coroutine.resume(co, "not the answer")
    if Host.YIELD_ACROSS_PCALL then
      assert.is_true(ok)
      assert.equal("parked", parked)
      assert.is_false(outcome[1])
      parked = outcome[2]
    else
      assert.is_false(ok) -- rr.call's error ended the coroutine
    end
    assert.is_truthy(tostring(parked):find("woke the coroutine before call", 1, true), tostring(parked))
    host:pump()
    host:advance(11)
    host:pump()
    if Host.YIELD_ACROSS_PCALL then
      assert.equal("suspended", coroutine.status(co))
      assert.same({ true, "resumed with", "mine" }, { coroutine.resume(co, "mine") })
    end
    assert.equal(1, host:delta().failed.cancelled)
    assert.equal(0, host:in_flight())
  end)

  it("works from coroutine.wrap too", function()
    local got
    local f = coroutine.wrap(function()
      got = pack(rr.call(3, "rpcfix.echo", "echo", { "w" }))
    end)
    f()
    host:pump()
    assert.same({ n = 1, "w" }, got)
  end)
end)

describe("robustness of the caller side", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  -- An object whose finalizer runs fn (tables take __gc from 5.2 on; 5.1 needs a userdata).
  local function finalizable(fn)
    if rawget(_G, "newproxy") then
      local proxy = newproxy(true)
      getmetatable(proxy).__gc = fn
      return proxy
    end
    return setmetatable({}, { __gc = fn })
  end

  it("calls started by __gc finalizers while other calls start: each gets its own answer", function()
    -- A finalizer can run wherever Lua allocates, also in the middle of run_mfa. Calls it
    -- starts there used to share the interrupted call's id, and one of the two got the
    -- other's answer while the other stayed in flight. The fake host is not built for
    -- finalizers calling into it at any point, so this test has its own transport: a list
    -- appended to with one store, and read from with an index.
    -- Finalizers may all run at the end, thousands of calls at once.
    host:install({ max_pending = 100000, max_pending_per_server = 100000 })
    svc.allow("rpcfix.echo")
    local requests, next_request = {}, 1
    rr.set_transport({
      request_svr = function(_, _, _, bytes, cb)
        local request = { bytes, cb }
        requests[#requests + 1] = request
      end,
      reply_to = function(ctx, bytes) ctx[1] = bytes end,
    })
    local function drain()
      while requests[next_request] do
        local request = requests[next_request]
        next_request = next_request + 1
        local ctx = {}
        svc.RunMfa(ctx, request[1])
        request[2](ctx[1])
      end
    end
    local payload = {}
    for i = 1, 50 do payload[i] = { i, "item" .. i } end
    local active, mismatched, answered, from_finalizers = true, 0, 0, 0
    local failures = {}
    local function expect(want)
      return function(got)
        if got == want then answered = answered + 1 else mismatched = mismatched + 1 end
      end
    end
    local function on_error(err) failures[#failures + 1] = tostring(err) end
    local CALLS = 3000
    for i = 1, CALLS do
      finalizable(function()
        if not active then return end
        from_finalizers = from_finalizers + 1
        local tag = "gc" .. i
        rr.run_mfa(2, "rpcfix.echo", "echo", { tag, payload }, expect(tag), { on_error = on_error })
      end)
      rr.run_mfa(2, "rpcfix.echo", "echo", { i, payload }, expect(i), { on_error = on_error })
      if i % 3 == 0 then collectgarbage("step", 1) end
      if i % 50 == 0 then drain() end
    end
    collectgarbage("collect")
    collectgarbage("collect")
    active = false
    drain()
    rr.poll()
    assert.same({}, failures)
    assert.equal(0, mismatched)
    assert.is_true(from_finalizers > CALLS / 2, "finalizers ran: " .. from_finalizers)
    assert.equal(CALLS + from_finalizers, answered)
    assert.equal(0, host:in_flight())
  end)

  it("rr.poll() called from inside a callback: every callback fires once, nothing raises", function()
    new_host({ seed = 3, sync = true }):install()
    svc.allow("rpcfix.echo")
    local fired = {}
    rr.run_mfa(2, "rpcfix.echo", "echo", { "a" }, function(v) fired[#fired + 1] = v; rr.poll() end)
    rr.run_mfa(2, "rpcfix.echo", "echo", { "b" }, function(v) fired[#fired + 1] = v end)
    rr.run_mfa(2, "rpcfix.echo", "echo", { "c" }, function(v) fired[#fired + 1] = v; rr.poll() end)
    rr.run_mfa(2, "rpcfix.echo", "echo", { "d" }, function(v) fired[#fired + 1] = v end)
    local ok, err = pcall(rr.poll)
    assert(ok, "rr.poll raised: " .. tostring(err))
    rr.poll()
    table.sort(fired)
    assert.same({ "a", "b", "c", "d" }, fired)
  end)

  it("a NaN server id is a bad argument and leaves nothing in flight", function()
    local ok, err = pcall(rr.run_mfa, 0 / 0, "rpcfix.echo", "echo", {})
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad argument #1 to 'run_mfa'", 1, true), tostring(err))
    assert.equal(0, host:in_flight())
  end)

  it("opts.timeout = math.huge is either accepted or refused as run_mfa's own bad argument", function()
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { "inf" }, function() end, { timeout = math.huge })
    if not ok then
      assert.is_truthy(tostring(err):find("to 'run_mfa'", 1, true), tostring(err))
      assert.is_truthy(tostring(err):find("timeout", 1, true), tostring(err))
    end
    host:pump()
    assert.equal(0, host:in_flight())
  end)

  it("a call to this server's own id (self_id) works the same way, never synchronously", function()
    host:install({ self_id = 1 })
    svc.allow("rpcfix.echo")
    local rec = host:call(1, "rpcfix.echo", "caller", {})
    assert.equal(0, rec.fired)
    host:pump()
    assert.equal(1, rec.fired)
    assert.same({ n = 2, 1, rec.id }, rec.results)
    local co = Host.spawn(function() return rr.call(1, "rpcfix.echo", "multi", {}) end)
    host:pump()
    assert.same({ n = 5, 1, nil, "three", nil, nil }, co.results)
  end)
end)

describe("transport selection", function()
  before_each(function() svc.allow("rpcfix.echo") end)
  after_each(function() rawset(_G, "c_rpc", nil) end)

  it("without set_transport uses the global c_rpc, looked up at call time", function()
    rr.set_transport(nil)
    local other = Host.new({ rr = rr, svc = svc })
    rawset(_G, "c_rpc", host:transport())
    local a = host:call(2, "rpcfix.echo", "echo", { "a" })
    rawset(_G, "c_rpc", other:transport())
    local b = host:call(2, "rpcfix.echo", "echo", { "b" })
    assert.equal(1, #host.requests)
    assert.equal(1, #other.requests)
    -- each host's served side answers through whatever c_rpc is at reply time
    rawset(_G, "c_rpc", host:transport())
    host:pump()
    rawset(_G, "c_rpc", other:transport())
    other:pump()
    assert.same({ n = 1, "a" }, a.results)
    assert.same({ n = 1, "b" }, b.results)
  end)

  it("set_transport(nil) goes back to c_rpc", function()
    local other = Host.new({ rr = rr, svc = svc })
    rr.set_transport(other:transport())
    rr.set_transport(nil)
    rawset(_G, "c_rpc", host:transport())
    local a = host:call(2, "rpcfix.echo", "echo", { "a" })
    host:pump()
    assert.equal(0, #other.requests)
    assert.same({ n = 1, "a" }, a.results)
  end)

  it("finds a c_rpc that _G only reaches through its metatable", function()
    rr.set_transport(nil)
    local base = { c_rpc = host:transport() }
    local old_mt = getmetatable(_G)
    setmetatable(_G, { __index = base })
    local ok, err = pcall(function()
      local a = host:call(2, "rpcfix.echo", "echo", { "a" })
      host:pump()
      assert.same({ n = 1, "a" }, a.results)
    end)
    setmetatable(_G, old_mt)
    assert(ok, err)
  end)

  it("finds a c_rpc that is a userdata with an __index (a C++ binding's)", function()
    if not rawget(_G, "newproxy") then
      pending("newproxy (a userdata from Lua) is Lua 5.1's and LuaJIT's")
      return
    end
    rr.set_transport(nil)
    local proxy = newproxy(true)
    getmetatable(proxy).__index = host:transport()
    rawset(_G, "c_rpc", proxy)
    local a = host:call(2, "rpcfix.echo", "echo", { "a" })
    host:pump()
    assert.same({ n = 1, "a" }, a.results)
  end)

  it("a c_rpc whose lookup raises raises at the call site and starts nothing", function()
    rr.set_transport(nil)
    rawset(_G, "c_rpc", setmetatable({}, { __index = function() error("no such service", 0) end }))
    local fired = 0
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", {}, function() fired = fired + 1 end,
      { on_error = function() fired = fired + 1 end })
    assert.is_false(ok)
    assert.equal("no such service", err)
    assert.equal(0, rr.stats().in_flight)
    host:advance(20)
    assert.equal(0, fired)
  end)

  it("with neither a transport nor c_rpc the call fails with kind transport", function()
    rr.set_transport(nil)
    local a = host:call(2, "rpcfix.echo", "echo", { "a" })
    assert.equal(0, a.fired)
    rr.poll()
    assert.equal(1, a.fired)
    assert.equal("transport", a.err and a.err.kind)
  end)

  it("a nil return from request_svr is not a failure (only exactly false is)", function()
    local t = host:transport()
    rr.set_transport({
      request_svr = function(...) t.request_svr(...) end, -- returns nothing
      reply_to = t.reply_to,
    })
    local a = host:call(2, "rpcfix.echo", "echo", { "ok" })
    host:pump()
    assert.same({ n = 1, "ok" }, a.results)
  end)
end)

describe("svc.caller()", function()
  it("is nil outside a served call", function()
    assert.is_nil(svc.caller())
  end)

  it("inside a served function: the caller's server id and the call id", function()
    host:install({ self_id = 7 })
    svc.allow("rpcfix.echo", "caller")
    local rec = host:call(2, "rpcfix.echo", "caller", {})
    host:pump()
    assert.same({ n = 2, 7, rec.id }, rec.results)
    assert.is_nil(svc.caller(), "nil again after the served call")
  end)
end)

describe("stats", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("has every counter and returns a fresh table each time", function()
    local s = rr.stats()
    for _, k in ipairs({ "sent", "completed", "timed_out", "late_replies", "in_flight", "bytes_out", "bytes_in",
      "served", "served_failed" }) do
      assert.equal("number", type(s[k]), "stats()." .. k)
    end
    assert.equal("table", type(s.failed))
    local s2 = rr.stats()
    assert.is_false(rawequal(s, s2))
    assert.is_false(rawequal(s.failed, s2.failed))
    s.sent = -1
    s.failed.runtime = 1e9
    assert.is_true(rr.stats().sent >= 0)
    assert.is_true((rr.stats().failed.runtime or 0) < 1e9)
  end)

  it("counts a successful call", function()
    local rec = host:call(2, "rpcfix.echo", "echo", { "payload" })
    assert.equal(1, host:in_flight())
    host:pump()
    assert.equal(1, rec.fired)
    local d = host:delta()
    assert.equal(1, d.sent)
    assert.equal(1, d.completed)
    assert.same({}, setmetatable(d.failed, nil))
    assert.equal(0, d.timed_out)
    assert.equal(0, d.late_replies)
    assert.equal(0, d.in_flight)
    assert.equal(1, d.served)
    assert.equal(0, d.served_failed)
    assert.is_true(d.bytes_out >= #host.requests[1].bytes, "bytes_out counts the request")
    assert.is_true(d.bytes_in >= #host.replies[1].bytes, "bytes_in counts the reply")
  end)

  it("bytes: each side counts what it sends and what it receives, exactly", function()
    -- This process plays both sides here: the request goes out and comes in, the reply too.
    local rec = host:call(2, "rpcfix.echo", "echo", { "payload" })
    host:pump()
    assert.equal(1, rec.fired)
    local d = host:delta()
    local request, reply = #host.requests[1].bytes, #host.replies[1].bytes
    assert.equal(request + reply, d.bytes_out)
    assert.equal(request + reply, d.bytes_in)
  end)

  it("sent counts only requests the transport took; every call ends up counted once", function()
    host:install({ max_pending_per_server = 1 })
    svc.allow("rpcfix.echo")
    host:fault({ on = "request", action = "return_false" })
    local refused = host:call(2, "rpcfix.echo", "echo", { 1 })
    local first = host:call(3, "rpcfix.echo", "echo", { 2 })
    local overloaded = host:call(3, "rpcfix.echo", "echo", { 3 })
    host:pump()
    assert.equal("transport", refused.err.kind)
    assert.equal("overloaded", overloaded.err.kind)
    assert.is_nil(first.err)
    local d = host:delta()
    assert.equal(1, d.sent, "only the request that went out")
    assert.equal(#host.requests[2].bytes + #host.replies[1].bytes, d.bytes_out)
    local failed = 0
    for _, count in pairs(d.failed) do failed = failed + count end
    assert.equal(3, d.completed + failed + d.in_flight, "three calls, each counted once")
  end)

  it("a late reply's bytes are received bytes too", function()
    host:fault({ on = "reply", action = "delay" })
    local rec = host:call(2, "rpcfix.echo", "echo", { "late" }, { timeout = 1 })
    host:pump()
    host:advance(2)
    assert.equal("timeout", rec.err.kind)
    host:release()
    host:pump()
    local d = host:delta()
    assert.equal(1, d.late_replies)
    assert.equal(#host.requests[1].bytes + #host.replies[1].bytes, d.bytes_in)
  end)

  it("counts a failed served call in served_failed", function()
    local rec = host:call(2, "rpcfix.echo", "raise", { "x" })
    host:pump()
    assert.equal("runtime", rec.err.kind)
    local d = host:delta()
    assert.equal(1, d.served_failed)
    assert.equal(1, d.failed.runtime)
  end)
end)

describe("bad arguments raise at the call site, naming the argument", function()
  local function f() end
  local cases = {
    { "#2 to 'run_mfa' (string expected, got nil)", 2, nil, "f", {} },
    { "#3 to 'run_mfa' (string expected, got table)", 2, "m", {}, {} },
    { "#3 to 'run_mfa' (string expected, got nil)", 2, "m", nil, {} },
    { "#4 to 'run_mfa' (table expected, got string)", 2, "m", "f", "args" },
    { "#4 to 'run_mfa' (table expected, got nil)", 2, "m", "f", nil, f },
    { "#1 to 'run_mfa'", nil, "m", "f", {} },
    { "#1 to 'run_mfa'", true, "m", "f", {} },
    { "#1 to 'run_mfa'", {}, "m", "f", {} },
    { "#5 to 'run_mfa'", 2, "m", "f", {}, "not a function" },
    { "#6 to 'run_mfa'", 2, "m", "f", {}, f, 42 },
    { "#2 to 'run_mfa' (module name is empty)", 2, "", "f", {} },
    { "#3 to 'run_mfa' (function name is empty)", 2, "m", "", {} },
    { "#2 to 'run_mfa' (module name is not valid UTF-8 (byte 4 of", 2, "mod\255", "f", {} },
    { "#3 to 'run_mfa' (function name is not valid UTF-8 (byte 1 of", 2, "m", "\192\128", {} },
    { "#6 to 'run_mfa' (unknown option 'timout'; options are on_error, timeout)", 2, "m", "f", {}, f,
      { timout = 5 } },
    { "#6 to 'run_mfa' (opts.timeout must be a positive number of seconds, got string)", 2, "m", "f", {}, f,
      { timeout = "5" } },
  }
  for i, c in ipairs(cases) do
    it("run_mfa case " .. i .. ": bad argument " .. c[1], function()
      local ok, err = pcall(rr.run_mfa, unpack(c, 2, 7))
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("bad argument " .. c[1], 1, true), tostring(err))
      assert.equal(0, #host.requests)
      assert.equal(0, host:in_flight())
    end)
  end

  it("bad option values name the option", function()
    local ok, err = pcall(rr.run_mfa, 2, "m", "f", {}, f, { timeout = "soon" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("timeout", 1, true), tostring(err))
    ok, err = pcall(rr.run_mfa, 2, "m", "f", {}, f, { on_error = 5 })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("on_error", 1, true), tostring(err))
    assert.equal(0, #host.requests)
  end)

  it("rr.call names its arguments too", function()
    local co = coroutine.create(function() return rr.call(2, nil, "f", {}) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad argument #2 to 'call' (string expected, got nil)", 1, true), tostring(err))
    co = coroutine.create(function() return rr.call(2, "m", "f", 7) end)
    ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad argument #4 to 'call' (table expected, got number)", 1, true), tostring(err))
    assert.equal(0, #host.requests)
  end)

  it("option errors point at the line that called (no frame lost to a tail call)", function()
    for _, opts in ipairs({ { timeout = -1 }, "x", { on_error = 5 }, { bogus = true } }) do
      local line
      local ok, err = pcall(function()
        line = debug.getinfo(1, "l").currentline; rr.run_mfa(2, "m", "f", {}, f, opts)
      end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("rpc_calls_spec.lua:" .. line .. ": bad argument #6", 1, true), tostring(err))
    end
  end)

  it("rr.call refuses run_mfa's on_error, and names and options like run_mfa", function()
    for _, c in ipairs({
      { "opts.on_error is for run_mfa: rr.call raises the error object instead", "m", "f", { on_error = f } },
      { "#5 to 'call' (unknown option 'timout'; options are timeout)", "m", "f", { timout = 1 } },
      { "#2 to 'call' (module name is not valid UTF-8", "m\255", "f" },
      { "#3 to 'call' (function name is empty)", "m", "" },
    }) do
      local co = coroutine.create(function() return rr.call(2, c[2], c[3], {}, c[4]) end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(c[1], 1, true), tostring(err))
    end
    assert.equal(0, #host.requests)
    assert.equal(0, host:in_flight())
  end)

  it("configure takes math.huge as 'no limit' and refuses numbers that cannot be limits", function()
    host:install({ max_message_bytes = math.huge, max_depth = math.huge, max_pending = math.huge,
      max_pending_per_server = math.huge })
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "echo", { 1, "two" })
    host:pump()
    assert.same({ n = 2, 1, "two" }, rec.results)
    for _, bad in ipairs({ { max_message_bytes = 2 ^ 60 }, { max_depth = 1.5 }, { max_pending = 0 },
      { self_id = math.huge }, { self_id = 2 ^ 60 }, { self_id = 0 / 0 } }) do
      local ok, err = pcall(rr.configure, bad)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("bad argument #1 to 'configure'", 1, true), tostring(err))
    end
  end)

  it("configure{self_id = false} clears the server's own id", function()
    host:install({ self_id = 7 })
    svc.allow("rpcfix.echo")
    host:call(2, "rpcfix.echo", "echo", {})
    assert.equal(7, legacy.varint_of(host.requests[1].bytes, 4))
    rr.configure({ self_id = false })
    host:call(2, "rpcfix.echo", "echo", {})
    assert.is_nil(legacy.varint_of(host.requests[2].bytes, 4), "no caller id once cleared")
    host:pump()
  end)

  it("a huge integer timeout is sent as the largest budget, not wrapped to 0", function()
    local huge = math.maxinteger or 2 ^ 53
    host:install({ timeout = huge })
    host:call(2, "rpcfix.echo", "echo", {})
    assert.equal(4294967295, legacy.varint_of(host.requests[1].bytes, 6))
    host:pump()
  end)

  it("configure rejects unknown keys and wrong types", function()
    local ok, err = pcall(rr.configure, { bogus = 1 })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad argument #1 to 'configure'", 1, true), tostring(err))
    assert.is_truthy(tostring(err):find("bogus", 1, true), tostring(err))
    for _, bad in ipairs({ { timeout = "x" }, { max_pending = {} }, { logger = 5 }, { clock = "now" } }) do
      ok, err = pcall(rr.configure, bad)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("bad argument #1 to 'configure'", 1, true), tostring(err))
    end
    ok, err = pcall(rr.configure, "timeout=1")
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad argument #1 to 'configure'", 1, true), tostring(err))
  end)
end)

describe("rr.is_error", function()
  it("is true only for the module's error objects", function()
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "raise", { "x" })
    host:pump()
    assert.is_true(rr.is_error(rec.err))
    assert.is_false(rr.is_error("runtime"))
    assert.is_false(rr.is_error({ kind = "runtime", message = "x" }))
    assert.is_false(rr.is_error(nil))
    assert.is_false(rr.is_error(42))
  end)
end)

describe("configure and the books", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("counts integer server ids above 2^53 apart for max_pending_per_server", function()
    if not math.type then
      pending("integers above 2^53 are Lua 5.3's and 5.4's")
      return
    end
    rr.configure({ max_pending_per_server = 1 })
    local big = math.tointeger(2 ^ 53)
    -- 2^53 and 2^53 + 1 are the same double.
    local a = host:call(big, "rpcfix.echo", "echo", { 1 })
    local b = host:call(big + 1, "rpcfix.echo", "echo", { 2 })
    rr.poll()
    assert.is_nil(b.err, "a different server, with no call in flight")
    host:pump()
    assert.same({ n = 1, 1 }, a.results)
    assert.same({ n = 1, 2 }, b.results)
  end)

  it("takes a self_id given as an integral float up to 2^53", function()
    rr.configure({ self_id = 2 ^ 53 })
    local rec = host:call(2 ^ 53, "rpcfix.echo", "echo", { "here" })
    rr.poll()
    assert.equal(0, #host.requests, "served on this server, not sent")
    assert.same({ n = 1, "here" }, rec.results)
  end)

  it("refuses a clock that reads NaN or raises, and changes nothing", function()
    local t = 100
    rr.configure({ clock = function() return t end })
    host:fault({ on = "request", action = "drop", times = 1 })
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 }, { timeout = 5 })
    host:pump()
    local ok, err = pcall(rr.configure, { timeout = 3, clock = function() return 0 / 0 end })
    assert.is_false(ok)
    assert.is_truthy(err:find("the new clock returned", 1, true), err)
    ok, err = pcall(rr.configure, { timeout = 3, clock = function() error("clock not ready", 0) end })
    assert.is_false(ok)
    assert.equal("clock not ready", err)
    assert.equal(10, rr._internal.settings.timeout, "the settings are as they were")
    t = 104
    rr.poll()
    assert.equal(0, rec.fired, "the call keeps its 5 s")
    t = 106
    rr.poll()
    assert.equal("timeout", rec.err and rec.err.kind)
    host:install()
  end)
end)
