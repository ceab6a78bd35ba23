-- remote_runner demo: a small cluster simulated in one Lua process.
--
--   lua5.4 examples/demo.lua build/lua5.4        (what `make demo` runs)
--
-- Four servers (1 gate, 2 world, 3 inventory, 4 battle) are played by this one process over a
-- fake transport (examples/cluster.lua) with a fake clock. The transcript shows, step by step,
-- what is sent and what comes back: the legacy run_mfa call, a coroutine call with several
-- results, a denied call, a remote error with its traceback, a timeout, and a nested call.
-- Every step checks its outcome; the exit status is non-zero if any step misbehaved, so the demo
-- doubles as a smoke test.
local build_dir = arg and arg[1] or "build/lua5.4"
local script_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.cpath = build_dir .. "/?.so;" .. package.cpath
package.path = script_dir .. "/?.lua;" .. package.path

local rr = require("remote_runner")
local svc = require("svc_run_lua")
local Cluster = require("cluster")

local function pack(...) return { n = select("#", ...), ... } end

local out = io.stdout
local function say(fmt, ...)
  out:write(string.format(fmt, ...), "\n")
end

-- Lua-literal text of each value (the module's own encoder), comma-separated.
local function show(values)
  local parts = {}
  for i = 1, values.n or #values do
    local v = values[i]
    local t = type(v)
    if t == "nil" or t == "boolean" or t == "number" or t == "string" or t == "table" then
      parts[i] = rr.dump(v)
    else
      parts[i] = tostring(v)
    end
  end
  return table.concat(parts, ", ")
end

------------------------------------------------------------------------------------------------
-- The cluster

local cluster = Cluster.new({
  rr = rr, svc = svc,
  names = { [1] = "gate", [2] = "world", [3] = "inventory", [4] = "battle" },
  trace = function(line) say("%s", line) end,
})
local logged = {}
rr.configure({
  self_id = 1,
  timeout = 5,
  clock = cluster:clock(),
  logger = function(level, msg)
    logged[#logged + 1] = level .. ": " .. msg
    say("  [log %s] %s", level, msg)
  end,
})
rr.set_transport(cluster:transport())

-- What the served side runs. In a real server these are ordinary modules on package.path;
-- here they are preloaded so the demo is one file plus the cluster helper.
local function where()
  return "[" .. cluster:name(cluster.serving or "?") .. "]"
end

local dispatched = {}
package.preload["event.dispatcher"] = function()
  local M = {}
  function M.dispatch(event, ...)
    local caller, call_id = svc.caller()
    dispatched[#dispatched + 1] = pack(event, ...)
    say("  %s require(\"event.dispatcher\").dispatch(%s)   -- called by server %s, call %s",
      where(), show(pack(event, ...)), tostring(caller), tostring(call_id))
    return true
  end
  return M
end

package.preload["inventory"] = function()
  local M = {}
  -- name, level, guild (nil: not in a guild), gold, and a table of items
  function M.summary(player_id)
    say("  %s inventory.summary(%s)", where(), show(pack(player_id)))
    return "Alice", 17, nil, 1250.5, { "sword", "shield", potions = 3 }
  end
  return M
end

package.preload["demo.buggy"] = function()
  local M = {}
  local function durability(item)
    local stats = nil -- a bug: the stats table was never loaded
    return stats[item].durability
  end
  function M.repair(item)
    say("  %s demo.buggy.repair(%s)", where(), show(pack(item)))
    local d = durability(item)
    return d
  end
  return M
end

package.preload["demo.relay"] = function()
  local M = {}
  -- Runs on one server and asks another one, with rr.call (the served function is a coroutine).
  function M.player_card(inventory_server, player_id)
    say("  %s demo.relay.player_card(%s): asking %s", where(), show(pack(inventory_server, player_id)),
      cluster:name(inventory_server))
    local name, level, guild = rr.call(inventory_server, "inventory", "summary", { player_id })
    return string.format("%s, level %d, %s", name, level, guild or "no guild")
  end
  return M
end

say("remote_runner demo: 4 servers in one %s process, fake transport, fake clock", _VERSION)
say("  each server opens only what it serves (deny by default):")
for _, a in ipairs({ { "event.dispatcher", "dispatch" }, { "inventory" }, { "demo.buggy" }, { "demo.relay" } }) do
  svc.allow(a[1], a[2])
  if a[2] then
    say("    svc.allow(%q, %q)", a[1], a[2])
  else
    say("    svc.allow(%q)", a[1])
  end
end

------------------------------------------------------------------------------------------------
-- Steps

local failures = {}
local step_no = 0
local function step(title)
  step_no = step_no + 1
  say("")
  say("== %d. %s", step_no, title)
end
local function expect(cond, what)
  if cond then
    say("  ok: %s", what)
  else
    say("  UNEXPECTED: %s", what)
    failures[#failures + 1] = string.format("step %d: %s", step_no, what)
  end
end

-- Runs fn in a coroutine (for rr.call); returns a record filled in when it finishes.
local function spawn(fn)
  local rec = {}
  local co = coroutine.create(function()
    rec.results = pack(fn())
    rec.done = true
  end)
  local ok, err = coroutine.resume(co)
  if not ok then rec.done, rec.failed = true, err end
  return rec
end

-- 1. The legacy call, unchanged from the pure-Lua implementation.
step("The legacy call (run_mfa, callbacks)")
say('  rr.run_mfa(2, "event.dispatcher", "dispatch", {"Remote.ClientDisconnected", 123}, on_result)')
local got1
local id1 = rr.run_mfa(2, "event.dispatcher", "dispatch", { "Remote.ClientDisconnected", 123 }, function(...)
  got1 = pack(...)
  say("  on_result(%s)", show(got1))
end)
say("  run_mfa returned call id %s; nothing has fired yet: %s", tostring(id1), tostring(got1 == nil))
expect(got1 == nil, "on_result never fires inside run_mfa")
cluster:run()
expect(got1 ~= nil and got1.n == 1 and got1[1] == true, "on_result(true) after the reply")
expect(#dispatched == 1 and dispatched[1][1] == "Remote.ClientDisconnected" and dispatched[1][2] == 123,
  'server 2 ran dispatch("Remote.ClientDisconnected", 123)')

-- 2. rr.call inside a coroutine: all the results come back, the nil in the middle included.
step("A coroutine call with several results (rr.call)")
say('  local name, level, guild, gold, items = rr.call(3, "inventory", "summary", {42})')
local rec2 = spawn(function() return rr.call(3, "inventory", "summary", { 42 }) end)
say("  the coroutine is now suspended in rr.call: %s", tostring(not rec2.done))
cluster:run()
local r2 = rec2.results
if r2 then
  say("  rr.call returned %d values: %s", r2.n, show(r2))
end
expect(rec2.done and not rec2.failed, "the coroutine resumed with the results")
expect(r2 ~= nil and r2.n == 5 and r2[1] == "Alice" and r2[2] == 17 and r2[3] == nil and r2[4] == 1250.5
  and type(r2[5]) == "table" and r2[5][2] == "shield" and r2[5].potions == 3,
  "name, level, guild = nil, gold, items: five values, the nil hole kept")

-- 3. A call the target has not allowed.
step("A denied call (deny by default)")
say('  rr.run_mfa(3, "os", "execute", {"rm -rf /"}, on_result, { on_error = on_error })')
local err3, res3
-- A spy in place of os.execute (every simulated server shares this Lua state): the denied call
-- must never reach it.
local real_execute, executed = os.execute, false
os.execute = function() executed = true end -- luacheck: ignore 122 (the spy, undone below)
rr.run_mfa(3, "os", "execute", { "rm -rf /" }, function(...) res3 = pack(...) end, {
  on_error = function(err)
    err3 = err
    say("  on_error: %s", tostring(err))
  end,
})
cluster:run()
os.execute = real_execute -- luacheck: ignore 122
expect(res3 == nil and rr.is_error(err3) and err3.kind == "not_allowed", "on_error got kind not_allowed")
expect(err3 ~= nil and tostring(err3.message):find('svc.allow("os", "execute")', 1, true) ~= nil,
  "the message says which svc.allow call would open it")
expect(not executed, "os.execute never ran on server 3")

-- 4. The remote function raises: the caller gets a classified error with the remote traceback.
step("A remote error, with its traceback")
local yield_across_pcall = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil)
local err4
if yield_across_pcall then
  say('  rr.call(2, "demo.buggy", "repair", {"sword"})   -- inside pcall, in a coroutine')
  local rec4 = spawn(function()
    local ok, err = pcall(rr.call, 2, "demo.buggy", "repair", { "sword" })
    if not ok then err4 = err end
  end)
  cluster:run()
  expect(rec4.done, "the coroutine ended")
else
  -- PUC Lua 5.1 cannot yield across pcall: the same call with callbacks
  say('  rr.run_mfa(2, "demo.buggy", "repair", {"sword"}, nil, { on_error = on_error })')
  rr.run_mfa(2, "demo.buggy", "repair", { "sword" }, nil, { on_error = function(e) err4 = e end })
  cluster:run()
end
if err4 then
  say("  %s: %s", yield_across_pcall and "rr.call raised" or "on_error got", tostring(err4))
  say("  err.kind = %s, err.svr_id = %s, err.module = %s, err.func = %s, err.call_id = %s",
    tostring(err4.kind), tostring(err4.svr_id), tostring(err4.module), tostring(err4.func), tostring(err4.call_id))
  say("  err.traceback (from server 2):")
  for line in tostring(err4.traceback):gmatch("[^\n]+") do
    say("    | %s", line)
  end
end
expect(rr.is_error(err4) and err4.kind == "runtime", "a runtime error object")
expect(err4 ~= nil and tostring(err4.message):find("index", 1, true) ~= nil, "the message is the remote one")
expect(err4 ~= nil and type(err4.traceback) == "string" and err4.traceback:find("durability", 1, true) ~= nil,
  "the remote traceback names the failing function")

-- 5. The target is down: nothing answers, the call times out from poll.
step("A timeout (server 4 is down)")
cluster:set_down(4, true)
say('  rr.run_mfa(4, "event.dispatcher", "dispatch", {"Battle.Started", 7}, on_result, { timeout = 2, on_error = ... })')
local err5, res5
rr.run_mfa(4, "event.dispatcher", "dispatch", { "Battle.Started", 7 }, function(...) res5 = pack(...) end, {
  timeout = 2,
  on_error = function(err)
    err5 = err
    say("  on_error: %s", tostring(err))
  end,
})
cluster:run()
say("  fake clock +1.5 s, poll")
cluster:advance(1.5)
expect(err5 == nil, "not yet: 1.5 s < 2 s")
say("  fake clock +1.0 s, poll")
cluster:advance(1.0)
expect(res5 == nil and rr.is_error(err5) and err5.kind == "timeout", "on_error got kind timeout after 2 s")
cluster:set_down(4, false)

-- 6. A served function that itself calls another server.
step("A nested call: server 1 asks 2, whose function asks 3 with rr.call")
say('  rr.call(2, "demo.relay", "player_card", {3, 42})')
local rec6 = spawn(function() return rr.call(2, "demo.relay", "player_card", { 3, 42 }) end)
cluster:run()
if rec6.results then say("  rr.call returned %s", show(rec6.results)) end
expect(rec6.done and rec6.results and rec6.results[1] == "Alice, level 17, no guild",
  "server 2 answered once its own call to server 3 came back")

------------------------------------------------------------------------------------------------
-- Summary

say("")
local s = rr.stats()
local failed = {}
for kind, n in pairs(s.failed) do failed[#failed + 1] = kind .. "=" .. n end
table.sort(failed)
say("stats: sent=%d completed=%d failed={%s} timed_out=%d late_replies=%d in_flight=%d served=%d bytes_out=%d bytes_in=%d",
  s.sent, s.completed, table.concat(failed, ", "), s.timed_out, s.late_replies, s.in_flight, s.served,
  s.bytes_out, s.bytes_in)
step_no = step_no + 1
expect(s.in_flight == 0, "nothing left in flight")
expect(cluster:unanswered() == 0, "every request served got exactly one reply")
rr.set_transport(nil)

if #failures > 0 then
  say("")
  say("demo FAILED (%d unexpected outcome%s):", #failures, #failures == 1 and "" or "s")
  for _, f in ipairs(failures) do say("  %s", f) end
  os.exit(1)
end
say("demo ok: every step behaved as expected")

