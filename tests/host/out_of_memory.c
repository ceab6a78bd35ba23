/* A host that caps the memory of its Lua state, as game servers do: every operation of the
 * module is run with the Lua allocator failing from its 1st, 2nd, 3rd ... allocation on, until
 * the operation gets through. Each failure must come back as a Lua error ("not enough
 * memory"), the module must work normally once memory is available again, and the C heap
 * outside Lua's own blocks must not grow from one sweep to the next: nothing the module holds
 * may be lost when a Lua error jumps over it.
 *
 *   out_of_memory BUILD_DIR [OPERATION]     (make test-host builds and runs it)
 *
 * Run it with GLIBC_TUNABLES=glibc.malloc.tcache_count=0: glibc's per-thread cache keeps
 * freed blocks that mallinfo2 still counts as in use. OOM_ROUNDS sets the measured sweeps. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capped_alloc.h"

static const char *SETUP =
    "local build_dir = ...\n"
    "package.cpath = build_dir .. '/?.so;' .. package.cpath\n"
    "local rr = require('remote_runner')\n"
    "local core = rr._internal.core\n"
    "local value = {}\n"
    "for i = 1, 60 do value[i] = { id = i, name = 'item_' .. i, tags = { 'a' .. i, 0.5 * i } } end\n"
    "local shared = { 'shared' }\n"
    "local graph = { shared, shared, { shared } }\n"
    "graph.self = graph\n"
    "local text, graph_text = rr.dump(value), rr.dump(graph)\n"
    "local request = core.encode_request(2, 'm', 'f', value, nil, 1, 7, 1000, 128, 4194304)\n"
    "local long_message = string.rep('the message ', 100)\n"
    "local error_reply = core.encode_error('runtime', long_message, 'a traceback', 7, 4096)\n"
    "return {\n"
    "  load = function() local ok, v = rr.load(text) return ok and v[60].tags[1] == 'a60' end,\n"
    "  dump = function() return rr.dump(value) == text end,\n"
    "  dump_graph = function() return rr.dump(graph) == graph_text end,\n"
    "  encode_request = function()\n"
    "    return core.encode_request(2, 'm', 'f', value, nil, 1, 7, 1000, 128, 4194304) == request\n"
    "  end,\n"
    "  decode_request = function()\n"
    "    local m, f, _, _, _, first = core.decode_request(request, 128, 4194304)\n"
    "    return m == 'm' and f == 'f' and first.name == 'item_1'\n"
    "  end,\n"
    "  encode_error = function()\n"
    "    return core.encode_error('runtime', long_message, 'a traceback', 7, 4096) == error_reply\n"
    "  end,\n"
    "  decode_response = function()\n"
    "    local ok, kind, message = core.decode_response(error_reply, 128, 4194304, 7)\n"
    "    local corrupt_ok, corrupt_kind = core.decode_response('\\255\\255', 128, 4194304, 7)\n"
    "    return ok == false and kind == 'runtime' and message == long_message\n"
    "      and corrupt_ok == false and corrupt_kind == 'bad_response'\n"
    "  end,\n"
    "}\n";

static const char *OPERATIONS[] = {"load",           "dump",         "dump_graph",     "encode_request",
                                    "decode_request", "encode_error", "decode_response"};
#define OPERATION_COUNT (sizeof OPERATIONS / sizeof OPERATIONS[0])

/* Calls operation `name` of the table on top of the stack; 1 if it returned true, 0 if it
 * returned anything else, -1 if it raised (the message is printed unless it is the memory
 * error). */
static int run(lua_State *L, const char *name) {
  lua_getfield(L, -1, name);
  int status = lua_pcall(L, 0, 1, 0);
  int outcome = status == LUA_OK ? lua_toboolean(L, -1) : -1;
  if (status != LUA_OK && status != LUA_ERRMEM) {
    const char *msg = lua_tostring(L, -1);
    if (!msg || !strstr(msg, "not enough memory")) printf("out_of_memory: %s raised: %s\n", name, msg ? msg : "?");
  }
  lua_pop(L, 1);
  return outcome;
}

/* The one operation to sweep (argv[2]), or NULL for all. */
static const char *only;

/* One sweep over every operation and failure point; returns the number of problems. */
static int sweep(lua_State *L, long *failures) {
  int problems = 0;
  for (size_t i = 0; i < OPERATION_COUNT; i++) {
    const char *name = OPERATIONS[i];
    if (only && strcmp(only, name) != 0) continue;
    for (long k = 0;; k++) {
      arm(k, 0);
      int outcome = run(L, name);
      disarm();
      if (outcome == 0) {
        printf("out_of_memory: %s returned a wrong result with the allocator failing after %ld\n", name, k);
        problems++;
      }
      if (outcome == -1) (*failures)++;
      if (run(L, name) != 1) {
        printf("out_of_memory: %s is wrong after a failure at allocation %ld\n", name, k);
        problems++;
      }
      if (!reached || k > 100000) break;
    }
  }
  return problems;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: out_of_memory BUILD_DIR\n");
    return 2;
  }
  only = argc > 2 ? argv[2] : NULL;
  lua_State *L = lua_newstate(capped_alloc, NULL);
  if (L == NULL) return 2;
  luaL_openlibs(L);
  if (luaL_loadstring(L, SETUP) != LUA_OK) {
    fprintf(stderr, "out_of_memory: %s\n", lua_tostring(L, -1));
    return 2;
  }
  lua_pushstring(L, argv[1]);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "out_of_memory: %s\n", lua_tostring(L, -1));
    return 1;
  }
  long failures = 0;
  int problems = sweep(L, &failures); /* also the warm-up: buffers reach their size */
  long before = outside_lua(L);
  int rounds = getenv("OOM_ROUNDS") ? atoi(getenv("OOM_ROUNDS")) : 3;
  for (int round = 0; round < rounds; round++) problems += sweep(L, &failures);
  long after = outside_lua(L);
  printf("out_of_memory: %ld operations failed for memory; C heap outside Lua %ld -> %ld bytes (%+ld)\n",
         failures, before, after, after - before);
  lua_close(L);
  if (failures == 0) {
    printf("out_of_memory: FAIL: no operation ever failed, the test tested nothing\n");
    return 1;
  }
  if (after - before > 4096) {
    printf("out_of_memory: FAIL: the heap outside Lua grew\n");
    problems++;
  }
  if (problems) return 1;
  printf("out_of_memory: ok\n");
  return 0;
}
