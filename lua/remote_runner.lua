-- remote_runner: the caller side of cross-server Lua calls (SPEC §4).
-- Embedded in the .so and run once per Lua state by luaopen_remote_runner, which passes `core`:
-- the Rust functions that build and read RunLua messages, and a monotonic clock.
local core = ...

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
local traceback, debug_getmetatable = debug.traceback, debug.getmetatable
-- The globals at load, where the host's c_rpc is looked up.
local globals = _G

local M = {}

-- A nested call whose caller's budget is (nearly) spent still gets this long.
local MIN_TIMEOUT = 0.001

-- Shared with svc_run_lua (filled in at the end of this file and by svc_run_lua).
local internal = {}

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

-- Counters (rr.stats) kept here; the ones every call touches are kept by the books (`B`,
-- made at the end of the definitions below: src/bind/calls/books.rs).
local stats = { failed = {}, timed_out = 0 }
local B

local transport = nil -- nil: the global c_rpc, looked up at each call
local clock = settings.clock
local queue = {}      -- deliveries waiting for the next poll (or the end of run_mfa)
local queue_head, queue_tail = 1, 0
-- Worker coroutine of svc_run_lua -> its state, an array (src/bind/calls/service.rs fills it
-- for each job): the host's request, the names, the caller's server id and call id, the
-- deadline of the caller's budget (or false) and whether the job is running (BUSY). While it
-- is, a failure after a resume becomes an error reply (internal.served_failure).
local workers = setmetatable({}, { __mode = "k" })
local CTX, JOB_MODULE, JOB_FUNC, CALLER_ID, CALL_ID, JOB_DEADLINE, BUSY = 1, 2, 3, 4, 5, 6, 7
internal.STATE = { CTX = CTX, MODULE = JOB_MODULE, FUNC = JOB_FUNC, CALLER_ID = CALLER_ID, CALL_ID = CALL_ID,
  DEADLINE = JOB_DEADLINE, BUSY = BUSY }

-- A call's record (B.record; src/bind/calls/ledger.rs) is an array with these fields.
local ID, SVR, MODULE, FUNC, ON_RESULT, ON_ERROR, TIMEOUT = 1, 2, 3, 4, 5, 6, 7

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
-- `level` 1 is the function that calls check_run_mfa.
local function check_run_mfa(level, svr_id, module_name, function_name, arguments, on_result, opts)
  check_call_args("run_mfa", level + 1, svr_id, module_name, function_name, arguments)
  if on_result ~= nil and type(on_result) ~= "function" then
    arg_error(5, "run_mfa", "function", on_result, level + 1)
  end
  check_opts(6, "run_mfa", level + 1, opts) -- not a tail call, which would shift the error level on 5.2+
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

-- B.untrack(id): takes a call off the books; false if it was not in flight (timed out,
-- answered, cancelled). B.record(id): the record of a call in flight (a copy), or nil.
local untrack, record

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
-- message, remote traceback`, when the books do not: a failure, or any answer while a request
-- is inside the transport (`inside` > 0), which the next poll delivers.
local function settle_slow(id, inside, ok, ...)
  local call = record(id)
  if not call then return end
  if inside == 0 then
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

-- A call's transport answered without bytes.
local function no_response(id, inside, transport_error)
  return settle_slow(id, inside, false, "transport",
    "no response: " .. describe(transport_error or "transport failure"))
end

-- `name` of the transport: the one set with set_transport, else the global c_rpc's, looked up
-- at each use so that a host may install c_rpc after loading this module.
local function transport_function(name)
  if transport then return transport[name] end
  -- The global c_rpc as Lua code reaches it: a table, or a userdata with an __index.
  local c_rpc = globals.c_rpc
  local t = type(c_rpc)
  if t == "table" then return c_rpc[name] end
  if t == "userdata" then
    local mt = debug_getmetatable(c_rpc)
    if type(mt) == "table" and rawget(mt, "__index") ~= nil then return c_rpc[name] end
  end
  return nil
end

-- Contexts of requests to this server itself (weak keys) -> the id of the call: svc_run_lua
-- hands their replies to internal.on_response instead of the transport.
local local_routes = setmetatable({}, { __mode = "k" })

-- The call to this server itself whose serving raised.
local function fail_local(id, err)
  local call = record(id)
  if call then
    fail_tracked_later(id, call, "transport", "serving the call on this server failed: " .. describe(err))
  end
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
  local deadline = state and state[BUSY] and state[JOB_DEADLINE]
  if deadline then
    local left = deadline - clock()
    if left < timeout then timeout = left > MIN_TIMEOUT and left or MIN_TIMEOUT end
  end
  return timeout
end

-- B.start_call(svr_id, module_name, function_name, arguments, on_result, on_error, timeout)
-- starts a call and returns its id; nil (nothing done) when an argument has the wrong type,
-- with the argument's number and what is wrong when that is a name that cannot be sent.
local start_call

-- A call to this server itself (B.start_call has counted it): served here.
local function local_call(id, request)
  local ok, err = pcall(send_local, id, request)
  -- Whatever went wrong (svc_run_lua missing, say), the call ends here and not in a timeout;
  -- if even that fails (out of memory), it ends without a callback, and run_mfa raises.
  if not ok then
    local queued, queue_error = pcall(fail_local, id, err)
    if not queued then
      untrack(id)
      error(queue_error, 0)
    end
  end
end

-- The transport did not take call `id`: `how` is 1 (no transport), 2 (request_svr raised
-- `value`) or 3 (it returned false).
local function transport_failed(id, how, value)
  local err
  if how == 1 then
    err = "no transport: call rr.set_transport{...} or provide the global c_rpc.request_svr"
  elseif how == 2 then
    err = "request_svr failed: " .. describe(value)
  else
    err = "request_svr refused the request"
  end
  local call = record(id)
  if call then fail_tracked_later(id, call, "transport", err) end
end

-- Call `id` got no answer within its timeout.
local function time_out(id)
  local call = record(id)
  if call and fail_tracked_later(id, call, "timeout", format("no answer within %g s", call[TIMEOUT])) then
    stats.timed_out = stats.timed_out + 1
  end
end

B = core.new_books({
  cells = {}, time_out = time_out, service_name = "svr.RunLua", method_name = "RunMfa",
  request_svr_name = "request_svr", reply_to_name = "reply_to", c_rpc_name = "c_rpc",
  fail_later = fail_later, fail_tracked_later = fail_tracked_later, local_call = local_call,
  nested_timeout = nested_timeout, settle_slow = settle_slow, callback_failed = callback_failed,
  traceback = traceback, transport_failed = transport_failed, no_response = no_response,
})
start_call, untrack, record = B.start_call, B.untrack, B.record

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
-- does check_run_mfa run, to raise the first failure in argument order. rr.run_mfa is the
-- books' run_mfa, which starts calls without opts itself and hands the others here: the
-- caller of rr.run_mfa is two levels up.
local function run_mfa_slow(svr_id, module_name, function_name, arguments, on_result, opts)
  local on_error, timeout
  if opts ~= nil then
    if not valid_opts(opts, RUN_MFA_OPTIONS) then
      check_run_mfa(3, svr_id, module_name, function_name, arguments, on_result, opts)
    end
    on_error, timeout = opts.on_error, opts.timeout
  end
  local id, bad_arg, why = start_call(svr_id, module_name, function_name, arguments, on_result, on_error, timeout)
  if id == nil then
    check_run_mfa(3, svr_id, module_name, function_name, arguments, on_result, opts)
    error(format("bad argument #%d to 'run_mfa' (%s)", bad_arg or 0, tostring(why)), 3)
  end
  return id
end
B.set_helpers({ run_mfa_slow = run_mfa_slow })
M.run_mfa = B.run_mfa

-- Coroutine -> the id of the call it is parked on in rr.call. A reply resumes the coroutine
-- only if it still waits for that call (its yield may have failed, and it moved on).
local waiting = setmetatable({}, { __mode = "k" })

-- What follows resuming a coroutine (parked in rr.call, or a svc_run_lua worker) with
-- coroutine.resume's first two results. A served coroutine that fails, or that yields anywhere
-- but in rr.call, is answered with an error reply by svc_run_lua; any other coroutine's
-- failure is logged.
-- Whether a suspended coroutine waits in rr.call (defined below).
local parked_in_call

local function after_resume(co, ok, ...)
  local state = workers[co]
  if state and state[BUSY] then
    if not ok then
      internal.served_failure(state, (...), co)
    elseif co_status(co) == "dead" then
      -- The served function returned: these are its results.
      -- Answering may fail (out of memory) once the books have ended the job: the failure
      -- is answered instead, if it can be.
      local ctx = state[CTX]
      local sent, err = pcall(B.finish_job, co, ...)
      if not sent then
        -- Still running if it failed before the job ended (the C stack's limit, say).
        if state[BUSY] then
          internal.served_failure(state, err, nil)
        else
          internal.unanswered(state, ctx, err, nil)
        end
      end
    elseif not parked_in_call(co) then
      internal.served_failure(state, "a served function may only yield through rr.call", nil)
    end
  elseif not ok then
    log("error", "coroutine failed after rr.call resumed it: " .. traceback(co, describe((...))))
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

-- Whether `co`, suspended, waits in rr.call: marked by it, and (where a yield can fail after
-- the mark, 5.1 and 5.2) suspended in it. A stale mark goes.
function parked_in_call(co)
  if waiting[co] == nil then return false end
  if suspended_elsewhere and suspended_elsewhere(co) then
    waiting[co] = nil
    return false
  end
  return true
end

-- The first value a call's answer resumes rr.call with: anything else came from some other
-- coroutine.resume (a scheduler waking the coroutine for its own reasons).
local ANSWER = {}
B.set_helpers({ waiting = waiting, parked_in_call = parked_in_call })

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
  if state and state[BUSY] then internal.served_failure(state, message, traceback(co, message)) end
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
  local call = record(call_id)
  if not call then return false end
  return fail_tracked_later(call_id, call, "cancelled", "cancelled by rr.cancel")
end

local polling = 0

function M.poll()
  B.expire(settings.clock())
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
        B.add("completed", 1)
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

-- A clock's reading `t`, checked: configure raises (at its caller) for anything but a number
-- of seconds.
local function clock_time(t, which)
  if type(t) ~= "number" or t ~= t then
    error(format("bad argument #1 to 'configure' (%s returned %s, not a number of seconds)", which, describe(t)), 3)
  end
  return t
end

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
  -- Both clocks are read before anything changes: a clock that fails leaves the settings
  -- and every call's deadline as they were.
  local old_now, new_now
  if options.clock then
    old_now = clock_time(settings.clock(), "the current clock")
    new_now = clock_time(options.clock(), "the new clock")
  end
  for key, value in pairs(options) do
    if value == HUGE and key ~= "timeout" then value = 2 ^ 53 end
    if key == "self_id" and value == false then value = nil end -- a table cannot hold nil
    settings[key] = value
  end
  clock = settings.clock
  B.configure(settings.self_id, settings.timeout, settings.max_pending, settings.max_pending_per_server,
    settings.max_depth, settings.max_message_bytes, clock ~= core.now and clock or nil)
  if options.clock then
    -- A new clock has its own origin: keep every pending call's remaining time.
    local now = new_now
    B.rebase(old_now, now)
    -- Served calls keep what is left of their caller's budget, for the calls they make.
    for _, state in pairs(workers) do
      if state[BUSY] and state[JOB_DEADLINE] then state[JOB_DEADLINE] = now + (state[JOB_DEADLINE] - old_now) end
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
  B.set_transport(t)
end

-- The counters of rr.stats() that the books keep.
local BOOK_COUNTERS = { "sent", "completed", "in_flight", "bytes_out", "bytes_in", "late_replies" }

function M.stats()
  local copy = {}
  for i = 1, #BOOK_COUNTERS do
    local name = BOOK_COUNTERS[i]
    copy[name] = B.get(name)
  end
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
internal.on_response = B.on_response
internal.books = B
internal.core = core -- the Rust functions, also for the full-call yardstick of bench/rpc_bench.lua
M._internal = internal

return M
