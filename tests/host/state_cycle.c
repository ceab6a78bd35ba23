/* A C host the way a game server embeds Lua: Lua 5.4 linked statically and its symbols
 * exported (-Wl,-E), the module loaded with require. It creates, uses and closes Lua states
 * over and over and fails when the C heap grows with them: whatever the module allocates
 * for a state must go with lua_close.
 *
 *   state_cycle BUILD_DIR [STATES]     (make test-host builds and runs it)
 *
 * Each state requires both module names, round-trips a value, makes a call to itself, and is
 * closed with a call still in flight. The heap in use (glibc mallinfo2) is read after a
 * warm-up and again at the end. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static const char *USE_MODULE =
    "local build_dir = ...\n"
    "package.cpath = build_dir .. '/?.so;' .. package.cpath\n"
    "local rr = require('remote_runner')\n"
    "local svc = require('svc_run_lua')\n"
    "local ok, v = rr.load(rr.dump({ 1, nil, 'x', n = 3 }))\n"
    "assert(ok and v.n == 3 and v[3] == 'x', 'round trip')\n"
    "package.loaded.cycle_target = { add = function(a, b) return a + b end }\n"
    "svc.allow('cycle_target')\n"
    "rr.configure({ self_id = 1 })\n"
    "local got\n"
    "rr.run_mfa(1, 'cycle_target', 'add', { 2, 3 }, function(sum) got = sum end)\n"
    "rr.poll()\n"
    "assert(got == 5, 'the call to this server answered')\n"
    "rr.set_transport({ request_svr = function() end, reply_to = function() end })\n"
    "rr.run_mfa(2, 'cycle_target', 'add', { 1, 1 }, function() end)\n"
    "assert(rr.stats().in_flight == 1, 'a call left in flight at lua_close')\n";

static void cycle_one_state(const char *build_dir) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "state_cycle: out of memory\n");
    exit(2);
  }
  luaL_openlibs(L);
  if (luaL_loadstring(L, USE_MODULE) != LUA_OK) {
    fprintf(stderr, "state_cycle: %s\n", lua_tostring(L, -1));
    exit(2);
  }
  lua_pushstring(L, build_dir);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "state_cycle: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_close(L);
}

static size_t heap_in_use(void) {
  malloc_trim(0);
  return mallinfo2().uordblks;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: state_cycle BUILD_DIR [STATES]\n");
    return 2;
  }
  const char *build_dir = argv[1];
  int states = argc > 2 ? atoi(argv[2]) : 2000;
  /* Warm-up: the first states load the library and fill its per-thread buffers, which stay. */
  for (int i = 0; i < 200; i++) cycle_one_state(build_dir);
  size_t before = heap_in_use();
  for (int i = 0; i < states; i++) cycle_one_state(build_dir);
  size_t after = heap_in_use();
  long grown = (long)after - (long)before;
  printf("state_cycle: %d Lua states created, used and closed; heap in use %zu -> %zu bytes (%+ld)\n", states,
         before, after, grown);
  /* A byte or two per state is allocator noise; the leak this guards against was ~850. */
  if (grown > 16L * states) {
    printf("state_cycle: FAIL: %.0f bytes per state stay allocated after lua_close\n", (double)grown / states);
    return 1;
  }
  printf("state_cycle: ok\n");
  return 0;
}
