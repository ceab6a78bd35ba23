-- Strict base64 (RFC 4648, standard alphabet) decoder for the fixture corpus.
-- Pure Lua, no bit operators, so it runs on Lua 5.1-5.4 and LuaJIT.
local M = {}

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local VALUE = {}
for i = 1, 64 do
  VALUE[ALPHABET:byte(i)] = i - 1
end
local PAD = ("="):byte()
local CHAR = {}
for i = 0, 255 do
  CHAR[i] = string.char(i)
end

function M.decode(s)
  assert(type(s) == "string", "base64: string expected")
  s = s:gsub("%s", "")
  assert(#s % 4 == 0, "base64: length is not a multiple of 4")
  local out, n = {}, 0
  for i = 1, #s, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    local va, vb = VALUE[a], VALUE[b]
    assert(va and vb, "base64: bad character near " .. i)
    local vc, vd = VALUE[c], VALUE[d]
    local last = i + 3 == #s
    if c == PAD then
      assert(last and d == PAD, "base64: bad padding")
      n = n + 1
      out[n] = CHAR[(va * 4 + math.floor(vb / 16)) % 256]
    elseif d == PAD then
      assert(last and vc, "base64: bad padding")
      local v = va * 262144 + vb * 4096 + vc * 64
      n = n + 1
      out[n] = CHAR[math.floor(v / 65536) % 256] .. CHAR[math.floor(v / 256) % 256]
    else
      assert(vc and vd, "base64: bad character near " .. i)
      local v = va * 262144 + vb * 4096 + vc * 64 + vd
      n = n + 1
      out[n] = CHAR[math.floor(v / 65536) % 256] .. CHAR[math.floor(v / 256) % 256] .. CHAR[v % 256]
    end
  end
  return table.concat(out)
end

return M
