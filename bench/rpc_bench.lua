-- Full-path call benchmark: run_mfa -> request bytes -> RunMfa -> call -> reply -> on_result,
-- through an in-process fake transport, compared with the cjson round trip of the same payload.
--   lua5.4 bench/rpc_bench.lua build/lua5.4      (make bench runs it after the codec bench)
-- Env: BENCH_SECONDS (default 0.5 per figure), BENCH_REPS (best of, default 3).
local build_dir = arg[1] or "build/lua5.4"
package.cpath = build_dir .. "/?.so;" .. package.cpath
local script_dir = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = script_dir .. "/?.lua;" .. package.path

local rr = require("remote_runner")
local svc = require("svc_run_lua")
local cjson = require("cjson")
local payloads = require("payloads")

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "0.5")
local REPS = tonumber(os.getenv("BENCH_REPS") or "3")

-- The served module: a no-op and an echo.
package.loaded["bench_target"] = {
  noop = function() end,
  echo = function(...) return ... end,
}
svc.allow("bench_target")

-- One request and one reply in flight at a time: a two-slot transport with no queue to manage.
local pending_request, pending_cb, pending_reply
rr.set_transport({
  request_svr = function(_, _, _, request, cb)
    pending_request, pending_cb = request, cb
  end,
  reply_to = function(_, response)
    pending_reply = response
  end,
})
local ctx = {}

-- One call through `run_mfa` / `RunMfa` (remote_runner's, or the yardstick's).
local function call_through(run_mfa, RunMfa, fn_name, args, on_result)
  run_mfa(2, "bench_target", fn_name, args, on_result)
  RunMfa(ctx, pending_request)
  local cb, reply = pending_cb, pending_reply
  pending_request, pending_cb, pending_reply = nil, nil, nil
  cb(reply)
end

local function one_call(fn_name, args, on_result)
  call_through(rr.run_mfa, svc.RunMfa, fn_name, args, on_result)
end

-- bench/reference/callfloor.c, built by `make bench` (BENCH_REFERENCE_DIR): the same call with
-- its bookkeeping in C around the same message functions, as a yardstick.
local floor_run_mfa, floor_RunMfa
local reference_dir = os.getenv("BENCH_REFERENCE_DIR")
if reference_dir and reference_dir ~= "" then
  package.cpath = package.cpath .. ";" .. reference_dir .. "/?.so"
  local ok, make = pcall(require, "callfloor")
  if ok then
    floor_run_mfa, floor_RunMfa = make(rr._internal.core, {
      request_svr = function(_, _, _, request, cb) pending_request, pending_cb = request, cb end,
      reply_to = function(_, response) pending_reply = response end,
    }, { bench_target = true }, package.loaded, debug.traceback)
  else
    io.stderr:write("WARNING: callfloor yardstick not loaded: ", tostring(make), "\n")
  end
end

-- Microseconds per operation of each of `ops`: best of REPS runs of at least SECONDS each. The
-- runs take turns (a, b, c, a, b, c, ...), so that a slow spell of the machine hits every
-- operation alike instead of one figure of a ratio.
local function micros(ops)
  local best = {}
  for i = 1, #ops do best[i] = math.huge end
  for _ = 1, REPS do
    for i, op in ipairs(ops) do
      collectgarbage()
      local n, start = 0, os.clock()
      repeat
        for _ = 1, 100 do op() end
        n = n + 100
      until os.clock() - start >= SECONDS
      best[i] = math.min(best[i], (os.clock() - start) / n * 1e6)
    end
  end
  return best
end

local targets = { P1 = 2.0, P3 = 0.67 }
print(string.format("remote_runner full-path call bench -- %s -- %s", _VERSION, os.date("%Y-%m-%d %H:%M:%S")))
print(string.format("timing: os.clock CPU time, best of %d x >= %.2f s, runs taking turns", REPS, SECONDS))
print(string.format("%-4s %-6s %12s %14s %8s %s", "pay", "fn", "us/call", "cjson rt (us)", "ratio", "target"))
local failures = 0
for _, name in ipairs({ "P1", "P3" }) do
  local value = payloads[name]()
  local encode, decode = cjson.encode, cjson.decode
  local fn_names = { "noop", "echo" }
  local ops = { function() decode(encode(value)) end }
  -- Each row: its label, its call, whether the target applies.
  local rows = {}
  for _, fn_name in ipairs(fn_names) do
    rows[#rows + 1] = { fn_name, function(...) return one_call(fn_name, ...) end, fn_name == "noop" }
  end
  if floor_run_mfa then
    rows[#rows + 1] = { "floor", function(...) return call_through(floor_run_mfa, floor_RunMfa, "noop", ...) end }
  end
  for _, row in ipairs(rows) do
    -- Correctness once, before timing.
    local got
    row[2](value, function(...) got = select("#", ...) end)
    local want = row[1] == "echo" and #value or 0
    if got ~= want then
      io.stderr:write(string.format("FATAL: %s %s returned %s results, expected %d\n", name, row[1],
        tostring(got), want))
      os.exit(1)
    end
    local on_result = function() end
    local call = row[2]
    ops[#ops + 1] = function() call(value, on_result) end
  end
  local times = micros(ops)
  local cjson_us = times[1]
  for i, row in ipairs(rows) do
    local us = times[i + 1]
    local ratio = us / cjson_us
    local target = row[3] and targets[name] or nil
    local verdict = ""
    if target then
      verdict = string.format("<= %.2f %s", target, ratio <= target and "PASS" or "ABOVE")
      if ratio > target then failures = failures + 1 end
    elseif row[1] == "floor" then
      verdict = "yardstick: noop with C bookkeeping (bench/reference/callfloor.c)"
    end
    print(string.format("%-4s %-6s %12.2f %14.2f %8.2f %s", name, row[1], us, cjson_us, ratio, verdict))
  end
end
local stats = rr.stats()
print(string.format("calls completed %d, in flight %d", stats.completed, stats.in_flight))
if os.getenv("BENCH_STRICT") == "1" and failures > 0 then os.exit(1) end
