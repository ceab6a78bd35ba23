-- Property tests for remote_runner.dump / remote_runner.load on random values.
--
-- RR_SEED=<n> overrides the seed (printed at start), RR_PROP_COUNT=<n> the
-- number of random values (default 2000, on top of the hand-picked ones).
-- A failure names the seed and the value index; RR_SEED=<seed> with
-- RR_PROP_ONLY=<index> re-runs just that value.
local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$")) or "test_lua"
if not package.path:find(here .. "/?.lua", 1, true) then
  package.path = here .. "/?.lua;" .. package.path
end

local loader = require("support.loader")
local exact = require("support.exact")
local gen = require("support.gen")
local utf8check = require("support.utf8check")
local show = require("support.show")

local SEED = tonumber(os.getenv("RR_SEED") or "") or 20240611
local COUNT = tonumber(os.getenv("RR_PROP_COUNT") or "") or 2000
local ONLY = tonumber(os.getenv("RR_PROP_ONLY") or "")
local MAX_REPORTED = 5

describe("codec properties (" .. loader.interp() .. ", seed " .. SEED .. ")", function()
  local rr

  setup(function()
    print(string.format("codec_props_spec: seed %d, %d random values (RR_SEED to override)", SEED, COUNT))
    rr = loader.rr()
  end)

  -- cases[i] = { value = v, label = "..." }; fixed ones first, then random.
  local cases
  local function get_cases()
    if cases then return cases end
    cases = {}
    local fixed = gen.fixed_values()
    for i, box in ipairs(fixed) do
      cases[#cases + 1] = { value = box[1], label = "fixed #" .. i }
    end
    for i = 1, COUNT do
      if not ONLY or ONLY == i then
        local r = gen.rng(SEED + i * 104729)
        cases[#cases + 1] = { value = gen.value(r), label = "random #" .. i .. " (RR_SEED=" .. SEED
          .. " RR_PROP_ONLY=" .. i .. ")" }
      end
    end
    return cases
  end

  -- Runs check(case, text) on every value; collects failures and reports the
  -- first few with the value rendered.
  local function for_all(check)
    local failures, shown = 0, {}
    for _, c in ipairs(get_cases()) do
      local ok, text = pcall(rr.dump, c.value)
      local fine, why
      if not ok then
        fine, why = false, "rr.dump raised: " .. tostring(text)
      else
        fine, why = check(c, text)
      end
      if not fine then
        failures = failures + 1
        if #shown < MAX_REPORTED then
          shown[#shown + 1] = c.label .. ": " .. tostring(why) .. "\n    value: " .. show.value(c.value, 400)
            .. (ok and ("\n    text: " .. show.string(text, 300)) or "")
        end
      end
    end
    assert(failures == 0, failures .. " of " .. #get_cases() .. " values failed:\n  " .. table.concat(shown, "\n  "))
  end

  it("generates at least 2000 random values", function()
    if not ONLY then
      assert.is_true(#get_cases() >= COUNT)
      assert.is_true(COUNT >= 2000 or os.getenv("RR_PROP_COUNT") ~= nil)
    end
  end)

  it("(a) dump -> plain load in an empty environment -> exactly equal", function()
    for_all(function(c, text)
      local ok, v = loader.plain_load(text)
      if not ok then return false, "plain load failed: " .. tostring(v) end
      return exact.equal(c.value, v)
    end)
  end)

  it("(b) dump -> rr.load -> exactly equal (graph identity included)", function()
    for_all(function(c, text)
      local secs, ok, v = loader.timed_load(rr, text)
      if ok ~= true then return false, "rr.load failed: " .. tostring(v) end
      if secs > 2 then return false, string.format("rr.load took %.2f s", secs) end
      return exact.equal(c.value, v)
    end)
  end)

  it("(c) dump output is valid UTF-8 text (never bytecode)", function()
    for_all(function(_, text)
      if type(text) ~= "string" then return false, "dump returned a " .. type(text) end
      if text:sub(1, 1) == "\27" then return false, "text starts with ESC (bytecode signature)" end
      local ok, pos, why = utf8check.check(text)
      if not ok then return false, "invalid UTF-8 at byte " .. pos .. ": " .. why end
      return true
    end)
  end)

  -- (d) dump(load(dump(v))) == dump(v) is deliberately NOT asserted: key
  -- order follows pairs() and may differ between two equal tables.
end)

describe("support: strict UTF-8 validator", function()
  local ok_cases = {
    "", "abc", "\0", "\127", "\194\128", "\223\191", "\224\160\128", "\237\159\191", "\238\128\128",
    "\239\191\191", "\240\144\128\128", "\244\143\191\191", "caf\195\169 \226\130\172 \240\159\152\128",
  }
  local bad_cases = {
    "\128", "\191", "\192\128", "\193\191", "\194", "\194A", "\224\128\128", "\224\159\191",
    "\237\160\128", "\237\191\191", "\240\128\128\128", "\240\143\191\191", "\244\144\128\128",
    "\245\128\128\128", "\248\136\128\128\128", "\255", "\226\130", "a\128b", "\239\191",
  }
  it("accepts valid sequences", function()
    for _, s in ipairs(ok_cases) do
      assert.is_true(utf8check.is_valid(s), show.string(s))
    end
  end)
  it("rejects overlongs, surrogates, > U+10FFFF, stray and truncated bytes", function()
    for _, s in ipairs(bad_cases) do
      assert.is_false(utf8check.is_valid(s), show.string(s))
    end
  end)
end)

describe("support: exact equality", function()
  local NZ = gen.NEG_ZERO
  it("distinguishes what must be distinguished", function()
    assert.is_false((exact.equal(0.0, NZ)))
    assert.is_false((exact.equal({ 1 }, { 1, 2 })))
    assert.is_false((exact.equal({ a = 1 }, { b = 1 })))
    assert.is_false((exact.equal("a\0", "a")))
    if gen.HAS_INT then
      assert.is_false((exact.equal(1, 1.0)))
      assert.is_false((exact.equal({ 1 }, { 1.0 })))
    end
    local s = { 1 }
    assert.is_false((exact.equal({ s, s }, { { 1 }, { 1 } })))
    assert.is_false((exact.equal({ { 1 }, { 1 } }, { s, s })))
    local c = {}
    c.x = c
    assert.is_false((exact.equal(c, { x = {} })))
    assert.is_false((exact.equal({ [{ 1 }] = 1 }, { [{ 2 }] = 1 })))
    assert.is_false((exact.equal({ [{ 1 }] = 1, [{ 2 }] = 2 }, { [{ 1 }] = 2, [{ 2 }] = 1 })))
  end)
  it("accepts what must be accepted", function()
    local z = 0
    assert.is_true((exact.equal(z / z, z / z)))
    assert.is_true((exact.equal(NZ, NZ)))
    local c1, c2 = {}, {}
    c1.x, c2.x = c1, c2
    c1[c1], c2[c2] = c1, c2
    assert.is_true((exact.equal(c1, c2)))
    local k1, k2 = { 1 }, { 1 }
    local j1, j2 = { 1 }, { 1 }
    assert.is_true((exact.equal({ [k1] = "a", [k2] = "b", x = k2 }, { [j1] = "b", [j2] = "a", x = j1 })))
    assert.is_true((exact.equal(setmetatable({ 1 }, { __len = function() return 9 end }), { 1 })))
    -- deep chain: no recursion
    local d1, d2 = {}, {}
    local a, b = d1, d2
    for _ = 1, 100000 do
      a[1], b[1] = {}, {}
      a, b = a[1], b[1]
    end
    assert.is_true((exact.equal(d1, d2)))
  end)
end)
