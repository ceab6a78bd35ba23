-- Deterministic benchmark payloads (issue #2, section 4 "Speed").
--
--   local payloads = require("payloads")   -- with bench/ on package.path
--   local v = payloads.P4()                -- a fresh value on every call
--
-- The table holds only the builders P1..P6 (iterate in order with
-- `for i = 1, 6 do local build = payloads["P" .. i] ... end`).
-- Pseudo-random data uses Park–Miller: x = x * 16807 % 2147483647, the
-- state starting at the seed and r being the next state. All arithmetic
-- stays below 2^53, so the values are the same on every Lua version; on
-- 5.3+ integers stay integers and the floats are real floats.

local char, concat = string.char, table.concat

local function park_miller(seed)
  local x = seed
  return function()
    x = x * 16807 % 2147483647
    return x
  end
end

local M = {}

-- P1: a small RPC-ish message.
function M.P1()
  return { "Remote.ClientDisconnected", 123456 }
end

-- P2: a record with nested map, array, UTF-8 string, float/integer mix.
function M.P2()
  return {
    player_id = 10001,
    name = "张三",
    level = 57,
    pos = { x = 1.5, y = -2.25, z = 0 },
    flags = { true, false, true },
  }
end

-- P3: an array of 100 small records.
function M.P3()
  local t = {}
  for i = 1, 100 do
    t[i] = { id = i, count = i * 3, bind = (i % 2 == 0), name = "item_" .. i }
  end
  return t
end

-- P4: 10,000 numbers (seed 4): even i an integer in [-100000, 100000],
-- odd i a float in [-1000, 1000).
function M.P4()
  local rnd = park_miller(4)
  local t = {}
  for i = 1, 10000 do
    local r = rnd()
    if i % 2 == 0 then
      t[i] = r % 200001 - 100000
    else
      t[i] = r / 2147483647 * 2000 - 1000
    end
  end
  return t
end

-- P5: 200 binary strings of 64 bytes each (seed 5), byte = r % 256. Other seeds give other
-- values of the same kind (the bench's fresh-data row).
function M.P5(seed)
  local rnd = park_miller(seed or 5)
  local t, bytes = {}, {}
  for i = 1, 200 do
    for j = 1, 64 do
      bytes[j] = char(rnd() % 256)
    end
    t[i] = concat(bytes)
  end
  return t
end

-- P6: a 30-deep chain; the outermost table has v = 1, the innermost
-- (v = 30) has no child.
function M.P6()
  local t
  for i = 30, 1, -1 do
    t = { child = t, v = i }
  end
  return t
end

return M
