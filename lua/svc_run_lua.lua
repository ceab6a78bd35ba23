-- svc_run_lua: the service side of cross-server Lua calls (SPEC §4). Embedded in the .so and
-- run once per Lua state by luaopen_svc_run_lua with the remote_runner module and `core`.
local rr, core = ...

local internal = rr._internal
local settings, stats, log = internal.settings, internal.stats, internal.log
local encode_response, encode_error, decode_request = core.encode_response, core.encode_error, core.decode_request
local unpack = table.unpack or unpack
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local type, tostring, pcall, require, format = type, tostring, pcall, require, string.format
local co_create, co_running, co_yield = coroutine.create, coroutine.running, coroutine.yield
local loaded = package.loaded

local S = {}

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
  allowed = {}
end

local function is_allowed(module_name, function_name)
  local rule = allowed[module_name]
  return rule == true or (rule ~= nil and rule[function_name] == true)
end

-- A served call in progress: { ctx=, call_id=, caller_id=, replied=, fn=, module=, func=, deadline= }.
-- Worker coroutine -> the job it is running, for svc.caller() and failure replies.
local jobs = setmetatable({}, { __mode = "k" })

function S.caller()
  local co = co_running()
  local job = co and jobs[co]
  if job then return job.caller_id, job.call_id end
  return nil
end

local function reply(job, content)
  if job.replied then return end
  job.replied = true
  stats.bytes_out = stats.bytes_out + #content
  local ctx = job.ctx
  if type(ctx) == "table" and ctx[internal.LOCAL_REPLY] then
    ctx[internal.LOCAL_REPLY](content)
    return
  end
  local reply_to = internal.reply_function()
  if type(reply_to) ~= "function" then
    log("error", "cannot reply: no transport (rr.set_transport{...} or the global c_rpc.reply_to)")
    return
  end
  local ok, err = pcall(reply_to, ctx, content)
  if not ok then log("error", "reply_to failed: " .. tostring(err)) end
end

local function fail(job, kind, message, remote_traceback)
  if job.replied then return end
  stats.served_failed = stats.served_failed + 1
  reply(job, encode_error(kind, message, remote_traceback, job.call_id))
end

-- The deadline of the call a served coroutine is running (nil when the caller sent none).
function internal.deadline_of(co)
  local job = jobs[co]
  return job and job.deadline or nil
end

-- A served function that raised (or yielded outside rr.call): the error reply.
function internal.served_failure(job, err, remote_traceback)
  fail(job, "runtime", tostring(err), remote_traceback)
end

-- Idle worker coroutines. A worker runs one job after another; the reply goes out when the
-- function returns, whoever resumed the worker last (this module, or rr.call's callback after
-- a nested call). A worker whose function raised is dead and is not reused.
local idle, idle_count = {}, 0
local MAX_IDLE = 64

-- Runs one job in the current worker and replies.
local function serve(job, ...)
  local results = pack(job.fn(...))
  local bytes, err = encode_response(results, job.call_id, settings.max_depth, settings.max_message_bytes)
  if bytes then
    reply(job, bytes)
  else
    fail(job, "runtime", format("%s.%s returned a value that cannot be sent: %s", job.module, job.func, err))
  end
end

local function worker(job, ...)
  serve(job, ...)
  while true do
    local co = co_running()
    jobs[co] = nil
    internal.coroutine_failure[co] = nil
    if idle_count >= MAX_IDLE then return end
    idle_count = idle_count + 1
    idle[idle_count] = co
    serve(co_yield()) -- parked until `run` resumes it with the next job and its arguments
  end
end

local function run(job, arguments, n)
  local co
  if idle_count > 0 then
    co = idle[idle_count]
    idle[idle_count] = nil
    idle_count = idle_count - 1
  else
    co = co_create(worker)
  end
  jobs[co] = job
  internal.coroutine_failure[co] = job
  internal.resume(co, job, unpack(arguments, 1, n))
end

-- Why `require` failed: a missing module is not_found, a module that raised is a runtime error.
local function require_failure(module_name, message)
  message = tostring(message)
  if message:find("module '" .. module_name .. "' not found", 1, true) then
    return "not_found", format("module '%s' not found on this server", module_name)
  end
  return "runtime", format("loading module '%s' failed: %s", module_name, message)
end

function S.RunMfa(ctx, content)
  stats.served = stats.served + 1
  local module_name, function_name, arguments, n, caller_id, call_id, timeout_ms =
    decode_request(content, settings.max_depth, settings.max_message_bytes)
  -- Every field in the constructor (nil ones too): one allocation, no growth per assignment.
  local job = { ctx = ctx, replied = false, call_id = call_id, caller_id = caller_id, fn = false, module = false,
    func = false, deadline = false }
  if module_name == nil then
    return fail(job, function_name, arguments) -- the kind and the message
  end
  -- The caller's budget bounds the default timeout of nested calls made by this function.
  if timeout_ms then job.deadline = settings.clock() + timeout_ms / 1000 end
  if not is_allowed(module_name, function_name) then
    return fail(job, "not_allowed", format(
      "%s.%s is not allowed on this server: call svc.allow(%q, %q) (or svc.allow(%q) for the whole module) there",
      module_name, function_name, module_name, function_name, module_name))
  end
  local module = loaded[module_name]
  if module == nil then
    local ok, result = pcall(require, module_name)
    if not ok then return fail(job, require_failure(module_name, result)) end
    module = result
  end
  local fn = type(module) == "table" and module[function_name] or nil
  if type(fn) ~= "function" then
    return fail(job, "not_found", format("function '%s' not found in module '%s'", function_name, module_name))
  end
  job.fn, job.module, job.func = fn, module_name, function_name
  run(job, arguments, n)
end

return S
