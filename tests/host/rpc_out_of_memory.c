/* The whole RPC flow of tests/host/rpc_flow.lua, in one Lua state whose allocator fails: for
 * k = 0, 1, 2, ... a round runs the flow's steps (each under lua_pcall) with growing
 * allocations failing from the k-th on, either twice (memory comes back, as after Lua's
 * emergency collection) or until the step ends. Then, with memory back, the flow is drained
 * and checked (rpc_flow.lua's H.check: every started call ended exactly once, nothing left in
 * flight, later calls work). The sweep ends with the first round whose failure point is never
 * reached. Each mode sweeps three times; the C heap outside Lua must not grow over the last
 * two (the first lets buffers reach their size).
 *
 *   rpc_out_of_memory BUILD_DIR FLOW.lua     (make test-host builds and runs it)
 *
 * Run with GLIBC_TUNABLES=glibc.malloc.tcache_count=0 (see capped_alloc.h). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "capped_alloc.h"

/* Calls H[name] with failures off; the number of results it leaves, or exits on an error. */
static void call_field(lua_State *L, int h, const char *name, int results) {
  lua_getfield(L, h, name);
  if (lua_pcall(L, 0, results, 0) != LUA_OK) {
    printf("rpc_out_of_memory: %s raised: %s\n", name, lua_tostring(L, -1));
    exit(1);
  }
}

/* One sweep; returns the number of rounds whose check failed. */
static int sweep(lua_State *L, int h, long failures, long *failed_steps) {
  int bad_rounds = 0;
  lua_getfield(L, h, "steps");
  int steps = lua_gettop(L);
  int step_count = (int)luaL_len(L, steps);
  for (long k = 0;; k++) {
    call_field(L, h, "reset", 0);
    arm(k, failures);
    for (int i = 1; i <= step_count; i++) {
      int before = reached;
      lua_rawgeti(L, steps, i);
      if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        (*failed_steps)++;
        lua_pop(L, 1);
      }
      if (!before && reached) disarm(); /* memory comes back after the step that failed */
    }
    disarm();
    call_field(L, h, "drain", 0);
    call_field(L, h, "check", 1);
    if (!lua_isnil(L, -1)) {
      printf("rpc_out_of_memory: allocations failing from %ld (burst %ld): %s\n", k, failures, lua_tostring(L, -1));
      bad_rounds++;
    }
    lua_pop(L, 1);
    if (!reached) break;
  }
  lua_pop(L, 1);
  return bad_rounds;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: rpc_out_of_memory BUILD_DIR FLOW.lua\n");
    return 2;
  }
  lua_State *L = lua_newstate(capped_alloc, NULL);
  if (L == NULL) return 2;
  luaL_openlibs(L);
  if (luaL_loadfile(L, argv[2]) != LUA_OK) {
    fprintf(stderr, "rpc_out_of_memory: %s\n", lua_tostring(L, -1));
    return 2;
  }
  lua_pushstring(L, argv[1]);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "rpc_out_of_memory: %s\n", lua_tostring(L, -1));
    return 1;
  }
  int h = lua_gettop(L);
  int bad_rounds = 0, grew = 0;
  long failed_steps = 0;
  const long bursts[] = {2, 0};
  for (int b = 0; b < 2; b++) {
    bad_rounds += sweep(L, h, bursts[b], &failed_steps);
    long before = outside_lua(L);
    bad_rounds += sweep(L, h, bursts[b], &failed_steps);
    bad_rounds += sweep(L, h, bursts[b], &failed_steps);
    long after = outside_lua(L);
    printf("rpc_out_of_memory: burst %ld: C heap outside Lua %ld -> %ld bytes (%+ld)\n", bursts[b], before, after,
           after - before);
    if (after - before > 4096) grew = 1;
  }
  lua_close(L);
  printf("rpc_out_of_memory: %ld steps failed for memory; %d rounds broke a promise\n", failed_steps, bad_rounds);
  if (failed_steps == 0) {
    printf("rpc_out_of_memory: FAIL: no step ever failed, the test tested nothing\n");
    return 1;
  }
  if (bad_rounds || grew) {
    printf("rpc_out_of_memory: FAIL\n");
    return 1;
  }
  printf("rpc_out_of_memory: ok\n");
  return 0;
}
