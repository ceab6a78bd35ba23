-- Legacy interop, both directions, with a legacy-only protobuf schema (support/legacy_proto.lua:
-- fields 1-3 of RunLuaMfaRequest, field 1 of RunLuaMfaResponse, unknown fields skipped):
--  (a) legacy requests whose arguments_dump is real serpent text (../shared/fixtures/serpent,
--      lua5.4.jsonl, `line` and `dump` modes) are served, and the response reads back with the
--      legacy schema and plain `load`;
--  (b) what our caller sends decodes with the legacy schema and its dump loads with plain `load`
--      (`loadstring` on 5.1) in an empty environment;
--  (c) a legacy-style response (only field 1, serpent text) is consumed by a pending call.
local Host = require("support.fake_host")
local pack = Host.pack
Host.setup_paths()
local loader = require("support.loader")
local corpus = require("support.corpus")
local exact = require("support.exact")
local utf8check = require("support.utf8check")
local legacy = require("support.legacy_proto")
local rr, svc = Host.modules()

local unpack = table.unpack or unpack

local host

before_each(function()
  host = Host.new({ rr = rr, svc = svc, seed = 41 })
  host:install({ self_id = 9 })
  require("event.dispatcher").reset()
end)

after_each(function()
  assert.same({}, host:finish())
end)

-- Every length-delimited field of a message we wrote is valid UTF-8 (strict proto3 decoders
-- such as C++ libprotobuf refuse anything else in `string` fields).
local function assert_utf8_fields(bytes, what)
  local list, err = legacy.fields(bytes)
  assert(list, what .. " is not a well-formed protobuf message: " .. tostring(err))
  for _, f in ipairs(list) do
    if f.wire == legacy.LEN then
      local ok, pos, why = utf8check.check(f.value)
      assert(ok, what .. " field " .. f.num .. " is not valid UTF-8 at byte " .. tostring(pos) .. ": " .. tostring(why))
    end
  end
end

-- ------------------------------------------------------------------------------------------
-- Corpus records usable as argument / result arrays.

local FILE = corpus.dir() .. "/lua5.4.jsonl"
local HAS_INT = math.type ~= nil

-- On Lua without an integer subtype, integers of the 5.4 corpus are doubles.
local function for_this_lua(canon)
  if HAS_INT then return canon end
  local function conv(x)
    if type(x) == "table" and x.int ~= nil then return { float = x.int } end
    return x
  end
  local out = { root = conv(canon.root), tables = {}, metatables = canon.metatables }
  if not corpus.is_null(canon.tables) then
    for i, t in ipairs(canon.tables) do
      local nt = {}
      for j, pair in ipairs(t) do nt[j] = { conv(pair[1]), conv(pair[2]) } end
      out.tables[i] = nt
    end
  end
  return out
end

local function canon_number(x)
  if type(x) ~= "table" then return nil end
  local s = x.int or x.float
  return s and tonumber(s)
end

-- Records whose value is an argument array: keys 1..k (holes only when an `n` >= k says how
-- many), no functions or other unsendable values, and no reference back to the root table.
local function array_records()
  local out = {}
  for _, rec in ipairs(corpus.records(FILE)) do
    local mode = rec.mode
    -- Without integers (5.1, 5.2, LuaJIT) the 5.4 oracle is right once its integers are read
    -- as doubles, except where 5.4 read serpent's "-0" as the integer 0: here the text "-0" is
    -- -0.0. Those few records are left out there.
    local oracle_is_54_only = not HAS_INT and not corpus.is_null(rec.expected)
      and (corpus.text(rec) or ""):find("%-0[^%d%.xXeE]") ~= nil
    if rec.expect == "value" and (mode:sub(1, 4) == "line" or mode:sub(1, 4) == "dump")
      and not corpus.is_null(rec.text_b64) and not oracle_is_54_only then
      local canon = corpus.expected_canon(rec)
      local root = canon.root
      local kinds = corpus.kinds(canon)
      if type(root) == "table" and root.table ~= nil and next(kinds) == nil then
        local ri = root.table
        local ok, maxk, count, n = true, 0, 0, nil
        for _, pair in ipairs(canon.tables[ri + 1]) do
          local k = pair[1]
          local kn = canon_number(k)
          if type(k) == "table" and k.str == "n" then
            n = canon_number(pair[2])
            if n == nil then ok = false end
          elseif kn and kn >= 1 and kn == math.floor(kn) then
            count = count + 1
            if kn > maxk then maxk = kn end
          else
            ok = false
          end
        end
        if ok and n ~= nil and n < maxk then ok = false end
        if ok and n == nil and count ~= maxk then ok = false end -- holes without n
        if ok and count == 0 then ok = false end
        -- no table refers back to the root (a cycle through the argument array itself)
        for _, t in ipairs(canon.tables) do
          for _, pair in ipairs(t) do
            for _, x in ipairs(pair) do
              if type(x) == "table" and x.table == ri then ok = false end
            end
          end
        end
        if ok then
          out[#out + 1] = { rec = rec, canon = for_this_lua(canon), n = n or maxk, has_n = n ~= nil }
        end
      end
    end
  end
  return out
end

local ARRAYS = array_records()

-- The expected argument array (a copy of the root, with n), built fresh for each use.
local function expected_array(item)
  local root = corpus.build(item.canon)
  local t = {}
  for k, v in pairs(root) do t[k] = v end
  t.n = item.n
  return t
end

describe("the corpus selection", function()
  it("finds enough legacy argument arrays in lua5.4.jsonl (line and dump modes)", function()
    local modes = {}
    for _, item in ipairs(ARRAYS) do modes[item.rec.mode:sub(1, 4)] = true end
    assert.is_true(#ARRAYS >= 40, "only " .. #ARRAYS .. " records")
    assert.is_true(modes.line and modes.dump)
  end)
end)

describe("(a) legacy requests are served", function()
  before_each(function() svc.allow("rpcfix.echo") end)

  -- Serves a legacy request for rpcfix.echo.<func> and returns its results, read back with
  -- the legacy schema and plain load.
  local function serve_legacy(func, arguments_dump)
    local req = legacy.encode_request({ module_name = "rpcfix.echo", function_name = func, arguments_dump = arguments_dump })
    local got
    host:inject(2, req, function(bytes) got = bytes end)
    host:pump()
    local resp = assert(legacy.decode_response(got))
    local ok, value = loader.plain_load(resp.returned_dump)
    assert(ok, value)
    return value
  end

  for idx, item in ipairs(ARRAYS) do
    local rec = item.rec
    it("#" .. idx .. " " .. rec.case .. " [" .. rec.mode .. "]", function()
      local text = corpus.text(rec)
      local req = legacy.encode_request({ module_name = "rpcfix.echo", function_name = "echo", arguments_dump = text })
      local got
      host:inject(2, req, function(bytes) got = bytes end)
      host:pump()
      assert.equal("string", type(got), "a reply went out")
      assert_utf8_fields(got, "the response")
      local resp, unknown = legacy.decode_response(got)
      assert(resp, "the legacy schema cannot read the response: " .. tostring(unknown))
      assert.is_true(#resp.returned_dump > 0, "returned_dump is set (error kind field: "
        .. tostring(legacy.bytes_of(got, 2)) .. ", message: " .. tostring(legacy.bytes_of(got, 3)) .. ")")
      local ok, value = loader.plain_load(resp.returned_dump)
      assert(ok, "plain load of returned_dump failed: " .. tostring(value) .. "\n" .. resp.returned_dump)
      local want = expected_array(item)
      local same, why = exact.equal(want, value, "results")
      assert(same, why)
    end)
  end

  it("results with holes (return nil, err) reach a legacy caller's table.unpack whole", function()
    for _, args in ipairs({ "{nil, \"not found\"}", "{1, nil, 3}" }) do
      local value = serve_legacy("echo", args)
      local _, want = loader.plain_load(args)
      local got = pack(unpack(value))
      assert.equal(#want, got.n, args)
      for k = 1, #want do assert.equal(want[k], got[k], args) end
    end
  end)

  it("the legacy example, as a legacy peer sends it (serpent.dump text)", function()
    svc.allow("event.dispatcher", "dispatch")
    local req = legacy.encode_request({
      module_name = "event.dispatcher",
      function_name = "dispatch",
      arguments_dump = 'do local _={[1]="Remote.ClientDisconnected",[2]=123};return _;end',
    })
    local got
    host:inject(2, req, function(bytes) got = bytes end)
    host:pump()
    assert.same({ n = 2, "Remote.ClientDisconnected", 123 }, require("event.dispatcher").calls[1])
    local resp = assert(legacy.decode_response(got))
    local ok, value = loader.plain_load(resp.returned_dump)
    assert(ok, value)
    assert.same({ n = 1, true }, value)
  end)

  it("argument arrays of every shape arrive as unpack(t, 1, t.n or #t)", function()
    -- (Holes without n are left out: `#t` may then be any border, and LuaJIT's constructor
    -- picks another one than a table filled through the C API.)
    local texts = {
      '{"a", "b"}', '{"a", "b", n = 2}', "{1, 2, 3, n = 1}", "{1, n = 3}", "{n = 0}", "{}",
      '{n = 2, "a", "b"}', '{"a", "b", n = 2.0}', '{"a", "b", n = -1}', '{"a", "b", n = 1.5}',
      '{"a", "b", n = "x"}', '{"a", "b", m = 3}', '{[1] = "a", [2] = "b"}', '{"a", [2] = "b", "c"}',
      "{1, nil, 3, n = 4}", '{{k = 1}, "x", n = 2}', "return {1, 2}",
      "do local _ = {1, 2, n = 2}; return _; end",
    }
    for _, text in ipairs(texts) do
      local ok, t = loader.plain_load(text)
      assert(ok, t)
      local count, n = #t, t.n
      if type(n) == "number" and n >= 0 and n == math.floor(n) then count = math.floor(n) end
      local want = { n = count, unpack(t, 1, count) }
      local same, why = exact.equal(want, serve_legacy("echo", text), text)
      assert(same, why)
    end
  end)

  it("svc.caller() is nil for a legacy caller (no caller fields)", function()
    local value = serve_legacy("caller", "{}")
    assert.is_nil(value[1])
    assert.is_nil(value[2])
  end)

  it("non-UTF-8 bytes from a legacy peer are read as bytes; what we write back is UTF-8", function()
    local req = legacy.encode_request({
      module_name = "rpcfix.echo", function_name = "echo",
      arguments_dump = '{"\255\254 raw \192\128", "ok", n = 2}',
    })
    local got
    host:inject(2, req, function(bytes) got = bytes end)
    host:pump()
    assert_utf8_fields(got, "the response")
    local resp = assert(legacy.decode_response(got))
    local ok, value = loader.plain_load(resp.returned_dump)
    assert(ok, value)
    assert.same({ n = 2, "\255\254 raw \192\128", "ok" }, value)
  end)

  it("an error reply to a legacy peer is still a well-formed, UTF-8 response", function()
    local cases = {
      { module_name = "rpcfix.\255bad", function_name = "f", arguments_dump = "{}" },              -- not_allowed
      { module_name = "rpcfix.echo", function_name = "raise", arguments_dump = '{"\255"}' },        -- runtime
      { module_name = "rpcfix.echo", function_name = "echo", arguments_dump = "{print('x')}" },     -- bad_request
    }
    for _, c in ipairs(cases) do
      local got
      host:inject(2, legacy.encode_request(c), function(bytes) got = bytes end)
      host:pump()
      assert.equal("string", type(got))
      assert_utf8_fields(got, "the error response for " .. c.function_name)
      local resp = assert(legacy.decode_response(got))
      -- A legacy caller does on_result(table.unpack(results)): it gets nil and a message.
      local ok, results = loader.plain_load(resp.returned_dump)
      assert(ok, results)
      local values = pack(unpack(results))
      assert.equal(2, values.n, resp.returned_dump)
      assert.is_nil(values[1])
      assert.is_truthy(tostring(values[2]):find("^remote_runner: [a-z_]+: "), tostring(values[2]))
    end
  end)
end)

describe("(b) what our caller sends reads with the legacy schema and plain load", function()
  local function check_request(bytes, module_name, func, args)
    assert_utf8_fields(bytes, "the request")
    local req, unknown = legacy.decode_request(bytes)
    assert(req, "the legacy schema cannot read the request: " .. tostring(unknown))
    assert.equal(module_name, req.module_name)
    assert.equal(func, req.function_name)
    local ok, value = loader.plain_load(req.arguments_dump)
    assert(ok, "plain load of arguments_dump failed: " .. tostring(value) .. "\n" .. req.arguments_dump)
    local want = {}
    for k, v in pairs(args) do want[k] = v end
    want.n = args.n or #args
    local same, why = exact.equal(want, value, "arguments")
    if not same then error(why .. "\n" .. req.arguments_dump, 0) end
    return req, unknown
  end

  it("the legacy example request", function()
    svc.allow("event.dispatcher", "dispatch")
    local rec = host:call(2, "event.dispatcher", "dispatch", { "Remote.ClientDisconnected", 123 })
    local bytes = host.requests[1].bytes
    local _, unknown = check_request(bytes, "event.dispatcher", "dispatch", { "Remote.ClientDisconnected", 123 })
    -- the new fields are there for new peers, skipped by legacy ones
    local seen = {}
    for _, num in ipairs(unknown) do seen[num] = true end
    assert.is_true(seen[4] and seen[5], "caller id (4) and call id (5) are sent")
    assert.equal(9, legacy.varint_of(bytes, 4), "caller_id = configured self_id")
    assert.equal(rec.id, legacy.varint_of(bytes, 5), "call_id = the id run_mfa returned")
    host:pump()
  end)

  it("arguments with holes, bytes, floats, nesting and sharing", function()
    svc.allow("rpcfix.echo")
    local shared = { "s" }
    local args = {
      nil, "\0\255\128 ok \226\130\172", 0.1, -2.5e-300, 1 / 0, -1 / 0, { x = { y = { z = true } }, [3] = shared },
      shared, "", false, nil,
      n = 11,
    }
    if math.type then args[12] = math.maxinteger; args[13] = 3.0; args.n = 13 end
    host:call(2, "rpcfix.echo", "echo", args)
    check_request(host.requests[1].bytes, "rpcfix.echo", "echo", args)
    host:pump()
  end)

  it("holes in the arguments do not cut a legacy peer's table.unpack short", function()
    -- A legacy service unpacks without n: values after a hole must still be within #t, as
    -- they were when serpent wrote the same arrays ({1,nil,3}).
    svc.allow("rpcfix.echo")
    -- Each array with the text serpent wrote for it: the legacy peer must unpack ours as it
    -- unpacked that (all values on PUC Lua; LuaJIT's # stops at the first hole either way).
    local cases = { { { 1, nil, 3, n = 3 }, "{1,nil,3}" }, { { nil, 2, 3, n = 3 }, "{nil,2,3}" },
      { { "a", "b", nil, "d", "e", n = 5 }, '{"a","b",nil,"d","e"}' }, { { nil, "error text", n = 2 }, '{nil,"error text"}' } }
    for i, case in ipairs(cases) do
      local args, serpent_text = case[1], case[2]
      host:call(2, "rpcfix.echo", "echo", args)
      local req = assert(legacy.decode_request(host.requests[i].bytes))
      local ok, t = loader.plain_load(req.arguments_dump)
      assert(ok, t)
      local _, old = loader.plain_load(serpent_text)
      local got, want = pack(unpack(t)), pack(unpack(old))
      assert.same(want, got, req.arguments_dump)
    end
    host:pump()
  end)

  it("arguments with a long leading hole (values in the hash part) arrive whole", function()
    -- Positions 1000..2000 set in descending order live in the hash part, visited in hash
    -- order: the hole before them is written once, whichever key comes first.
    svc.allow("rpcfix.echo")
    local args = { n = 2000 }
    for i = 2000, 1000, -1 do args[i] = i end
    local rec = host:call(2, "rpcfix.echo", "echo", args)
    local req = assert(legacy.decode_request(host.requests[1].bytes))
    local ok, t = loader.plain_load(req.arguments_dump)
    assert(ok, t)
    assert.equal(2000, t.n)
    for i = 1, 2000 do assert.equal(i >= 1000 and i or nil, t[i], "position " .. i) end
    host:pump()
    assert.equal(2000, rec.results.n)
    for i = 1, 2000 do assert.equal(i >= 1000 and i or nil, rec.results[i], "result " .. i) end
  end)

  it("a cycle among the arguments (graph form) loads with plain load", function()
    svc.allow("rpcfix.echo")
    local a = { name = "a" }
    a.self = a
    local args = { a, a }
    host:call(2, "rpcfix.echo", "echo", args)
    check_request(host.requests[1].bytes, "rpcfix.echo", "echo", args)
    host:pump()
  end)

  it("the argument arrays of the corpus, sent by us, load back with plain load", function()
    svc.allow("rpcfix.echo")
    for _, item in ipairs(ARRAYS) do
      local args = expected_array(item)
      host.requests = {}
      host:call(2, "rpcfix.echo", "echo", args)
      check_request(host.requests[1].bytes, "rpcfix.echo", "echo", args)
    end
    host:pump()
  end)
end)

describe("(c) legacy-style responses are consumed", function()
  local CASES = {
    { "{1, nil, 3, n = 3}", { n = 3, 1, nil, 3 } },
    { "{1, nil, 3, n = 3} --[[table: 0x55d5c0e0a2b0]]", { n = 3, 1, nil, 3 } },
    { "do local _={1,nil,3,n=3};return _;end", { n = 3, 1, nil, 3 } },
    { "do local _ = {[1] = 1, [3] = 3, n = 3}; return _; end", { n = 3, 1, nil, 3 } },
    { "{n = 0}", { n = 0 } },
    { '{"a", "b"}', { n = 2, "a", "b" } },
    { "{1, nil, 3}", { n = 3, 1, nil, 3 } },
    { '{n = 2} --[[table: 0x1]]', { n = 2 } },
    { '{"x", {y = {1, 2}}, n = 2}', { n = 2, "x", { y = { 1, 2 } } } },
    -- n wins over the items, as in unpack(t, 1, t.n); an n that is not a count is ignored.
    { "{1, 2, 3, n = 1}", { n = 1, 1 } },
    { "{1, n = 3}", { n = 3, 1 } },
    { '{n = 2, "a", "b"}', { n = 2, "a", "b" } },
    { '{"a", "b", n = 2.0}', { n = 2, "a", "b" } },
    { '{"a", "b", n = -1}', { n = 2, "a", "b" } },
    { '{"a", "b", n = 1.5}', { n = 2, "a", "b" } },
    { '{"a", "b", n = "x"}', { n = 2, "a", "b" } },
    { '{"a", "b", m = 3}', { n = 2, "a", "b" } },
    { '{[1] = "a", [2] = "b"}', { n = 2, "a", "b" } },
    { '{"a", [2] = "b", "c"}', { n = 2, "a", "c" } },
  }

  for i, c in ipairs(CASES) do
    it("case " .. i .. ": " .. c[1], function()
      host:fault({ on = "request", action = "answer", bytes = legacy.encode_response(c[1]) })
      local rec = host:call(2, "legacy.peer", "f", {})
      host:pump()
      assert.equal(1, rec.fired)
      assert.is_nil(rec.err, rec.err and tostring(rec.err))
      assert.same(c[2], rec.results)
    end)
  end

  it("shared tables in a serpent dump stay shared", function()
    host:fault({ on = "request", action = "answer",
      bytes = legacy.encode_response("do local _={{k=1},n=2};_[2]=_[1];return _;end") })
    local rec = host:call(2, "legacy.peer", "f", {})
    host:pump()
    assert.equal(2, rec.results.n)
    assert.is_true(rawequal(rec.results[1], rec.results[2]))
  end)

  it("rr.call consumes a legacy response too", function()
    host:fault({ on = "request", action = "answer", bytes = legacy.encode_response("{true, nil, 'z', nil, n = 4}") })
    local co = Host.spawn(function() return rr.call(2, "legacy.peer", "f", { 1 }) end)
    host:pump()
    assert.is_true(co.done)
    assert.same({ n = 4, true, nil, "z" }, co.results)
  end)

  it("real serpent text of the corpus arrays, as returned_dump", function()
    for _, item in ipairs(ARRAYS) do
      host:clear_faults()
      host:fault({ on = "request", action = "answer", bytes = legacy.encode_response(corpus.text(item.rec)) })
      local rec = host:call(2, "legacy.peer", "f", {})
      host:pump()
      local label = item.rec.case .. " [" .. item.rec.mode .. "]"
      assert.equal(1, rec.fired, label)
      assert(rec.results, label .. ": " .. tostring(rec.err))
      local same, why = exact.equal(expected_array(item), rec.results, "results")
      assert(same, label .. ": " .. tostring(why))
      assert.equal(item.n, select("#", unpack(rec.results, 1, rec.results.n)))
    end
  end)
end)
