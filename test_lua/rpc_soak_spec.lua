-- Nothing left behind at scale: 100,000 calls (env RR_SOAK_CALLS, default 100000) through the
-- fake transport keep collectgarbage("count") flat, measured after a warm-up of 10,000 calls,
-- with a full collection before each measurement. Also with rr.call coroutines, with timeouts
-- (requests dropped) and with failing calls, at a tenth of the count each.
local Host = require("support.fake_host")
Host.setup_paths()
local rr, svc = Host.modules()

local CALLS = tonumber(os.getenv("RR_SOAK_CALLS") or "") or 100000
local WARMUP = math.min(10000, math.max(1000, math.floor(CALLS / 10)))
local BATCH = 100
-- tolerance: +10% or +256 KB, whichever is larger
local function limit(kb0)
  return kb0 + math.max(256, kb0 * 0.10)
end

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 67, record = false })
  host:install()
  svc.allow("rpcfix.echo")
end)

after_each(function()
  assert.same({}, host:finish())
end)

-- Collects until the count stops falling: Lua shrinks its string table by half at most per
-- cycle, so after a burst of short strings (one per reply) two cycles can leave it larger than
-- it was, by as much as a megabyte when earlier specs had grown it.
local function full_gc()
  local kb = math.huge
  for _ = 1, 12 do
    collectgarbage("collect")
    local now = collectgarbage("count")
    if now >= kb then return now end
    kb = now
  end
  return kb
end

-- Runs `n` calls in batches: issue BATCH, pump; `issue(i)` makes call i.
local function run(n, issue, after_batch)
  local i = 0
  while i < n do
    local top = math.min(n, i + BATCH)
    for j = i + 1, top do issue(j) end
    i = top
    host:pump(100000)
    if after_batch then after_batch() end
  end
end

-- `warmup` calls, then `n` measured ones, both through run(); fails when memory grew past
-- the tolerance over the measured ones. Returns how many calls were made in all.
local function assert_flat(warmup, n, issue, after_batch)
  run(warmup, issue, after_batch)
  local kb0 = full_gc()
  run(n, issue, after_batch)
  local kb1 = full_gc()
  assert.is_true(kb1 <= limit(kb0), string.format("memory grew from %.0f KB to %.0f KB over %d calls", kb0, kb1, n))
  return warmup + n
end

describe("soak: memory stays flat", function()
  it("calls with a one-day timeout, answered at once, ten milliseconds apart", function()
    -- Each 10 ms timeout slot that a call lands in keeps a small table until the slot
    -- expires; with a day-long timeout that used to be a day's worth of tables. Long
    -- timeouts now share wider slots.
    local n = math.floor(CALLS / 5)
    local done = 0
    local function on_result() done = done + 1 end
    local opts = { timeout = 86400 }
    local function issue()
      rr.run_mfa(2, "rpcfix.echo", "noop", {}, on_result, opts)
      host:advance(0.01)
    end
    local calls = assert_flat(WARMUP, n, issue)
    assert.equal(calls, done)
    assert.equal(0, host:in_flight())
  end)

  it("bursts of calls with a one-hour timeout, answered at once, leave no slot tables behind", function()
    -- A wide slot holds a burst's calls; its table used to keep that peak size (tens of KB
    -- per slot) until the slot expired an hour later, though every call had ended.
    local bursts, per_burst = math.max(10, math.floor(CALLS / 3000)), 1000
    local done = 0
    local function on_result() done = done + 1 end
    local opts = { timeout = 3600 }
    local function burst()
      for i = 1, per_burst do rr.run_mfa(2 + i % 10, "rpcfix.echo", "noop", {}, on_result, opts) end
      host:pump(100000)
      host:advance(5.12) -- one wide slot per burst
    end
    for _ = 1, 2 do burst() end
    local kb0 = full_gc()
    for _ = 1, bursts do burst() end
    local kb1 = full_gc()
    assert.is_true(kb1 <= limit(kb0), string.format("memory grew from %.0f KB to %.0f KB over %d bursts", kb0, kb1,
      bursts))
    assert.equal((bursts + 2) * per_burst, done)
    assert.equal(0, host:in_flight())
  end)

  it(CALLS .. " run_mfa calls of a no-op function", function()
    local done = 0
    local function on_result() done = done + 1 end
    local function issue() rr.run_mfa(2, "rpcfix.echo", "noop", {}, on_result) end
    local calls = assert_flat(WARMUP, CALLS, issue)
    assert.equal(calls, done)
    assert.equal(0, host:in_flight())
  end)

  it(math.floor(CALLS / 10) .. " rr.call round trips from coroutines, with arguments and results", function()
    local n = math.floor(CALLS / 10)
    local done = 0
    local function body(i)
      local a, b = rr.call(2 + i % 3, "rpcfix.echo", "echo", { i, "x", nil, n = 3 })
      if a == i and b == "x" then done = done + 1 end
    end
    local function issue(i)
      local co = coroutine.create(body)
      assert(coroutine.resume(co, i))
    end
    local calls = assert_flat(math.floor(WARMUP / 10), n, issue)
    assert.equal(calls, done)
  end)

  it("calls that time out (requests dropped) leave nothing behind", function()
    local n = math.floor(CALLS / 10)
    host:fault({ on = "request", action = "drop", times = math.huge })
    local errors = 0
    local opts = { timeout = 1, on_error = function() errors = errors + 1 end }
    local function issue() rr.run_mfa(3, "rpcfix.echo", "noop", {}, function() end, opts) end
    local function tick() host:advance(1.5) end
    local calls = assert_flat(math.floor(WARMUP / 10), n, issue, tick)
    assert.equal(calls, errors)
    assert.equal(0, host:in_flight())
  end)

  it("failing served calls (runtime errors with tracebacks) leave nothing behind", function()
    local n = math.floor(CALLS / 10)
    local errors = 0
    local opts = { on_error = function() errors = errors + 1 end }
    local function issue() rr.run_mfa(2, "rpcfix.echo", "raise", { "soak" }, function() end, opts) end
    local calls = assert_flat(math.floor(WARMUP / 10), n, issue)
    assert.equal(calls, errors)
  end)

  it("nested calls (served coroutines) leave nothing behind", function()
    svc.allow("rpcfix.nested")
    local n = math.floor(CALLS / 20)
    local done = 0
    local function on_result(v) if v == "n" then done = done + 1 end end
    local function issue() rr.run_mfa(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "echo", "n" }, on_result) end
    local calls = assert_flat(math.floor(WARMUP / 20), n, issue)
    assert.equal(calls, done)
  end)
end)
