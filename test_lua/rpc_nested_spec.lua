-- Served functions run in a coroutine, so they may rr.call another server (nested calls); the
-- reply to the outer caller goes out when the served function returns. Server ids 1 (us),
-- 2 and 3 are all played by this one process (fake_host).
--
-- PUC Lua 5.1 cannot yield across pcall: a served function that wraps rr.call in pcall is a
-- 5.2+/LuaJIT-only case. Plain nested calls (no pcall around them) work on every version.
local Host = require("support.fake_host")
local legacy = require("support.legacy_proto")
Host.setup_paths()
local rr, svc = Host.modules()

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 53 })
  host:install({ self_id = 1 })
  svc.allow("rpcfix.echo")
  svc.allow("rpcfix.nested")
end)

after_each(function()
  assert.same({}, host:finish())
end)

describe("worker coroutines resumed by someone else", function()
  it("a served function parked in rr.call: its caller gets a runtime error at once", function()
    host:fault({ on = "request", action = "drop", svr_id = 3, times = math.huge })
    local rec = host:call(2, "rpcfix.nested", "kept_relay", { 3, "rpcfix.echo", "echo", "x" })
    host:pump()
    assert.equal(0, rec.fired)
    local kept = require("rpcfix.nested").kept
    assert.equal("suspended", coroutine.status(kept))
    coroutine.resume(kept, "a scheduler's own wake-up")
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("runtime", rec.err.kind)
    assert.is_truthy(rec.err.message:find("woke the coroutine before call", 1, true), rec.err.message)
    assert.equal(0, host:unreplied())
    assert.equal(0, rr._internal.books.get("serving"))
  end)

  it("an idle worker cannot be resumed; later calls are served once each", function()
    local rec = host:call(2, "rpcfix.echo", "keep_coroutine", { "first" })
    host:pump()
    assert.same({ n = 1, "first" }, rec.results)
    local kept = require("rpcfix.echo").kept
    -- Idle in the pool, it has no function to go on with: nothing else can resume it.
    assert.equal("dead", coroutine.status(kept), "idle in the pool")
    local resumed, why = coroutine.resume(kept, function() return "not a job" end)
    assert.is_false(resumed)
    assert.is_truthy(tostring(why):find("dead", 1, true), why)
    for i = 1, 3 do
      local r = host:call(2, "rpcfix.echo", "echo", { i })
      host:pump()
      assert.same({ n = 1, i }, r.results)
    end
    assert.equal(0, host:unreplied())
    assert.equal(0, rr._internal.books.get("serving"))
  end)
end)

describe("nested rr.call from a served function", function()
  it("1 -> 2 -> 3: the reply to 1 goes out when 2's function returns", function()
    local rec = host:call(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "echo", "a", nil, "c", nil, n = 7 })
    assert.equal(1, host:queued("request"))
    host:step() -- server 2 serves: its function calls server 3 and yields
    rr.poll()
    assert.equal(1, host:unreplied(), "server 2 has not replied yet")
    assert.equal(0, #host.replies)
    assert.equal(1, host:queued("request"), "server 2's nested request to 3 is queued")
    assert.equal(3, host.requests[2].svr_id)
    assert.equal(0, rec.fired)
    assert.equal(2, host:in_flight(), "our call and the nested one")

    host:step() -- server 3 serves echo: replies at once
    rr.poll()
    assert.equal(1, #host.replies)
    assert.equal(0, rec.fired)
    host:step() -- the reply reaches server 2's rr.call: 2's function returns and replies to 1
    rr.poll()
    assert.equal(2, #host.replies, "2 replied when its function returned")
    assert.equal(1, host.replies[2].ctx, "the second reply is the one for our request (ctx 1)")
    assert.equal(0, rec.fired)
    host:pump()
    assert.equal(1, rec.fired)
    assert.same({ n = 4, "a", nil, "c", nil }, rec.results)
    assert.same({ "request 2", "serve 2 #1", "request 3", "serve 3 #2", "reply #2", "deliver 3 #2", "reply #1",
      "deliver 2 #1" }, host.events)
  end)

  it("a nested call without its own timeout gets its caller's budget, not the default", function()
    -- The budget starts when server 2 receives the request (it cannot see transit time); its
    -- function calls out at once, so the whole 2 s go on instead of the default timeout.
    host:call(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "echo", "x" }, { timeout = 2 })
    assert.equal(2000, legacy.varint_of(host.requests[1].bytes, 6))
    host:step() -- server 2 serves: its nested request to 3 is queued
    local nested = host.requests[2]
    assert.equal(3, nested.svr_id)
    assert.equal(2000, legacy.varint_of(nested.bytes, 6))
    host:pump()
  end)

  it("a later nested call gets only what is left of the caller's budget", function()
    host:call(2, "rpcfix.nested", "relay_twice", { 3, "rpcfix.echo", "echo", "x" }, { timeout = 2 })
    host:step() -- server 2 serves: first nested request to 3
    assert.equal(2000, legacy.varint_of(host.requests[2].bytes, 6))
    host:advance(0.5)
    host:step() -- server 3 answers the first call
    host:step() -- the answer reaches server 2: its function makes the second call
    local second = host.requests[3]
    assert.equal(3, second.svr_id)
    assert.equal(1500, legacy.varint_of(second.bytes, 6))
    host:pump()
  end)

  it("configure{clock = ...} keeps what is left of a served call's budget", function()
    -- A clock with another origin arrives while the served function waits in its first call:
    -- the budget's end must move with it, or the second call gets 1 ms (or far too long).
    host:call(2, "rpcfix.nested", "relay_twice", { 3, "rpcfix.echo", "echo", "x" }, { timeout = 2 })
    host:step()
    host:advance(0.5)
    rr.configure({ clock = function() return Host.clock() + 1e6 end })
    host:step()
    host:step()
    local second = host.requests[3]
    assert.equal(3, second.svr_id)
    assert.equal(1500, legacy.varint_of(second.bytes, 6))
    host:pump()
    rr.configure({ clock = Host.clock })
  end)

  it("an explicit timeout on the nested call wins over the caller's budget", function()
    host:call(2, "rpcfix.nested", "relay_timeout", { 10, 3, "rpcfix.echo", "echo", "x" }, { timeout = 2 })
    host:step()
    assert.equal(10000, legacy.varint_of(host.requests[2].bytes, 6))
    host:pump()
  end)

  it("rr.call from the caller's own coroutine through a nested hop", function()
    local co = Host.spawn(function()
      return rr.call(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "multi" })
    end)
    host:pump()
    assert.is_true(co.done)
    assert.same({ n = 5, 1, nil, "three", nil, nil }, co.results)
  end)

  it("two nested calls in sequence inside one served function", function()
    local rec = host:call(2, "rpcfix.nested", "fan", { 3, 4 })
    host:shuffle()
    host:pump()
    assert.same({ n = 4, "from", 3, "from", 4 }, rec.results)
  end)

  it("three levels: 1 -> 2 -> 3 -> 4", function()
    local rec = host:call(2, "rpcfix.nested", "relay",
      { 3, "rpcfix.nested", "relay", 4, "rpcfix.echo", "echo", "deep", n = 7 })
    host:pump()
    assert.same({ n = 1, "deep" }, rec.results)
  end)

  it("many served coroutines suspended at once, resumed in any order", function()
    local recs = {}
    for i = 1, 25 do
      recs[i] = host:call(2, "rpcfix.nested", "relay", { 3 + i % 2, "rpcfix.echo", "echo", i })
    end
    for _ = 1, 25 do host:step() end -- every served function is now waiting on its nested call
    assert.equal(25, host:unreplied())
    host:shuffle()
    host:pump()
    for i = 1, 25 do
      assert.same({ n = 1, i }, recs[i].results)
    end
  end)

  it("svc.caller() inside the nested hops, and unchanged across the yield", function()
    local rec = host:call(2, "rpcfix.nested", "relay_info", { 3, "rpcfix.echo", "caller" })
    host:pump()
    assert(rec.results, rec.err and tostring(rec.err))
    local info = rec.results[1]
    assert.same({ n = 2, 1, rec.id }, info.before)
    assert.same(info.before, info.after, "svc.caller() is the same after the nested call resumed")
    -- server 3 was called by "server 2" = this process, whose self_id is 1; the call id is the
    -- nested call's id, not ours
    assert.equal(2, info.results.n)
    assert.equal(1, info.results[1])
    assert.is_true(info.results[2] ~= rec.id, "the nested call has its own id")
  end)

  it("run_mfa with a callback inside a served function (no yield)", function()
    local nested = require("rpcfix.nested")
    nested.seen = {}
    local rec = host:call(2, "rpcfix.nested", "fire", { 3 })
    host:pump()
    assert.same({ n = 1, "fired" }, rec.results)
    assert.same({ { n = 1, "fired" } }, nested.seen)
  end)

  it("a nested error not caught by the served function: runtime error for the outer caller", function()
    local rec = host:call(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "raise", "inner boom" })
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("runtime", rec.err.kind)
    assert.is_truthy(rec.err.message:find("inner boom", 1, true), rec.err.message)
  end)

  it("a nested timeout inside a served function fails the outer call", function()
    host:fault({ on = "request", svr_id = 3, action = "drop" })
    local rec = host:call(2, "rpcfix.nested", "relay_timeout", { 1, 3, "rpcfix.echo", "echo", "x" }, { timeout = 5 })
    host:pump()
    assert.equal(0, rec.fired)
    assert.equal(1, host:unreplied(), "server 2 waits for server 3")
    host:advance(1.5) -- the nested call times out; 2's function raises; 2 replies
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("runtime", rec.err.kind)
    assert.is_truthy(rec.err.message:find("timeout", 1, true), rec.err.message)
  end)

  it("the outer call times out while the inner one is still pending; the late reply is dropped", function()
    host:fault({ on = "request", svr_id = 3, action = "delay", hold = true })
    -- The nested call asks for 10 s explicitly (more than the caller's 2 s budget it would
    -- otherwise inherit), so it is still pending when the outer call times out.
    local rec = host:call(2, "rpcfix.nested", "relay_timeout", { 10, 3, "rpcfix.echo", "echo", "x" }, { timeout = 2 })
    host:pump()
    host:advance(2.5) -- outer (2 s) expires; the nested call (10 s) is still pending
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    host:release()
    host:pump() -- 3 answers, 2's function returns and replies to 1: too late
    assert.equal(1, rec.fired)
    assert.equal(1, host:delta().late_replies)
  end)

  it("a served function that catches the nested error (pcall across the yield)", function()
    if not Host.YIELD_ACROSS_PCALL then
      -- PUC 5.1: pcall(rr.call, ...) inside a served coroutine cannot yield. The served call
      -- must still end with one classified reply (runtime), never hang or crash.
      local rec = host:call(2, "rpcfix.nested", "relay_caught", { 3, "rpcfix.echo", "raise", "inner" })
      host:pump()
      host:advance(11)
      host:pump()
      assert.equal(1, rec.fired)
      if rec.err then
        assert.is_true(rr.is_error(rec.err))
      end
      return
    end
    local rec = host:call(2, "rpcfix.nested", "relay_caught", { 3, "rpcfix.echo", "raise", "inner" })
    host:pump()
    assert(rec.results, rec.err and tostring(rec.err))
    assert.equal(true, rec.results[1])
    assert.equal("runtime", rec.results[2])
    assert.is_truthy(tostring(rec.results[3]):find("inner", 1, true))
    assert.equal(3, rec.results[4])
    assert.equal("rpcfix.echo", rec.results[5])
    assert.equal("raise", rec.results[6])
  end)

  it("a served function may call the server it runs on (itself)", function()
    local rec = host:call(2, "rpcfix.nested", "relay", { 2, "rpcfix.echo", "echo", "me" })
    host:pump()
    assert.same({ n = 1, "me" }, rec.results)
  end)
end)

describe("a worker reused after rr.call could not yield", function()
  it("answers a later job's plain yield at once", function()
    -- On 5.1 and 5.2 the request goes out before the yield fails (in a table.sort
    -- comparator); on 5.3+ rr.call refuses at once. Either way the next job in the same worker
    -- must not be taken for one parked in rr.call.
    host:fault({ on = "request", action = "drop", svr_id = 3, times = math.huge })
    package.loaded.nested_sort = {
      sorter = function()
        return pcall(table.sort, { 2, 1 }, function(a, b)
          rr.call(3, "rpcfix.echo", "echo", {})
          return a < b
        end)
      end,
      plain_yield = function() coroutine.yield("x") return "never" end,
    }
    svc.allow("nested_sort")
    local first = host:call(2, "nested_sort", "sorter", {})
    host:pump()
    assert.is_false(first.results[1])
    local second = host:call(2, "nested_sort", "plain_yield", {})
    host:pump()
    assert.equal(1, second.fired)
    assert.equal("runtime", second.err.kind)
    assert.equal("a served function may only yield through rr.call", second.err.message)
    assert.equal(0, rr._internal.books.get("serving"))
    package.loaded.nested_sort = nil
    host:advance(20) -- the dropped request to server 3 times out
  end)

  it("answers a plain yield at once in the job whose rr.call could not yield", function()
    host:fault({ on = "request", action = "drop", svr_id = 3, times = math.huge })
    package.loaded.nested_sort = {
      sort_then_yield = function()
        pcall(table.sort, { 2, 1 }, function(a, b)
          rr.call(3, "rpcfix.echo", "echo", {})
          return a < b
        end)
        coroutine.yield("x")
        return "never"
      end,
    }
    svc.allow("nested_sort")
    local rec = host:call(2, "nested_sort", "sort_then_yield", {})
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("a served function may only yield through rr.call", rec.err.message)
    assert.equal(0, rr._internal.books.get("serving"))
    package.loaded.nested_sort = nil
    host:advance(20)
  end)
end)

describe("a chain of calls to this server itself", function()
  it("deeper than the C stack allows: the first call ends once, and no job stays running", function()
    package.loaded.self_chain = {
      down = function(depth)
        if depth == 0 then return "bottom" end
        return rr.call(1, "self_chain", "down", { depth - 1 }, { timeout = 1000 })
      end,
    }
    svc.allow("self_chain")
    local rec = host:call(1, "self_chain", "down", { 150 }, { timeout = 1000 })
    host:pump()
    host:advance(2100)
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal(0, rr._internal.books.get("serving"))
    local shallow = host:call(1, "self_chain", "down", { 20 })
    host:pump()
    assert.same({ n = 1, "bottom" }, shallow.results)
    package.loaded.self_chain = nil
  end)
end)
