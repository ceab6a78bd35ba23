/* minbin: the least work a C serializer for Lua values can do, as a yardstick for `make bench`.
 *
 * A length-prefixed binary format with no escaping, no validation of its input, no limits, no
 * cycle or sharing support and no error handling: the Lua C API walk and value creation, and
 * nothing else. It is not part of remote_runner and must never read untrusted bytes; it only
 * shows how close to the floor of the Lua API the codec runs.
 *
 *   tag 'n' nil | 't' 'f' booleans | 'i' int64 | 'd' double | 's' u32 length + bytes |
 *   '{' u32 array count, u32 hash count, then the array's values (ARRAY_SHORTCUT) or its
 *   (key, value) pairs, then the hash's (key, value) pairs
 *
 * Built with -DARRAY_SHORTCUT it is `arraybin`: items 1..#t are read with lua_rawgeti and
 * written without keys (loaded with lua_rawseti), and lua_next goes on from the key #t. That is
 * cheaper than lua_next over every entry, and it is not exact: when the border #t lies in the
 * hash part, lua_next from it skips the hash entries before it (`make bench` counts the tables
 * it gets wrong). remote_runner cannot take this shortcut; arraybin shows what it is worth.
 */
#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *buf;
static size_t cap, len;

static void need(size_t n) {
  if (len + n <= cap) return;
  while (len + n > cap) cap = cap ? cap * 2 : 4096;
  buf = realloc(buf, cap);
}

static void put(const void *p, size_t n) { need(n); memcpy(buf + len, p, n); len += n; }
static void tag(char t) { need(1); buf[len++] = t; }

static void write_value(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: tag(lua_toboolean(L, idx) ? 't' : 'f'); break;
  case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) { int64_t i = lua_tointeger(L, idx); tag('i'); put(&i, 8); break; }
#endif
    { double d = lua_tonumber(L, idx); tag('d'); put(&d, 8); }
    break;
  case LUA_TSTRING: {
    size_t n; const char *s = lua_tolstring(L, idx, &n); uint32_t n32 = (uint32_t)n;
    tag('s'); put(&n32, 4); put(s, n);
    break;
  }
  case LUA_TTABLE: {
    size_t header; uint32_t counts[2] = {0, 0};
    lua_checkstack(L, 3);
    tag('{'); header = len; put(counts, 8);
#ifdef ARRAY_SHORTCUT
    {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        write_value(L, lua_gettop(L));
        lua_pop(L, 1);
      }
      counts[0] = (uint32_t)n;
      if (n) lua_pushinteger(L, n); else lua_pushnil(L);
    }
#else
    lua_pushnil(L);
#endif
    while (lua_next(L, idx)) {
      int top = lua_gettop(L);
#ifdef ARRAY_SHORTCUT
      counts[1]++;
#else
      counts[lua_type(L, top - 1) == LUA_TNUMBER ? 0 : 1]++;
#endif
      write_value(L, top - 1);
      write_value(L, top);
      lua_pop(L, 1);
    }
    memcpy(buf + header, counts, 8);
    break;
  }
  default: tag('n'); break;
  }
}

static const char *read_value(lua_State *L, const char *p) {
  switch (*p++) {
  case 't': lua_pushboolean(L, 1); return p;
  case 'f': lua_pushboolean(L, 0); return p;
  case 'i': { int64_t i; memcpy(&i, p, 8); lua_pushinteger(L, (lua_Integer)i); return p + 8; }
  case 'd': { double d; memcpy(&d, p, 8); lua_pushnumber(L, d); return p + 8; }
  case 's': { uint32_t n; memcpy(&n, p, 4); lua_pushlstring(L, p + 4, n); return p + 4 + n; }
  case '{': {
    uint32_t counts[2], i;
    memcpy(counts, p, 8); p += 8;
    lua_checkstack(L, 3);
    lua_createtable(L, (int)counts[0], (int)counts[1]);
#ifdef ARRAY_SHORTCUT
    for (i = 1; i <= counts[0]; i++) {
      p = read_value(L, p);
      lua_rawseti(L, -2, (lua_Integer)i);
    }
    for (i = 0; i < counts[1]; i++) {
#else
    for (i = 0; i < counts[0] + counts[1]; i++) {
#endif
      p = read_value(L, p);
      p = read_value(L, p);
      lua_rawset(L, -3);
    }
    return p;
  }
  default: lua_pushnil(L); return p;
  }
}

static int minbin_dump(lua_State *L) {
  len = 0;
  write_value(L, 1);
  lua_pushlstring(L, buf, len);
  return 1;
}

static int minbin_load(lua_State *L) {
  read_value(L, lua_tostring(L, 1));
  return 1;
}

#ifdef ARRAY_SHORTCUT
int luaopen_arraybin(lua_State *L) {
#else
int luaopen_minbin(lua_State *L) {
#endif
  lua_newtable(L);
  lua_pushcfunction(L, minbin_dump);
  lua_setfield(L, -2, "dump");
  lua_pushcfunction(L, minbin_load);
  lua_setfield(L, -2, "load");
  return 1;
}
