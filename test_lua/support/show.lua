-- Debug rendering of Lua values for failure messages: exact numbers (integer
-- vs float subtype, -0.0, inf, nan, %.17g), escaped bytes, table identities
-- (<t1> ... <ref t1>) so shared subtables and cycles are visible.
local M = {}

local math_type = math.type

function M.number(x)
  if math_type and math_type(x) == "integer" then
    return string.format("%d", x)
  end
  local s
  if x ~= x then
    s = "nan"
  elseif x == math.huge then
    s = "inf"
  elseif x == -math.huge then
    s = "-inf"
  elseif x == 0 then
    s = (1 / x < 0) and "-0.0" or "0.0"
  else
    s = string.format("%.17g", x)
  end
  if math_type then
    return s .. "(float)"
  end
  return s
end

function M.string(s, max)
  max = max or 80
  local body = s
  local cut = ""
  if #body > max then
    cut = string.format("...(%d bytes)", #s)
    body = body:sub(1, max)
  end
  body = body:gsub("[%c\"\\\128-\255]", function(c)
    return string.format("\\%03d", c:byte())
  end)
  return '"' .. body .. '"' .. cut
end

-- Renders v; limit bounds the output length.
function M.value(v, limit)
  limit = limit or 600
  local ids, nid = {}, 0
  local buf, len = {}, 0
  local function put(s)
    if len < limit then
      buf[#buf + 1] = s
      len = len + #s
    end
  end
  local function walk(x, depth)
    if len >= limit then return end
    local t = type(x)
    if t == "number" then
      put(M.number(x))
    elseif t == "string" then
      put(M.string(x))
    elseif t == "table" then
      if ids[x] then
        put("<ref t" .. ids[x] .. ">")
        return
      end
      nid = nid + 1
      ids[x] = nid
      if depth > 40 then
        put("<t" .. nid .. ">{...}")
        return
      end
      put("<t" .. nid .. ">{")
      local first = true
      for k, val in next, x do
        if not first then put(", ") end
        first = false
        put("[")
        walk(k, depth + 1)
        put("]=")
        walk(val, depth + 1)
        if len >= limit then break end
      end
      put("}")
    else
      put(tostring(x))
    end
  end
  walk(v, 0)
  local s = table.concat(buf)
  if len >= limit then
    s = s:sub(1, limit) .. "..."
  end
  return s
end

return M
