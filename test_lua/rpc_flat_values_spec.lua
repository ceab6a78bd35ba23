-- Flat arrays of plain scalars, `{"name",42,true,nil,n=4}`, are how most calls' arguments and
-- results travel, and a reader of their own takes them (src/bind/flat_values.rs) instead of the
-- parser. It must give exactly what the parser gives, and leave everything else to it. The
-- parser's answer for a text is the same text with a space after its `{` (the flat reader
-- takes no spaces, the parser ignores them).
local Host = require("support.fake_host")
Host.setup_paths()
local exact = require("support.exact")
local gen = require("support.gen")
local legacy = require("support.legacy_proto")
local rr = Host.modules()
local core = rr._internal.core

local select = select

local function pack(...)
  return { n = select("#", ...), ... }
end

-- decode_response's outcome for a legacy response whose dump is `text`.
local function decoded(text)
  return pack(core.decode_response(legacy.encode_response(text), 128, 4194304))
end

local function by_parser(text)
  local spaced = text:gsub("^{", "{ ", 1)
  return decoded(spaced)
end

local function same(a, b)
  if a.n ~= b.n then return false end
  for i = 1, a.n do
    if type(a[i]) == "table" then
      if not exact.equal(a[i], b[i]) then return false end
    elseif not exact.scalar_equal(a[i], b[i]) then
      return false
    end
  end
  return true
end

local function show(t)
  local parts = {}
  for i = 1, t.n do
    local v = t[i]
    parts[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
    if math.type and type(v) == "number" then parts[i] = parts[i] .. ":" .. math.type(v) end
  end
  return "(" .. table.concat(parts, ", ") .. ")"
end

-- A refusal's message names an offset, which the added space moves.
local function without_offsets(outcome)
  if outcome[1] == false and type(outcome[3]) == "string" then
    outcome[3] = outcome[3]:gsub("offset %d+", "offset N")
  end
  return outcome
end

-- rr.load takes the same flat arrays (without nil values) the same way: the same table as
-- the parser's, or the same refusal.
local function check_load(text)
  local ok, value = rr.load(text)
  local spaced_ok, spaced = rr.load((text:gsub("^{", "{ ", 1)))
  assert(ok == spaced_ok, string.format("%q: rr.load %s, the parser %s", text, tostring(ok), tostring(spaced_ok)))
  if ok then
    local equal, why = exact.equal(spaced, value)
    assert(equal, string.format("%q: %s", text, tostring(why)))
    assert(#value == #spaced, string.format("%q: length %d, the parser's %d", text, #value, #spaced))
  else
    assert.equal((spaced:gsub("offset %d+", "offset N")), (value:gsub("offset %d+", "offset N")))
  end
end

local function check(text)
  check_load(text)
  local fast, slow = without_offsets(decoded(text)), without_offsets(by_parser(text))
  assert(same(fast, slow), string.format("%q: %s, the parser: %s", text, show(fast), show(slow)))
  return fast
end

describe("flat arrays", function()
  it("give the parser's values for the forms dump writes", function()
    assert.same({ "Remote.ClientDisconnected", 123456 }, select(2, rr.load('{"Remote.ClientDisconnected",123456}')))
    assert.same({ n = 6, true, "Remote.ClientDisconnected", 123456, true, false, -7 },
      check('{"Remote.ClientDisconnected",123456,true,false,-7,n=5}'))
    assert.same({ n = 4, true, 1, nil, 3 }, check("{1,nil,3,n=3}"))
    assert.same({ n = 3, true, nil, nil }, check("{n=2}"))
    assert.same({ n = 1, true }, check("{}"))
    assert.same({ n = 3, true, 1, 2 }, check("{1,2,}"))
    assert.same({ n = 4, true, "x", nil, nil }, check('{"x",n=3}'))
  end)

  it("give the parser's values for integers at the edges", function()
    for _, text in ipairs({ "{-0}", "{007}", "{9007199254740992}", "{-9007199254740993}",
      "{999999999999999999}", "{1000000000000000000}", "{-9223372036854775807}", "{9223372036854775808}",
      "{1e3}", "{1.5}", "{0x10}", "{--1}", "{- 1}" }) do
      check(text)
    end
  end)

  it("leave to the parser what it reads differently or refuses", function()
    for _, text in ipairs({ "{1,2,n=1}", "{n=2,1}", "{1,n=2,}", "{1,nil,3}", "{nil}", "{,}", "{1,,2}",
      "{1;2}", "{nilx}", "{truex}", '{"a\\"b"}', '{"\\65"}', '{"tab\there"}', '{"\200"}', '{"open}',
      "{", "}", "", "{n=-1}", "{n=1.0}", "{n=7001}", "{x=1}", "{{1}}" }) do
      check(text)
    end
  end)

  it("give the parser's values for random arrays, as dump writes them and by hand", function()
    local r = gen.rng(tonumber(os.getenv("RR_SEED") or "") or 20261126)
    local function scalar()
      local k = r.int(1, 10)
      if k == 1 then return nil end
      if k == 2 then return r.chance(0.5) end
      if k <= 5 then
        local digits = r.int(1, 18)
        local v = r.int(0, 9)
        for _ = 2, digits do v = v * 10 + r.int(0, 9) end
        if not gen.HAS_INT and v > 2 ^ 53 then v = 2 ^ 53 end
        return r.chance(0.5) and -v or v
      end
      if k == 6 then return r.int(-1000, 1000) / 8 end
      local bytes = {}
      for i = 1, r.int(0, 12) do
        bytes[i] = string.char(r.chance(0.9) and r.int(32, 126) or r.int(0, 255))
      end
      return table.concat(bytes)
    end
    local checked = 0
    for _ = 1, 3000 do
      local count = r.int(0, 12)
      local values = { n = count }
      for i = 1, count do values[i] = scalar() end
      -- As a call's arguments are written (n included), and as a peer might write them.
      check(rr.dump(values))
      local parts = {}
      for i = 1, count do
        local v = values[i]
        parts[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
      end
      local n = r.int(1, 4)
      if n == 1 then parts[#parts + 1] = "n=" .. count
      elseif n == 2 then parts[#parts + 1] = "n=" .. (count + r.int(0, 3)) end
      check("{" .. table.concat(parts, ",") .. "}")
      checked = checked + 2
    end
    assert.equal(6000, checked)
  end)

  it("are read by rr.load within its limits, and refused by the parser beyond them", function()
    local text = "{1,2,3,4,5}"
    assert.same({ 1, 2, 3, 4, 5 }, select(2, rr.load(text, { maxnodes = 6 })))
    local ok, err = rr.load(text, { maxnodes = 5 })
    assert.is_false(ok)
    assert.is_truthy(err:find("maxnodes = 5", 1, true), err)
    ok, err = rr.load(text, { maxbytes = 10 })
    assert.is_false(ok)
    assert.is_truthy(err:find("maxbytes = 10", 1, true), err)
    assert.same({ 1, n = 1 }, select(2, rr.load("{1,n=1}", { maxdepth = 1 })))
  end)
end)
