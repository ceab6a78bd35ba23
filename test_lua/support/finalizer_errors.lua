-- Run by host_errors_spec.lua in a fresh interpreter, whose small heap lets the collector
-- finish cycles (and so call finalizers) within a few calls:
--   <interpreter> test_lua/support/finalizer_errors.lua BUILD_DIR
-- Each operation of the module runs many times while finalizers that raise are pending. One
-- line per operation: "<name> raised=<calls that raised> wrong=<calls that returned a wrong
-- result> other=<calls that raised something else> after=<ok|wrong>" ("after": the operation
-- once the finalizers are gone). Then each runs while finalizers call the module themselves,
-- re-entering it: "reentrant <name> calls=<finalizer calls inside it> wrong=<wrong results,
-- inside or out>".
local build_dir = assert(arg[1], "usage: finalizer_errors.lua BUILD_DIR")
package.cpath = build_dir .. "/?.so;" .. package.cpath
local rr = require("remote_runner")
local core = rr._internal.core

local armed = false
-- What an armed finalizer does: raise, or call the module (set below).
local on_finalize = function() error("finalizer boom") end
local function failing_finalizer()
  if armed then on_finalize() end
end

local make_garbage
if rawget(_G, "newproxy") then
  make_garbage = function(n)
    for _ = 1, n do getmetatable(newproxy(true)).__gc = failing_finalizer end
  end
else
  local mt = { __gc = failing_finalizer }
  make_garbage = function(n)
    for _ = 1, n do setmetatable({}, mt) end
  end
end

-- Armed only while a module function runs: arming allocates nothing, so no collection step
-- (and no finalizer) runs between it and the call.
local function disarm(...)
  armed = false
  return ...
end
local function armed_call(f, ...)
  armed = true
  return disarm(f(...))
end

local records = {}
for i = 1, 100 do records[i] = { id = i, name = "item_" .. i, tags = { "a" .. i, 0.5 * i } } end
local text = rr.dump(records)
local shared = { "shared" }
local graph = { shared, { shared }, { { shared } } }
graph.self = graph
local graph_text = rr.dump(graph)
local request = core.encode_request(2, "m", "f", records, nil, 1, 7, 1000, 128, 4194304)

local operations = {
  { "load", function()
    local ok, v = armed_call(rr.load, text)
    return ok and v[100].name == "item_100" and v[7].tags[2] == 3.5
  end },
  { "dump", function() return armed_call(rr.dump, records) == text end },
  { "dump_graph", function() return armed_call(rr.dump, graph) == graph_text end },
  { "encode_request", function()
    return armed_call(core.encode_request, 2, "m", "f", records, nil, 1, 7, 1000, 128, 4194304) == request
  end },
  { "decode_request", function()
    local m, f, _, _, _, first, second = armed_call(core.decode_request, request, 128, 4194304)
    return m == "m" and f == "f" and first.name == "item_1" and second.tags[1] == "a2"
  end },
}

for _, op in ipairs(operations) do
  local name, run = op[1], op[2]
  local raised, wrong, other = 0, 0, 0
  for _ = 1, 400 do
    make_garbage(20)
    local ok, result = pcall(run)
    armed = false
    if not ok then
      if tostring(result):find("finalizer boom", 1, true) then
        raised = raised + 1
      else
        other = other + 1
        io.stderr:write(name, ": ", tostring(result), "\n")
      end
    elseif result ~= true then
      wrong = wrong + 1
    end
  end
  collectgarbage()
  collectgarbage()
  print(("%s raised=%d wrong=%d other=%d after=%s"):format(name, raised, wrong, other,
    run() and "ok" or "wrong"))
end

-- Re-entered from finalizers: the inner call finds the scratch of the outer one taken.
local inner_calls, inner_wrong = 0, 0
on_finalize = function()
  armed = false
  inner_calls = inner_calls + 1
  local ok, v = rr.load(text)
  if not (ok and v[100].name == "item_100") or rr.dump(graph) ~= graph_text then
    inner_wrong = inner_wrong + 1
  end
  armed = true
end
for _, op in ipairs(operations) do
  local name, run = op[1], op[2]
  inner_calls, inner_wrong = 0, 0
  local wrong = 0
  for _ = 1, 400 do
    make_garbage(20)
    local ok, result = pcall(run)
    armed = false
    if not ok or result ~= true then wrong = wrong + 1 end
  end
  print(("reentrant %s calls=%d wrong=%d"):format(name, inner_calls, wrong + inner_wrong))
end
