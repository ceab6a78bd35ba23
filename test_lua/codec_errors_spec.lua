-- Error behaviour of remote_runner.dump / remote_runner.load: values that
-- cannot be sent, limits, truncated and garbage input, hostile texts, deep
-- nesting, bytecode, bad arguments. Garbage is seeded (RR_SEED overrides).
local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$")) or "test_lua"
if not package.path:find(here .. "/?.lua", 1, true) then
  package.path = here .. "/?.lua;" .. package.path
end

local loader = require("support.loader")
local exact = require("support.exact")
local gen = require("support.gen")
local show = require("support.show")
local corpus = require("support.corpus")

local SEED = tonumber(os.getenv("RR_SEED") or "") or 20240611
local TIME_LIMIT = 2

local function nest(d)
  local root = {}
  local cur = root
  for _ = 2, d do
    cur[1] = {}
    cur = cur[1]
  end
  return root
end

local function nest_text(d)
  return string.rep("{", d) .. string.rep("}", d)
end

local function has_offset(err)
  return type(err) == "string" and err:find("offset") ~= nil and err:find("%d") ~= nil
end

local function mentions_size(err)
  err = tostring(err):lower()
  return err:find("size") ~= nil or err:find("byte") ~= nil
end

describe("codec errors on " .. loader.interp(), function()
  local rr
  setup(function()
    rr = loader.rr()
  end)

  -- dump must raise (not return) an error naming the path and the type
  local function dump_error(v, opts)
    local ok, err
    if opts then
      ok, err = pcall(rr.dump, v, opts)
    else
      ok, err = pcall(rr.dump, v)
    end
    assert(ok == false, "rr.dump did not raise for " .. show.value(v, 200) .. "; returned "
      .. show.value(err, 200))
    return tostring(err)
  end

  local function assert_contains(s, needle)
    assert(s:find(needle, 1, true), "expected " .. show.string(s, 300) .. " to contain " .. show.string(needle))
  end

  -- a clean rejection: no raise, false + string with a byte offset, bounded time
  local function assert_rejects(text, what)
    what = what or show.string(text, 80)
    local t0 = os.clock()
    local called, ok, err = pcall(rr.load, text)
    local secs = os.clock() - t0
    assert(called, what .. ": rr.load raised instead of returning false: " .. tostring(ok))
    assert(ok == false, what .. ": accepted, got " .. show.value(err, 200))
    assert(has_offset(err), what .. ": error lacks 'offset' and a number: " .. tostring(err))
    assert(secs < TIME_LIMIT, what .. string.format(": took %.2f s", secs))
    return err
  end

  describe("values that cannot be sent", function()
    local function f() end
    it("a function in a nested value names the path", function()
      local err = dump_error({ 1, { cb = print } })
      assert_contains(err, "value[2].cb")
      assert_contains(err, "function")
    end)
    it("opts.name sets the root name of the path", function()
      local err = dump_error({ 1, { cb = print } }, { name = "arguments" })
      assert_contains(err, "arguments[2].cb")
      assert_contains(err, "function")
    end)
    it("a function at the root", function()
      local err = dump_error(f)
      assert_contains(err, "value")
      assert_contains(err, "function")
    end)
    it("userdata (io.stdout) in a nested value", function()
      local err = dump_error({ x = { io.stdout } })
      assert_contains(err, "value.x[1]")
      assert_contains(err, "userdata")
    end)
    it("userdata at the root", function()
      local err = dump_error(io.stdout)
      assert_contains(err, "value")
      assert_contains(err, "userdata")
    end)
    it("a coroutine in a nested value", function()
      local err = dump_error({ co = coroutine.create(f) })
      assert_contains(err, "value.co")
      assert_contains(err, "thread")
    end)
    it("a deep path", function()
      local err = dump_error({ a = { b = { c = { 1, 2, f } } } })
      assert_contains(err, "value.a.b.c[3]")
      assert_contains(err, "function")
    end)
    it("a function used as a key", function()
      local err = dump_error({ [print] = 1 })
      assert_contains(err, "value")
      assert_contains(err, "function")
    end)
    it("userdata used as a nested key", function()
      local err = dump_error({ a = { [io.stdout] = true } })
      assert_contains(err, "value.a")
      assert_contains(err, "userdata")
    end)
    it("a coroutine used as a nested key", function()
      local err = dump_error({ list = { { [coroutine.create(f)] = 1 } } })
      assert_contains(err, "value.list[1]")
      assert_contains(err, "thread")
    end)
    it("a function inside a table that is a key", function()
      local err = dump_error({ [{ cb = f }] = 1 })
      assert_contains(err, "value")
      assert_contains(err, "function")
    end)
    it("a function reached through a cycle", function()
      local t = { name = "t" }
      t.self = t
      t.list = { t, { f } }
      local err = dump_error(t)
      assert_contains(err, "value")
      assert_contains(err, "function")
    end)
    it("a root that cannot be sent names only the root, after a nested failure too", function()
      -- The nested failure leaves three levels of path behind; a later root failure must not
      -- read keys for them from unrelated stack slots.
      dump_error({ a = { b = { print } } })
      assert.are.equal("value: cannot send a function", dump_error(print))
      dump_error({ a = { b = { print } } })
      assert.are.equal("args: cannot send a userdata", dump_error(io.stdout, { name = "args" }))
    end)
    it("huge keys on the path are shown cut", function()
      local long = string.rep("k", 100000)
      local err = dump_error({ [long] = { [long .. " x"] = { print } } })
      assert.is_true(#err < 300, "error of " .. #err .. " bytes")
      assert.is_truthy(err:find("value." .. string.rep("k", 40) .. '...["' .. string.rep("k", 40) .. '"...][1]: ', 1,
        true), err)
    end)
    it("the module still works after an error", function()
      dump_error({ print })
      local ok, v = rr.load(rr.dump({ 1, 2 }))
      assert.is_true(ok)
      assert.is_true((exact.equal({ 1, 2 }, v)))
    end)
  end)

  describe("metatables are not sent", function()
    it("a table with hostile metamethods dumps as its raw contents", function()
      local mt = {
        __index = function() error("__index was used") end,
        __newindex = function() error("__newindex was used") end,
        __len = function() error("__len was used") end,
        __pairs = function() error("__pairs was used") end,
        __tostring = function() return "custom!" end,
        __metatable = "locked",
      }
      local t = setmetatable({ 1, nil, 3, n = 3, x = { y = 2 } }, mt)
      local text = rr.dump(t)
      local ok, v = rr.load(text)
      assert.is_true(ok)
      assert.is_nil(getmetatable(v))
      local same, why = exact.equal({ 1, nil, 3, n = 3, x = { y = 2 } }, v)
      assert(same, why)
      local okp, pv = loader.plain_load(text)
      assert(okp, pv)
      assert(exact.equal({ 1, nil, 3, n = 3, x = { y = 2 } }, pv))
    end)
  end)

  describe("limits", function()
    it("dump: maxdepth", function()
      local err = dump_error(nest(20), { maxdepth = 10 })
      assert(err:lower():find("depth"), "error does not mention depth: " .. err)
      local ok, text = pcall(rr.dump, nest(3), { maxdepth = 10 })
      assert(ok, text)
    end)
    it("load: maxdepth", function()
      local ok, err = rr.load(nest_text(20), { maxdepth = 10 })
      assert.is_false(ok)
      assert(tostring(err):lower():find("depth"), "error does not mention depth: " .. tostring(err))
      local ok2, v = rr.load(nest_text(3), { maxdepth = 10 })
      assert(ok2 == true, v)
      assert.is_true((exact.equal(nest(3), v)))
    end)
    it("load: maxdepth counts the dump chunk form too", function()
      local text = "do local _=" .. nest_text(20) .. ";return _;end"
      local ok, err = rr.load(text, { maxdepth = 10 })
      assert.is_false(ok)
      assert(tostring(err):lower():find("depth"), "error does not mention depth: " .. tostring(err))
    end)
    it("load: maxdepth counts tables the dump chunk links through shared locals", function()
      -- `__[i][1]=__[i-1]` chains k tables at a constant cost per link: no constructor in
      -- the text nests deeper than 2.
      local function chain_text(k)
        local parts = { "do local __={" .. string.rep("{},", k) .. "}" }
        for i = 2, k do parts[#parts + 1] = ";__[" .. i .. "][1]=__[" .. (i - 1) .. "]" end
        parts[#parts + 1] = ";return __[" .. k .. "];end"
        return table.concat(parts)
      end
      local ok, err = rr.load(chain_text(11), { maxdepth = 10 })
      assert.is_false(ok)
      assert_contains(tostring(err), "depth limit (maxdepth = 10)")
      local loaded_ok, chain = rr.load(chain_text(10), { maxdepth = 10 })
      assert.is_true(loaded_ok, chain)
      local depth = 0
      while chain do depth, chain = depth + 1, chain[1] end
      assert.equal(10, depth)
      -- Locals placed in the next local's constructor link tables just as well.
      local parts = { "do local t1={}" }
      for i = 2, 11 do parts[#parts + 1] = ";local t" .. i .. "={t" .. (i - 1) .. "}" end
      parts[#parts + 1] = ";return t11;end"
      ok, err = rr.load(table.concat(parts), { maxdepth = 10 })
      assert.is_false(ok)
      assert_contains(tostring(err), "depth limit (maxdepth = 10)")
      assert.is_true((rr.load(table.concat(parts), { maxdepth = 11 })))
      -- What dump writes for a shared value within a limit loads within the same limit.
      local leaf = {}
      local shared = { leaf, leaf, { leaf } }
      local text = rr.dump({ shared, shared }, { maxdepth = 4 })
      assert.is_true((rr.load(text, { maxdepth = 4 })))
    end)
    it("dump: a 100000-deep value does not crash (default limits)", function()
      local ok, text = pcall(rr.dump, nest(100000))
      if not ok then
        assert(tostring(text):lower():find("depth"), "error does not mention depth: " .. tostring(text))
      else
        local called, lok, v = pcall(rr.load, text)
        assert(called, "rr.load raised on our own deep dump: " .. tostring(lok))
        if lok then assert.is_true((exact.equal(nest(100000), v))) end
      end
    end)
    it("dump: maxbytes", function()
      local err = dump_error(string.rep("x", 10000), { maxbytes = 100 })
      assert(mentions_size(err), "error mentions neither size nor bytes: " .. err)
      local big = {}
      for i = 1, 1000 do big[i] = "item " .. i end
      err = dump_error(big, { maxbytes = 100 })
      assert(mentions_size(err), "error mentions neither size nor bytes: " .. err)
      local ok, text = pcall(rr.dump, "x", { maxbytes = 100 })
      assert(ok, text)
    end)
    it("load: maxbytes", function()
      local ok, err = rr.load('"' .. string.rep("x", 10000) .. '"', { maxbytes = 100 })
      assert.is_false(ok)
      assert(mentions_size(err), "error mentions neither size nor bytes: " .. tostring(err))
      local ok2, v = rr.load('"x"', { maxbytes = 100 })
      assert(ok2 == true, v)
      assert.are.equal("x", v)
    end)
    it("load: maxnodes", function()
      local items = {}
      for i = 1, 1000 do items[i] = tostring(i) end
      local text = "{" .. table.concat(items, ",") .. "}"
      local ok, err = rr.load(text, { maxnodes = 100 })
      assert.is_false(ok)
      assert(tostring(err):lower():find("node"), "error does not mention nodes: " .. tostring(err))
      local ok2, v = rr.load(text, { maxnodes = 100000 })
      assert(ok2 == true, v)
      assert.are.equal(1000, #v)
      local tables = "{" .. string.rep("{},", 500) .. "}"
      ok, err = rr.load(tables, { maxnodes = 100 })
      assert.is_false(ok)
      assert(tostring(err):lower():find("node"), "error does not mention nodes: " .. tostring(err))
    end)

    it("dump: a string far over maxbytes fails before any of it is written", function()
      -- The writer reserves up to four bytes per input byte: a 100 MB string with a small
      -- maxbytes used to be escaped in full (and a bigger one could exhaust memory) before
      -- the limit was checked. Peak resident memory must not grow by the string's size.
      local function peak_kb()
        local f = io.open("/proc/self/status")
        if not f then return nil end
        local status = f:read("*a")
        f:close()
        return tonumber(status:match("VmHWM:%s*(%d+)"))
      end
      local big = string.rep("x", 100 * 1024 * 1024)
      collectgarbage("collect")
      -- Writing 5 to clear_refs resets the peak to the current size (Linux 4.0+).
      local reset = io.open("/proc/self/clear_refs", "w")
      if reset then
        reset:write("5")
        reset:close()
      end
      local before = peak_kb()
      for _, opts in ipairs({ { maxbytes = 100 }, { maxbytes = 50 * 1024 * 1024 } }) do
        for _, value in ipairs({ { big }, { [big] = 1 } }) do
          local ok, err = pcall(rr.dump, value, opts)
          assert.is_false(ok)
          assert.is_truthy(tostring(err):find("size limit", 1, true), tostring(err))
        end
      end
      local after = peak_kb()
      if before and after then
        assert.is_true(after - before < 20 * 1024, "peak memory grew by " .. (after - before) .. " KB")
      end
    end)

    it("a bad option raises at the call site, naming the option and what came", function()
      local function raises(fname, opts, wanted)
        local f = fname == "dump" and function() return rr.dump({ 1 }, opts) end
          or function() return rr.load("{1}", opts) end
        local ok, err = pcall(f)
        assert.is_false(ok, fname .. " accepted a bad option")
        local want = "bad argument #2 to '" .. fname .. "' (" .. wanted
        assert(tostring(err):find(want, 1, true), "wanted '" .. want .. "', got: " .. tostring(err))
      end
      for _, fname in ipairs({ "dump", "load" }) do
        raises(fname, { maxdepth = -1 }, "opts.maxdepth must be a positive integer, got -1)")
        raises(fname, { maxdepth = 0 }, "opts.maxdepth must be a positive integer, got 0)")
        raises(fname, { maxbytes = 2.5 }, "opts.maxbytes must be a positive integer, got 2.5)")
        raises(fname, { maxdepth = 0 / 0 }, "opts.maxdepth must be a positive integer, got NaN)")
        raises(fname, { maxdepth = "3" }, "opts.maxdepth must be a positive integer, got string)")
        -- A misspelt option is an error, not a silently ignored limit.
        raises(fname, { maxdeph = 3 },
          "unknown option 'maxdeph'; options are maxdepth, maxbytes, maxnodes, name, safe)")
        raises(fname, { 10 }, "unknown option of type number")
        raises(fname, "maxdepth=3", "table expected, got string)")
      end
      raises("load", { maxnodes = -5 }, "opts.maxnodes must be a positive integer, got -5)")
      raises("load", { safe = "yes" }, "opts.safe must be a boolean, got string)")
      raises("dump", { name = 5 }, "opts.name must be a string, got number)")
    end)

    it("serpent.load's safe option is accepted; no value of it makes load run code", function()
      for _, safe in ipairs({ true, false }) do
        local ok, v = rr.load("{1,x='y'}", { safe = safe })
        assert.is_true(ok, v)
        assert.same({ 1, x = "y" }, v)
        local ran = false
        _G.rr_probe = function() ran = true end
        local code_ok, err = rr.load("rr_probe()", { safe = safe })
        _G.rr_probe = nil
        assert.is_false(code_ok)
        assert.is_false(ran)
        assert_contains(tostring(err), "global name 'rr_probe' is not accepted")
      end
    end)

    it("one options table serves dump and load; math.huge means no limit", function()
      local opts = { maxdepth = 10, maxbytes = math.huge, maxnodes = 100, name = "reply" }
      local ok, v = rr.load(rr.dump({ { 1 }, "x" }, opts), opts)
      assert.is_true(ok, v)
      assert(exact.equal({ { 1 }, "x" }, v))
      local okd, err = pcall(rr.dump, { print }, opts)
      assert.is_false(okd)
      assert.is_truthy(tostring(err):find("reply[1]", 1, true), tostring(err))
    end)
  end)

  describe("bad input to load", function()
    it("a huge token is quoted cut short in the error, with its length", function()
      local ok, err = rr.load(string.rep("a", 1024 * 1024))
      assert.is_false(ok)
      assert.is_true(#err < 200, "error of " .. #err .. " bytes")
      assert.is_truthy(err:find("global name 'aaaa", 1, true), err)
      assert.is_truthy(err:find("(1048576 bytes)", 1, true), err)
      ok, err = rr.load("{" .. string.rep("7", 100000) .. "x}")
      assert.is_false(ok)
      assert.is_true(#err < 200, "error of " .. #err .. " bytes")
      assert.is_truthy(err:find("malformed number '7777", 1, true), err)
    end)

    it("non-string text raises a bad argument error", function()
      for _, v in ipairs({ { nil }, { {} }, { true }, { print } }) do
        local ok, err = pcall(rr.load, v[1])
        assert(ok == false, "rr.load(" .. type(v[1]) .. ") did not raise")
        err = tostring(err)
        assert(err:find("bad argument #1", 1, true) and err:find("load", 1, true),
          "rr.load(" .. type(v[1]) .. "): unexpected error: " .. err)
      end
    end)

    it("every proper prefix of a valid dump is rejected with an offset", function()
      local cyc = { name = "c" }
      cyc.self = cyc
      local values = {
        { 1, "two", { x = 3 }, [true] = 1.5, s = "a\0b\255\"\\" },
        cyc,
        { list = { 1, 2, 3 }, [{ k = 1 }] = { v = 2 }, n = 3 },
        { { { { "deep" } } } },
      }
      for _, v in ipairs(values) do
        local text = rr.dump(v)
        local ok = rr.load(text)
        assert(ok == true, "rr.load rejected our own dump " .. show.string(text))
        for len = 0, #text - 1 do
          local prefix = text:sub(1, len)
          -- a prefix that only drops trailing blanks/comments is still complete
          if not text:sub(len + 1):match("^%s*$") then
            local err = assert_rejects(prefix, "prefix " .. len .. " of " .. show.string(text, 60))
            local off = tonumber(err:match("offset%D-(%d+)"))
            if off then
              assert(off <= #prefix + 1, "offset " .. off .. " is past the end of a " .. #prefix .. "-byte text")
            end
          end
        end
      end
    end)

    -- what: a label; the full text is shown escaped on failure so it can be replayed
    local function check_any(text, what)
      what = what .. "\n    full text: " .. show.string(text, 4000) .. "\n   "
      local t0 = os.clock()
      local called, ok, v = pcall(rr.load, text)
      local secs = os.clock() - t0
      assert(called, what .. ": rr.load raised: " .. tostring(ok))
      assert(secs < TIME_LIMIT, what .. string.format(": took %.2f s", secs))
      if ok == false then
        assert(has_offset(v), what .. ": error lacks 'offset' and a number: " .. tostring(v))
        return
      end
      assert(ok == true, what .. ": first result is neither true nor false")
      -- accepted: Lua itself must read the same data from it (not on PUC 5.1,
      -- whose compiler merges the constants 0 and -0)
      if not loader.IS_51 then
        local okp, pv = loader.plain_load(text)
        -- one version-dependent lexical feature is allowed: the parser reads
        -- \u{XXXX} escapes (5.3+, LuaJIT) on every version; Lua 5.2 refuses them
        if not okp and loader.interp() == "lua5.2" and text:find("\\u", 1, true) and tostring(pv):find("escape") then
          return
        end
        assert(okp, what .. ": rr.load accepted text that Lua cannot load as data: " .. tostring(pv)
          .. " (rr.load gave " .. show.value(v, 200) .. ")")
        local same, why = exact.equal(pv, v)
        assert(same, what .. ": accepted with a different meaning than Lua: " .. tostring(why))
      end
    end

    it("seeded random bytes never raise: false + offset, or exactly Lua's meaning", function()
      print(string.format("codec_errors_spec: garbage seed %d (RR_SEED to override)", SEED))
      local r = gen.rng(SEED)
      for i = 1, 600 do
        local n = r.int(0, 64)
        local b = {}
        for j = 1, n do b[j] = string.char(r.int(0, 255)) end
        local text = table.concat(b)
        check_any(text, "garbage #" .. i)
      end
    end)

    -- Mutation seeds must be byte-deterministic (rr.dump's key order follows
    -- pairs() and may change between runs): serpent's texts from the corpus
    -- plus our dumps of array-only values.
    local function mutation_seeds()
      local seeds = {}
      local okc, recs = pcall(corpus.records)
      if okc then
        for _, rec in ipairs(recs) do
          if rec.expect == "value" and not rec.mode:find("nocode") and not corpus.is_null(rec.text_b64) then
            local t = corpus.text(rec)
            if #t <= 3000 then seeds[#seeds + 1] = t end
          end
        end
      end
      local z = 0
      local arrays = {
        { 1, 2, { 3, { 4, "five" } } }, { "a\0b", "\255\254", "caf\195\169", "", "end" },
        { 0.5, -2.5, 1e300, 2 ^ 53, 1 / z, -1 / z, z / z, gen.NEG_ZERO, true, false },
        { { {}, {} }, { { {} } } },
      }
      for _, v in ipairs(arrays) do seeds[#seeds + 1] = rr.dump(v) end
      return seeds
    end

    it("seeded mutations of valid texts never raise: false + offset, or exactly Lua's meaning", function()
      local seeds = mutation_seeds()
      local r = gen.rng(SEED + 1)
      local alphabet = "{}[]()=,;.\"'\\-+*/#0123456789 \n_xdoendlocalreturn\0\255"
      for i = 1, 1000 do
        local text = seeds[r.int(1, #seeds)]
        for _ = 1, r.int(1, 3) do
          local pos = r.int(1, #text + 1)
          local kind = r.int(1, 3)
          local c = string.char(alphabet:byte(r.int(1, #alphabet)))
          if kind == 1 then
            text = text:sub(1, pos - 1) .. c .. text:sub(pos + 1)
          elseif kind == 2 then
            text = text:sub(1, pos - 1) .. c .. text:sub(pos)
          else
            text = text:sub(1, pos - 1) .. text:sub(pos + 1)
          end
        end
        check_any(text, "mutation #" .. i .. " (seed " .. (SEED + 1) .. ")")
      end
    end)

    it("100000-deep inputs are rejected without a crash", function()
      local N = 100000
      local deep = {
        { string.rep("{", N), "unclosed braces" },
        { string.rep("{", N) .. string.rep("}", N), "balanced braces" },
        { string.rep("{[", N), "unclosed key brackets" },
        { string.rep("{[", N) .. "1" .. string.rep("]=1}", N), "balanced table keys" },
        { string.rep("(", N) .. "1" .. string.rep(")", N), "parentheses" },
        { string.rep("- ", N) .. "1", "unary minus" },
        { string.rep("-", N) .. "1", "minus run (a comment)" },
        { "do local _=" .. string.rep("{", N) .. string.rep("}", N) .. ";return _;end", "dump chunk form" },
        { "{" .. string.rep("x={", N), "unclosed named fields" },
      }
      for _, d in ipairs(deep) do
        assert_rejects(d[1], d[2])
      end
    end)

    -- (no plain-load cross-check here: Lua's own compiler has a constant limit)
    local function load_or_clean_error(text, what)
      local t0 = os.clock()
      local called, ok, v = pcall(rr.load, text)
      local secs = os.clock() - t0
      assert(called, what .. ": rr.load raised: " .. tostring(ok))
      assert(secs < TIME_LIMIT, what .. string.format(": took %.2f s", secs))
      if not ok then
        assert(ok == false and has_offset(v), what .. ": bad error: " .. tostring(v))
        return nil
      end
      return v
    end

    it("wide inputs load exactly or fail cleanly", function()
      local v = load_or_clean_error("{" .. string.rep("{},", 100000) .. "}", "100000 sibling tables")
      if v then
        assert.are.equal(100000, #v)
        for i = 1, #v do
          assert(type(v[i]) == "table" and next(v[i]) == nil, "element " .. i)
          assert(v[i] ~= v[i - 1], "sibling tables must be distinct")
        end
      end
      v = load_or_clean_error("{" .. string.rep("1,", 200000) .. "}", "200000 numbers")
      if v then
        assert.are.equal(200000, #v)
        for i = 1, #v do assert(exact.scalar_equal(1, v[i]), "element " .. i) end
      end
      v = load_or_clean_error('"' .. string.rep("\\255", 100000) .. '"', "100000 escapes")
      if v then assert(v == string.rep("\255", 100000), "decoded string differs") end
    end)

    it("duplicate keys in a constructor: rejected, or Lua's meaning (positional entries win)", function()
      -- serpent never writes these; a parser may refuse them, but if it
      -- accepts them it must mean what Lua means. Lua stores positional items
      -- at the end of the constructor (SETLIST), after the keyed ones.
      local cases = {
        { '{"a", [1]="b"}', { "a" } },
        { '{[1]="b", "a"}', { "a" } },
        { "{1, 2, [2]=20, 3}", { 1, 2, 3 } },
        { '{["x"]=1, x=2}', { x = 2 } },
        { 'do local _={"a",[1]="b"};return _;end', { "a" } },
      }
      for _, c in ipairs(cases) do
        local v = load_or_clean_error(c[1], c[1])
        if v ~= nil then
          local same, why = exact.equal(c[2], v)
          assert(same, show.string(c[1]) .. " accepted with a meaning Lua does not give it: " .. tostring(why))
        end
      end
    end)

    it("a nil or NaN key, or indexing a non-table, is reported at the key", function()
      local cases = {
        { "{[0/0]=1, 2, 3}", "table key is NaN", "0/0" },
        { "{1, {[nil]=1}, 3}", "table key is nil", "nil" },
        { "do local _={} return {[_[2]]=true} end", "table key is nil", "_[2]" },
        { "do local _={} _[_.q]=1 return _ end", "table key is nil", "_.q" },
        { "do local _=1;_.x=1;return _ end", "not a table", "x=1" },
        { "do local _={};_.a.b=1;return _ end", "not a table", "b=1" },
        { "do local _=1 return {_[1]} end", "not a table", "1]" },
      }
      for _, c in ipairs(cases) do
        local text, message, key = c[1], c[2], c[3]
        local ok, err = rr.load(text)
        assert(ok == false, text .. ": accepted")
        assert(err:find(message, 1, true), text .. ": " .. err)
        local offset = tonumber(err:match("at offset (%d+)$"))
        local wanted = text:find(key, 1, true) - 1
        assert(offset == wanted, string.format("%s: offset %s, wanted %d (%s)", text, tostring(offset), wanted, err))
      end
    end)

    it("bytecode is rejected", function()
      local dumped = string.dump(function() return 42 end)
      assert_rejects(dumped, "string.dump of a function")
      assert_rejects("\27", "lone ESC")
      assert_rejects("\27LuaT\0\25\147\r\n\26\n", "5.4 header")
      assert_rejects("\27LuaS\0", "5.3 header")
      assert_rejects("\27LJ\2", "LuaJIT header")
      assert_rejects("return " .. dumped, "return + bytecode")
    end)

    it("code in data position is rejected", function()
      local hostile = {
        "_ENV", "_G", "_G.x", "{x = y}", "{[x] = 1}", "{f()}", "{('x'):rep(3)}", "{a.b}", "#{}",
        "{1, 2, 3}[1]", "function() end", "{f = function() end}", "{...}", "x", "print",
        "print 'x'", "print{1}", "1 .. 2", "2^2", "1 % 1", "1//1", "~1", "1 & 1", "1 < 2",
        "nil == nil", "true and 1", "false or 1", "not true", "-{}", "-'1'", "- -'1'", "1/2", "2/0", "0/1",
        "1/0/0", "(1)/0", "math.huge", "-math.huge", "{[1/0]=1, math.pi}",
        "local _ = {} _.x = os return _",
        "do local _={};_[1]=_G;return _;end",
        "do local _={};x=1;return _;end",
        "do local _={};local __={};__.x=print;return _;end",
        "do local _=1;while true do end;return _;end",
        "do local _={};_.x=_.y.z;return _;end",
        "do local _={};_.x.y=1;return _;end",
        "do local _={};return x;end",
        "do local _={};_.f=function() end;return _;end",
        "do local _={};_[1]=_[1]();return _;end",
        "do local _={};setmetatable(_,{});return _;end",
        "do local _={};return _;end;os.exit()",
        "do local _={};return _,_;end",
        "return os",
        "return {}, {}",
        "goto x", "::x::", "for i=1,2 do end", "if true then end", "repeat until true",
        "local function f() end",
        "{1} --[[ unterminated comment",
        "\"unterminated string",
        "'unterminated", "[[unterminated long string", "{1,,2}", "{=1}", "{[1]}", "{1 2}",
        "\"bad escape \\q\"", "\"bad escape \\256\"", "\"newline\nin string\"",
        "nan", "inf", "-inf", "-nan", "NaN", "Infinity", "1e", "0x", "1..2", ".", "..", "...",
      }
      for _, text in ipairs(hostile) do
        assert_rejects(text)
      end
    end)

    it("the dump chunk shape itself is accepted", function()
      local good = {
        { "do local _={};_[_]=_;return _;end", "self key" },
        { "do local _={a={}};_.a.b=_;return _;end", "cycle via path" },
        { "do local _ = { } ; _.x = _ ; return _ ; end", "spaced" },
        { "do local _={};local __={};__._table1={1};_[__._table1]=\"a\";return _;end", "table key via __" },
        { "do local _=nil;return _;end", "nil" },
      }
      for _, g in ipairs(good) do
        local called, ok, v = pcall(rr.load, g[1])
        assert(called, g[2] .. ": raised " .. tostring(ok))
        assert(ok == true, g[2] .. ": rejected: " .. tostring(v))
        local okp, pv = loader.plain_load(g[1])
        assert(okp, pv)
        local same, why = exact.equal(pv, v)
        assert(same, g[2] .. ": " .. tostring(why))
      end
    end)
  end)
end)
