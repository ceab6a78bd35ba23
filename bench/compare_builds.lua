-- Codec speed of two builds of remote_runner side by side, for checking one change:
--   lua5.4 bench/compare_builds.lua OLD_DIR NEW_DIR "P4:load P4:dump json:load" [ROUNDS]
-- Both .so files are loaded into this one process (package.loadlib by path), and their timed
-- runs alternate, so a slow spell of the machine hits both alike. Prints the best run of each
-- (CPU time per operation) and new/old.
local old_dir, new_dir, specs = arg[1], arg[2], arg[3]
if not (old_dir and new_dir and specs) then
  io.stderr:write("usage: lua5.4 bench/compare_builds.lua OLD_DIR NEW_DIR \"P1:load P4:dump\" [ROUNDS]\n")
  os.exit(2)
end
local script_dir = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = script_dir .. "/?.lua;" .. package.path
local payloads = require("payloads")
local escaped_texts = require("escaped_texts")
local rounds = tonumber(arg[4] or "21")

-- The module keeps one instance per Lua state in the registry and hands it back to any later
-- open; forgetting it after each open makes the second build give its own.
local INSTANCE_KEY = "remote_runner: the caller side of this state"

local function open(dir)
  local rr = assert(package.loadlib(dir .. "/remote_runner.so", "luaopen_remote_runner"))()
  debug.getregistry()[INSTANCE_KEY] = nil
  return rr
end
local old, new = open(old_dir), open(new_dir)

local function operation(rr, value, op)
  local text = rr.dump(value)
  if op == "load" then return function() rr.load(text) end end
  return function() rr.dump(value) end
end

local function timed(f, n)
  local start = os.clock()
  for _ = 1, n do f() end
  return os.clock() - start
end

-- A spec names a payload (P1..P6, dump or load) or one of escaped_texts.lua's texts (load).
local function operations(spec)
  local name, op = spec:match("^([%w_]+):(%a+)$")
  if name and payloads[name] and (op == "load" or op == "dump") then
    local value = payloads[name]()
    return name, op, operation(old, value, op), operation(new, value, op)
  end
  local text = name and escaped_texts[name]
  assert(text and op == "load", "bad spec " .. spec)
  local ok_old, v_old = old.load(text)
  local ok_new, v_new = new.load(text)
  assert(ok_old and ok_new and v_old[1] == v_new[1], "the builds read " .. name .. " differently")
  return name, op, function() old.load(text) end, function() new.load(text) end
end

for spec in specs:gmatch("%S+") do
  local name, op, f_old, f_new = operations(spec)
  local n = 1
  while timed(f_old, n) < 0.02 do n = n * 2 end
  local best_old, best_new = math.huge, math.huge
  for _ = 1, rounds do
    best_old = math.min(best_old, timed(f_old, n))
    best_new = math.min(best_new, timed(f_new, n))
  end
  print(string.format("%s %s old %.0f ns new %.0f ns new/old %.3f", name, op,
    best_old / n * 1e9, best_new / n * 1e9, best_new / best_old))
end
