-- What real hosts and game code do around the service: workers ended from outside, a
-- `require` replaced after the module loaded, standard functions replaced by wrappers, a debug
-- hook that raises between two jobs of a worker.
local Host = require("support.fake_host")
Host.setup_paths()
local rr, svc = Host.modules()

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 5 })
  host:install()
end)

after_each(function()
  assert.same({}, host:finish())
end)

-- A module whose `keep` hands out the worker coroutine it runs in.
local function install_keeper()
  local kept = {}
  package.loaded.hz_keeper = {
    keep = function()
      kept.co = coroutine.running()
      return "kept"
    end,
    echo = function(...) return ... end,
  }
  svc.allow("hz_keeper")
  return kept
end

describe("the service's worker pool", function()
  it("drops an idle worker that something else ended, instead of handing it the next call", function()
    if not coroutine.close then
      pending("coroutine.close is Lua 5.4's")
      return
    end
    local kept = install_keeper()
    local first = host:call(2, "hz_keeper", "keep", {})
    host:pump()
    assert.same({ n = 1, "kept" }, first.results)
    -- An idle worker has no function to go on with: to Lua it is a finished coroutine.
    assert.equal("dead", coroutine.status(kept.co))
    assert.is_false((coroutine.resume(kept.co)))
    assert.is_true(coroutine.close(kept.co))
    local next_call = host:call(2, "hz_keeper", "echo", { "innocent" })
    host:pump()
    assert.is_nil(next_call.err)
    assert.same({ n = 1, "innocent" }, next_call.results)
  end)

  it("drops an idle worker that was given a debug hook between two jobs", function()
    if rawget(_G, "jit") then
      pending("LuaJIT's debug hooks are global, not per coroutine")
      return
    end
    local kept = install_keeper()
    host:call(2, "hz_keeper", "keep", {})
    host:pump()
    -- A watchdog's hook, set on the worker it saw in an earlier job, must not fire in the
    -- jobs of other calls.
    debug.sethook(kept.co, function() error("watchdog", 0) end, "", 1)
    assert.is_false((coroutine.resume(kept.co)))
    local later = host:call(2, "hz_keeper", "echo", { 1, 2 })
    host:pump()
    assert.is_nil(later.err)
    assert.same({ n = 2, 1, 2 }, later.results)
  end)

  it("drops a worker given its own hook while the serving thread has another", function()
    if rawget(_G, "jit") then
      pending("LuaJIT's debug hooks are global, not per coroutine")
      return
    end
    local main_hook = function() end
    local own_hook = function() end
    package.loaded.hz_hooked = {
      set = function() debug.sethook(coroutine.running(), own_hook, "", 1000) end,
      get = function()
        local hook, _, count = debug.gethook(coroutine.running())
        return hook == own_hook, count
      end,
    }
    svc.allow("hz_hooked")
    debug.sethook(main_hook, "", 100000)
    local ok, err = pcall(function()
      host:call(2, "hz_hooked", "set", {})
      host:pump()
      local later = host:call(2, "hz_hooked", "get", {})
      host:pump()
      assert.same({ n = 2, false, 100000 }, later.results)
    end)
    debug.sethook()
    package.loaded.hz_hooked = nil
    assert(ok, err)
  end)
end)

describe("reloading the modules", function()
  it("gives back the same instances: calls in flight, timeouts and the allowlist carry on", function()
    host:fault({ on = "request", action = "drop", svr_id = 3, times = 1 })
    local pending_call = host:call(3, "rpcfix.echo", "echo", { 1 }, { timeout = 1 })
    package.loaded.remote_runner, package.loaded.svc_run_lua = nil, nil
    local rr2, svc2 = require("remote_runner"), require("svc_run_lua")
    assert.equal(rr, rr2)
    assert.equal(svc, svc2)
    host:advance(2) -- the host's tick calls the poll it has: the call before the reload times out
    assert.equal("timeout", pending_call.err and pending_call.err.kind)
    svc2.disallow_all()
    local denied = host:call(2, "rpcfix.echo", "echo", { 1 })
    host:pump()
    assert.equal("not_allowed", denied.err and denied.err.kind)
    svc.allow("rpcfix.nested")
    svc.allow("rpcfix.echo")
    local nested = host:call(2, "rpcfix.nested", "relay", { 3, "rpcfix.echo", "echo", "x" })
    host:pump()
    assert.same({ n = 1, "x" }, nested.results)
  end)
end)

describe("serving modules", function()
  it("loads them with the global require as it is at the call, not as it was at load", function()
    local original = require
    local asked = {}
    _G.require = function(name)
      asked[#asked + 1] = name
      if name == "hz_only_the_game_knows" then
        return { hello = function(who) return "hello " .. who end }
      end
      return original(name)
    end
    local ok, err = pcall(function()
      svc.allow("hz_only_the_game_knows")
      local rec = host:call(2, "hz_only_the_game_knows", "hello", { "server" })
      host:pump()
      assert.is_nil(rec.err)
      assert.same({ n = 1, "hello server" }, rec.results)
      local asked_for_it = false
      for _, name in ipairs(asked) do asked_for_it = asked_for_it or name == "hz_only_the_game_knows" end
      assert.is_true(asked_for_it)
    end)
    _G.require = original
    assert(ok, err)
  end)
end)

describe("standard functions replaced after the module loaded", function()
  it("are not what run_mfa uses", function()
    install_keeper()
    local saved_next = next
    local replaced_called = false
    _G.next = function(...)
      replaced_called = true
      return saved_next(...)
    end
    local ok, result = pcall(host.call, host, 2, "hz_keeper", "echo", { "a", nil, "c", n = 3 }, { timeout = 2 })
    _G.next = saved_next
    assert(ok, result)
    assert.is_false(replaced_called)
    host:pump()
    assert.equal(3, result.results.n)
  end)
end)
