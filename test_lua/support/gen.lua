-- Deterministic random Lua values for codec property tests.
-- PRNG: Park-Miller "minimal standard" (16807 * s mod 2^31-1); all arithmetic
-- stays below 2^53, so the sequence is the same on every Lua version.
local M = {}

local math_type = math.type
local HAS_INT = math_type ~= nil
local INF = math.huge
-- computed at run time (see corpus.lua: Lua 5.1 merges 0 and -0 constants)
local NEG_ZERO = -1 / INF
local function nan()
  local z = 0
  return z / z
end
M.NEG_ZERO = NEG_ZERO
M.HAS_INT = HAS_INT

function M.rng(seed)
  local s = math.floor(tonumber(seed) or 1) % 2147483646 + 1
  local r = {}
  function r.next31()
    s = (s * 16807) % 2147483647
    return s
  end
  -- uniform-ish integer in [lo, hi] (hi - lo < 2^31)
  function r.int(lo, hi)
    return lo + r.next31() % (hi - lo + 1)
  end
  function r.chance(p)
    return r.next31() / 2147483647 < p
  end
  function r.pick(list)
    return list[r.int(1, #list)]
  end
  return r
end

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
  "_ENV", "_G", "self", "n", "_", "__",
}

local TRICKY = {
  "", " ", "a", "abc", "_x1", "123", "-1", "1e5", "0x10", " 1", "-0", "nan", "inf", "1/0",
  "\"", "'", "\\", "\\\\", "\"'\\", "\n", "\r", "\r\n", "\t", "\0", "a\0b", "\0\0\0",
  "]]", "[[", "]=]", "[==[", "--", "--[[", "--]]", "\\065", "\\0651", "\1" .. "2", "\0" .. "1",
  "\27Lua", "\127", "\26", "\239\187\191", "caf\195\169", "\226\130\172", "\240\159\152\128",
  "\192\128", "\193\191", "\224\128\128", "\237\160\128", "\237\191\191", "\244\144\128\128",
  "\248\136\128\128\128", "\255", "\128", "\226\130", "\194",
  "${x}", "%d", "%s%%", "return 1", "os.exit()", "function() end",
}

local all_bytes
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  all_bytes = table.concat(t)
end
M.ALL_BYTES = all_bytes

local function rand_utf8_char(r)
  local roll = r.int(1, 4)
  local cp
  if roll == 1 then
    cp = r.int(0, 0x7F)
  elseif roll == 2 then
    cp = r.int(0x80, 0x7FF)
  elseif roll == 3 then
    cp = r.int(0x800, 0xFFFF)
    if cp >= 0xD800 and cp <= 0xDFFF then cp = 0xFFFD end
  else
    cp = r.int(0x10000, 0x10FFFF)
  end
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

function M.string(r)
  local roll = r.int(1, 100)
  if roll <= 20 then
    return r.pick(TRICKY)
  elseif roll <= 30 then
    return r.pick(KEYWORDS)
  elseif roll <= 55 then
    -- random bytes, any value (invalid UTF-8 most of the time)
    local n = r.int(0, 40)
    local b = {}
    for i = 1, n do b[i] = string.char(r.int(0, 255)) end
    return table.concat(b)
  elseif roll <= 70 then
    local n = r.int(0, 20)
    local b = {}
    for i = 1, n do b[i] = rand_utf8_char(r) end
    return table.concat(b)
  elseif roll <= 80 then
    -- a mix of valid UTF-8, bad bytes, and digits right after control bytes
    local n = r.int(1, 12)
    local b = {}
    for i = 1, n do
      local k = r.int(1, 4)
      if k == 1 then b[i] = rand_utf8_char(r)
      elseif k == 2 then b[i] = string.char(r.int(0, 31)) .. tostring(r.int(0, 9))
      elseif k == 3 then b[i] = r.pick(TRICKY)
      else b[i] = string.char(r.int(128, 255)) end
    end
    return table.concat(b)
  elseif roll <= 83 then
    return all_bytes
  elseif roll <= 85 then
    return string.rep(r.pick(TRICKY) .. "x", r.int(100, 1500))
  else
    local n = r.int(1, 10)
    local b = {}
    for i = 1, n do b[i] = string.char(r.int(97, 122)) end
    return table.concat(b)
  end
end

-- Edge numbers, built at run time.
function M.special_floats()
  local list = {
    0.0, NEG_ZERO, INF, -INF, nan(), 0.5, 0.1, 0.1 + 0.2, 1 / 3, -2.5, 1.0, 3.0, 2 ^ 53, 2 ^ 53 + 2,
    2 ^ 63, -2 ^ 63, 2 ^ 64, 1e308, 1.7976931348623157e308, -1.7976931348623157e308,
    2.2250738585072014e-308, 2 ^ -1074, -(2 ^ -1074), 2 ^ -1073 * 3, 1e-300, 123456789.0,
    1e15 + 0.5, 1e16, 1e100, 1e21, 1e22, 5e-324, 4503599627370495.5, 0.30000000000000004,
    100.0, -1e-7, 123e-20, 2 ^ 31, -2 ^ 31 - 1,
  }
  return list
end

function M.special_ints()
  if not HAS_INT then return {} end
  local maxi, mini = math.maxinteger, math.mininteger
  local p53 = math.tointeger(2 ^ 53)
  return {
    0, 1, -1, 2, 42, -42, 255, 256, 65535, maxi, mini, maxi - 1, mini + 1,
    math.tointeger(2 ^ 31), -math.tointeger(2 ^ 31) - 1, p53, p53 + 1, -(p53 + 1), p53 - 1,
    math.tointeger(1e15), math.tointeger(1e16), math.tointeger(2 ^ 62), math.tointeger(2 ^ 62) - 1,
  }
end

local function rand_i64(r)
  -- wraps on purpose: 5.3+ integer arithmetic is modulo 2^64
  local hi, mid, lo = r.next31(), r.next31(), r.int(0, 3)
  return (hi * 2147483648 + mid) * 4 + lo
end

local function rand_double(r)
  local m = (r.next31() * 4194304 + r.int(0, 4194303)) / 9007199254740992
  local k = r.int(1, 4)
  local e
  if k == 1 then
    e = r.int(-1074, 1023)
  elseif k == 2 then
    e = r.int(-1074, -1000)
  else
    e = r.int(-30, 60)
  end
  local v = m * 2 ^ e
  if r.chance(0.5) then v = -v end
  return v
end

local function rand_decimal(r)
  -- "short" decimals such as 0.1, 12.345, 3.0 (a float even when integral)
  local v = r.int(-1000000, 1000000) / 10 ^ r.int(0, 7)
  return v
end

function M.number(r)
  local roll = r.int(1, 100)
  if roll <= 25 then
    return r.pick(M.special_floats())
  elseif roll <= 40 then
    return rand_double(r)
  elseif roll <= 55 then
    return rand_decimal(r)
  elseif HAS_INT then
    if roll <= 70 then return r.pick(M.special_ints()) end
    if roll <= 85 then return rand_i64(r) end
    return r.int(-1000, 1000)
  else
    if roll <= 80 then return r.int(-1000, 1000) end
    return r.int(0, 2147483646) * r.pick({ 1, -1, 1024, 2 ^ 21 })
  end
end

local gen_value, gen_table

local function gen_key(r, ctx, depth)
  local roll = r.int(1, 100)
  if roll <= 30 then
    return M.string(r)
  elseif roll <= 50 then
    local k = M.number(r)
    if k ~= k then return nil end -- NaN cannot be a key
    return k
  elseif roll <= 60 then
    return r.pick({ 0, -1, 1, 2, 3, 100, INF, -INF, 0.5, -1.25, 2 ^ 53, 1e300 })
  elseif roll <= 70 then
    return r.chance(0.5)
  elseif roll <= 82 then
    return r.pick(KEYWORDS)
  elseif roll <= 92 or #ctx.tables == 0 then
    if depth < ctx.maxdepth and ctx.ntables < ctx.maxtables then
      return gen_table(r, ctx, depth + 1)
    end
    return r.pick(KEYWORDS)
  else
    return r.pick(ctx.tables)
  end
end

gen_value = function(r, ctx, depth)
  local roll = r.int(1, 100)
  if depth >= ctx.maxdepth or ctx.ntables >= ctx.maxtables then
    roll = r.int(1, 72)
  end
  if roll <= 6 then
    return nil
  elseif roll <= 12 then
    return r.chance(0.5)
  elseif roll <= 40 then
    return M.number(r)
  elseif roll <= 72 then
    return M.string(r)
  elseif roll <= 88 or #ctx.tables == 0 then
    return gen_table(r, ctx, depth + 1)
  elseif roll <= 94 and #ctx.stack > 0 then
    -- an ancestor: a cycle (self or mutual)
    return r.pick(ctx.stack)
  else
    -- any table made so far: sharing (or a cycle)
    return r.pick(ctx.tables)
  end
end

gen_table = function(r, ctx, depth)
  local t = {}
  ctx.ntables = ctx.ntables + 1
  ctx.tables[#ctx.tables + 1] = t
  ctx.stack[#ctx.stack + 1] = t
  local n = r.int(0, 6)
  if r.chance(0.1) then n = r.int(7, 40) end
  for i = 1, n do
    if not r.chance(0.2) then -- 20%: a nil hole
      t[i] = gen_value(r, ctx, depth)
    end
  end
  if r.chance(0.3) then t.n = n end -- table.pack style
  for _ = 1, r.int(0, 4) do
    local k = gen_key(r, ctx, depth)
    if k ~= nil then
      local v = gen_value(r, ctx, depth)
      if v == nil then v = r.chance(0.5) end
      t[k] = v
    end
  end
  if r.chance(0.04) then t[t] = r.chance(0.5) and t or 1 end -- self as key
  if r.chance(0.04) then t.self = t end
  ctx.stack[#ctx.stack] = nil
  return t
end

-- One random value. maxdepth: table nesting (root table = depth 1).
function M.value(r, opts)
  opts = opts or {}
  local ctx = { tables = {}, stack = {}, ntables = 0, maxdepth = opts.maxdepth or 6,
    maxtables = opts.maxtables or 40 }
  if r.chance(0.75) then
    return gen_table(r, ctx, 1)
  end
  return gen_value(r, ctx, 0)
end

-- Hand-picked values every run checks first (they count toward the total).
function M.fixed_values()
  local list = {}
  local function add(v) list[#list + 1] = { v } end
  add(nil)
  add(true)
  add(false)
  for _, x in ipairs(M.special_floats()) do add(x) end
  for _, x in ipairs(M.special_ints()) do add(x) end
  add(M.special_floats())
  add(M.special_ints())
  add(all_bytes)
  add({ all_bytes, [all_bytes] = all_bytes })
  for _, s in ipairs(TRICKY) do add(s) end
  local kw = {}
  for i, s in ipairs(KEYWORDS) do kw[s] = i end
  add(kw)
  add({ 0.0, NEG_ZERO })
  add({ NEG_ZERO, 0.0 })
  add({ NEG_ZERO, INF, -INF })
  add({ NEG_ZERO, 1, 0, x = NEG_ZERO, y = 0.0 })
  add({ [INF] = "pinf", [-INF] = "ninf", [0.5] = "half", [true] = 1, [false] = 0 })
  add({ nil, 2, nil, n = 3 })
  add({ n = 0 })
  add({ nil, nil, nil, n = 3 })
  if HAS_INT then
    add({ 1, 1.0, 2 ^ 53, math.tointeger(2 ^ 53) + 1, math.maxinteger, math.mininteger, 3.0, 0, NEG_ZERO })
    add({ [math.maxinteger] = "max", [math.mininteger] = "min", [math.tointeger(2 ^ 53) + 1] = "p53p1",
      [2 ^ 63] = "f63", [1.5] = "f", [1] = "i" })
  end
  local self = {}
  self.me = self
  self[1] = self
  add(self)
  local a, b = { name = "a" }, { name = "b" }
  a.peer, b.peer = b, a
  add(a)
  add({ a, b, a, b })
  local shared = { 1, 2 }
  add({ shared, shared, { shared }, x = shared, [shared] = shared })
  local k1, k2 = { 1 }, { 1 }
  add({ [k1] = "a", [k2] = "b" })
  add({ [{}] = {}, [{ {} }] = { {} } })
  local ck = {}
  ck[ck] = ck
  add(ck)
  local deep = {}
  local cur = deep
  for i = 1, 5 do
    cur.child = { level = i }
    cur = cur.child
  end
  cur.root = deep
  add(deep)
  return list
end

return M
