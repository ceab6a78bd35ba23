/* callfloor: the full-call yardstick of `make bench` (bench/rpc_bench.lua). It is not part of
 * remote_runner.
 *
 * The success path of a call with its bookkeeping written in C around remote_runner's own four
 * message functions (encode/decode of request and response, called through lua_call): ids, a
 * table of calls in flight with deadlines and timeout-slot and per-server counts, on_result kept
 * in a Lua table, a C closure as the transport callback, request_svr / reply_to / on_result
 * called protected (on_result with a traceback handler), and the served function run in a reused
 * coroutine after the allowlist and package.loaded lookups. No error paths, no timeouts firing,
 * one call in flight at a time. It shows what a call could cost if the Lua layer's bookkeeping
 * cost nothing more than this.
 *
 *   local run_mfa, RunMfa = require("callfloor")(core, transport, allowed, loaded, traceback)
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <time.h>

#define SLOTS 4096 /* calls in flight, by id modulo SLOTS (one at a time here) */
typedef struct {
  int64_t id;
  double deadline;
  int64_t slot;
  int64_t svr;
} Call;
static Call calls[SLOTS];
static int64_t next_id = 1, in_flight, sent, completed, bytes_out, bytes_in;
static int64_t per_server[64], slot_counts[1 << 16];

enum { U_ENCODE_REQUEST = 1, U_DECODE_REQUEST, U_ENCODE_RESPONSE, U_DECODE_RESPONSE, U_PENDING, U_TRANSPORT,
       U_ALLOWED, U_LOADED, U_TRACEBACK, U_WORKER, U_RESULTS, U_COUNT = U_RESULTS };
#define UP(i) lua_upvalueindex(i)
#define MAX_DEPTH 128
#define MAX_BYTES 4194304

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* callback(content): upvalues decode_response, pending, traceback, id */
static int on_response(lua_State *L) {
  int64_t id = lua_tointeger(L, UP(4));
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) bytes_in += (int64_t)lua_rawlen(L, 1);
  Call *c = &calls[id % SLOTS];
  if (c->id != id) return 0; /* late */
  slot_counts[c->slot & 0xffff]--;
  per_server[c->svr & 63]--;
  c->id = 0;
  in_flight--;
  lua_pushvalue(L, UP(3));   /* 2: message handler */
  lua_rawgeti(L, UP(2), id); /* 3: on_result */
  lua_pushnil(L);
  lua_rawseti(L, UP(2), id);
  int base = lua_gettop(L);
  lua_pushvalue(L, UP(1));
  lua_pushvalue(L, 1);
  lua_pushinteger(L, MAX_DEPTH);
  lua_pushinteger(L, MAX_BYTES);
  lua_pushinteger(L, id);
  lua_call(L, 4, LUA_MULTRET); /* ok, results... */
  int n = lua_gettop(L) - base;
  if (!lua_toboolean(L, base + 1)) return 0;
  completed++;
  lua_remove(L, base + 1);
  if (lua_pcall(L, n - 1, 0, 2) != LUA_OK) lua_pop(L, 1);
  return 0;
}

/* run_mfa(svr_id, module, func, args, on_result) -> id */
static int run_mfa(lua_State *L) {
  luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TSTRING);
  luaL_checktype(L, 3, LUA_TSTRING);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 5);
  int64_t id = next_id++;
  double timeout = 10;
  lua_pushvalue(L, UP(U_ENCODE_REQUEST));
  for (int i = 1; i <= 5; i++) lua_pushvalue(L, i);
  lua_pushnil(L);
  lua_pushinteger(L, id);
  lua_pushinteger(L, (lua_Integer)(timeout * 1000));
  lua_pushinteger(L, MAX_DEPTH);
  lua_pushinteger(L, MAX_BYTES);
  lua_call(L, 10, 1); /* 6: request */
  if (lua_type(L, 6) != LUA_TSTRING) return luaL_error(L, "callfloor: arguments cannot be sent");
  Call *c = &calls[id % SLOTS];
  c->id = id;
  c->deadline = now() + timeout;
  c->slot = (int64_t)(c->deadline / 0.01) + 1;
  c->svr = lua_tointeger(L, 1);
  slot_counts[c->slot & 0xffff]++;
  per_server[c->svr & 63]++;
  in_flight++;
  lua_pushvalue(L, 5);
  lua_rawseti(L, UP(U_PENDING), id);
  lua_getfield(L, UP(U_TRANSPORT), "request_svr");
  lua_pushvalue(L, 1);
  lua_pushliteral(L, "svr.RunLua");
  lua_pushliteral(L, "RunMfa");
  lua_pushvalue(L, 6);
  lua_pushvalue(L, UP(U_DECODE_RESPONSE));
  lua_pushvalue(L, UP(U_PENDING));
  lua_pushvalue(L, UP(U_TRACEBACK));
  lua_pushinteger(L, id);
  lua_pushcclosure(L, on_response, 4);
  if (lua_pcall(L, 5, 1, 0) != LUA_OK) return luaL_error(L, "callfloor: request_svr failed");
  sent++;
  bytes_out += (int64_t)lua_rawlen(L, 6);
  lua_pushinteger(L, id);
  return 1;
}

/* RunMfa(ctx, content) */
static int run_mfa_service(lua_State *L) {
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING) bytes_in += (int64_t)lua_rawlen(L, 2);
  lua_pushvalue(L, UP(U_DECODE_REQUEST));
  lua_pushvalue(L, 2);
  lua_pushinteger(L, MAX_DEPTH);
  lua_pushinteger(L, MAX_BYTES);
  lua_call(L, 3, LUA_MULTRET); /* 3 module, 4 func, 5 caller, 6 call id, 7 timeout, 8.. args */
  if (lua_isnil(L, 3)) return luaL_error(L, "callfloor: bad request");
  int nargs = lua_gettop(L) - 7;
  lua_pushvalue(L, 3);
  if (lua_rawget(L, UP(U_ALLOWED)) != LUA_TBOOLEAN) return luaL_error(L, "callfloor: not allowed");
  lua_pop(L, 1);
  lua_pushvalue(L, 3);
  lua_rawget(L, UP(U_LOADED));
  lua_pushvalue(L, 4);
  if (lua_rawget(L, -2) != LUA_TFUNCTION) return luaL_error(L, "callfloor: not found");
  int fn = lua_gettop(L);
  double deadline = now() + lua_tonumber(L, 7) / 1000;
  (void)deadline; /* what a nested call's budget would use */
  lua_rawgeti(L, UP(U_WORKER), 1);
  lua_State *co = lua_tothread(L, -1);
  if (co == NULL) {
    co = lua_newthread(L);
    lua_rawseti(L, UP(U_WORKER), 1);
  }
  lua_settop(L, fn);
  luaL_checkstack(L, nargs + 8, "callfloor: arguments");
  if (!lua_checkstack(co, nargs + 1)) return luaL_error(L, "callfloor: coroutine stack");
  lua_pushvalue(L, fn);
  lua_xmove(L, co, 1);
  for (int i = 0; i < nargs; i++) lua_pushvalue(L, 8 + i);
  lua_xmove(L, co, nargs);
  int nresults = 0;
  if (lua_resume(co, L, nargs, &nresults) != LUA_OK) return luaL_error(L, "callfloor: no error paths");
  int top = lua_gettop(L);
  luaL_checkstack(L, nresults + 8, "callfloor: results");
  lua_pushvalue(L, UP(U_ENCODE_RESPONSE));
  lua_pushvalue(L, UP(U_RESULTS));
  lua_pushvalue(L, 6);
  lua_pushinteger(L, MAX_DEPTH);
  lua_pushinteger(L, MAX_BYTES);
  lua_xmove(co, L, nresults);
  lua_call(L, 4 + nresults, 1);
  lua_settop(co, 0); /* a finished coroutine with an empty stack runs the next function */
  bytes_out += (int64_t)lua_rawlen(L, top + 1);
  lua_getfield(L, UP(U_TRANSPORT), "reply_to");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, top + 1);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  return 0;
}

/* (core, transport, allowed, loaded, traceback) -> run_mfa, RunMfa */
static int make(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 5);
  lua_CFunction functions[2] = { run_mfa, run_mfa_service };
  for (int i = 0; i < 2; i++) {
    lua_getfield(L, 1, "encode_request");
    lua_getfield(L, 1, "decode_request");
    lua_getfield(L, 1, "encode_response");
    lua_getfield(L, 1, "decode_response");
    lua_newtable(L); /* pending on_result callbacks */
    for (int arg = 2; arg <= 5; arg++) lua_pushvalue(L, arg);
    lua_newtable(L); /* the worker coroutine */
    lua_newtable(L); /* scratch table for encode_response */
    lua_pushcclosure(L, functions[i], U_COUNT);
  }
  return 2;
}

int luaopen_callfloor(lua_State *L) {
  lua_pushcfunction(L, make);
  return 1;
}
