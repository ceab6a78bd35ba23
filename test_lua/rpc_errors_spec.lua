-- Every error kind is produced, delivered to opts.on_error and raised by rr.call:
-- timeout, transport, overloaded, cancelled, not_allowed, not_found, bad_request, runtime,
-- bad_response. Plus the error object's fields and tostring, the logger for unhandled
-- failures, deny-by-default loading nothing, and timeouts with late replies dropped.
local Host = require("support.fake_host")
Host.setup_paths()
local legacy = require("support.legacy_proto")
local rr, svc = Host.modules()

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 23 })
  host:install()
  require("event.dispatcher").reset()
end)

after_each(function()
  assert.same({}, host:finish())
end)

local KINDS = {
  timeout = true, transport = true, overloaded = true, cancelled = true, not_allowed = true,
  not_found = true, bad_request = true, runtime = true, bad_response = true,
}

local function has(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

-- Checks the common shape of an error object.
local function check_err(err, kind, svr_id, module_name, func, call_id)
  assert.is_table(err, "the error is a table, got " .. type(err) .. ": " .. tostring(err))
  assert.is_true(rr.is_error(err), "rr.is_error(err)")
  assert.equal(kind, err.kind, "kind (message: " .. tostring(err.message) .. ")")
  assert.is_true(KINDS[err.kind] ~= nil)
  assert.equal("string", type(err.message))
  assert.is_true(#err.message > 0, "a non-empty message")
  assert.equal(svr_id, err.svr_id)
  assert.equal(module_name, err.module)
  assert.equal(func, err.func)
  if call_id ~= nil then assert.equal(call_id, err.call_id) end
  if kind ~= "runtime" then assert.is_nil(err.traceback, "traceback only for runtime errors") end
  local line = tostring(err)
  assert.equal("string", type(line))
  assert.is_nil(line:find("\n", 1, true), "tostring(err) is one line: " .. line)
  assert.is_truthy(line:find("^remote_runner:"), line)
  assert.is_truthy(has(line, module_name .. "." .. func), line)
  assert.is_truthy(has(line, tostring(svr_id)), line)
end

-- Each scenario: setup(host) prepares the failure and returns svr_id, module, func, args,
-- opts; drive(host) makes it happen; check(err) looks at the details.
local SCENARIOS = {
  {
    name = "timeout (request dropped, fake clock + poll)",
    kind = "timeout",
    setup = function(h)
      h:fault({ on = "request", action = "drop" })
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "echo", { 1 }, { timeout = 2 }
    end,
    drive = function(h)
      h:pump()
      h:advance(2.5)
    end,
  },
  {
    name = "transport: request_svr raises",
    kind = "transport",
    setup = function(h)
      h:fault({ on = "request", action = "raise", message = "socket closed" })
      return 2, "rpcfix.echo", "echo", {}
    end,
    check = function(err) assert.is_truthy(has(err.message, "socket closed"), err.message) end,
  },
  {
    name = "transport: request_svr returns false",
    kind = "transport",
    setup = function(h)
      h:fault({ on = "request", action = "return_false" })
      return 2, "rpcfix.echo", "echo", {}
    end,
  },
  {
    name = "transport: cb(nil, 'down')",
    kind = "transport",
    setup = function(h)
      h:fault({ on = "request", action = "fail", message = "down" })
      return 3, "rpcfix.echo", "echo", {}
    end,
    check = function(err) assert.is_truthy(has(err.message, "down"), err.message) end,
  },
  {
    name = "overloaded: max_pending",
    kind = "overloaded",
    setup = function(h)
      h:install({ max_pending = 2 })
      svc.allow("rpcfix.echo")
      rr.run_mfa(3, "rpcfix.echo", "noop", {})
      rr.run_mfa(4, "rpcfix.echo", "noop", {})
      return 2, "rpcfix.echo", "echo", {}
    end,
  },
  {
    name = "overloaded: max_pending_per_server",
    kind = "overloaded",
    setup = function(h)
      h:install({ max_pending_per_server = 1 })
      svc.allow("rpcfix.echo")
      rr.run_mfa(2, "rpcfix.echo", "noop", {})
      return 2, "rpcfix.echo", "echo", {}
    end,
  },
  {
    name = "not_allowed (deny by default; nothing is loaded)",
    kind = "not_allowed",
    setup = function()
      package.loaded["rpcfix.sentinel"] = nil
      return 2, "rpcfix.sentinel", "f", {}
    end,
    check = function(err)
      assert.is_truthy(has(err.message, 'svc.allow("rpcfix.sentinel", "f")'), err.message)
      assert.is_nil(package.loaded["rpcfix.sentinel"], "a denied call must not require the module")
    end,
  },
  {
    name = "not_allowed: another function of a module with one allowed function",
    kind = "not_allowed",
    setup = function()
      svc.allow("rpcfix.echo", "echo")
      return 2, "rpcfix.echo", "multi", {}
    end,
    check = function(err)
      assert.is_truthy(has(err.message, 'svc.allow("rpcfix.echo", "multi")'), err.message)
    end,
  },
  {
    name = "not_found: module",
    kind = "not_found",
    setup = function()
      svc.allow("rpcfix.no_such_module")
      return 2, "rpcfix.no_such_module", "f", {}
    end,
    check = function(err) assert.is_truthy(has(err.message, "rpcfix.no_such_module"), err.message) end,
  },
  {
    name = "not_found: function",
    kind = "not_found",
    setup = function()
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "no_such_function", {}
    end,
    check = function(err) assert.is_truthy(has(err.message, "no_such_function"), err.message) end,
  },
  {
    name = "bad_request: corrupt protobuf (garbage bytes)",
    kind = "bad_request",
    setup = function(h)
      svc.allow("rpcfix.echo")
      h:fault({ on = "request", action = "corrupt", mode = "garbage" })
      return 2, "rpcfix.echo", "echo", { 1 }
    end,
  },
  {
    name = "bad_request: corrupt protobuf (truncated inside a field)",
    kind = "bad_request",
    setup = function(h)
      svc.allow("event.dispatcher")
      -- tag + length of field 1 and 1 of its 16 bytes: a truncated length-delimited field
      h:fault({ on = "request", action = "corrupt", fn = function()
        return legacy.encode_request({ module_name = "event.dispatcher" }):sub(1, 3)
      end })
      return 2, "event.dispatcher", "dispatch", { 1 }
    end,
    check = function() assert.equal(0, #require("event.dispatcher").calls) end,
  },
  {
    name = "bad_request: arguments_dump that does not parse (code in it)",
    kind = "bad_request",
    setup = function(h)
      svc.allow("event.dispatcher")
      h:fault({ on = "request", action = "corrupt", fn = function()
        return legacy.encode_request({ module_name = "event.dispatcher", function_name = "dispatch",
          arguments_dump = "{os.exit(1)}" })
      end })
      return 2, "event.dispatcher", "dispatch", { 1 }
    end,
    check = function() assert.equal(0, #require("event.dispatcher").calls, "the function must not run") end,
  },
  {
    name = "bad_request: arguments_dump cut short",
    kind = "bad_request",
    setup = function(h)
      svc.allow("event.dispatcher")
      h:fault({ on = "request", action = "corrupt", fn = function()
        return legacy.encode_request({ module_name = "event.dispatcher", function_name = "dispatch",
          arguments_dump = "{1, 2, {" })
      end })
      return 2, "event.dispatcher", "dispatch", { 1 }
    end,
    check = function() assert.equal(0, #require("event.dispatcher").calls) end,
  },
  {
    name = "runtime: the function raised (message + traceback)",
    kind = "runtime",
    setup = function()
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "deep_raise", { "field" }
    end,
    check = function(err)
      assert.is_truthy(has(err.message, "index"), err.message)
      assert.equal("string", type(err.traceback))
      assert.is_truthy(has(err.traceback, "echo.lua"), err.traceback)
      assert.is_truthy(has(err.traceback, "inner_failure"), err.traceback)
    end,
  },
  {
    name = "runtime: error('boom')",
    kind = "runtime",
    setup = function()
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "raise", { "boom" }
    end,
    check = function(err)
      assert.is_truthy(has(err.message, "boom"), err.message)
      assert.is_truthy(has(tostring(err), "boom"), tostring(err))
      assert.equal("string", type(err.traceback))
    end,
  },
  {
    name = "runtime: error with a table value",
    kind = "runtime",
    setup = function()
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "raise_table", {}
    end,
    -- Its contents, not "table: 0x...": game code raises tables such as {code = 42}.
    check = function(err) assert.equal("{code=42}", err.message) end,
  },
  {
    name = "runtime: the function returned something it cannot send",
    kind = "runtime",
    setup = function()
      svc.allow("rpcfix.echo")
      return 2, "rpcfix.echo", "bad_return", {}
    end,
    check = function(err) assert.is_truthy(has(err.message, "function"), err.message) end,
  },
  {
    name = "bad_response: corrupt reply bytes",
    kind = "bad_response",
    setup = function(h)
      svc.allow("rpcfix.echo")
      h:fault({ on = "reply", action = "corrupt", mode = "garbage" })
      return 2, "rpcfix.echo", "echo", { 1 }
    end,
  },
  {
    name = "bad_response: a reply whose dump runs code",
    kind = "bad_response",
    setup = function(h)
      svc.allow("rpcfix.echo")
      h:fault({ on = "reply", action = "corrupt", fn = function()
        return legacy.encode_response("{1, os.exit(1), n = 2}")
      end })
      return 2, "rpcfix.echo", "echo", { 1 }
    end,
  },
}

describe("every error kind reaches opts.on_error", function()
  for _, sc in ipairs(SCENARIOS) do
    it(sc.name, function()
      local svr_id, m, f, args, opts = sc.setup(host)
      local rec = host:call(svr_id, m, f, args, opts)
      assert.equal(0, rec.fired, "never synchronously inside run_mfa")
      if sc.drive then sc.drive(host) else host:pump() end
      rr.poll()
      assert.equal(1, rec.fired, "exactly one callback")
      assert.is_nil(rec.results, "on_result must not fire")
      check_err(rec.err, sc.kind, svr_id, m, f, rec.id)
      if sc.check then sc.check(rec.err) end
      assert.equal(1, host:delta().failed[sc.kind], "stats().failed." .. sc.kind)
    end)
  end
end)

describe("every error kind is raised by rr.call", function()
  for _, sc in ipairs(SCENARIOS) do
    it(sc.name, function()
      local svr_id, m, f, args, opts = sc.setup(host)
      local co
      if Host.YIELD_ACROSS_PCALL then
        co = Host.spawn_catch(function() return rr.call(svr_id, m, f, args, opts) end)
      else
        -- PUC 5.1 cannot pcall across the yield: the error ends the coroutine instead.
        co = Host.spawn(function() return rr.call(svr_id, m, f, args, opts) end)
      end
      assert.is_false(co.done, "rr.call yields even when the call fails at once")
      if sc.drive then sc.drive(host) else host:pump() end
      rr.poll()
      assert.equal("dead", coroutine.status(co.co), "the coroutine was resumed")
      assert.is_nil(co.results, "rr.call must raise, not return")
      if Host.YIELD_ACROSS_PCALL then
        assert.is_false(co.ok)
        check_err(co.err, sc.kind, svr_id, m, f)
        if sc.check then sc.check(co.err) end
      end
      assert.equal(1, host:delta().failed[sc.kind], "stats().failed." .. sc.kind)
    end)
  end
end)

describe("cancelled", function()
  it("rr.cancel(id) fails a pending call with kind cancelled; its reply is then dropped", function()
    if type(rr.cancel) ~= "function" then
      pending("the module has no rr.cancel: nothing produces kind 'cancelled' yet")
      return
    end
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 })
    rr.cancel(rec.id)
    assert.equal(0, rec.fired, "not synchronously inside cancel either")
    rr.poll()
    assert.equal(1, rec.fired)
    check_err(rec.err, "cancelled", 2, "rpcfix.echo", "echo", rec.id)
    host:pump()
    assert.equal(1, rec.fired)
    local d = host:delta()
    assert.equal(1, d.failed.cancelled)
    assert.equal(1, d.late_replies)
  end)
end)

describe("limits and odd served functions", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("arguments larger than max_message_bytes raise at the call site", function()
    host:install({ max_message_bytes = 4096 })
    local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "echo", { string.rep("x", 5000) })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("arguments: text exceeds the size limit (max_message_bytes = 4096)", 1, true),
      tostring(err))
    assert.equal(0, #host.requests)
    assert.equal(0, host:in_flight())
  end)

  it("a result larger than max_message_bytes: runtime error from the server", function()
    host:install({ max_message_bytes = 4096 })
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "big", { 5000 })
    host:pump()
    assert.equal(1, rec.fired)
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "big", rec.id)
  end)

  it("a reply larger than max_message_bytes: bad_response", function()
    host:install({ max_message_bytes = 4096 })
    host:fault({ on = "request", action = "answer",
      bytes = legacy.encode_response("{" .. string.rep('"xxxxxxxx",', 600) .. "}") })
    local rec = host:call(2, "legacy.peer", "f", {})
    host:pump()
    assert.equal(1, rec.fired)
    check_err(rec.err, "bad_response", 2, "legacy.peer", "f", rec.id)
  end)

  -- A count between 7,000 and what a Lua stack holds used to overflow the stack in the
  -- service or the callback on 5.2+ (RunMfa raised, nothing answered).
  local MAX_VALUES = 7000
  local function trues(n) return "{" .. string.rep("true,", n) .. "}" end

  it("a call carries 7000 arguments and 7000 results", function()
    local args = { n = MAX_VALUES }
    for i = 1, MAX_VALUES, 2 do args[i] = i end
    local rec = host:call(2, "rpcfix.echo", "count", args)
    host:pump()
    assert.is_nil(rec.err)
    assert.same({ n = 1, MAX_VALUES }, rec.results)
    rec = host:call(2, "rpcfix.echo", "values", { MAX_VALUES })
    host:pump()
    assert.is_nil(rec.err)
    assert.equal(MAX_VALUES, rec.results.n)
    assert.is_true(rec.results[MAX_VALUES])
  end)

  it("more than 7000 arguments raise at the call site, naming the limit", function()
    local many = {}
    for i = 1, MAX_VALUES + 1 do many[i] = i end
    for _, args in ipairs({ many, { n = MAX_VALUES + 1 }, { 1, n = 600000 }, { n = math.huge } }) do
      local ok, err = pcall(rr.run_mfa, 2, "rpcfix.echo", "count", args)
      assert.is_false(ok)
      assert.is_truthy(has(tostring(err), "arguments: too many values"), tostring(err))
      assert.is_truthy(has(tostring(err), "a call carries at most 7000"), tostring(err))
    end
    assert.equal(0, #host.requests)
    assert.equal(0, host:in_flight())
  end)

  it("more than 7000 results: runtime error from the server", function()
    local counts = { MAX_VALUES + 1 }
    -- Lua 5.1 and LuaJIT cannot return that many (unpack fails in the served function).
    if pcall(table.unpack or unpack, {}, 1, 600000) then counts[2] = 600000 end
    for _, n in ipairs(counts) do
      local rec = host:call(2, "rpcfix.echo", "values", { n })
      host:pump()
      assert.equal(1, rec.fired)
      check_err(rec.err, "runtime", 2, "rpcfix.echo", "values", rec.id)
      assert.is_truthy(has(rec.err.message, "results: too many values (" .. n), rec.err.message)
    end
  end)

  it("an argument count beyond what a call carries: bad_request, nothing runs", function()
    svc.allow("event.dispatcher")
    for _, text in ipairs({ "{n = 2147483000}", "{1, 2, n = 2147483583}", "{n = 5000000}", "{n = 600000}",
      "{n = 7001}", trues(MAX_VALUES + 1), "do local _ = " .. trues(MAX_VALUES + 1) .. "; return _; end" }) do
      host:clear_faults()
      host:fault({ on = "request", action = "corrupt", fn = function()
        return legacy.encode_request({ module_name = "event.dispatcher", function_name = "dispatch",
          arguments_dump = text })
      end })
      local rec = host:call(2, "event.dispatcher", "dispatch", { 1 })
      host:pump()
      assert.equal(1, rec.fired, text:sub(1, 40))
      check_err(rec.err, "bad_request", 2, "event.dispatcher", "dispatch", rec.id)
      assert.is_truthy(has(rec.err.message, "too many values"), rec.err.message)
    end
    assert.equal(0, #require("event.dispatcher").calls)
  end)

  it("a result count beyond what a call carries: bad_response", function()
    for _, text in ipairs({ "{n = 2147483000}", "{true, n = 2147483583}", "{n = 600000}", trues(MAX_VALUES + 1),
      "{" .. string.rep("1,", 300000) .. "}" }) do
      host:clear_faults()
      host:fault({ on = "request", action = "answer", bytes = legacy.encode_response(text) })
      local rec = host:call(2, "legacy.peer", "f", {})
      host:pump()
      assert.equal(1, rec.fired, text:sub(1, 40))
      check_err(rec.err, "bad_response", 2, "legacy.peer", "f", rec.id)
      assert.is_truthy(has(rec.err.message, "too many values"), rec.err.message)
    end
  end)

  it("a served function that yields outside rr.call still gets exactly one reply", function()
    local rec = host:call(2, "rpcfix.echo", "yield_bare", {})
    host:pump()
    assert.equal(1, host.counts.replies, "the service replied (and did not leave the caller to time out)")
    assert.equal(1, rec.fired)
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "yield_bare", rec.id)
  end)
end)

describe("cancelled, through rr.call", function()
  it("rr.cancel(id) of a call parked in rr.call raises kind cancelled in the coroutine", function()
    if type(rr.cancel) ~= "function" then
      pending("the module has no rr.cancel: nothing produces kind 'cancelled' yet")
      return
    end
    svc.allow("rpcfix.echo")
    local spawn = Host.YIELD_ACROSS_PCALL and Host.spawn_catch or Host.spawn
    local co = spawn(function() return rr.call(2, "rpcfix.echo", "echo", { 1 }) end)
    local id = legacy.varint_of(host.requests[1].bytes, 5)
    assert.is_number(id, "the request carries the call id (field 5)")
    assert.is_true(rr.cancel(id))
    assert.is_false(rr.cancel(id), "a second cancel finds nothing to cancel")
    assert.is_false(co.done)
    rr.poll()
    assert.equal("dead", coroutine.status(co.co))
    assert.is_nil(co.results)
    if Host.YIELD_ACROSS_PCALL then
      check_err(co.err, "cancelled", 2, "rpcfix.echo", "echo", id)
    end
    host:pump()
    assert.equal(1, host:delta().failed.cancelled)
    assert.equal(1, host:delta().late_replies)
  end)

  it("rr.cancel of an unknown or finished call returns false", function()
    if type(rr.cancel) ~= "function" then
      pending("no rr.cancel")
      return
    end
    svc.allow("rpcfix.echo")
    assert.is_false(rr.cancel(987654321))
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    assert.equal(1, rec.fired)
    assert.is_false(rr.cancel(rec.id))
    rr.poll()
    assert.equal(1, rec.fired)
  end)
end)

describe("what user code raises never escapes into the host", function()
  it("an error object whose __tostring raises: a runtime error reply", function()
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "raise_unprintable", {})
    host:pump()
    assert.equal(1, rec.fired)
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "raise_unprintable", rec.id)
    assert.equal("(a table whose __tostring failed)", rec.err.message)
  end)

  it("a strict module (its __index raises) without the function: not_found", function()
    svc.allow("rpcfix.strict")
    local rec = host:call(2, "rpcfix.strict", "missing", {})
    host:pump()
    assert.equal(1, rec.fired)
    check_err(rec.err, "not_found", 2, "rpcfix.strict", "missing", rec.id)
    assert.is_truthy(has(rec.err.message, "function 'missing' not found in module 'rpcfix.strict'"), rec.err.message)
    assert.is_truthy(has(rec.err.message, "undefined field missing"), rec.err.message)
    for _, name in ipairs({ "present", "inherited" }) do
      rec = host:call(2, "rpcfix.strict", name, {})
      host:pump()
      assert.is_nil(rec.err)
      assert.same({ n = 1, name }, rec.results)
    end
  end)

  it("a callback that raises an error object whose __tostring raises is logged", function()
    svc.allow("rpcfix.echo")
    local unprintable = require("rpcfix.echo").UNPRINTABLE
    rr.run_mfa(2, "rpcfix.echo", "echo", { 1 }, function() error(unprintable) end)
    rr.run_mfa(2, "rpcfix.echo", "raise", {}, nil, { on_error = function() error(unprintable) end })
    host:pump()
    local failures = 0
    for _, entry in ipairs(host.logs) do
      if entry.level == "error" and has(entry.msg, "callback failed: (a table whose __tostring failed)") then
        failures = failures + 1
      end
    end
    assert.equal(2, failures)
  end)
end)

describe("error objects", function()
  it("tostring(err) stays one line when the message has line breaks", function()
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "raise", { "first line\nsecond line\r\nthird" })
    host:pump()
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "raise", rec.id)
    assert.is_truthy(has(rec.err.message, "\n"), "the message itself keeps its lines")
    assert.is_truthy(has(tostring(rec.err), "first line | second line | third"), tostring(rec.err))
  end)
  it("a table error value is sent as its text, or through its __tostring", function()
    package.loaded["errvalues"] = {
      plain = function() error({ code = 42 }) end,
      -- __metatable hides the metatable from getmetatable, not from tostring.
      locked = function()
        error(setmetatable({ secret = 1 }, { __metatable = "locked", __tostring = function() return "LockedError" end }))
      end,
    }
    svc.allow("errvalues")
    local plain = host:call(2, "errvalues", "plain", {})
    local locked = host:call(2, "errvalues", "locked", {})
    host:pump()
    package.loaded["errvalues"] = nil
    assert.equal("{code=42}", plain.err and plain.err.message)
    assert.equal("LockedError", locked.err and locked.err.message)
  end)

  it("tostring(err) keeps a message's text after a zero byte", function()
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "raise", { "before\0after" })
    host:pump()
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "raise", rec.id)
    assert.is_truthy(has(tostring(rec.err), "before\0after"), tostring(rec.err))
  end)
end)

describe("what a served module exposes", function()
  it("a package.seeall module serves its own functions, not the globals it sees", function()
    svc.allow("rpcfix.seeall")
    for _, name in ipairs({ "dofile", "require", "print" }) do
      local rec = host:call(2, "rpcfix.seeall", name, { "/dev/null" })
      host:pump()
      check_err(rec.err, "not_found", 2, "rpcfix.seeall", name, rec.id)
      assert.is_truthy(has(rec.err.message, "only a global of that name"), rec.err.message)
    end
    local rec = host:call(2, "rpcfix.seeall", "own", {})
    host:pump()
    assert.same({ n = 1, "own" }, rec.results)
  end)
end)

describe("replies that must stay within bounds", function()
  it("an error message larger than max_message_bytes is cut, the reply keeps its kind", function()
    host:install({ max_message_bytes = 4096 })
    svc.allow("rpcfix.echo")
    local rec = host:call(2, "rpcfix.echo", "raise_big", { 10000 })
    host:pump()
    check_err(rec.err, "runtime", 2, "rpcfix.echo", "raise_big", rec.id)
    assert.is_truthy(has(rec.err.message, "xxxxxxxx"), "the start of the message")
    assert.is_truthy(has(rec.err.message, "bytes cut]"), rec.err.message:sub(-60))
    assert.is_true(#host.replies[1].bytes <= 4096, "reply of " .. #host.replies[1].bytes .. " bytes")
  end)

  it("under a small max_message_bytes an error reply keeps what fits of its message", function()
    for _, limit in ipairs({ 400, 512, 1000 }) do
      host:install({ max_message_bytes = limit })
      -- Whole: the not_allowed hint (twice: also in the results for legacy callers) makes a
      -- reply of about 320 bytes.
      local denied = host:call(2, "rpcfix.echo", "echo", {})
      host:pump()
      check_err(denied.err, "not_allowed", 2, "rpcfix.echo", "echo", denied.id)
      assert.is_truthy(has(denied.err.message, 'svc.allow("rpcfix.echo", "echo")'), limit .. ": " .. denied.err.message)
      -- Cut, but only as far as the limit needs: the reply uses nearly all of it.
      svc.allow("rpcfix.echo")
      local big = host:call(2, "rpcfix.echo", "raise_big", { 5000 })
      host:pump()
      check_err(big.err, "runtime", 2, "rpcfix.echo", "raise_big", big.id)
      assert.is_truthy(has(big.err.message, "xxxxxxxx"), limit .. ": the start of the message")
      assert.is_truthy(has(big.err.message, "bytes cut]"), limit .. ": " .. big.err.message:sub(-60))
      local reply = #host.replies[#host.replies].bytes
      assert.is_true(reply <= limit and reply >= limit - 16, limit .. ": reply of " .. reply .. " bytes")
    end
  end)

  it("a reply that names another call's id is a bad_response", function()
    -- What a transport that mixed up its callbacks would deliver: call 999's answer.
    local other = legacy.encode_response("{1, n = 1}") .. legacy.varint_field(5, 999)
    host:fault({ on = "request", action = "answer", bytes = other })
    local rec = host:call(2, "legacy.peer", "f", {})
    host:pump()
    check_err(rec.err, "bad_response", 2, "legacy.peer", "f", rec.id)
    assert.is_truthy(has(rec.err.message, "the reply is for call 999"), rec.err.message)
  end)

  it("a call to this server itself whose service cannot run fails at once, not by timeout", function()
    local loaded, preload = package.loaded.svc_run_lua, package.preload.svc_run_lua
    package.loaded.svc_run_lua = nil
    package.preload.svc_run_lua = function() error("no service on this server") end
    local ok, rec = pcall(host.call, host, 1, "rpcfix.echo", "echo", { 1 })
    package.loaded.svc_run_lua, package.preload.svc_run_lua = loaded, preload
    assert.is_true(ok, tostring(rec))
    rr.poll()
    check_err(rec.err, "transport", 1, "rpcfix.echo", "echo", rec.id)
    assert.is_truthy(has(rec.err.message, "no service on this server"), rec.err.message)
  end)
end)

describe("failures without on_error", function()
  it("go to the logger at level warn (with on_result only)", function()
    svc.allow("rpcfix.echo")
    local fired = 0
    rr.run_mfa(2, "rpcfix.echo", "no_such_function", {}, function() fired = fired + 1 end)
    host:pump()
    assert.equal(0, fired)
    assert.is_true(host:logged("warn", "rpcfix.echo.no_such_function"), "a warn line naming the call")
  end)

  it("go to the logger at level warn (fire-and-forget)", function()
    rr.run_mfa(5, "rpcfix.echo", "raise", { "boom" })
    host:pump()
    assert.is_true(host:logged("warn", "rpcfix.echo.raise"), "a warn line naming the call")
  end)
end)

describe("deny by default", function()
  it("svc.allow(module) opens every function, svc.allow(module, f) one, disallow_all resets", function()
    local a = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    assert.equal("not_allowed", a.err.kind)
    svc.allow("rpcfix.echo", "echo")
    local b = host:call(2, "rpcfix.echo", "echo", { 1 })
    local c = host:call(2, "rpcfix.echo", "multi", {})
    host:pump()
    assert.same({ n = 1, 1 }, b.results)
    assert.equal("not_allowed", c.err.kind)
    svc.allow("rpcfix.echo")
    local d = host:call(2, "rpcfix.echo", "multi", {})
    host:pump()
    assert.equal(5, d.results.n)
    svc.disallow_all()
    local e = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    assert.equal("not_allowed", e.err.kind)
  end)

  it("os.execute and friends are denied", function()
    local recs = {
      host:call(2, "os", "execute", { "true" }),
      host:call(2, "io", "open", { "/etc/passwd" }),
      host:call(2, "_G", "print", { "x" }),
    }
    host:pump()
    for _, r in ipairs(recs) do
      assert.equal("not_allowed", r.err.kind)
    end
    assert.is_truthy(has(recs[1].err.message, 'svc.allow("os", "execute")'), recs[1].err.message)
  end)
end)

describe("timeouts", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  it("fire from poll at the configured default timeout, not before", function()
    host:install({ timeout = 3 })
    svc.allow("rpcfix.echo")
    host:fault({ on = "request", action = "drop" })
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    host:advance(2.9)
    assert.equal(0, rec.fired)
    host:advance(0.2)
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    local d = host:delta()
    assert.equal(1, d.timed_out)
    assert.equal(1, d.failed.timeout)
    assert.equal(0, d.in_flight)
  end)

  it("fire only from poll (the clock alone does nothing)", function()
    host.auto_poll = false
    host:fault({ on = "request", action = "drop" })
    local rec = host:call(2, "rpcfix.echo", "echo", { 1 }, { timeout = 1 })
    host:pump()
    host:advance(5)
    assert.equal(0, rec.fired)
    rr.poll()
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
  end)

  it("after a long pause without poll, one poll fires every expired call and only those", function()
    -- More than 4,096 timeout slots (41 s) since the last poll: poll visits the occupied
    -- slots instead of every slot in between.
    host.auto_poll = false
    host:fault({ on = "request", action = "drop", times = math.huge })
    local recs = {}
    for i, timeout in ipairs({ 1, 30, 3500, 3601, 7200 }) do
      recs[i] = host:call(2, "rpcfix.echo", "echo", { i }, { timeout = timeout })
    end
    host:pump()
    host:advance(3600)
    rr.poll()
    local fired = {}
    for i, rec in ipairs(recs) do fired[i] = rec.fired end
    assert.same({ 1, 1, 1, 0, 0 }, fired)
    assert.equal(2, host:in_flight())
    host:advance(3620) -- a long timeout may fire up to 0.2% late
    rr.poll()
    assert.equal(1, recs[4].fired)
    assert.equal(1, recs[5].fired)
    assert.equal("timeout", recs[5].err.kind)
    assert.equal(0, host:in_flight())
  end)

  it("opts.timeout overrides the default", function()
    host:fault({ on = "request", action = "drop", times = 2 })
    local short = host:call(2, "rpcfix.echo", "echo", { 1 }, { timeout = 0.5 })
    local long = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    host:advance(0.6)
    assert.equal(1, short.fired)
    assert.equal(0, long.fired)
    host:advance(10)
    assert.equal(1, long.fired)
    assert.equal("timeout", long.err.kind)
    -- The message says which timeout ran out.
    assert.equal("no answer within 0.5 s", short.err.message)
    assert.equal("no answer within 10 s", long.err.message)
  end)

  it("a reply that arrives after the timeout is dropped and counted in late_replies", function()
    host:fault({ on = "reply", action = "delay", hold = true })
    local rec = host:call(2, "rpcfix.echo", "echo", { "late" }, { timeout = 2 })
    host:pump()
    assert.equal(1, host:queued("reply"), "the reply is held by the host")
    host:advance(2.1)
    assert.equal(1, rec.fired)
    assert.equal("timeout", rec.err.kind)
    host:release()
    host:pump()
    assert.equal(1, rec.fired, "the late reply fires nothing")
    assert.is_nil(rec.results)
    local d = host:delta()
    assert.equal(1, d.late_replies)
    assert.equal(1, d.timed_out)
    assert.equal(0, d.completed)
  end)

  it("a late reply to rr.call does not resume the coroutine again", function()
    host:fault({ on = "reply", action = "delay", hold = true })
    local resumed = 0
    local spawn = Host.YIELD_ACROSS_PCALL and Host.spawn_catch or Host.spawn
    local co = spawn(function()
      resumed = resumed + 1
      return rr.call(2, "rpcfix.echo", "echo", { "late" }, { timeout = 1 })
    end)
    host:pump()
    host:advance(1.5)
    assert.equal("dead", coroutine.status(co.co))
    host:release()
    host:pump()
    assert.equal(1, resumed)
    assert.equal(1, host:delta().late_replies)
  end)

  it("configure{clock = ...} while calls are pending keeps their timeouts", function()
    host:fault({ on = "request", action = "drop", times = 2 })
    local a = host:call(2, "rpcfix.echo", "echo", { "a" }, { timeout = 5 })
    host:pump()
    rr.configure({ clock = Host.clock }) -- the same clock, set again (a host re-reading its config)
    host:advance(6)
    assert.equal(1, a.fired, "the pending call still times out")
    assert.equal("timeout", a.err and a.err.kind)
    local b = host:call(2, "rpcfix.echo", "echo", { "b" }, { timeout = 5 })
    rr.configure({ clock = Host.clock })
    host:advance(3)
    local c = host:call(3, "rpcfix.echo", "noop", {}, { timeout = 5 })
    host:pump()
    assert.equal(1, c.fired)
    host:advance(2.5)
    assert.equal(1, b.fired, "a call tracked before the clock was set again times out on time")
  end)

  it("configure{clock = ...} after a deadline passed unpolled still times the call out", function()
    host:fault({ on = "request", action = "drop", times = 1 })
    local a = host:call(2, "rpcfix.echo", "echo", { "a" }, { timeout = 1 })
    host:pump()
    host.auto_poll = false
    host:advance(1.5) -- over, but nobody polled
    host.auto_poll = true
    rr.configure({ clock = Host.clock }) -- a host re-applying its settings before its poll
    host:advance(0.02)
    assert.equal(1, a.fired, "the overdue call times out at the next polls")
    assert.equal("timeout", a.err and a.err.kind)
    assert.equal(0, host:in_flight())
  end)

  it("a short call sharing a long call's slot still times out after the long one ends", function()
    -- A wide slot's number is an ordinary 10 ms slot's too, so both calls share its bucket;
    -- the long call leaving must not take the short one's entry with it.
    local t = 0
    rr.configure({ clock = function() return t end })
    host:fault({ on = "request", action = "drop", times = 2 })
    local long = host:call(2, "rpcfix.echo", "echo", { "long" }, { timeout = 15 }) -- slot 1501, widened to 1502
    t = 5.015
    local short = host:call(2, "rpcfix.echo", "echo", { "short" }, { timeout = 10 }) -- deadline 15.015: slot 1502
    host:pump()
    assert.is_true(rr.cancel(long.id))
    rr.poll()
    t = 16
    rr.poll()
    assert.equal("cancelled", long.err and long.err.kind)
    assert.equal("timeout", short.err and short.err.kind)
    assert.equal(0, host:in_flight())
  end)

  it("the request carries the timeout budget (field 6, ms)", function()
    host:call(2, "rpcfix.echo", "echo", { 1 }, { timeout = 5 })
    local bytes = host.requests[1].bytes
    assert.equal(5000, legacy.varint_of(bytes, 6))
    host:pump()
  end)
end)
