-- svc_run_lua: the service side of cross-server Lua calls (SPEC §4). Embedded in the .so and
-- run once per Lua state by luaopen_svc_run_lua with the remote_runner module and `core`.
local rr, core = ...

local internal = rr._internal
local books = internal.books
local settings, log, describe = internal.settings, internal.log, internal.describe
local workers, local_routes = internal.workers, internal.local_routes
local STATE = internal.STATE
local CTX, BUSY, CALL_ID, CALLER_ID, JOB_MODULE, JOB_FUNC = STATE.CTX, STATE.BUSY, STATE.CALL_ID, STATE.CALLER_ID,
  STATE.MODULE, STATE.FUNC
local encode_error = core.encode_error
-- Captured at load, like the caller side's; `require` alone is looked up at each call, as the
-- legacy service did, so that a host that replaces it (hot reload, packed scripts) is obeyed.
local type, tostring, pcall, format, find, rawget, rawequal, select = type, tostring, pcall, string.format,
  string.find, rawget, rawequal, select
local globals = _G
-- The real metatable, past a __metatable field: tostring looks at that one for __tostring.
local getmetatable, dump, traceback = debug.getmetatable, core.dump, debug.traceback
local co_running = coroutine.running
local loaded = package.loaded

local S = {}

-- This side's counters are kept by the books, with the caller side's bytes.
function internal.service_stats(copy)
  copy.served, copy.served_failed = books.get("served"), books.get("served_failed")
end

-- Deny by default: module name -> true (every function) or { [function name] = true }.
local allowed = {}

function S.allow(module_name, function_name)
  if type(module_name) ~= "string" then
    error(format("bad argument #1 to 'allow' (string expected, got %s)", type(module_name)), 2)
  end
  if function_name ~= nil and type(function_name) ~= "string" then
    error(format("bad argument #2 to 'allow' (string expected, got %s)", type(function_name)), 2)
  end
  if function_name == nil then
    allowed[module_name] = true
  elseif allowed[module_name] ~= true then
    local functions = allowed[module_name] or {}
    functions[function_name] = true
    allowed[module_name] = functions
  end
end

function S.disallow_all()
  -- Emptied in place: the books serve requests with this very table.
  for module_name in next, allowed do allowed[module_name] = nil end
end

-- A served call runs in a worker coroutine (src/bind/calls/service.rs), which keeps one state
-- table for all its jobs (internal.STATE names its fields; internal.workers maps the coroutine
-- to it). BUSY is true from the start of a job until its one reply.

function S.caller()
  local co = co_running()
  local state = co and workers[co]
  if state and state[BUSY] then return state[CALLER_ID], state[CALL_ID] end
  return nil
end

-- A reply to this server's own call goes back to its caller side.
local function reply_locally(ctx, content)
  return internal.on_response(local_routes[ctx], content)
end

-- The function that sends a reply to the host's request `ctx`: the transport's reply_to, or
-- reply_locally for this server's own call; nil when there is no transport.
local function reply_function(ctx)
  if local_routes[ctx] then return reply_locally end
  return internal.transport_function("reply_to")
end

-- A reply could not be sent: no transport (no argument), or reply_to raised `err`.
local function reply_failed(...)
  if select("#", ...) == 0 then
    log("error", "cannot reply: no transport (rr.set_transport{...} or the global c_rpc.reply_to)")
  else
    log("error", "reply_to failed: " .. describe((...)))
  end
end

-- Sends a reply with `reply` (reply_function's) to the host's request `ctx`.
local function send_with(reply, ctx, content)
  books.add("bytes_out", #content)
  if reply == nil then return reply_failed() end
  local ok, err = pcall(reply, ctx, content)
  if not ok then reply_failed(err) end
end

local function send_reply(ctx, content)
  return send_with(reply_function(ctx), ctx, content)
end

local function reply_error(ctx, call_id, kind, message, remote_traceback)
  books.add("served_failed", 1)
  send_reply(ctx, encode_error(kind, message, remote_traceback, call_id, settings.max_message_bytes))
end

-- Ends a worker's job: false if it was already answered.
local function end_job(state)
  if not state[BUSY] then return false end
  state[BUSY] = false
  books.add("serving", -1)
  return true
end

-- Limits for writing a table error value into the error message.
local ERROR_VALUE_OPTS = { maxdepth = 16, maxbytes = 4096 }

-- The message for a served function's error value. Game code often raises tables
-- (`error({code = 42})`): one without __tostring is sent as its dump text, `{code=42}`, rather
-- than as `table: 0x...`. Anything else (and a table that cannot be dumped) goes through describe.
local function error_message(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if type(mt) ~= "table" or rawget(mt, "__tostring") == nil then
      local ok, text = pcall(dump, err, ERROR_VALUE_OPTS)
      if ok then return text end
    end
  end
  return describe(err)
end

-- The error reply to a served function's failure. Its traceback may come as the failed
-- coroutine, to be written here.
local function failure_reply(state, err, remote_traceback)
  if type(remote_traceback) == "thread" then
    remote_traceback = traceback(remote_traceback, describe(err))
  end
  return encode_error("runtime", error_message(err), remote_traceback, state[CALL_ID], settings.max_message_bytes)
end

-- A served function that raised (or yielded outside rr.call): the error reply. It is made
-- before the job ends, so that an error while making it (a watchdog's debug hook) cannot leave
-- the caller unanswered; if making it fails, the job still ends, counted, and the failure to
-- answer is logged.
function internal.served_failure(state, err, remote_traceback)
  if not state[BUSY] then return end
  local made, reply = pcall(failure_reply, state, err, remote_traceback)
  if not end_job(state) then return end
  books.add("served_failed", 1)
  local ctx = state[CTX]
  state[CTX] = false
  if made then
    send_reply(ctx, reply)
  else
    log("error", format("call %s to %s.%s failed and could not be answered: %s", tostring(state[CALL_ID]),
      tostring(state[JOB_MODULE]), tostring(state[JOB_FUNC]), describe(reply)))
  end
end

-- A job the books ended without an answer: the served function failed (`err`, with the
-- worker for its traceback), or its answer could not be made (out of memory, say). The
-- failure goes to `ctx` instead, if it can be made.
function internal.unanswered(state, ctx, err, remote_traceback)
  local made, reply = pcall(failure_reply, state, err, remote_traceback)
  books.add("served_failed", 1)
  if made then
    send_reply(ctx, reply)
  else
    log("error", format("call %s to %s.%s could not be answered: %s", tostring(state[CALL_ID]),
      tostring(state[JOB_MODULE]), tostring(state[JOB_FUNC]), describe(reply)))
  end
end

-- A served function returned what cannot be sent (`why`): its caller gets a runtime error,
-- to `ctx`. The books have ended the job.
local function unsendable_results(state, ctx, why)
  local bytes = encode_error("runtime", format("%s.%s returned results that cannot be sent: %s", state[JOB_MODULE],
    state[JOB_FUNC], why), nil, state[CALL_ID], settings.max_message_bytes)
  books.add("served_failed", 1)
  send_with(reply_function(ctx), ctx, bytes)
end

-- Why `require` failed: a missing module is not_found, a module that raised is a runtime error.
local function require_failure(module_name, message)
  message = describe(message)
  if find(message, "module '" .. module_name .. "' not found", 1, true) then
    return "not_found", format("module '%s' not found on this server", module_name)
  end
  return "runtime", format("loading module '%s' failed: %s", module_name, message)
end

-- How many __index tables a lookup below follows; real chains are a few long.
local MAX_CHAIN = 32

-- The table `t` inherits from through its metatable, when __index is one.
local function index_table(t)
  local mt = getmetatable(t)
  local index = mt and rawget(mt, "__index")
  if type(index) == "table" then return index end
end

-- Whether `value` is what the global `key` holds: in _G or in a table _G inherits from
-- (layered environments). Only tables are looked in: no __index function runs, since one
-- may have effects (an autoloading _G would `require` a peer-chosen name).
local function is_global(key, value)
  local t = globals
  for _ = 1, MAX_CHAIN do
    if rawequal(rawget(t, key), value) then return true end
    t = index_table(t)
    if t == nil then return false end
  end
  return false
end

-- A module's function found through its metatable's __index (a base module; a strict module
-- raises here). Never a global: a module made with package.seeall (__index = _G) would
-- otherwise serve print, dofile or require under its own name, past the allowlist. When the
-- __index tables lead to a table holding the key before _G, it is inherited from there;
-- when they lead to _G, or to an __index function, it is a global if it is the same value.
local function inherited_function(module, key)
  local found = module[key]
  if found == nil then return nil end
  local t = module
  for _ = 1, MAX_CHAIN do
    t = index_table(t)
    if t == nil or rawequal(t, globals) then break end
    if rawget(t, key) ~= nil then return found end
  end
  if is_global(key, found) then return nil, true end
  return found
end

-- A name from a request as error messages quote it: a peer's megabyte of name must not cost
-- a megabyte of formatting.
local MAX_SHOWN_NAME = 100
local function shown(name)
  if #name <= MAX_SHOWN_NAME then return name end
  return format("%s... (%d bytes)", name:sub(1, MAX_SHOWN_NAME), #name)
end

-- decode_request's answer for a call no rule allows.
local function refuse(ctx, module_name, function_name, call_id)
  module_name, function_name = shown(module_name), shown(function_name)
  return reply_error(ctx, call_id, "not_allowed", format(
    "%s.%s is not allowed on this server: call svc.allow(%q, %q) (or svc.allow(%q) for the whole module) there",
    module_name, function_name, module_name, function_name, module_name))
end

-- decode_request's results: the request's fields and arguments; nil and why it is corrupt;
-- or false, the names and the call id when the rules do not allow the call (decode_request
-- checks them before it reads the arguments).
local function serve_request(ctx, module_name, function_name, caller_id, call_id, timeout_ms, ...)
  if not module_name then
    if module_name == nil then return reply_error(ctx, nil, "bad_request", function_name) end
    return refuse(ctx, function_name, caller_id, call_id)
  end
  local module = loaded[module_name]
  if module == nil then
    local ok, result = pcall(rawget(globals, "require"), module_name)
    if not ok then
      -- Lua 5.1's and LuaJIT's require leave their loading marker behind when the module
      -- raises, and every later require of it would fail: put back the nil it found. A
      -- module table the loader registered itself before it failed stays.
      local left = loaded[module_name]
      if type(left) ~= "table" and type(left) ~= "function" then loaded[module_name] = nil end
      return reply_error(ctx, call_id, require_failure(module_name, result))
    end
    module = result
  end
  local fn, lookup_error, global
  if type(module) == "table" then
    fn = rawget(module, function_name)
    if fn == nil then
      -- Through __index, which may raise: strict modules do for fields they lack.
      local ok
      ok, fn, global = pcall(inherited_function, module, function_name)
      if not ok then fn, lookup_error = nil, fn end
    end
  end
  if type(fn) ~= "function" then
    local why = lookup_error ~= nil and " (looking it up raised: " .. describe(lookup_error) .. ")"
      or global and " (only a global of that name is visible through the module's metatable)" or ""
    return reply_error(ctx, call_id, "not_found", format("function '%s' not found in module '%s'%s",
      shown(function_name), module_name, why))
  end
  return books.start_job(ctx, fn, module_name, function_name, caller_id, call_id, timeout_ms, ...)
end

books.set_helpers({
  allowed = allowed, loaded = loaded, serve_slow = serve_request, workers = workers,
  unanswered = internal.unanswered, local_routes = local_routes, unsendable_results = unsendable_results,
  reply_failed = reply_failed, results_scratch = {}, names = {},
})

-- RunMfa(ctx, content): serves one request, answering it through reply_to exactly once.
S.RunMfa = books.run_mfa_service

return S
