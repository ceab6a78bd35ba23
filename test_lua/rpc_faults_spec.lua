-- Fault injection on the fake transport: drop, delay, duplicate, reorder, corrupt (requests
-- and replies), then seeded random chaos. Whatever happens, every call ends exactly once (one
-- of on_result / on_error), results go to the right call, and nothing is left in flight.
local Host = require("support.fake_host")
Host.setup_paths()
local rr, svc = Host.modules()

local host

local function new_host(opts)
  opts = opts or {}
  opts.rr, opts.svc = rr, svc
  host = Host.new(opts)
  host:install({ timeout = 5 })
  svc.allow("rpcfix.echo")
  svc.allow("event.dispatcher", "dispatch")
  require("event.dispatcher").reset()
  return host
end

before_each(function()
  new_host({ seed = 31 })
end)

after_each(function()
  assert.same({}, host:finish())
end)

describe("drop", function()
  it("a dropped request ends in a timeout, the function never ran", function()
    host:fault({ on = "request", action = "drop" })
    local rec = host:call(2, "event.dispatcher", "dispatch", { "x" })
    host:pump()
    host:advance(5.5)
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    assert.equal(0, #require("event.dispatcher").calls)
  end)

  it("a dropped reply ends in a timeout, the function ran once", function()
    host:fault({ on = "reply", action = "drop" })
    local rec = host:call(2, "event.dispatcher", "dispatch", { "x" })
    host:pump()
    assert.equal(0, rec.fired)
    host:advance(5.5)
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    assert.equal(1, #require("event.dispatcher").calls)
  end)
end)

describe("delay", function()
  it("a reply held for some steps still completes before the timeout", function()
    host:fault({ on = "reply", action = "delay", hold = 7 })
    local slow = host:call(2, "rpcfix.echo", "echo", { "slow" })
    local fast = host:call(3, "rpcfix.echo", "echo", { "fast" })
    host:pump()
    assert.same({ n = 1, "slow" }, slow.results)
    assert.same({ n = 1, "fast" }, fast.results)
    assert.equal(1, host.counts.delayed)
  end)

  it("a reply held past the timeout is late: timeout once, the reply dropped and counted", function()
    host:fault({ on = "reply", action = "delay", hold = true })
    local rec = host:call(2, "rpcfix.echo", "echo", { "x" }, { timeout = 1 })
    host:pump()
    host:advance(1.01)
    host:release()
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    assert.equal(1, host:delta().late_replies)
  end)
end)

describe("duplicate", function()
  it("a duplicated reply: on_result exactly once, the copy counted as late", function()
    host:fault({ on = "reply", action = "duplicate" })
    local rec = host:call(2, "rpcfix.echo", "echo", { "once" })
    host:pump()
    assert.equal(2, host.counts.delivered, "the host delivered the reply twice")
    assert.equal(1, rec.fired)
    assert.same({ n = 1, "once" }, rec.results)
    local d = host:delta()
    assert.equal(1, d.late_replies)
    assert.equal(1, d.completed)
  end)

  it("a duplicated error reply: on_error exactly once", function()
    host:fault({ on = "reply", action = "duplicate" })
    local rec = host:call(2, "rpcfix.echo", "raise", { "x" })
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("runtime", rec.err.kind)
    assert.equal(1, host:delta().late_replies)
  end)

  it("a duplicated reply to rr.call resumes the coroutine once", function()
    host:fault({ on = "reply", action = "duplicate" })
    local runs = 0
    local co = Host.spawn(function()
      local r = Host.pack(rr.call(2, "rpcfix.echo", "echo", { "once" }))
      runs = runs + 1
      return Host.unpack(r)
    end)
    host:pump()
    assert.is_true(co.done)
    assert.equal(1, runs)
    assert.same({ n = 1, "once" }, co.results)
    assert.equal(1, host:delta().late_replies)
  end)

  it("a duplicated request is served twice but answered to the caller once", function()
    host:fault({ on = "request", action = "duplicate" })
    local rec = host:call(2, "event.dispatcher", "dispatch", { "dup" })
    host:pump()
    assert.equal(2, #require("event.dispatcher").calls, "the host really delivered it twice")
    assert.equal(1, rec.fired)
    assert.same({ n = 1, true }, rec.results)
    local d = host:delta()
    assert.equal(1, d.late_replies)
    assert.equal(2, d.served)
  end)

  it("a reply duplicated by the host at once (inside the transport callback) fires once", function()
    host.sync = true
    host:fault({ on = "reply", action = "duplicate" })
    local rec = host:call(2, "rpcfix.echo", "echo", { "s" })
    assert.equal(0, rec.fired)
    rr.poll()
    rr.poll()
    assert.equal(1, rec.fired)
    assert.same({ n = 1, "s" }, rec.results)
    assert.equal(1, host:delta().late_replies)
  end)
end)

describe("reorder", function()
  it("replies in any order go to their own calls", function()
    local recs = {}
    for i = 1, 40 do
      recs[i] = host:call(2 + i % 4, "rpcfix.echo", "echo", { i, "v" .. i })
    end
    host:shuffle()          -- requests served in random order
    for _ = 1, 40 do host:step() end
    host:shuffle()          -- replies delivered in random order
    host:pump()
    for i = 1, 40 do
      assert.equal(1, recs[i].fired)
      assert.same({ n = 2, i, "v" .. i }, recs[i].results)
    end
  end)

  it("a reply put at the head of the queue overtakes the others", function()
    local a = host:call(2, "rpcfix.echo", "echo", { "a" })
    local b = host:call(2, "rpcfix.echo", "echo", { "b" })
    host:fault({ on = "reply", action = "reorder", match = function(ev) return ev.ctx == 2 end })
    host:step() -- serve a (reply queued at the tail)
    host:step() -- serve b (reply queued at the head)
    host:step() -- deliver b's reply first
    assert.equal(0, a.fired)
    assert.same({ n = 1, "b" }, b.results)
    host:pump()
    assert.same({ n = 1, "a" }, a.results)
  end)
end)

describe("corrupt", function()
  -- 30 echo calls under `fault`, run until every one has ended (answered or timed out).
  local function thirty_calls_under(fault)
    local recs = {}
    host:fault(fault)
    for i = 1, 30 do
      recs[i] = host:call(2, "rpcfix.echo", "echo", { i })
    end
    host:pump()
    host:advance(6)
    return recs
  end

  for _, mode in ipairs({ "garbage", "flip", "truncate" }) do
    it("a request corrupted by '" .. mode .. "' ends exactly once, with a classified error or a result", function()
      local recs = thirty_calls_under({ on = "request", action = "corrupt", mode = mode, times = 30 })
      for i = 1, 30 do
        local r = recs[i]
        assert.equal(1, r.fired)
        if r.err then
          assert.is_true(rr.is_error(r.err))
        else
          -- a flip inside a string can still make a valid request for something else; it must
          -- never produce a reply to another call
          assert.equal("table", type(r.results))
        end
        if mode == "garbage" then
          assert.equal("bad_request", r.err and r.err.kind)
        end
      end
    end)

    it("a reply corrupted by '" .. mode .. "' ends exactly once", function()
      local recs = thirty_calls_under({ on = "reply", action = "corrupt", mode = mode, times = 30 })
      for i = 1, 30 do
        local r = recs[i]
        assert.equal(1, r.fired)
        if r.err then assert.is_true(rr.is_error(r.err)) end
        if mode == "garbage" then
          assert.equal("bad_response", r.err and r.err.kind)
        end
      end
    end)
  end

  it("a duplicated corrupt reply: bad_response once, the copy counted as late", function()
    host:fault({ on = "reply", action = "corrupt", mode = "garbage" })
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 })
    -- the garbage reply is duplicated after it was corrupted
    host:fault({ on = "reply", action = "duplicate" })
    host:pump()
    assert.equal(1, rec.fired)
    assert.equal("bad_response", rec.err.kind)
    assert.equal(1, host:delta().late_replies)
  end)
end)

describe("chaos (seeded)", function()
  local KIND_OK = { timeout = true, bad_request = true, bad_response = true }

  for _, seed in ipairs({ 1, 2, 3, 4 }) do
    it("seed " .. seed .. ": 300 calls under random faults all end exactly once", function()
      new_host({
        seed = seed,
        chaos = {
          drop_request = 0.05, drop_reply = 0.05, duplicate_reply = 0.1, delay_reply = 0.15,
          reorder = 0.2, corrupt_request = 0.03, corrupt_reply = 0.03, max_hold = 15,
        },
      })
      local rand = Host.prng(seed * 7919)
      local recs = {}
      local N = 300
      local issued = 0
      while issued < N do
        for _ = 1, rand(1, 8) do
          if issued < N then
            issued = issued + 1
            local token = "t" .. issued
            local opts = nil
            if rand() < 0.3 then opts = { timeout = rand(1, 4) } end
            if rand() < 0.5 then
              recs[issued] = host:call(2 + rand(0, 4), "rpcfix.echo", "echo", { token, nil, issued, n = 3 }, opts)
              recs[issued].token = token
            else
              local spawn = Host.YIELD_ACROSS_PCALL and Host.spawn_catch or Host.spawn
              local co = spawn(function()
                return rr.call(2 + rand(0, 4), "rpcfix.echo", "echo", { token, nil, issued, n = 3 }, opts)
              end)
              recs[issued] = { co = co, token = token }
            end
            recs[issued].i = issued
          end
        end
        host:pump(rand(10, 40))
        host:advance(rand() * 0.5)
      end
      host:pump()
      host:advance(10)
      host:pump()
      host:advance(10)

      local results, errors, by_kind = 0, 0, {}
      for i = 1, N do
        local r = recs[i]
        if r.co then
          assert.equal("dead", coroutine.status(r.co.co), "call " .. i .. " never ended")
          if r.co.done and r.co.ok then
            results = results + 1
            assert.same({ n = 3, r.token, nil, i }, r.co.results)
          else
            -- rr.call raised (caught by spawn_catch; on PUC 5.1 it ended the coroutine)
            errors = errors + 1
            if r.co.err ~= nil then
              assert.is_true(rr.is_error(r.co.err), tostring(r.co.err))
              assert.is_true(KIND_OK[r.co.err.kind] ~= nil, "unexpected kind " .. tostring(r.co.err.kind))
            end
          end
        else
          assert.equal(1, r.fired, "call " .. i .. " fired " .. r.fired .. " times")
          if r.err then
            errors = errors + 1
            assert.is_true(KIND_OK[r.err.kind] ~= nil, "unexpected kind " .. tostring(r.err.kind))
            by_kind[r.err.kind] = (by_kind[r.err.kind] or 0) + 1
          else
            results = results + 1
            assert.same({ n = 3, r.token, nil, i }, r.results)
          end
        end
      end
      assert.equal(N, results + errors)
      for _, what in ipairs({ "dropped", "duplicated", "delayed", "reordered", "corrupted" }) do
        assert.is_true(host.counts[what] > 0, "the chaos run " .. what .. " something")
      end
      local summary = {}
      for kind, v in pairs(by_kind) do summary[#summary + 1] = kind .. "=" .. v end
      table.sort(summary)
      assert.is_true(results > N / 2, "most calls succeed (" .. results .. " ok; run_mfa errors: "
        .. table.concat(summary, ", ") .. ")")
      local d = host:delta()
      assert.equal(0, d.in_flight)
      local failed_total = 0
      for kind, v in pairs(d.failed) do
        assert.is_true(KIND_OK[kind] ~= nil, "stats counted a failure of kind " .. kind)
        failed_total = failed_total + v
      end
      assert.equal(errors, failed_total, "stats().failed adds up to the errors seen")
      for kind, v in pairs(by_kind) do
        assert.is_true(d.failed[kind] >= v)
      end
      -- every reply the host delivered either ended its call or was counted late
      local ended_by_reply = results + (d.failed.bad_request or 0) + (d.failed.bad_response or 0)
      assert.equal(host.counts.delivered - ended_by_reply, d.late_replies,
        "late_replies = replies delivered (" .. host.counts.delivered .. ") - calls they ended (" .. ended_by_reply .. ")")
    end)
  end
end)
