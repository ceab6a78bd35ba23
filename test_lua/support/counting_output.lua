-- busted output handler (scripts/run_busted.sh passes it with --output): utfTerminal's output,
-- then one line that counts every test that ended, by the status busted gave it, and the
-- blocks that failed without saying so:
--   tests ended: 1290 success, 0 failure, 0 error, 0 pending, 0 silent
-- busted's summary counts a failure only when an error or failure event is published. A block
-- that busted's message handler marks "error" although its function returned (a deep `load`
-- inside a spec once did: Lua 5.4 raises "C stack overflow" through the handler in force)
-- publishes none: inside an `it` the test is counted nowhere, and in a before_each, setup or
-- describe body its tests are skipped without a word. Such blocks are the "silent" count.
-- The core object behind require("busted")'s read-only proxy, whose `safe` runs every block;
-- nil where a busted version keeps it elsewhere (then only ended tests are counted).
local function busted_core(proxy)
  local mt = getmetatable(proxy)
  local index = mt and mt.__index
  if type(index) ~= "function" then return nil end
  for i = 1, 10 do
    local name, value = debug.getupvalue(index, i)
    if name == nil then return nil end
    if name == "busted" and type(value) == "table" and type(value.safe) == "function" then return value end
  end
  return nil
end

return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local counts = { success = 0, failure = 0, error = 0, pending = 0 }
  local published, silent = 0, 0
  local function count_event()
    published = published + 1
    return nil, true
  end
  busted.subscribe({ "error" }, count_event)
  busted.subscribe({ "failure" }, count_event)
  local core = busted_core(busted)
  if core then
    local safe = core.safe
    core.safe = function(descriptor, run, element)
      local before = published
      local function after(status, ...)
        if (status:error() or status:failure()) and published == before then silent = silent + 1 end
        return status, ...
      end
      return after(safe(descriptor, run, element))
    end
  end
  busted.subscribe({ "test", "end" }, function(_, _, status)
    counts[status] = (counts[status] or 0) + 1
    return nil, true
  end)
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("tests ended: %d success, %d failure, %d error, %d pending, %d silent\n",
      counts.success, counts.failure, counts.error, counts.pending, silent))
    io.flush()
    return nil, true
  end)
  return handler
end
