-- remote_runner.load / remote_runner.dump against the serpent fixture corpus
-- (../shared/fixtures/serpent or RR_FIXTURES; read at test time, never copied).
--
-- One `it` per corpus record, named "<case> [<mode>]", plus one round-trip
-- `it` per distinct corpus value.
--
-- Deliberate decisions (see the bottom of the brief in SPEC.md section 3):
--  * Function literals are ALWAYS rejected, including serpent's nocode
--    placeholder `function() --[[..skipped..]] end`. The corpus contradicts
--    itself here: hostile case `serpent_nocode_function` says reject, while
--    the `dump{nocode=true}` / `line{nocode=true,...}` records of cases
--    `function_in_table` / `global_function` say expect=value. For those
--    nocode records whose value holds a function we assert that load returns
--    false with an error mentioning "function".
--  * On lua5.1.jsonl the oracle for cases zero_and_neg_zero,
--    neg_zero_and_inf and lenient_float_literal_1_0 recorded a Lua 5.1
--    compiler bug: it merges the number constants 0 and -0 of one function,
--    so `{0,-0}` loads as {0,0}, `{-0,1/0,-1/0}` as {-0,-inf,inf} and
--    `{1.0,-0.0,1e0,0.0}` as {1,-0,1,-0}. A data parser must not copy that:
--    for those records the correct result is the original `value` (for the
--    hostile record, which has none, the value LuaJIT and 5.2+ produce).
local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$")) or "test_lua"
if not package.path:find(here .. "/?.lua", 1, true) then
  package.path = here .. "/?.lua;" .. package.path
end

local loader = require("support.loader")
local corpus = require("support.corpus")
local exact = require("support.exact")
local show = require("support.show")
local utf8check = require("support.utf8check")

local TIME_LIMIT = 2 -- seconds; a hang guard, not a benchmark
local FILE = corpus.path()
local RECORDS = corpus.records(FILE)
local ORACLE_51_BUG = {
  zero_and_neg_zero = "value",
  neg_zero_and_inf = "value",
  lenient_float_literal_1_0 = { root = { table = 0 }, tables = { {
    { { float = "1" }, { float = "1" } }, { { float = "2" }, { float = "-0" } },
    { { float = "3" }, { float = "1" } }, { { float = "4" }, { float = "0" } },
  } } },
}

local function expected_canon(rec)
  local fix = ORACLE_51_BUG[rec.case]
  if corpus.file_name() == "lua5.1.jsonl" and fix then
    if fix == "value" then return rec.value end
    return fix
  end
  return corpus.expected_canon(rec)
end

local function has_offset(err)
  return type(err) == "string" and err:find("offset") ~= nil and err:find("%d") ~= nil
end

local function label(rec)
  return rec.case .. " [" .. rec.mode .. "]"
end

describe("serpent corpus " .. corpus.file_name() .. " on " .. loader.interp(), function()
  local rr
  setup(function()
    rr = loader.rr()
  end)

  local counts = { value = 0, nocode = 0, reject = 0, accept_optional = 0, serializer_error = 0, other = 0 }

  for _, rec in ipairs(RECORDS) do
    local name = label(rec)
    if rec.expect == "serializer_error" then
      counts.serializer_error = counts.serializer_error + 1

    elseif rec.expect == "value" and corpus.kinds(rec.value)["function"] and rec.mode:find("nocode") then
      -- Deliberate decision: function literals are rejected, nocode placeholder included.
      counts.nocode = counts.nocode + 1
      it(name .. " rejects the nocode function placeholder (deliberate)", function()
        local text = corpus.text(rec)
        local secs, ok, err = loader.timed_load(rr, text)
        assert(ok == false, name .. ": expected rejection of a function literal, got a "
          .. type(err) .. " " .. show.value(err, 200))
        assert(type(err) == "string", name .. ": error is not a string")
        assert(err:lower():find("function") ~= nil, name .. ": error does not mention 'function': " .. err)
        assert(has_offset(err), name .. ": error has no byte offset: " .. err)
        assert(secs < TIME_LIMIT, name .. string.format(": took %.2f s", secs))
      end)

    elseif rec.expect == "value" then
      counts.value = counts.value + 1
      it(name .. " loads to the expected value", function()
        local text = corpus.text(rec)
        local secs, ok, v = loader.timed_load(rr, text)
        assert(ok == true, name .. ": rr.load failed: " .. tostring(v) .. "\n  text: " .. show.string(text, 300))
        local want = corpus.build(expected_canon(rec))
        local same, why = exact.equal(want, v)
        assert(same, name .. ": " .. tostring(why) .. "\n  text: " .. show.string(text, 300))
        assert(secs < TIME_LIMIT, name .. string.format(": took %.2f s", secs))
      end)

    elseif rec.expect == "reject" then
      counts.reject = counts.reject + 1
      it(name .. " is rejected with a byte offset, in bounded time", function()
        local text = corpus.text(rec)
        assert(text ~= nil, name .. ": record has no text")
        local secs, ok, err = loader.timed_load(rr, text)
        assert(ok == false, name .. ": accepted hostile/invalid text, got " .. show.value(err, 200)
          .. "\n  text: " .. show.string(text, 200))
        assert(has_offset(err), name .. ": error lacks 'offset' and a number: " .. tostring(err))
        assert(secs < TIME_LIMIT, name .. string.format(": took %.2f s", secs))
      end)

    elseif rec.expect == "accept_optional" then
      counts.accept_optional = counts.accept_optional + 1
      it(name .. " is either rejected cleanly or loaded exactly", function()
        local text = corpus.text(rec)
        local secs, ok, v = loader.timed_load(rr, text)
        assert(secs < TIME_LIMIT, name .. string.format(": took %.2f s", secs))
        if ok then
          local want = corpus.build(expected_canon(rec))
          local same, why = exact.equal(want, v)
          assert(same, name .. " (accepted): " .. tostring(why))
        else
          assert(ok == false, name .. ": first result must be true or false, got " .. tostring(ok))
          assert(has_offset(v), name .. ": error lacks 'offset' and a number: " .. tostring(v))
        end
      end)

    else
      counts.other = counts.other + 1
    end
  end

  it("corpus bookkeeping: serializer_error records skipped, every record classified", function()
    print(string.format("\ncorpus %s: %d records: %d value, %d nocode (rejected by decision), %d reject,"
      .. " %d accept_optional, %d serializer_error (skipped, nothing to parse)",
      FILE, #RECORDS, counts.value, counts.nocode, counts.reject, counts.accept_optional,
      counts.serializer_error))
    assert.are.equal(0, counts.other)
    assert.is_true(#RECORDS > 500)
    for _, rec in ipairs(RECORDS) do
      if rec.expect == "serializer_error" then
        assert.is_true(corpus.is_null(rec.text_b64) and not corpus.is_null(rec.serpent_error), label(rec))
      end
    end
  end)

  it("support: base64 decoding of every record matches its text field", function()
    for _, rec in ipairs(RECORDS) do
      if not corpus.is_null(rec.text) then
        assert(corpus.text(rec) == rec.text, label(rec) .. ": base64 decode differs from text")
      end
    end
  end)
end)

describe("rr.dump round trip of every corpus value on " .. loader.interp(), function()
  local rr
  setup(function()
    rr = loader.rr()
  end)

  local seen = {}
  for _, rec in ipairs(RECORDS) do
    if not seen[rec.case] and not corpus.is_null(rec.value) then
      seen[rec.case] = true
      local kinds = corpus.kinds(rec.value)
      local bad
      for _, k in ipairs({ "function", "userdata", "thread" }) do
        if kinds[k] then bad = k end
      end
      if bad then
        it(rec.case .. ": dump refuses a " .. bad .. " and names the path", function()
          local v = corpus.build(rec.value)
          local ok, err = pcall(rr.dump, v)
          assert(ok == false, rec.case .. ": dump accepted a " .. bad)
          err = tostring(err)
          assert(err:find("value", 1, true), rec.case .. ": error does not name the path: " .. err)
          assert(err:find(bad, 1, true), rec.case .. ": error does not say '" .. bad .. "': " .. err)
        end)
      elseif kinds.cdata then
        it(rec.case .. ": dump refuses LuaJIT cdata", function()
          local v = corpus.build(rec.value)
          local ok, err = pcall(rr.dump, v)
          assert(ok == false, rec.case .. ": dump accepted cdata")
          assert(tostring(err):find("value", 1, true), rec.case .. ": error does not name the path: " .. tostring(err))
        end)
      else
        it(rec.case .. ": dump -> plain load (empty env) and rr.load give the exact value", function()
          local v = corpus.build(rec.value, { metatables = true })
          local okd, text = pcall(rr.dump, v)
          local opts
          if not okd and tostring(text):lower():find("depth") then
            -- Deeper than the default depth limit (nested_depth_200: Lua's own
            -- parser cannot read such text either). A raised limit must work.
            opts = { maxdepth = 1000 }
            okd, text = pcall(rr.dump, v, opts)
          end
          assert(okd, rec.case .. ": rr.dump raised: " .. tostring(text))
          assert(type(text) == "string", rec.case .. ": dump did not return a string")
          local valid, pos, why = utf8check.check(text)
          assert(valid, rec.case .. ": dump output is not UTF-8 at byte " .. tostring(pos) .. ": " .. tostring(why))
          local okp, pv = loader.plain_load(text)
          -- past the default depth, Lua's own parser may fail to compile it (C levels)
          local lua_limit = opts and not okp and tostring(pv):find("^compile error")
          assert(okp or lua_limit, rec.case .. ": plain load failed: " .. tostring(pv)
            .. "\n  text: " .. show.string(text, 300))
          local same, diff = true, nil
          if okp then same, diff = exact.equal(corpus.build(rec.value), pv) end
          assert(same, rec.case .. " (plain load): " .. tostring(diff) .. "\n  text: " .. show.string(text, 300))
          local secs, okr, rv = loader.timed_load(rr, text, opts)
          assert(okr == true, rec.case .. ": rr.load of our own dump failed: " .. tostring(rv)
            .. "\n  text: " .. show.string(text, 300))
          same, diff = exact.equal(corpus.build(rec.value), rv)
          assert(same, rec.case .. " (rr.load): " .. tostring(diff) .. "\n  text: " .. show.string(text, 300))
          assert(secs < TIME_LIMIT, rec.case .. string.format(": rr.load took %.2f s", secs))
        end)
      end
    end
  end
end)
