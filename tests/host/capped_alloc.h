/* The failing Lua allocator the out-of-memory host tests share, and the heap figure they
 * check. Included once per test program, so everything here is static. */
#ifndef CAPPED_ALLOC_H
#define CAPPED_ALLOC_H

#include <lua.h>
#include <malloc.h>
#include <stdlib.h>

static long countdown = -1; /* growing allocations before failures start; -1: none */
static long burst;          /* failures once started; 0: until disarmed */
static long failing;        /* failures left; -1: until disarmed */
static int reached;         /* the armed failure point was reached */
/* What Lua's blocks take in the C heap, chunk headers included, to tell them from the rest. */
static size_t lua_bytes;

static size_t footprint(void *block) { return block ? malloc_usable_size(block) + sizeof(size_t) : 0; }

/* Frees and shrinks always succeed, as Lua requires; only growing allocations fail. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    lua_bytes -= footprint(ptr);
    free(ptr);
    return NULL;
  }
  if (nsize > old) {
    if (failing != 0) {
      if (failing > 0) failing--;
      return NULL;
    }
    if (countdown == 0) {
      reached = 1;
      countdown = -1;
      failing = burst == 0 ? -1 : burst - 1;
      return NULL;
    }
    if (countdown > 0) countdown--;
  }
  size_t old_footprint = footprint(ptr);
  void *block = realloc(ptr, nsize);
  if (block) lua_bytes = lua_bytes - old_footprint + footprint(block);
  return block;
}

/* Growing allocations fail from the k-th on: `failures` of them, or (0) until disarmed. */
static void arm(long k, long failures) {
  countdown = k;
  burst = failures;
  failing = 0;
  reached = 0;
}

static void disarm(void) {
  countdown = -1;
  failing = 0;
}

/* The C heap in use outside Lua's own blocks, after full collections. Run the tests with
 * GLIBC_TUNABLES=glibc.malloc.tcache_count=0: glibc's per-thread cache keeps freed blocks
 * that mallinfo2 still counts as in use. */
static long outside_lua(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  malloc_trim(0);
  return (long)mallinfo2().uordblks - (long)lua_bytes;
}

#endif
