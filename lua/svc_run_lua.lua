-- svc_run_lua: the service side of cross-server Lua calls (SPEC §4). Embedded in the .so and
-- run once per Lua state by luaopen_svc_run_lua with the remote_runner module and `core`.
local rr, core = ...

local internal = rr._internal
local settings, stats, log = internal.settings, internal.stats, internal.log
local encode_response, encode_error, decode_request = core.encode_response, core.encode_error, core.decode_request
local unpack = table.unpack or unpack
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local type, tostring, pcall, require, format = type, tostring, pcall, require, string.format
local co_create, co_running = coroutine.create, coroutine.running

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

-- Served coroutine -> its caller's server id and call id, for svc.caller().
local callers = setmetatable({}, { __mode = "k" })

function S.caller()
  local co = co_running()
  local who = co and callers[co]
  if who then return who.caller_id, who.call_id end
  return nil
end

local function reply_through(ctx, content)
  stats.bytes_out = stats.bytes_out + #content
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
  local replied = false
  local call_id
  local function reply(bytes)
    if replied then return end
    replied = true
    reply_through(ctx, bytes)
  end
  local function fail(kind, message, remote_traceback)
    if replied then return end
    stats.served_failed = stats.served_failed + 1
    reply(encode_error(kind, message, remote_traceback, call_id))
  end

  local module_name, function_name, arguments, n, caller_id, id =
    decode_request(content, settings.max_depth, settings.max_message_bytes)
  if module_name == nil then
    return fail(function_name, arguments) -- the kind and the message
  end
  call_id = id
  if not is_allowed(module_name, function_name) then
    return fail("not_allowed", format(
      "%s.%s is not allowed on this server: call svc.allow(%q, %q) (or svc.allow(%q) for the whole module) there",
      module_name, function_name, module_name, function_name, module_name))
  end
  local loaded, module = pcall(require, module_name)
  if not loaded then return fail(require_failure(module_name, module)) end
  local fn = type(module) == "table" and module[function_name] or nil
  if type(fn) ~= "function" then
    return fail("not_found", format("function '%s' not found in module '%s'", function_name, module_name))
  end

  -- The coroutine sends its own reply when the function returns, whoever resumes it last
  -- (this call, or rr.call's callback after a nested call).
  local co = co_create(function(...)
    local results = pack(fn(...))
    local bytes, err = encode_response(results, call_id, settings.max_depth, settings.max_message_bytes)
    if bytes then
      reply(bytes)
    else
      fail("runtime", format("%s.%s returned a value that cannot be sent: %s", module_name, function_name, err))
    end
  end)
  callers[co] = { caller_id = caller_id, call_id = call_id }
  internal.coroutine_failure[co] = function(err, remote_traceback)
    fail("runtime", tostring(err), remote_traceback)
  end
  internal.resume(co, unpack(arguments, 1, n))
end

return S
