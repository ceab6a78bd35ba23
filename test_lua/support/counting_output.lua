-- busted output handler (scripts/run_busted.sh passes it with --output): utfTerminal's output,
-- then one line that counts every test that ended, by the status busted gave it:
--   tests ended: 1290 success, 0 failure, 0 error, 0 pending
-- utfTerminal's own summary counts a failed test only when an error or failure event was
-- published for it; a test that busted's message handler marks "error" without one (a deep
-- `load` inside a spec once did) is counted nowhere, and the run looked green.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local counts = { success = 0, failure = 0, error = 0, pending = 0 }
  busted.subscribe({ "test", "end" }, function(_, _, status)
    counts[status] = (counts[status] or 0) + 1
    return nil, true
  end)
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("tests ended: %d success, %d failure, %d error, %d pending\n", counts.success,
      counts.failure, counts.error, counts.pending))
    io.flush()
    return nil, true
  end)
  return handler
end
