-- The queued transport of the host flows (rpc_flow.lua, rpc_serve_flow.lua): requests and
-- replies wait in slots made beforehand until `pump` serves the requests and `deliver` runs the
-- callbacks. Between `reset`s it only assigns to existing table slots, so that a failure while
-- the allocator fails is the module's (or the served code's), not the harness's.
--   local queue = dofile(dir .. "queue_transport.lua").new(svc, 64)
local M = {}

function M.new(svc, size)
  local q = { sent = 0, served = 0, replied = 0, delivered = 0 }
  local requests, callbacks, reply_ctx, reply_bytes = {}, {}, {}, {}

  -- What request_svr does with a request it takes.
  function q.request(bytes, callback)
    local n = q.sent + 1
    q.sent = n
    requests[n], callbacks[n] = bytes, callback
  end

  -- What reply_to does with a reply to one of the queued requests.
  function q.reply(ctx, bytes)
    local n = q.replied + 1
    q.replied = n
    reply_ctx[n], reply_bytes[n] = ctx, bytes
  end

  -- Serves the queued requests; a request's ctx is its position.
  function q.pump()
    while q.served < q.sent do
      local i = q.served + 1
      q.served = i
      svc.RunMfa(i, requests[i])
    end
  end

  -- Hands the queued replies to the callbacks of their requests.
  function q.deliver()
    while q.delivered < q.replied do
      local j = q.delivered + 1
      q.delivered = j
      callbacks[reply_ctx[j]](reply_bytes[j])
    end
  end

  function q.reset()
    for i = 1, size do requests[i], callbacks[i], reply_ctx[i], reply_bytes[i] = false, false, false, false end
    q.sent, q.served, q.replied, q.delivered = 0, 0, 0, 0
  end

  -- With the allocator working again: every answer and timeout comes through. `tick(seconds)`
  -- moves the flow's clock and polls.
  function q.drain(rr, tick)
    for _ = 1, 5 do
      q.pump()
      q.deliver()
      rr.poll()
      tick(20)
    end
  end

  q.reset()
  return q
end

return M
