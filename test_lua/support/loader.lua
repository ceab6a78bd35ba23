-- Loads the remote_runner C module under test and gives a "plain Lua load in an
-- empty environment" helper that works on Lua 5.1-5.4 and LuaJIT.
local M = {}

M.HAS_INT = math.type ~= nil
M.IS_JIT = rawget(_G, "jit") ~= nil
M.IS_51 = _VERSION == "Lua 5.1" and not M.IS_JIT

function M.interp()
  if M.IS_JIT then return "luajit" end
  return "lua" .. _VERSION:match("(%d+%.%d+)")
end

local rr_cache

local function is_codec(m)
  return type(m) == "table" and type(m.dump) == "function" and type(m.load) == "function"
    and m.dump ~= string.dump
end

-- RR_BUILD_DIR: directory holding remote_runner.so. The default is
-- build/<interpreter> (build/lua5.4 on Lua 5.4), relative to the repo root
-- the specs are run from. The C module is opened directly with
-- package.loadlib, so a Lua file named remote_runner.lua earlier on
-- package.path (the repo's lua/ sources of the embedded Lua part) cannot
-- shadow the module under test.
function M.rr()
  if rr_cache then return rr_cache end
  if is_codec(package.loaded.remote_runner) then
    rr_cache = package.loaded.remote_runner
    return rr_cache
  end
  local dir = os.getenv("RR_BUILD_DIR")
  if not dir or dir == "" then
    dir = "build/" .. M.interp()
  end
  local so = dir .. "/remote_runner.so"
  local open, err = package.loadlib(so, "luaopen_remote_runner")
  if not open then
    error("cannot open the module under test " .. so .. ": " .. tostring(err))
  end
  local m = open("remote_runner", so)
  if m == nil then m = package.loaded.remote_runner end
  assert(is_codec(m), so .. ": luaopen_remote_runner did not return a table with dump and load")
  package.loaded.remote_runner = m
  rr_cache = m
  return m
end

-- Loads run under pcall: Lua 5.4's parser raises "C stack overflow" for very deep text through
-- the message handler in force, which inside a spec is busted's. That handler marks the test
-- as errored (and busted then counts it nowhere) even though load itself returns the error.
local function compile(text, env)
  -- 5.1 / LuaJIT: loadstring + setfenv; 5.2+: load with an env argument.
  local setfenv_ = rawget(_G, "setfenv")
  local loadstring_ = rawget(_G, "loadstring")
  if setfenv_ and loadstring_ then
    local ok, f, err = pcall(loadstring_, text, "=dump")
    if not ok then return nil, f end
    if not f then return nil, err end
    setfenv_(f, env)
    return f
  end
  local ok, f, err = pcall(load, text, "=dump", "t", env)
  if not ok then return nil, f end
  return f, err
end

-- What a legacy peer does with our text: load("return "..text) in an empty
-- environment, falling back to loading the text as a chunk (the
-- `do local _=...; return _; end` form). Returns true, value or false, err.
function M.plain_load(text)
  local env = {}
  local f, err1 = compile("return " .. text, env)
  if not f then
    local err2
    f, err2 = compile(text, env)
    if not f then
      return false, "compile error: " .. tostring(err1) .. " | as chunk: " .. tostring(err2)
    end
  end
  local ok, v = pcall(f)
  if not ok then return false, "runtime error: " .. tostring(v) end
  if next(env) ~= nil then
    return false, "the text wrote a global"
  end
  return true, v
end

-- Times rr.load; returns seconds, ok, value_or_err
function M.timed_load(rr, text, opts)
  local t0 = os.clock()
  local ok, v
  if opts == nil then
    ok, v = rr.load(text)
  else
    ok, v = rr.load(text, opts)
  end
  return os.clock() - t0, ok, v
end

return M
