-- remote_runner: the caller side of cross-server Lua calls (SPEC §4).
-- Embedded in the .so and run once per Lua state by luaopen_remote_runner, which passes `core`:
-- the Rust functions that build and read RunLua messages, and a monotonic clock.
local core = ...

local encode_request, decode_response = core.encode_request, core.decode_response
-- Every global the module uses is captured here, at load: game code that replaces one later
-- (a wrapper that counts, a sandbox) does not change how calls are kept.
local type, pairs, next, tostring, pcall, xpcall, select = type, pairs, next, tostring, pcall, xpcall, select
local setmetatable, getmetatable, error, rawget = setmetatable, getmetatable, error, rawget
local unpack = table.unpack or unpack
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local floor, HUGE = math.floor, math.huge
local gsub = string.gsub
local stderr = io.stderr
local format = string.format
local co_running, co_resume, co_yield = coroutine.running, coroutine.resume, coroutine.yield
local co_isyieldable, co_status = coroutine.isyieldable, coroutine.status
local traceback = debug.traceback

local M = {}

local SERVICE, METHOD = "svr.RunLua", "RunMfa"
-- Timeouts are kept in slots of this many seconds; a call times out on the first poll after
-- the end of its slot.
local SLOT_SECONDS = 0.01
-- Calls with a timeout above this many seconds share wider slots (see schedule).
local LONG_TIMEOUT = 10
-- A nested call whose caller's budget is (nearly) spent still gets this long.
local MIN_TIMEOUT = 0.001
local MAX_BUDGET_MS = 4294967295
local MAX_BUDGET_SECONDS = MAX_BUDGET_MS / 1000

-- Shared with svc_run_lua (filled in at the end of this file and by svc_run_lua).
-- `serving` counts served jobs in progress: while it is 0, no call can be nested in one.
local internal = { serving = 0 }

local function default_logger(level, message)
  stderr:write("[remote_runner] ", level, ": ", message, "\n")
end

-- Module-wide settings (rr.configure) and their documented defaults.
local settings = {
  self_id = nil,
  timeout = 10,
  max_pending = 10000,
  max_pending_per_server = 1000,
  max_message_bytes = 4 * 1024 * 1024,
  max_depth = 128,
  logger = default_logger,
  clock = core.now,
}

-- Counters (rr.stats). The ones every call touches are upvalues, cheaper to update than
-- table fields; svc_run_lua keeps `served`, `served_failed` and its reply bytes the same way.
local stats = { failed = {}, timed_out = 0, late_replies = 0 }
local sent, completed, in_flight, bytes_out, bytes_in = 0, 0, 0, 0, 0

local transport = nil -- nil: the global c_rpc, looked up at each call
-- Copies of settings read on every call (configure keeps them in step).
local self_id, max_depth, max_bytes, clock = settings.self_id, settings.max_depth, settings.max_message_bytes,
  settings.clock
local next_call_id = 1
local pending = {}    -- call id -> call record
local per_server = {} -- server id -> calls in flight
local wheel = {}      -- timeout slot -> { [call id] = record }; a bucket lives until its slot expires
local long_slot_calls = {} -- slot of calls with a timeout above LONG_TIMEOUT -> how many are in it
local next_slot = nil -- the first slot poll has not handled yet
local queue = {}      -- deliveries waiting for the next poll (or the end of run_mfa)
local queue_head, queue_tail = 1, 0
local inside_run_mfa = 0
-- Worker coroutine of svc_run_lua -> its state; while `state.busy`, a failure after a resume
-- becomes an error reply (internal.served_failure, set by svc_run_lua).
local workers = setmetatable({}, { __mode = "k" })

-- A call in flight is an array, which is cheaper to build than a record with named fields.
local ID, SVR, MODULE, FUNC, ON_RESULT, ON_ERROR, DEADLINE, SLOT, TIMEOUT = 1, 2, 3, 4, 5, 6, 7, 8, 9

-- tostring for values from user code or the host, error values above all: it never raises,
-- so an error object whose __tostring fails is still reported instead of escaping into the host.
local function describe(value)
  if type(value) == "string" then return value end
  local ok, text = pcall(tostring, value)
  if ok and type(text) == "string" then return text end
  return format("(a %s whose __tostring failed)", type(value))
end

-- Never raises: a logger that fails falls back to stderr, and a failing stderr is given up.
local function log(level, message)
  local ok, err = pcall(settings.logger, level, message)
  if not ok then pcall(default_logger, "error", "logger failed: " .. describe(err) .. "; message: " .. message) end
end

------------------------------------------------------------------------------------------------
-- Error objects

local Error = {}
Error.__index = Error
-- One log line, whatever the message holds: line breaks become " | ".
-- Concatenated, not formatted: format's %s stops at a zero byte on 5.1 and 5.2.
Error.__tostring = function(e)
  local line = "remote_runner: " .. tostring(e.kind) .. " error calling " .. tostring(e.module) .. "."
    .. tostring(e.func) .. " on server " .. tostring(e.svr_id) .. " (call " .. tostring(e.call_id) .. "): "
    .. tostring(e.message)
  return (gsub(line, "[\r\n]+", " | "))
end

local function new_error(kind, message, call, remote_traceback)
  return setmetatable({
    kind = kind, message = message, svr_id = call[SVR], module = call[MODULE], func = call[FUNC],
    call_id = call[ID], traceback = remote_traceback,
  }, Error)
end

function M.is_error(value)
  return getmetatable(value) == Error
end

------------------------------------------------------------------------------------------------
-- Argument checks, worded like Lua's own

-- `level` 1 is the function that calls arg_error.
local function arg_error(n, fname, expected, value, level)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected, type(value)), level + 1)
end

-- The checks encode_request does cheaply, repeated here only to raise the first failure in
-- Lua's words at the caller of run_mfa / call (`level` 1 is the function calling this one).
local function check_call_args(fname, level, svr_id, module_name, function_name, arguments)
  local t = type(svr_id)
  if (t ~= "number" and t ~= "string") or svr_id ~= svr_id then
    arg_error(1, fname, "server id (number or string)", svr_id, level + 1)
  end
  if type(module_name) ~= "string" then arg_error(2, fname, "string", module_name, level + 1) end
  if type(function_name) ~= "string" then arg_error(3, fname, "string", function_name, level + 1) end
  if type(arguments) ~= "table" then arg_error(4, fname, "table", arguments, level + 1) end
  local n = arguments.n
  if n ~= nil and (type(n) ~= "number" or n < 0 or n ~= floor(n)) then
    error(format("bad argument #4 to '%s' (arguments.n must be a non-negative integer, got %s)", fname,
      tostring(n)), level + 1)
  end
end

-- The keys the opts of run_mfa and of rr.call may hold.
local RUN_MFA_OPTIONS = { on_error = true, timeout = true }
local CALL_OPTIONS = { timeout = true }

local function check_opts(n, fname, level, opts)
  if opts == nil then return nil, nil end
  if type(opts) ~= "table" then arg_error(n, fname, "table", opts, level + 1) end
  local known = fname == "call" and CALL_OPTIONS or RUN_MFA_OPTIONS
  for key in next, opts do
    if not known[key] then
      local why = format("unknown option %s; options are %s", type(key) == "string" and "'" .. key .. "'"
        or "of type " .. type(key), fname == "call" and "timeout" or "on_error, timeout")
      if fname == "call" and key == "on_error" then
        why = "opts.on_error is for run_mfa: rr.call raises the error object instead"
      end
      error(format("bad argument #%d to '%s' (%s)", n, fname, why), level + 1)
    end
  end
  local on_error, timeout = opts.on_error, opts.timeout
  if on_error ~= nil and type(on_error) ~= "function" then
    error(format("bad argument #%d to '%s' (opts.on_error must be a function, got %s)", n, fname,
      type(on_error)), level + 1)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0) then
    error(format("bad argument #%d to '%s' (opts.timeout must be a positive number of seconds, got %s)", n,
      fname, type(timeout) == "number" and tostring(timeout) or type(timeout)), level + 1)
  end
  return on_error, timeout
end

-- Every check of run_mfa, in argument order: raises the first failure at run_mfa's caller.
local function check_run_mfa(svr_id, module_name, function_name, arguments, on_result, opts)
  check_call_args("run_mfa", 3, svr_id, module_name, function_name, arguments)
  if on_result ~= nil and type(on_result) ~= "function" then arg_error(5, "run_mfa", "function", on_result, 3) end
  check_opts(6, "run_mfa", 3, opts) -- not a tail call, which would shift the error level on 5.2+
end

------------------------------------------------------------------------------------------------
-- Delivery: every callback runs from poll or from a transport callback, never inside run_mfa

-- xpcall(fn, handler, ...): PUC Lua 5.1's xpcall passes no arguments, so there it gets a closure.
local xpcall_args = xpcall
if select(2, xpcall(function(x) return x end, traceback, true)) ~= true then
  xpcall_args = function(fn, handler, ...)
    local args = pack(...)
    return xpcall(function() return fn(unpack(args, 1, args.n)) end, handler)
  end
end

-- Running out of memory raises a Lua error at any allocation, and a finalizer's error may too
-- (Lua 5.1-5.3, LuaJIT). The books are kept so that neither strands a call: whatever a step
-- allocates (the error object, the queue item and its position, a stats key) is made before
-- the call leaves the books, and it leaves them just before its callback runs or its outcome is
-- queued. A failure on the way leaves the call in flight, to be answered or to time out.

-- Makes the stats key of a failure kind, so that counting one allocates nothing.
local function reserve_failure(kind)
  local failed = stats.failed
  if not failed[kind] then failed[kind] = 0 end
end

local function count_failure(kind)
  local failed = stats.failed
  failed[kind] = failed[kind] + 1
end

-- A user callback's failure is logged with its traceback, never raised into the transport or poll.
local function callback_failed(err)
  log("error", "callback failed: " .. describe(err))
end

local function fire_error(call, err)
  local on_error = call[ON_ERROR]
  if on_error then
    local ok, callback_err = xpcall_args(on_error, traceback, err)
    if not ok then callback_failed(callback_err) end
  else
    log("warn", describe(err))
  end
end

local function fire_results(call, ...)
  local on_result = call[ON_RESULT]
  if on_result then
    local ok, err = xpcall_args(on_result, traceback, ...)
    if not ok then callback_failed(err) end
  end
end

-- The next queue position, made now and filled later. The tail moves first: a finalizer that
-- queues something while the position is made takes the next one. If making it fails, the
-- position stays a hole, which poll skips.
local function queue_slot()
  local tail = queue_tail + 1
  queue_tail = tail
  queue[tail] = false
  return tail
end

-- Queues the failure of a call that is not on the books (refused before it was sent).
local function fail_later(call, kind, message)
  local item = { call, false, new_error(kind, message, call) }
  reserve_failure(kind)
  queue[queue_slot()] = item
end

------------------------------------------------------------------------------------------------
-- Bookkeeping of calls in flight

-- floor(time / SLOT_SECONDS) + 1 without a call; math.huge stays math.huge.
local function slot_of(time)
  local q = time / SLOT_SECONDS
  local frac = q % 1
  if frac ~= frac then return q end
  return q - frac + 1
end

local function schedule(call)
  local timeout = call[TIMEOUT]
  local slot = slot_of(call[DEADLINE])
  if timeout > LONG_TIMEOUT and timeout < HUGE then
    -- Long timeouts share wider slots, a power of two of them about a thousandth of the timeout:
    -- such a call fires up to 0.2% late, and the wheel holds 500 to 1,000 slots per timeout
    -- length instead of one per 10 ms.
    local width = 2.0 -- a float: an integer would wrap for an integer timeout near 2^63
    while width * 10 < timeout do width = width * 2 end
    slot = slot + (width - slot % width) % width
  end
  -- Never a slot poll has already passed, which it would never visit again: a deadline that
  -- was already over when configure{clock} moved it, or a clock that went back.
  if next_slot and slot < next_slot then slot = next_slot end
  local bucket = wheel[slot]
  if not bucket then
    bucket = {}
    -- A finalizer run by that allocation may have started a call and made the bucket.
    local made = wheel[slot]
    if made then bucket = made else wheel[slot] = bucket end
  end
  -- A long-lived slot (wide, or the one of calls without a timeout) counts its calls, so that
  -- its table goes with its last call instead of keeping its peak size until it expires. The
  -- count's key and the bucket's entry are made before anything is counted.
  local long = timeout > LONG_TIMEOUT
  if long and not long_slot_calls[slot] then long_slot_calls[slot] = 0 end
  bucket[call[ID]] = call
  if long then long_slot_calls[slot] = long_slot_calls[slot] + 1 end
  call[SLOT] = slot
end

-- Removes a call from the books; nil if it was not in flight (timed out, answered, cancelled).
-- A 10 ms slot's bucket stays (empty or not) until its slot expires: the next call likely uses
-- it too. A long-lived slot's bucket goes with its last call.
local function untrack(id)
  local call = pending[id]
  if not call then return nil end
  pending[id] = nil
  in_flight = in_flight - 1
  local svr_id = call[SVR]
  local left = per_server[svr_id] - 1
  per_server[svr_id] = left > 0 and left or nil
  local slot = call[SLOT]
  if not slot then return call end -- configure{clock} is rebuilding the wheel, without it yet
  local bucket = wheel[slot]
  if bucket then bucket[id] = nil end
  if call[TIMEOUT] > LONG_TIMEOUT then
    local calls = long_slot_calls[slot]
    if calls == 1 then
      long_slot_calls[slot] = nil
      -- Short calls due in the same 10 ms share the bucket: it goes only when empty.
      if bucket and next(bucket) == nil then wheel[slot] = nil end
    elseif calls then
      long_slot_calls[slot] = calls - 1
    end
  end
  return call
end

-- Ends call `id` (`call`) with a failure delivered at the next poll; false if it was no longer
-- in flight.
local function fail_tracked_later(id, call, kind, message, remote_traceback)
  local item = { call, false, new_error(kind, message, call, remote_traceback) }
  reserve_failure(kind)
  local at = queue_slot()
  if not untrack(id) then return false end
  queue[at] = item
  return true
end

-- Ends call `id` (`call`) with decode_response's values, `true, results...` or `false, kind,
-- message, remote traceback`: its callback runs now, or at the next poll while a call to this
-- server is still inside run_mfa. On the success path of every call: one function, so the
-- results are passed on as varargs once.
local function settle(id, call, ok, ...)
  if inside_run_mfa == 0 then
    if ok then
      if not untrack(id) then return end
      completed = completed + 1
      return fire_results(call, ...)
    end
    local kind, message, remote_traceback = ...
    local err = new_error(kind, message, call, remote_traceback)
    reserve_failure(kind)
    if not untrack(id) then return end
    count_failure(kind)
    return fire_error(call, err)
  end
  if not ok then return fail_tracked_later(id, call, ...) end
  local item = { call, true, pack(...) }
  local at = queue_slot()
  if untrack(id) then queue[at] = item end
end

local function on_response(id, content, transport_error)
  -- Received bytes count whether or not the call still waits for them.
  local is_bytes = type(content) == "string"
  if is_bytes then bytes_in = bytes_in + #content end
  local call = pending[id]
  if not call then
    stats.late_replies = stats.late_replies + 1
    return
  end
  if not is_bytes then
    return settle(id, call, false, "transport", "no response: " .. describe(transport_error or "transport failure"))
  end
  return settle(id, call, decode_response(content, max_depth, max_bytes, id))
end

-- `name` of the transport: the one set with set_transport, else the global c_rpc's, looked up
-- at each use so that a host may install c_rpc after loading this module.
local function transport_function(name)
  if transport then return transport[name] end
  local c_rpc = rawget(_G, "c_rpc")
  return type(c_rpc) == "table" and c_rpc[name] or nil
end

-- Contexts of requests to this server itself (weak keys) -> the id of the call: svc_run_lua
-- hands their replies to internal.on_response instead of the transport.
local local_routes = setmetatable({}, { __mode = "k" })

-- The call to this server itself whose serving raised.
local function fail_local(id, call, err)
  return fail_tracked_later(id, call, "transport", "serving the call on this server failed: " .. describe(err))
end

-- A request to this server itself: served here, its reply routed back to on_response.
local function send_local(id, request)
  local svc = require("svc_run_lua")
  local ctx = {}
  local_routes[ctx] = id
  svc.RunMfa(ctx, request)
end

-- A nested call's default timeout: no longer than what is left of the budget of the served
-- call it runs in (the callee would answer to nobody after that).
local function nested_timeout(timeout)
  local state = workers[co_running()]
  local deadline = state and state.busy and state.deadline
  if deadline then
    local left = deadline - clock()
    if left < timeout then timeout = left > MIN_TIMEOUT and left or MIN_TIMEOUT end
  end
  return timeout
end

-- Starts a call and returns its id; nil (nothing done) when an argument has the wrong type, with
-- the argument's number and what is wrong when that is a name that cannot be sent.
local function start_call(svr_id, module_name, function_name, arguments, on_result, on_error, timeout)
  if not timeout then
    timeout = settings.timeout
    if internal.serving > 0 then timeout = nested_timeout(timeout) end
  end
  -- The id is taken before anything that can run other Lua code: a __gc finalizer may start a
  -- call of its own while this one allocates (a failed call just leaves a gap in the ids).
  local id = next_call_id
  next_call_id = id + 1
  -- Arguments that cannot be sent raise here, at the call site, before anything is counted.
  -- The budget field is 32 bits of milliseconds; math.huge means "no timeout".
  local budget_ms = MAX_BUDGET_MS
  -- Checked before multiplying: an integer timeout near 2^63 times 1000 would wrap.
  if timeout < MAX_BUDGET_SECONDS then
    budget_ms = timeout * 1000
    budget_ms = budget_ms - budget_ms % 1
  end
  local request, bad_arg, why = encode_request(svr_id, module_name, function_name, arguments, on_result, self_id,
    id, budget_ms, max_depth, max_bytes)
  if request == nil then return nil, bad_arg, why end
  local now = clock()
  -- The slot (last field) is set by schedule once the call is in flight.
  local call = { id, svr_id, module_name, function_name, on_result or false, on_error or false, now + timeout, 0,
    timeout }
  if in_flight >= settings.max_pending then
    fail_later(call, "overloaded", format("%d calls in flight (max_pending)", in_flight))
    return id
  end
  local to_server = per_server[svr_id] or 0
  if to_server >= settings.max_pending_per_server then
    fail_later(call, "overloaded", format("%d calls in flight to server %s (max_pending_per_server)",
      to_server, tostring(svr_id)))
    return id
  end
  local on_reply
  if svr_id ~= self_id then
    on_reply = function(content, transport_error) return on_response(id, content, transport_error) end
  end
  -- In flight from here: in its timeout slot, on the books, counted. What allocates comes
  -- first (a failure there leaves at most a call in a slot that is not on the books, which its
  -- slot's expiry drops); each count is read and written in one statement, which no finalizer
  -- can interrupt.
  if not per_server[svr_id] then per_server[svr_id] = 0 end
  schedule(call)
  pending[id] = call
  in_flight = in_flight + 1
  per_server[svr_id] = per_server[svr_id] + 1
  if next_slot == nil then next_slot = slot_of(now) end
  if svr_id == self_id then
    -- Counted before it is served: the reply may come back inside send_local.
    sent = sent + 1
    bytes_out = bytes_out + #request
    inside_run_mfa = inside_run_mfa + 1
    local ok, err = pcall(send_local, id, request)
    inside_run_mfa = inside_run_mfa - 1
    -- Whatever went wrong (svc_run_lua missing, say), the call ends here and not in a timeout;
    -- if even that fails (out of memory), it ends without a callback, and run_mfa raises.
    if not ok and pending[id] == call then
      local queued, queue_error = pcall(fail_local, id, call, err)
      if not queued then
        untrack(id)
        error(queue_error, 0)
      end
    end
    return id
  end
  local request_svr = transport_function("request_svr")
  local err
  if request_svr == nil then
    err = "no transport: call rr.set_transport{...} or provide the global c_rpc.request_svr"
  else
    inside_run_mfa = inside_run_mfa + 1
    local ok, result = pcall(request_svr, svr_id, SERVICE, METHOD, request, on_reply)
    inside_run_mfa = inside_run_mfa - 1
    if not ok then
      err = "request_svr failed: " .. describe(result)
    elseif result == false then
      err = "request_svr refused the request"
    else
      -- Sent: only a request the transport took counts (an overloaded or refused one fails).
      sent = sent + 1
      bytes_out = bytes_out + #request
      return id
    end
  end
  fail_tracked_later(id, call, "transport", err)
  return id
end

------------------------------------------------------------------------------------------------
-- Public API

-- True when opts (not nil) is a table of known options (`known`), with a valid on_error and
-- timeout.
local function valid_opts(opts, known)
  if type(opts) ~= "table" then return false end
  for key in next, opts do
    if not known[key] then return false end
  end
  local on_error, timeout = opts.on_error, opts.timeout
  return (on_error == nil or type(on_error) == "function")
    and (timeout == nil or (type(timeout) == "number" and timeout == timeout and timeout > 0))
end

-- The other arguments are checked by encode_request (in start_call); only when a check fails
-- does check_run_mfa run, to raise the first failure in argument order.
function M.run_mfa(svr_id, module_name, function_name, arguments, on_result, opts)
  local on_error, timeout
  if opts ~= nil then
    if not valid_opts(opts, RUN_MFA_OPTIONS) then
      check_run_mfa(svr_id, module_name, function_name, arguments, on_result, opts)
    end
    on_error, timeout = opts.on_error, opts.timeout
  end
  local id, bad_arg, why = start_call(svr_id, module_name, function_name, arguments, on_result, on_error, timeout)
  if id == nil then
    check_run_mfa(svr_id, module_name, function_name, arguments, on_result, opts)
    error(format("bad argument #%d to 'run_mfa' (%s)", bad_arg or 0, tostring(why)), 2)
  end
  return id
end

-- Coroutine -> the id of the call it is parked on in rr.call. A reply resumes the coroutine
-- only if it still waits for that call (its yield may have failed, and it moved on).
local waiting = setmetatable({}, { __mode = "k" })

-- What follows resuming a coroutine (parked in rr.call, or a svc_run_lua worker) with
-- coroutine.resume's first two results. A served coroutine that fails, or that yields anywhere
-- but in rr.call, is answered with an error reply by svc_run_lua; any other coroutine's
-- failure is logged.
local function after_resume(co, ok, err)
  local state = workers[co]
  if state and state.busy then
    if not ok then
      internal.served_failure(state, err, co)
    elseif waiting[co] == nil then
      internal.served_failure(state, "a served function may only yield through rr.call", nil)
    end
  elseif state then
    -- Between jobs (a debug hook's error while it parks): the pool drops it.
    if not ok then log("warn", "a svc_run_lua worker coroutine failed between jobs: " .. describe(err)) end
  elseif not ok then
    log("error", "coroutine failed after rr.call resumed it: " .. traceback(co, describe(err)))
  end
end

local function resume(co, ...)
  return after_resume(co, co_resume(co, ...))
end

-- Without coroutine.isyieldable (PUC 5.1 and 5.2), a yield that cannot happen (across pcall on
-- 5.1, in a table.sort comparator, ...) fails only after the request is out, and the coroutine
-- moves on. Its answer must not resume it at whatever yield it reaches next: only a coroutine
-- suspended in rr.call itself takes one.
local suspended_elsewhere
if not co_isyieldable then
  local getinfo = debug.getinfo
  suspended_elsewhere = function(co)
    local frame = getinfo(co, 1, "f")
    return frame == nil or frame.func ~= M.call
  end
end

-- The first value a call's answer resumes rr.call with: anything else came from some other
-- coroutine.resume (a scheduler waking the coroutine for its own reasons).
local ANSWER = {}

-- Resumes `co` with a call's outcome if it is still parked on that call.
local function wake(co, id, ...)
  if waiting[co] ~= id then return end
  waiting[co] = nil
  -- Dead: its yield failed (5.1/5.2) and the error ended it; or parked at some other yield.
  if suspended_elsewhere and (co_status(co) ~= "suspended" or suspended_elsewhere(co)) then
    log("warn", format("call %d: dropped its answer, rr.call could not yield there", id))
    return
  end
  resume(co, ANSWER, ...)
end

-- What rr.call returns (or raises) once resumed with `ANSWER, true, results...` or
-- `ANSWER, false, err`. Resumed by anything else, it gives up the call (cancelled, so its
-- answer is dropped instead of resuming the coroutine at some later yield) and raises.
local function after_yield(co, id, mark, ok, ...)
  if mark == ANSWER then
    if ok then return ... end
    error((...), 0)
  end
  waiting[co] = nil
  M.cancel(id)
  local message = format("rr.call: coroutine.resume woke the coroutine before call %d was answered; the call is cancelled",
    id)
  -- In a served function, its caller is answered now: whoever resumed the worker, not this
  -- module, will see how the function ends.
  local state = workers[co]
  if state and state.busy then internal.served_failure(state, message, traceback(co, message)) end
  error(message, 2)
end

function M.call(svr_id, module_name, function_name, arguments, opts)
  local co, is_main = co_running()
  if co == nil or is_main then
    error("rr.call must run inside a coroutine (outside one, use rr.run_mfa with callbacks)", 2)
  end
  if co_isyieldable and not co_isyieldable() then
    error("rr.call cannot yield here (Lua called from C that allows no yield: a table.sort comparator, "
      .. "a string.gsub callback, __tostring, ...)", 2)
  end
  local timeout
  if opts ~= nil then
    if not valid_opts(opts, CALL_OPTIONS) then
      check_call_args("call", 2, svr_id, module_name, function_name, arguments)
      check_opts(5, "call", 2, opts)
    end
    timeout = opts.timeout
  end
  -- The callbacks never run before start_call returns the id they need.
  local id, bad_arg, why
  id, bad_arg, why = start_call(svr_id, module_name, function_name, arguments,
    function(...) return wake(co, id, true, ...) end,
    function(err) return wake(co, id, false, err) end,
    timeout)
  if id == nil then
    check_call_args("call", 2, svr_id, module_name, function_name, arguments)
    error(format("bad argument #%d to 'call' (%s)", bad_arg or 0, tostring(why)), 2)
  end
  waiting[co] = id
  return after_yield(co, id, co_yield())
end

function M.cancel(call_id)
  local call = pending[call_id]
  if not call then return false end
  return fail_tracked_later(call_id, call, "cancelled", "cancelled by rr.cancel")
end

-- Fails every call still in flight in timeout slot `slot` (delivered by this poll).
local function expire_slot(slot)
  for id, call in pairs(wheel[slot]) do
    -- A call is in a slot but not on the books when it was answered, or when starting it ran
    -- out of memory between the two.
    if pending[id] == call
      and fail_tracked_later(id, call, "timeout", format("no answer within %g s", call[TIMEOUT])) then
      stats.timed_out = stats.timed_out + 1
    end
  end
  wheel[slot], long_slot_calls[slot] = nil, nil
end

local function expire(now)
  if next_slot == nil then return end
  local last = slot_of(now) - 1
  if last - next_slot > 4096 then
    -- A long pause: visit the occupied slots instead of every slot in between. They are
    -- listed first: expiring allocates, and a finalizer may then add a slot to the wheel.
    local due = {}
    for slot in pairs(wheel) do
      if slot <= last then due[#due + 1] = slot end
    end
    for i = 1, #due do
      if wheel[due[i]] then expire_slot(due[i]) end
    end
  else
    for slot = next_slot, last do
      if wheel[slot] then expire_slot(slot) end
    end
  end
  if last + 1 > next_slot then next_slot = last + 1 end
end

local polling = 0

function M.poll()
  expire(settings.clock())
  -- Only what is queued now: deliveries queued by these callbacks wait for the next poll.
  -- A poll from inside a callback shares the same queue position.
  polling = polling + 1
  local last = queue_tail
  while queue_head <= last do
    local item = queue[queue_head]
    queue[queue_head] = nil
    queue_head = queue_head + 1
    -- A hole: the position was made, but what was to fill it was not (see queue_slot).
    if item then
      local a = item[3] -- the packed results, or the error object
      if item[2] then
        completed = completed + 1
        fire_results(item[1], unpack(a, 1, a.n))
      else
        count_failure(a.kind)
        fire_error(item[1], a)
      end
    end
  end
  polling = polling - 1
  if polling == 0 and queue_head > queue_tail then queue_head, queue_tail = 1, 0 end
end

-- Numbers the Rust side takes as 64-bit integers: any integer subtype (5.3+), or an integral
-- float no larger than 2^53 (every version agrees on those).
local math_type = math.type
local function is_integer(v)
  if type(v) ~= "number" then return false end
  if math_type and math_type(v) == "integer" then return true end
  return v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53
end

-- A size limit: a positive integer, or math.huge for none (stored as 2^53, which is none in practice).
local function is_limit(v)
  return v == HUGE or (is_integer(v) and v >= 1)
end

local CONFIG_CHECKS = {
  self_id = function(v) return v == false or is_integer(v), "an integer server id (false: none)" end,
  timeout = function(v) return type(v) == "number" and v > 0, "a positive number of seconds" end,
  max_pending = function(v) return is_limit(v), "a positive integer (math.huge: no limit)" end,
  max_pending_per_server = function(v) return is_limit(v), "a positive integer (math.huge: no limit)" end,
  max_message_bytes = function(v) return is_limit(v), "a positive integer (math.huge: no limit)" end,
  max_depth = function(v) return is_limit(v), "a positive integer (math.huge: no limit)" end,
  logger = function(v) return type(v) == "function", "a function(level, message)" end,
  clock = function(v) return type(v) == "function", "a function returning seconds" end,
}

function M.configure(options)
  if type(options) ~= "table" then arg_error(1, "configure", "table", options, 2) end
  for key, value in pairs(options) do
    local check = CONFIG_CHECKS[key]
    if not check then
      error(format("bad argument #1 to 'configure' (unknown setting '%s')", tostring(key)), 2)
    end
    local ok, expected = check(value)
    if not ok then
      error(format("bad argument #1 to 'configure' (%s must be %s, got %s)", key, expected, describe(value)), 2)
    end
  end
  local old_now = options.clock and settings.clock()
  for key, value in pairs(options) do
    if value == HUGE and key ~= "timeout" then value = 2 ^ 53 end
    if key == "self_id" and value == false then value = nil end -- a table cannot hold nil
    settings[key] = value
  end
  self_id, max_depth, max_bytes, clock = settings.self_id, settings.max_depth, settings.max_message_bytes,
    settings.clock
  if options.clock then
    -- A new clock has its own origin: keep every pending call's remaining time.
    local now = settings.clock()
    -- Every call leaves the old wheel first (this loop allocates nothing, so no finalizer runs
    -- in it): a call that a finalizer ends before it is rescheduled is then not looked for in
    -- the new wheel, where its old slot may be another call's.
    for _, call in pairs(pending) do call[SLOT] = false end
    wheel, long_slot_calls = {}, {}
    -- A deadline that is already over goes to the first slot poll will visit.
    next_slot = slot_of(now)
    for _, call in pairs(pending) do
      call[DEADLINE] = now + (call[DEADLINE] - old_now)
      schedule(call)
    end
    -- Served calls keep what is left of their caller's budget, for the calls they make.
    for _, state in pairs(workers) do
      if state.busy and state.deadline then state.deadline = now + (state.deadline - old_now) end
    end
  end
end

function M.set_transport(t)
  if t ~= nil then
    if type(t) ~= "table" then arg_error(1, "set_transport", "table or nil", t, 2) end
    if type(t.request_svr) ~= "function" or type(t.reply_to) ~= "function" then
      error("bad argument #1 to 'set_transport' (request_svr and reply_to must be functions)", 2)
    end
  end
  transport = t
end

function M.stats()
  local copy = { sent = sent, completed = completed, in_flight = in_flight, bytes_out = bytes_out,
    bytes_in = bytes_in }
  for key, value in pairs(stats) do copy[key] = value end
  local failed = {}
  for kind, count in pairs(stats.failed) do failed[kind] = count end
  copy.failed = failed
  internal.service_stats(copy)
  return copy
end

M.dump = core.dump
M.load = core.load

-- Shared with svc_run_lua (same .so, same Lua state); not part of the public API.
internal.settings = settings
-- Until svc_run_lua is loaded, nothing has been served.
internal.service_stats = function(copy) copy.served, copy.served_failed = 0, 0 end
internal.log = log
internal.describe = describe
internal.after_resume = after_resume
internal.workers = workers
internal.transport_function = transport_function
internal.local_routes = local_routes
internal.on_response = on_response
internal.core = core -- the Rust functions, also for the full-call yardstick of bench/rpc_bench.lua
M._internal = internal

return M
