-- Strict UTF-8 validator (RFC 3629): rejects overlong forms, UTF-16 surrogates
-- (U+D800..U+DFFF), code points above U+10FFFF, stray continuation bytes and
-- truncated sequences. Returns true, or false plus the 1-based byte position of
-- the first bad sequence and a short reason.
local M = {}

local function cont(b)
  return b ~= nil and b >= 0x80 and b <= 0xBF
end

function M.check(s)
  local i, n = 1, #s
  while i <= n do
    local b = s:byte(i)
    if b < 0x80 then
      i = i + 1
    elseif b >= 0xC2 and b <= 0xDF then
      if not cont(s:byte(i + 1)) then return false, i, "bad 2-byte sequence" end
      i = i + 2
    elseif b >= 0xE0 and b <= 0xEF then
      local b2, b3 = s:byte(i + 1, i + 2)
      if not (cont(b2) and cont(b3)) then return false, i, "bad 3-byte sequence" end
      if b == 0xE0 and b2 < 0xA0 then return false, i, "overlong 3-byte sequence" end
      if b == 0xED and b2 > 0x9F then return false, i, "UTF-16 surrogate" end
      i = i + 3
    elseif b >= 0xF0 and b <= 0xF4 then
      local b2, b3, b4 = s:byte(i + 1, i + 3)
      if not (cont(b2) and cont(b3) and cont(b4)) then return false, i, "bad 4-byte sequence" end
      if b == 0xF0 and b2 < 0x90 then return false, i, "overlong 4-byte sequence" end
      if b == 0xF4 and b2 > 0x8F then return false, i, "code point above U+10FFFF" end
      i = i + 4
    else
      -- 0x80..0xBF stray continuation, 0xC0/0xC1 overlong lead, 0xF5..0xFF
      return false, i, string.format("invalid lead byte 0x%02X", b)
    end
  end
  return true
end

function M.is_valid(s)
  return (M.check(s))
end

return M
