-- A tiny pure-Lua protobuf codec that knows ONLY the legacy schema of svr.RunLua/RunMfa:
--
--   RunLuaMfaRequest  { string module_name = 1; string function_name = 2; string arguments_dump = 3; }
--   RunLuaMfaResponse { string returned_dump = 1; }
--
-- It is what a legacy peer sees of our messages: unknown fields are skipped by wire type,
-- exactly as a proto3 parser does, and the last occurrence of a known field wins. Strings are
-- read as raw bytes (no UTF-8 check here; tests check UTF-8 separately).
--
-- For tests it also lists every field of a message (`fields`), so the new fields (caller id,
-- call id, timeout budget, error kind, ...) can be inspected without a full schema.
--
-- Runs on Lua 5.1-5.4 and LuaJIT: only arithmetic, no bit library, no integer division.
local M = {}

local byte, char, sub = string.byte, string.char, string.sub
local floor = math.floor
local concat = table.concat

-- Wire types.
M.VARINT, M.I64, M.LEN, M.SGROUP, M.EGROUP, M.I32 = 0, 1, 2, 3, 4, 5

-- ------------------------------------------------------------------------------------------
-- Encoding

-- Non-negative integer -> varint bytes (exact up to 2^53 on every Lua; exact 64-bit on 5.3+
-- for non-negative integers).
function M.varint(n)
  assert(type(n) == "number" and n >= 0 and n == floor(n), "varint: non-negative integer expected")
  local out = {}
  repeat
    local b = n % 128
    n = (n - b) / 128
    if n > 0 then b = b + 128 end
    out[#out + 1] = char(b)
  until n == 0
  return concat(out)
end

function M.tag(field, wire)
  return M.varint(field * 8 + wire)
end

function M.len_field(field, bytes)
  return M.tag(field, M.LEN) .. M.varint(#bytes) .. bytes
end

function M.varint_field(field, n)
  return M.tag(field, M.VARINT) .. M.varint(n)
end

-- A legacy request. proto3 leaves out empty strings; so do we (as a legacy peer would).
-- t = { module_name=, function_name=, arguments_dump= } (any may be nil)
function M.encode_request(t)
  local parts = {}
  if t.module_name and t.module_name ~= "" then parts[#parts + 1] = M.len_field(1, t.module_name) end
  if t.function_name and t.function_name ~= "" then parts[#parts + 1] = M.len_field(2, t.function_name) end
  if t.arguments_dump and t.arguments_dump ~= "" then parts[#parts + 1] = M.len_field(3, t.arguments_dump) end
  return concat(parts)
end

-- A legacy response: only field 1.
function M.encode_response(returned_dump)
  if returned_dump == nil or returned_dump == "" then return "" end
  return M.len_field(1, returned_dump)
end

-- ------------------------------------------------------------------------------------------
-- Decoding

-- Reads a varint at position pos (1-based). Returns value, next_pos or nil, err.
-- Values past 2^53 are approximate on Lua without integers; the legacy fields never need them.
local function read_varint(s, pos)
  local result, mult = 0, 1
  for i = 0, 9 do
    local b = byte(s, pos + i)
    if b == nil then return nil, "truncated varint at byte " .. (pos - 1) end
    if b >= 128 then
      result = result + (b - 128) * mult
    else
      result = result + b * mult
      return result, pos + i + 1
    end
    mult = mult * 128
  end
  return nil, "varint longer than 10 bytes at byte " .. (pos - 1)
end
M.read_varint = read_varint

-- Every field of a message, in wire order:
--   { {num=, wire=, value=, pos=}, ... }  value: number (varint), string (len / fixed bytes)
-- Returns list or nil, err. Groups are skipped (a proto3 parser skips them too).
function M.fields(s)
  assert(type(s) == "string", "fields: string expected")
  local out = {}
  local pos, n = 1, #s
  local group_depth = 0
  while pos <= n do
    local key, np = read_varint(s, pos)
    if not key then return nil, np end
    local num, wire = floor(key / 8), key % 8
    if num == 0 then return nil, "field number 0 at byte " .. (pos - 1) end
    local value
    if wire == M.VARINT then
      value, np = read_varint(s, np)
      if value == nil then return nil, np end
    elseif wire == M.I64 then
      if np + 7 > n then return nil, "truncated fixed64 at byte " .. (np - 1) end
      value = sub(s, np, np + 7)
      np = np + 8
    elseif wire == M.LEN then
      local len
      len, np = read_varint(s, np)
      if len == nil then return nil, np end
      if np + len - 1 > n then
        return nil, "truncated length-delimited field " .. num .. " at byte " .. (np - 1)
      end
      value = sub(s, np, np + len - 1)
      np = np + len
    elseif wire == M.I32 then
      if np + 3 > n then return nil, "truncated fixed32 at byte " .. (np - 1) end
      value = sub(s, np, np + 3)
      np = np + 4
    elseif wire == M.SGROUP then
      group_depth = group_depth + 1
    elseif wire == M.EGROUP then
      group_depth = group_depth - 1
      if group_depth < 0 then return nil, "unmatched end-group at byte " .. (pos - 1) end
    else
      return nil, "invalid wire type " .. wire .. " at byte " .. (pos - 1)
    end
    if group_depth == 0 and wire ~= M.EGROUP then
      out[#out + 1] = { num = num, wire = wire, value = value, pos = pos }
    end
    pos = np
  end
  if group_depth ~= 0 then return nil, "unterminated group" end
  return out
end

-- The first field with number num (or nil), and how many times it occurred.
function M.find(list, num)
  local first, count = nil, 0
  for _, f in ipairs(list) do
    if f.num == num then
      count = count + 1
      first = first or f
    end
  end
  return first, count
end

local function decode_known(s, known)
  local list, err = M.fields(s)
  if not list then return nil, err end
  local out = {}
  local unknown = {}
  for _, f in ipairs(list) do
    local name = known[f.num]
    if name then
      if f.wire ~= M.LEN then
        -- A legacy proto3 parser rejects a known string field with the wrong wire type.
        return nil, "field " .. f.num .. " (" .. name .. ") has wire type " .. f.wire
      end
      out[name] = f.value -- last one wins
    else
      unknown[#unknown + 1] = f.num
    end
  end
  return out, unknown
end

-- What a legacy peer reads of a request: { module_name=, function_name=, arguments_dump= }
-- (absent string fields are "", as proto3 has it). Second result: the list of unknown field
-- numbers that were skipped. nil, err on a malformed message.
function M.decode_request(s)
  local t, unknown = decode_known(s, { "module_name", "function_name", "arguments_dump" })
  if not t then return nil, unknown end
  t.module_name = t.module_name or ""
  t.function_name = t.function_name or ""
  t.arguments_dump = t.arguments_dump or ""
  return t, unknown
end

-- What a legacy peer reads of a response: { returned_dump= }, unknown field numbers.
function M.decode_response(s)
  local t, unknown = decode_known(s, { "returned_dump" })
  if not t then return nil, unknown end
  t.returned_dump = t.returned_dump or ""
  return t, unknown
end

-- The value of field `num` when it is there with wire type `wire` (else nil).
local function value_of(s, num, wire)
  local list = M.fields(s)
  if not list then return nil end
  local f = M.find(list, num)
  if f and f.wire == wire then return f.value end
  return nil
end

-- The value of a varint field (nil when absent).
function M.varint_of(s, num)
  return value_of(s, num, M.VARINT)
end

-- The bytes of a length-delimited field (nil when absent).
function M.bytes_of(s, num)
  return value_of(s, num, M.LEN)
end

return M
