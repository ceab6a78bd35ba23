-- Lua errors raised inside the module's C functions: a finalizer's error that a collection
-- step passes on (Lua 5.1-5.3 and LuaJIT do; 5.4 only warns), an options table's metamethod.
-- They must reach the caller as ordinary Lua errors, and the module must work normally after.
-- (On LuaJIT these used to abort the whole process.)
local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$")) or "test_lua"
if not package.path:find(here .. "/?.lua", 1, true) then
  package.path = here .. "/?.lua;" .. package.path
end

local loader = require("support.loader")
local rr = loader.rr()

-- Lua 5.4 turns a finalizer's error into a warning; the others raise it from whatever
-- allocation ran the collection step.
local FINALIZER_ERRORS_PROPAGATE = _VERSION ~= "Lua 5.4"
local OPERATIONS = { "load", "dump", "dump_graph", "encode_request", "decode_request" }

-- support/finalizer_errors.lua in a fresh interpreter (see there), one result per operation;
-- run once for the tests that read it.
local finalizer_run_cache
local function finalizer_run()
  if finalizer_run_cache then
    return finalizer_run_cache[1], finalizer_run_cache[2], finalizer_run_cache[3]
  end
  local dir = os.getenv("RR_BUILD_DIR")
  if not dir or dir == "" then dir = "build/" .. loader.interp() end
  local command = ("%s %s/support/finalizer_errors.lua %s 2>&1"):format(loader.interp(), here, dir)
  local pipe = assert(io.popen(command))
  local output = pipe:read("*a")
  pipe:close()
  local results, reentrant = {}, {}
  for name, calls, wrong in output:gmatch("reentrant (%S+) calls=(%d+) wrong=(%d+)") do
    reentrant[name] = { calls = tonumber(calls), wrong = tonumber(wrong) }
  end
  for name, raised, wrong, other, after in
      output:gmatch("(%S+) raised=(%d+) wrong=(%d+) other=(%d+) after=(%a+)") do
    results[name] = { raised = tonumber(raised), wrong = tonumber(wrong), other = tonumber(other),
      after = after }
  end
  finalizer_run_cache = { results, reentrant, output }
  return results, reentrant, output
end

describe("Lua errors raised inside the module", function()
  it("a finalizer's error during each operation reaches the caller; results stay right", function()
    local results, _, output = finalizer_run()
    for _, name in ipairs(OPERATIONS) do
      -- A missing line is a crash (LuaJIT used to abort the process here).
      local r = results[name]
      assert.is_truthy(r, name .. " has no result in:\n" .. output)
      assert.equal(0, r.wrong, name)
      assert.equal(0, r.other, name .. ":\n" .. output)
      assert.equal("ok", r.after, name)
      if not FINALIZER_ERRORS_PROPAGATE then assert.equal(0, r.raised, name) end
    end
    if FINALIZER_ERRORS_PROPAGATE then
      -- Otherwise the run did not exercise the path it is about. How many errors land inside
      -- the operations that allocate little depends on where the collector stands (down to
      -- one in 400 calls on 5.1); load, which allocates the most, always gets several.
      assert.is_true(results.load.raised > 0, output)
    end
  end)

  it("a finalizer that calls the module while it works (re-entering it) gets right results", function()
    local _, reentrant, output = finalizer_run()
    for _, name in ipairs(OPERATIONS) do
      local r = reentrant[name]
      assert.is_truthy(r, name .. " has no result in:\n" .. output)
      assert.equal(0, r.wrong, name)
    end
    -- The first operation, which allocates the most, always runs finalizers inside; how many
    -- run within the later ones depends on where the collector stands.
    assert.is_true(reentrant.load.calls > 0, output)
  end)

  it("an options table's __index that raises: the error reaches the caller", function()
    local opts = setmetatable({}, { __index = function(_, k) error("no option " .. k) end })
    for _ = 1, 50 do
      local ok, err = pcall(rr.dump, { 1, 2 }, opts)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("no option maxdepth", 1, true), tostring(err))
      ok, err = pcall(rr.load, "{1,2}", opts)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("no option maxdepth", 1, true), tostring(err))
    end
    assert.equal("{1,2}", rr.dump({ 1, 2 }))
  end)

  it("options are read through __index, like any Lua table", function()
    local opts = setmetatable({}, { __index = { maxdepth = 1 } })
    local ok, err = pcall(rr.dump, { { 1 } }, opts)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("depth", 1, true), tostring(err))
  end)
end)
