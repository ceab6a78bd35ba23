-- What a peer that sends hand-made requests can make a server do: a request no rule allows
-- costs no more than its names, the allowlist holds in layered environments, and a module
-- that failed to load on a peer's request can still load later.
local Host = require("support.fake_host")
Host.setup_paths()
local legacy = require("support.legacy_proto")
local rr, svc = Host.modules()

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 11 })
  host:install()
end)

after_each(function()
  assert.same({}, host:finish())
end)

local function has(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

-- Calls module.func on server 2 with its request replaced by a legacy request carrying
-- `arguments_dump`; returns the call's record after delivery.
local function call_with_arguments(module_name, func, arguments_dump)
  host:fault({ on = "request", action = "corrupt", fn = function()
    return legacy.encode_request({ module_name = module_name, function_name = func, arguments_dump = arguments_dump })
  end })
  local rec = host:call(2, module_name, func, {})
  host:pump()
  return rec
end

describe("a request no rule allows", function()
  it("is refused before its arguments are read", function()
    -- Arguments that cannot be read: refused as not_allowed, not reported as bad_request.
    local rec = call_with_arguments("rpcfix.echo", "echo", "{{{")
    assert.equal("not_allowed", rec.err and rec.err.kind, rec.err and tostring(rec.err))
    -- The same request once allowed: now its arguments are read, and fail.
    svc.allow("rpcfix.echo", "echo")
    rec = call_with_arguments("rpcfix.echo", "echo", "{{{")
    assert.equal("bad_request", rec.err and rec.err.kind, rec.err and tostring(rec.err))
    -- A function the module rule does not name is refused the same way.
    rec = call_with_arguments("rpcfix.echo", "count", "{{{")
    assert.equal("not_allowed", rec.err and rec.err.kind, rec.err and tostring(rec.err))
  end)

  it("cannot pass max_depth by linking shared tables in a dump chunk", function()
    host:install({ max_depth = 8 })
    svc.allow("rpcfix.echo")
    local k = 50
    local parts = { "do local __={" .. string.rep("{},", k) .. "}" }
    for i = 2, k do parts[#parts + 1] = ";__[" .. i .. "][1]=__[" .. (i - 1) .. "]" end
    parts[#parts + 1] = ";return {__[" .. k .. "],n=1};end"
    local rec = call_with_arguments("rpcfix.echo", "echo", table.concat(parts))
    assert.equal("bad_request", rec.err and rec.err.kind, rec.results and "served")
    assert.is_truthy(has(rec.err.message, "depth limit (maxdepth = 8)"), rec.err.message)
  end)

  it("quotes at most the start of a huge name", function()
    local name = string.rep("\1", 100000)
    local rec = call_with_arguments(name, "f", "{}")
    assert.equal("not_allowed", rec.err and rec.err.kind)
    assert.is_truthy(has(rec.err.message, "... (100000 bytes)"), rec.err.message:sub(1, 80))
    assert.is_true(#rec.err.message < 2000, #rec.err.message .. " bytes of message")
  end)
end)

describe("a module allowed as a whole", function()
  it("does not serve globals that _G inherits through its own metatable", function()
    local base = { base_only = function() return "base global" end }
    local saved = getmetatable(_G)
    setmetatable(_G, { __index = base })
    -- A package.seeall-style module: its __index is _G, which falls back to `base`.
    package.loaded.hp_seeall = setmetatable({ own = function() return "own" end }, { __index = _G })
    svc.allow("hp_seeall")
    local ok, err = pcall(function()
      local rec = host:call(2, "hp_seeall", "base_only", {})
      host:pump()
      assert.equal("not_found", rec.err and rec.err.kind, rec.results and tostring(rec.results[1]))
      rec = host:call(2, "hp_seeall", "own", {})
      host:pump()
      assert.same({ n = 1, "own" }, rec.results)
    end)
    setmetatable(_G, saved)
    package.loaded.hp_seeall = nil
    assert(ok, err)
  end)

  it("serves what it inherits from a base module that _G inherits from too, without running _G's __index", function()
    local util = { fmt = function() return "fmt" end }
    local index_calls = 0
    local saved = getmetatable(_G)
    setmetatable(_G, { __index = function(_, k)
      index_calls = index_calls + 1
      return util[k]
    end })
    package.loaded.hp_derived = setmetatable({}, { __index = util })
    svc.allow("hp_derived")
    local ok, err = pcall(function()
      local rec = host:call(2, "hp_derived", "fmt", {})
      host:pump()
      assert.same({ n = 1, "fmt" }, rec.results)
    end)
    setmetatable(_G, saved)
    package.loaded.hp_derived = nil
    assert(ok, err)
    assert.equal(0, index_calls)
  end)

  it("keeps a module table the loader registered before it failed", function()
    local runs = 0
    package.preload.hp_registry = function(name)
      runs = runs + 1
      local M = { f = function() return "registered" end }
      package.loaded[name] = M
      error("an optional part is missing")
    end
    svc.allow("hp_registry")
    local rec = host:call(2, "hp_registry", "f", {})
    host:pump()
    assert.equal("runtime", rec.err and rec.err.kind)
    rec = host:call(2, "hp_registry", "f", {})
    host:pump()
    assert.same({ n = 1, "registered" }, rec.results)
    assert.equal(1, runs)
    package.loaded.hp_registry, package.preload.hp_registry = nil, nil
  end)

  it("can load after a request found it failing to load", function()
    local broken = true
    package.preload.hp_flaky = function()
      if broken then error("not ready yet") end
      return { f = function() return "loaded" end }
    end
    svc.allow("hp_flaky")
    local rec = host:call(2, "hp_flaky", "f", {})
    host:pump()
    assert.equal("runtime", rec.err and rec.err.kind)
    assert.is_truthy(has(rec.err.message, "not ready yet"), rec.err.message)
    broken = false
    rec = host:call(2, "hp_flaky", "f", {})
    host:pump()
    assert.same({ n = 1, "loaded" }, rec.results)
    assert.equal("function", type(require("hp_flaky").f))
    package.loaded.hp_flaky, package.preload.hp_flaky = nil, nil
  end)
end)
