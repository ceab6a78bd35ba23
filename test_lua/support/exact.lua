-- Exact deep equality for codec tests.
--
-- Rules (the fixture README's roundtrip_exact, made strict):
--  * same Lua type; numbers: same integer/float subtype where math.type exists
--    (5.3+), NaN equals NaN, the sign of zero matters, otherwise ==;
--  * strings byte-equal; other non-table values by identity (rawequal);
--  * tables are compared as graphs: there must be a bijection between the
--    tables reachable on each side (shared subtables and cycles must be shared
--    and cyclic in the same places), raw contents only (metatables ignored),
--    no extra or missing keys;
--  * table-valued keys are matched by structure with full backtracking: the
--    solver keeps an explicit list of pending obligations, and each choice of
--    a counterpart for a table key is tried against the whole rest of the
--    problem, undoing bindings on failure. Plain recursion is never used, so a
--    200-deep or 100000-deep chain costs no Lua stack.
local show = require("support.show")

local M = {}

local math_type = math.type

local function scalar_equal(a, b)
  local ta = type(a)
  if ta ~= type(b) then return false end
  if ta == "number" then
    if math_type and math_type(a) ~= math_type(b) then return false end
    if a ~= a then return b ~= b end
    if a ~= b then return false end
    if a == 0 then return (1 / a) == (1 / b) end
    return true
  end
  return rawequal(a, b)
end
M.scalar_equal = scalar_equal

local IDENT = "^[%a_][%w_]*$"

local function keystr(k)
  if type(k) == "string" and k:match(IDENT) then
    return "." .. k
  end
  if type(k) == "number" then
    return "[" .. show.number(k) .. "]"
  end
  if type(k) == "string" then
    return "[" .. show.string(k, 40) .. "]"
  end
  return "[" .. tostring(k) .. "]"
end

local function copy_set(s)
  local c = {}
  for k in next, s do c[k] = true end
  return c
end

local EQ, TKEYS = 1, 2

-- Paths are kept as linked nodes { parent, segment } and rendered only for
-- a failure message (building strings at every level would be quadratic on
-- deep chains).
local function sub(parent, segment)
  return { parent, segment }
end

local function render(node)
  local parts = {}
  local n = 0
  while node do
    n = n + 1
    parts[n] = node[2]
    node = node[1]
  end
  local out = {}
  local elided = false
  for i = n, 1, -1 do
    if n > 60 and i < n - 10 and i > 40 then
      if not elided then
        out[#out + 1] = "...(" .. (n - 51) .. " levels)..."
        elided = true
      end
    else
      out[#out + 1] = parts[i]
    end
  end
  return table.concat(out)
end

-- equal(expected, actual [, rootname]) -> true | false, reason
function M.equal(expected, actual, rootname)
  local AB, BA = {}, {}
  local trail = {}
  local reason

  local function fail(msg)
    reason = msg
    return false
  end
  local function bind(x, y)
    AB[x] = y
    BA[y] = x
    trail[#trail + 1] = x
  end
  local function undo(mark)
    for i = #trail, mark + 1, -1 do
      local x = trail[i]
      BA[AB[x]] = nil
      AB[x] = nil
      trail[i] = nil
    end
  end

  local solve
  solve = function(obl)
    while obl do
      local it = obl[1]
      obl = obl[2]
      if it.kind == EQ then
        local x, y, path = it.x, it.y, it.path
        if type(x) == "table" and type(y) == "table" then
          local mx = AB[x]
          if mx ~= nil then
            if mx ~= y then
              return fail(render(path) .. ": table identity differs (expected a reference to a table seen"
                .. " elsewhere, got a different table)")
            end
          elseif BA[y] ~= nil then
            return fail(render(path) .. ": table identity differs (got a table that already stands for"
              .. " another expected table; sharing/cycles not isomorphic)")
          else
            bind(x, y)
            local nx, ny = 0, 0
            local tkx, tky = {}, {}
            for k, v in next, x do
              if type(k) == "table" then
                tkx[#tkx + 1] = k
              else
                nx = nx + 1
                local w = rawget(y, k)
                if w == nil then
                  return fail(render(path) .. keystr(k) .. ": missing (expected " .. show.value(v, 200) .. ")")
                end
                obl = { { kind = EQ, x = v, y = w, path = sub(path, keystr(k)) }, obl }
              end
            end
            for k, w in next, y do
              if type(k) == "table" then
                tky[#tky + 1] = k
              else
                ny = ny + 1
                if rawget(x, k) == nil then
                  return fail(render(path) .. keystr(k) .. ": unexpected extra key (value " .. show.value(w, 200) .. ")")
                end
              end
            end
            if nx ~= ny then
              return fail(render(path) .. ": key count differs")
            end
            if #tkx ~= #tky then
              return fail(render(path) .. ": expected " .. #tkx .. " table-valued keys, got " .. #tky)
            end
            if #tkx > 0 then
              obl = { { kind = TKEYS, x = x, y = y, tkx = tkx, tky = tky, i = 1, used = {}, path = path }, obl }
            end
          end
        elseif not scalar_equal(x, y) then
          return fail(render(path) .. ": expected " .. show.value(x, 200) .. ", got " .. show.value(y, 200))
        end
      else
        local i = it.i
        if i <= #it.tkx then
          local kx = it.tkx[i]
          local vx = rawget(it.x, kx)
          local kpath = sub(it.path, "[<table key #" .. i .. ">]")
          local mapped = AB[kx]
          if mapped ~= nil then
            local vy = rawget(it.y, mapped)
            if vy == nil or it.used[mapped] then
              return fail(render(kpath) .. ": the table used as key has no counterpart key on the actual side")
            end
            local used = copy_set(it.used)
            used[mapped] = true
            local nxt = { kind = TKEYS, x = it.x, y = it.y, tkx = it.tkx, tky = it.tky, i = i + 1,
              used = used, path = it.path }
            obl = { { kind = EQ, x = vx, y = vy, path = kpath }, { nxt, obl } }
          else
            for _, ky in ipairs(it.tky) do
              if not it.used[ky] and BA[ky] == nil then
                local mark = #trail
                local used = copy_set(it.used)
                used[ky] = true
                local nxt = { kind = TKEYS, x = it.x, y = it.y, tkx = it.tkx, tky = it.tky, i = i + 1,
                  used = used, path = it.path }
                local rest = { { kind = EQ, x = kx, y = ky, path = sub(kpath, "(key)") },
                  { { kind = EQ, x = vx, y = rawget(it.y, ky), path = kpath }, { nxt, obl } } }
                if solve(rest) then return true end
                undo(mark)
              end
            end
            return fail(render(kpath) .. ": no table key on the actual side matches " .. show.value(kx, 200)
              .. (reason and (" (last mismatch: " .. reason .. ")") or ""))
          end
        end
      end
    end
    return true
  end

  local ok = solve({ { kind = EQ, x = expected, y = actual, path = sub(nil, rootname or "value") }, nil })
  if ok then return true end
  return false, reason or "values differ"
end

return M
