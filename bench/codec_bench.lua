-- Codec speed benchmark (issue #2, section 4 "Speed" -- `make bench`).
--
-- Usage:  lua5.4 bench/codec_bench.lua build/lua5.4
--   arg[1]         build dir holding remote_runner.so (default build/lua5.4)
--   BENCH_SECONDS  minimum CPU seconds per measurement   (default 0.3)
--   BENCH_REPS     repetitions per figure, best is kept  (default 3)
--   BENCH_ONLY     comma list of payloads, e.g. P1,P3    (default all)
--   BENCH_STRICT   if 1, exit 1 when a ratio is below its target
--
-- Compares remote_runner (rr.dump / rr.load) with lua-cjson (C) and the
-- pure-Lua MessagePack module on the payloads of bench/payloads.lua.
-- Timing: os.clock (process CPU time). For each (lib, payload, op) a
-- calibration batch doubles until it takes >= 10 ms (this is the warm-up),
-- then each repetition does a full collectgarbage() and runs batches until
-- BENCH_SECONDS have elapsed, with the GC left running. Best of BENCH_REPS;
-- the repetitions of all libraries and operations of a payload take turns.

local clock = os.clock
local fmt = string.format

local function die(code, ...)
  io.stdout:flush()
  io.stderr:write(...)
  io.stderr:write("\n")
  os.exit(code)
end

-- Paths -------------------------------------------------------------------

local script_dir = (arg and arg[0] and arg[0]:match("^(.*)[/\\]")) or "."
package.path = script_dir .. "/?.lua;" .. package.path
local build_dir = (arg and arg[1]) or "build/lua5.4"
package.cpath = build_dir .. "/?.so;" .. package.cpath

local payloads = require("payloads")

-- Settings ----------------------------------------------------------------

local function env_number(name, default)
  local s = os.getenv(name)
  if s == nil or s == "" then return default end
  local n = tonumber(s)
  if not n or n <= 0 then
    die(2, fmt("FATAL: %s must be a positive number, got %q", name, s))
  end
  return n
end

local SECONDS = env_number("BENCH_SECONDS", 0.3)
local REPS = math.floor(env_number("BENCH_REPS", 3))
local STRICT = os.getenv("BENCH_STRICT") == "1"
local CALIBRATE_SECONDS = 0.01

local PAYLOADS = {
  { name = "P1", target = 3.7, desc = '{"Remote.ClientDisconnected", 123456}' },
  { name = "P2", target = 3.0, desc = "record: player_id, name (UTF-8), level, pos{x,y,z}, flags{3 bools}" },
  { name = "P3", target = 1.6, desc = '100 x {id=i, count=i*3, bind=(i%2==0), name="item_"..i}' },
  { name = "P4", target = 5.9, desc = "10,000 numbers, int/float alternating (seed 4)" },
  { name = "P5", target = 4.2, desc = "200 binary strings of 64 bytes (seed 5)" },
  { name = "P6", target = 1.5, desc = "30-deep chain {child=..., v=i}" },
}

do
  local only = os.getenv("BENCH_ONLY")
  if only and only ~= "" then
    local wanted, known = {}, {}
    for _, p in ipairs(PAYLOADS) do known[p.name] = true end
    for name in only:gmatch("[^,%s]+") do
      name = name:upper()
      if not known[name] then
        die(2, fmt("FATAL: BENCH_ONLY: unknown payload %q (known: P1..P6)", name))
      end
      wanted[name] = true
    end
    local kept = {}
    for _, p in ipairs(PAYLOADS) do
      if wanted[p.name] then kept[#kept + 1] = p end
    end
    PAYLOADS = kept
  end
end

-- Libraries ---------------------------------------------------------------

local function find_module(name)
  return package.searchpath(name, package.path)
      or package.searchpath(name, package.cpath)
      or "?"
end

local rr_path = find_module("remote_runner")
local ok_rr, rr = pcall(require, "remote_runner")
if not ok_rr then
  die(2, "FATAL: cannot load remote_runner from ", build_dir,
    " (build it first)\n", tostring(rr))
end

local cjson = require("cjson")

-- Debian's lua-messagepack ships MessagePack.lua for 5.1-5.3 only; the 5.3
-- file (string.pack based) works unchanged on 5.4.
local mp_path = find_module("MessagePack")
local ok_mp, mp = pcall(require, "MessagePack")
if not ok_mp and _VERSION == "Lua 5.4" then
  local fallback = "/usr/share/lua/5.3/?.lua"
  mp_path = package.searchpath("MessagePack", fallback) or "?"
  package.path = package.path .. ";" .. fallback
  ok_mp, mp = pcall(require, "MessagePack")
end
if not ok_mp then
  io.stderr:write("WARNING: MessagePack not available (apt-get install lua-messagepack); skipped\n")
  mp = nil
end

-- bench/reference/minbin.c, built twice by `make bench`: minbin, the least work a C binary
-- serializer can do (no escaping, no checks), and arraybin, the same with the array shortcut
-- that is not exact. Not competitors: yardsticks for how near the Lua API floor we are.
local YARDSTICKS = {
  { name = "minbin", desc = "C yardstick: binary, no escaping, no checks" },
  { name = "arraybin", desc = "minbin with arrays by lua_rawgeti/lua_rawseti; not exact",
    inexact = true },
}
local reference_dir = os.getenv("BENCH_REFERENCE_DIR")
if reference_dir and reference_dir ~= "" then
  package.cpath = package.cpath .. ";" .. reference_dir .. "/?.so"
  for _, y in ipairs(YARDSTICKS) do
    local ok, mod = pcall(require, y.name)
    if ok then
      y.module = mod
    else
      io.stderr:write("WARNING: ", y.name, " yardstick not loaded: ", tostring(mod), "\n")
    end
  end
end

-- The functions are the libraries' own, called directly (no wrappers), so
-- every library pays the same single call per operation.
local LIBS = {
  { name = "remote_runner", dump = rr.dump, load = rr.load },
  { name = "cjson", dump = cjson.encode, load = cjson.decode },
}
if mp then
  LIBS[#LIBS + 1] = { name = "MessagePack", dump = mp.pack, load = mp.unpack }
end
for _, y in ipairs(YARDSTICKS) do
  if y.module then
    LIBS[#LIBS + 1] = { name = y.name, dump = y.module.dump, load = y.module.load }
  end
end

-- Comparison --------------------------------------------------------------

local math_type = math.type or function() return "float" end

-- mode "exact": numbers must match in value and math.type.
-- mode "loose": numbers compare with == (integer 3 equals float 3.0).
-- mode "approx": numbers within a relative 1e-12 (cjson prints 14 digits).
local function same(a, b, mode, seen)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return false end
  if ta == "number" then
    if mode == "exact" then
      return a == b and math_type(a) == math_type(b)
    elseif mode == "loose" then
      return a == b
    else
      if a == b then return true end
      local scale = math.max(math.abs(a), math.abs(b), 1e-300)
      return math.abs(a - b) / scale <= 1e-12
    end
  end
  if ta ~= "table" then return a == b end
  seen = seen or {}
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, va in pairs(a) do
    local vb = b[k]
    if vb == nil or not same(va, vb, mode, seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Returns the encoded string (or nil) and a verdict for the notes column.
local function check(lib, value)
  local ok, s = pcall(lib.dump, value)
  if not ok then return nil, "REFUSED dump: " .. tostring(s) end
  if type(s) ~= "string" then return nil, "dump returned " .. type(s) end
  local ok2, r1, r2 = pcall(lib.load, s)
  if not ok2 then return nil, "REFUSED load: " .. tostring(r1) end
  local back = r1
  if lib.name == "remote_runner" then
    if r1 ~= true then return nil, "load returned false: " .. tostring(r2) end
    back = r2
  end
  local verdict
  if same(value, back, "exact") then
    verdict = "exact"
  elseif same(value, back, "loose") then
    verdict = "lossy: integers come back as floats"
  elseif same(value, back, "approx") then
    verdict = "lossy: int->float, floats to 14 digits"
  else
    return s, "CORRUPT: value differs after round trip"
  end
  -- cjson passes bytes >= 0x80 through raw: it round-trips, but the text
  -- is not valid UTF-8 (so not valid JSON). Say so rather than hide it.
  if lib.name == "cjson" and utf8 and utf8.len(s) == nil then
    verdict = verdict .. "; JSON text is not valid UTF-8"
  end
  return s, verdict
end

-- Timing ------------------------------------------------------------------

-- One batch of n operations. A job with `values` (and their `encodeds`) takes them in turn,
-- a different one each operation.
local function run_batch(job, n)
  local op, fn_dump, fn_load = job.op, job.lib.dump, job.lib.load
  local values, encodeds = job.values, job.encodeds
  if values then
    local count = #values
    for i = 1, n do
      local k = i % count + 1
      if op == "rt" then
        fn_load(fn_dump(values[k]))
      elseif op == "dump" then
        fn_dump(values[k])
      else
        fn_load(encodeds[k])
      end
    end
    return
  end
  local value, encoded = job.value, job.encoded
  if op == "rt" then
    for _ = 1, n do fn_load(fn_dump(value)) end
  elseif op == "dump" then
    for _ = 1, n do fn_dump(value) end
  else
    for _ = 1, n do fn_load(encoded) end
  end
end

-- Batch size for one job: doubled until a batch takes >= 10 ms (this is the warm-up).
local function calibrate(job)
  local n = 1
  while true do
    local t0 = clock()
    run_batch(job, n)
    if clock() - t0 >= CALIBRATE_SECONDS or n >= 2 ^ 30 then return n end
    n = n * 2
  end
end

-- Ops/s of one repetition: batches until SECONDS have elapsed.
local function rate(job)
  collectgarbage()
  collectgarbage()
  local count = 0
  local t0 = clock()
  local elapsed
  repeat
    run_batch(job, job.n)
    count = count + job.n
    elapsed = clock() - t0
  until elapsed >= SECONDS
  return count / elapsed
end

-- Best ops/s over REPS repetitions for every job ({lib=, op=, value=, encoded=}). The
-- repetitions take turns across all jobs, so that a slow spell of the machine hits every
-- library alike instead of one side of a ratio.
local function measure_all(jobs)
  for _, job in ipairs(jobs) do
    job.n = calibrate(job)
    job.best = 0
  end
  for _ = 1, REPS do
    for _, job in ipairs(jobs) do
      local r = rate(job)
      if r > job.best then job.best = r end
    end
  end
end

-- Output ------------------------------------------------------------------

local function thousands(x)
  local s = fmt("%.0f", x)
  local head, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return head .. digits
end

local function cpu_model()
  local f = io.open("/proc/cpuinfo", "r")
  if not f then return "?" end
  local text = f:read("a") or ""
  f:close()
  local model = text:match("model name%s*:%s*([^\n]+)") or "?"
  local ncpu = 0
  for _ in text:gmatch("\nprocessor%s*:") do ncpu = ncpu + 1 end
  if text:match("^processor%s*:") then ncpu = ncpu + 1 end
  return fmt("%s (%d cpu)", model, ncpu)
end

-- Tables given other keys first and items 1..n after them, the way code fills a record and then
-- appends to it: some items then sit in the hash part, at or before the border. Integer keys
-- hash the same in every process (string hashes are seeded), so the count is the same each run.
local function shortcut_losses(lib)
  local wrong = 0
  for trial = 1, 200 do
    local t = {}
    for k = 1, trial % 7 do t[100 + k] = k end
    for i = 1, trial % 13 + 1 do t[i] = i end
    if not same(t, lib.load(lib.dump(t)), "exact") then wrong = wrong + 1 end
  end
  return wrong
end

local function out(...) io.write(fmt(...), "\n") io.stdout:flush() end

out("remote_runner codec bench -- %s -- %s", _VERSION, os.date("%Y-%m-%d %H:%M:%S"))
out("cpu: %s", cpu_model())
out("timing: os.clock CPU time, >= %.2f s per figure, best of %d taking turns, GC running", SECONDS, REPS)
local rr_version = rr._VERSION or rr.VERSION
out("remote_runner%s  [%s]", rr_version and (" " .. tostring(rr_version)) or "", rr_path)
out("cjson %s (lua-cjson, C)  [%s]", tostring(cjson._VERSION), find_module("cjson"))
if mp then
  out("MessagePack %s (pure Lua)  [%s]", tostring(mp._VERSION), mp_path)
end
for _, y in ipairs(YARDSTICKS) do
  if y.module then out("%s (%s)  [%s]", y.name, y.desc, find_module(y.name)) end
end
for _, y in ipairs(YARDSTICKS) do
  if y.module and y.inexact then
    out("%s gets %d of 200 mixed tables built by assignment wrong (entries lost)", y.name,
      shortcut_losses(y.module))
  end
end
out("")
for _, p in ipairs(PAYLOADS) do out("  %-3s %s", p.name, p.desc) end
out("")

-- One line of the table: payload, library, three rates, encoded size, notes.
local ROW = "%-4s %-14s %14s %14s %14s %9s  %s"
local header = fmt(ROW, "pay", "lib", "round trips/s", "dump/s", "load/s", "bytes", "notes")
out("%s", header)
out("%s", string.rep("-", #header + 38))

local summary = {}
local below, corrupt = 0, 0

for _, p in ipairs(PAYLOADS) do
  local results = {}
  local jobs, rows = {}, {}
  for _, lib in ipairs(LIBS) do
    local value = payloads[p.name]()
    local encoded, verdict = check(lib, value)
    if lib.name == "remote_runner" and verdict ~= "exact" then
      die(1, fmt("\nFATAL: remote_runner round trip of %s is wrong: %s",
        p.name, verdict))
    end
    local row = { lib = lib, encoded = encoded, verdict = verdict }
    rows[#rows + 1] = row
    if encoded == nil or verdict:match("^CORRUPT") then
      corrupt = corrupt + 1
    else
      row.jobs = {}
      for _, op in ipairs({ "rt", "dump", "load" }) do
        local job = { lib = lib, op = op, value = value, encoded = encoded }
        row.jobs[op] = job
        jobs[#jobs + 1] = job
      end
    end
  end
  measure_all(jobs)
  for _, row in ipairs(rows) do
    local lib, encoded = row.lib, row.encoded
    if not row.jobs then
      out(ROW, p.name, lib.name, "-", "-", "-", encoded and #encoded or "-", row.verdict)
    else
      local rt, d, l = row.jobs.rt.best, row.jobs.dump.best, row.jobs.load.best
      results[lib.name] = { rt = rt, dump = d, load = l }
      out(ROW, p.name, lib.name, thousands(rt), thousands(d), thousands(l), #encoded,
        row.verdict)
    end
  end
  local a, b = results["remote_runner"], results["cjson"]
  if a and b then
    local ratio = a.rt / b.rt
    local pass = ratio >= p.target
    if not pass then below = below + 1 end
    summary[#summary + 1] = fmt("%s %5.2f/%.1f %s", p.name, ratio, p.target,
      pass and "PASS" or "BELOW")
    out("     ratio rr/cjson round trip: %.2f (target ≥ %.1f) %s   [dump %.2f, load %.2f]",
      ratio, p.target, pass and "PASS" or "BELOW", a.dump / b.dump, a.load / b.load)
    for _, y in ipairs(YARDSTICKS) do
      local m = results[y.name]
      if m then
        out("     yardstick %s/cjson round trip: %.2f; remote_runner reaches %.0f%% of it",
          y.name, m.rt / b.rt, 100 * a.rt / m.rt)
      end
    end
  else
    below = below + 1
    summary[#summary + 1] = fmt("%s  n/a", p.name)
    out("     ratio rr/cjson round trip: n/a (target ≥ %.1f) BELOW", p.target)
  end
  out("")
end

-- P5 once more, with a different value of its kind each operation (seeds 5 to 68). The rows
-- above repeat one value, and the CPU's branch predictor learns much of its 13 KB of random
-- bytes by heart, for every library alike; a server's traffic does not repeat. No target:
-- this row shows what the P5 figures are worth on data never seen before.
local FRESH_VALUES = 64
local function bench_fresh_p5()
  local values = {}
  for k = 1, FRESH_VALUES do values[k] = payloads.P5(4 + k) end
  local jobs, rows = {}, {}
  for _, lib in ipairs(LIBS) do
    local encodeds, verdict = {}, nil
    for k, value in ipairs(values) do
      encodeds[k], verdict = check(lib, value)
      if encodeds[k] == nil or verdict:match("^CORRUPT") then break end
    end
    if #encodeds == FRESH_VALUES and not verdict:match("^CORRUPT") then
      local row = { lib = lib, jobs = {} }
      for _, op in ipairs({ "rt", "dump", "load" }) do
        local job = { lib = lib, op = op, values = values, encodeds = encodeds }
        row.jobs[op] = job
        jobs[#jobs + 1] = job
      end
      rows[#rows + 1] = row
    end
  end
  measure_all(jobs)
  local results = {}
  for _, row in ipairs(rows) do
    local rt, d, l = row.jobs.rt.best, row.jobs.dump.best, row.jobs.load.best
    results[row.lib.name] = { rt = rt, dump = d, load = l }
    out(ROW, "P5f", row.lib.name, thousands(rt), thousands(d), thousands(l), "",
      "fresh data: 64 values of P5's kind in turn")
  end
  local a, b = results["remote_runner"], results["cjson"]
  if a and b then
    out("     ratio rr/cjson round trip: %.2f (no target; compare row P5)   [dump %.2f, load %.2f]",
      a.rt / b.rt, a.dump / b.dump, a.load / b.load)
  end
  out("")
end

for _, p in ipairs(PAYLOADS) do
  if p.name == "P5" then bench_fresh_p5() end
end

out("summary: %s", table.concat(summary, "; "))
out("%d of %d payloads below target%s; total %.1f s CPU", below, #PAYLOADS,
  corrupt > 0 and fmt(", %d library/payload pairs refused or corrupted", corrupt) or "",
  clock())

if STRICT and below > 0 then os.exit(1) end
