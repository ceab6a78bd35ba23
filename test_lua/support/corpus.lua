-- Reads the serpent fixture corpus (../shared/fixtures/serpent, or RR_FIXTURES)
-- at test time and turns its canonical value encoding into real Lua values.
-- See the corpus README for the format.
local cjson = require("cjson")
local b64 = require("support.b64")
local loader = require("support.loader")

local M = {}

local math_type = math.type
-- -0.0 computed at run time: a `-0.0` literal could be merged with a `0`
-- constant of the same function by the Lua 5.1 compiler.
local NEG_ZERO = -1 / math.huge
local INF = math.huge

function M.dir()
  local d = os.getenv("RR_FIXTURES")
  if d and d ~= "" then return d end
  return "../shared/fixtures/serpent"
end

-- LuaJIT -> luajit.jsonl, 5.4 -> lua5.4.jsonl, 5.3 -> lua5.3.jsonl,
-- 5.2 and 5.1 -> lua5.1.jsonl (5.2 has no integer subtype either).
function M.file_name()
  if loader.IS_JIT then return "luajit.jsonl" end
  local v = _VERSION:match("(%d+%.%d+)")
  if v == "5.4" then return "lua5.4.jsonl" end
  if v == "5.3" then return "lua5.3.jsonl" end
  return "lua5.1.jsonl"
end

function M.path()
  return M.dir() .. "/" .. M.file_name()
end

local function is_null(v)
  return v == nil or v == cjson.null
end
M.is_null = is_null

function M.records(path)
  path = path or M.path()
  local f, err = io.open(path, "rb")
  if not f then
    error("cannot open the serpent corpus " .. path .. ": " .. tostring(err)
      .. " (set RR_FIXTURES to the fixtures directory)")
  end
  local out = {}
  local lineno = 0
  for line in f:lines() do
    lineno = lineno + 1
    if line:match("%S") then
      local rec = cjson.decode(line)
      rec.lineno = lineno
      out[#out + 1] = rec
    end
  end
  f:close()
  return out
end

-- The exact text of a record: text_b64 is the authority; text_rule gives the
-- huge hostile inputs as repeat pairs.
function M.text(rec)
  if not is_null(rec.text_b64) then
    return b64.decode(rec.text_b64)
  end
  if not is_null(rec.text_rule) then
    local parts = {}
    for i, pair in ipairs(rec.text_rule) do
      parts[i] = string.rep(pair[1], pair[2])
    end
    return table.concat(parts)
  end
  return nil
end

local function parse_int(s)
  assert(math_type, "integer in the corpus on an interpreter without integers")
  -- tonumber() on a decimal integer string that fits is an exact integer on 5.3+
  local v = tonumber(s)
  assert(v ~= nil and math_type(v) == "integer" and string.format("%d", v) == s,
    "corpus integer not representable exactly: " .. tostring(s))
  return v
end

local function parse_float(s)
  if s == "inf" then return INF end
  if s == "-inf" then return -INF end
  if s == "nan" then
    local z = 0
    return z / z
  end
  if s == "-0" then return NEG_ZERO end
  local v = tonumber(s)
  assert(v ~= nil, "bad corpus float " .. tostring(s))
  if math_type and math_type(v) == "integer" then
    v = v + 0.0
  end
  return v
end

-- Which special kinds does a canonical value hold?
-- Returns a set: { ["function"]=true, userdata=..., thread=..., cdata=... }
function M.kinds(canon)
  local set = {}
  local function scan(x)
    if type(x) ~= "table" then return end
    if x["function"] ~= nil then set["function"] = true end
    if x.userdata ~= nil then set.userdata = true end
    if x.thread ~= nil then set.thread = true end
    if x.cdata ~= nil then set.cdata = true end
  end
  scan(canon.root)
  if not is_null(canon.tables) then
    for _, t in ipairs(canon.tables) do
      for _, pair in ipairs(t) do
        scan(pair[1])
        scan(pair[2])
      end
    end
  end
  return set
end

local function make_cdata(s)
  local ls = rawget(_G, "loadstring") or load
  local f = assert(ls("return " .. s))
  return f()
end

-- A synthetic metatable for the tables the corpus says had one. It only
-- disturbs non-raw access, so a codec that honours "metatables are not sent
-- (raw contents)" is unaffected.
local function synthetic_mt()
  return {
    __tostring = function() return "custom!" end,
    __index = function() return "from __index" end,
    __len = function() return 0 end,
    __pairs = function() return function() return nil end, nil, nil end,
    __metatable = "locked",
  }
end

-- Builds the Lua value; the same table index gives the same Lua table, so
-- sharing and cycles are kept. opts.metatables: attach synthetic metatables.
function M.build(canon, opts)
  opts = opts or {}
  local tables = {}
  local ntables = 0
  if not is_null(canon.tables) then
    ntables = #canon.tables
  end
  for i = 1, ntables do tables[i] = {} end
  local function conv(x)
    if is_null(x) then return nil end
    if x == true or x == false then return x end
    assert(type(x) == "table", "bad canonical value")
    if x.int ~= nil then return parse_int(x.int) end
    if x.float ~= nil then return parse_float(x.float) end
    if x.str ~= nil then return x.str end
    if x.str_b64 ~= nil then return b64.decode(x.str_b64) end
    if x.table ~= nil then
      local t = tables[math.floor(x.table) + 1]
      assert(t, "bad table index")
      return t
    end
    if x["function"] ~= nil then return function() end end
    if x.userdata ~= nil then return io.stdout end
    if x.thread ~= nil then return coroutine.create(function() end) end
    if x.cdata ~= nil then return make_cdata(x.cdata) end
    error("unknown canonical value")
  end
  for i = 1, ntables do
    local t = tables[i]
    for _, pair in ipairs(canon.tables[i]) do
      local k, v = conv(pair[1]), conv(pair[2])
      assert(k ~= nil, "nil key in corpus")
      rawset(t, k, v)
    end
  end
  if opts.metatables and not is_null(canon.metatables) then
    for _, idx in ipairs(canon.metatables) do
      setmetatable(tables[math.floor(idx) + 1], synthetic_mt())
    end
  end
  return conv(canon.root)
end

-- The canonical value a parser must produce for a record.
function M.expected_canon(rec)
  if not is_null(rec.expected) then return rec.expected end
  return rec.value
end

return M
