/*
** hakl_module.c -- the `hakmem` Lua module: stats(), limit(), collect().
**
** Loaded into a state that already allocates through hakmem (hakl_newstate,
** hklua), it only reports.  Loaded into any other Lua 5.4 state (Debian's
** lua5.4: `require "hakmem"`), it switches that running state to hakmem;
** the blocks allocated before the switch stay with the previous allocator
** until Lua frees or resizes them (hakl_alloc_foreign).
**
** Uses only Lua's official API (lua.h, lauxlib.h) and hakmem.h.
*/
#include <dlfcn.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "hakl.h"
#include "hakl_account.h"

/* ------------------------------------------------------------------------
** Switching a running state.
** --------------------------------------------------------------------- */

/*
** A C module is unloaded (dlclose) by a finalizer that lua_close runs
** before it frees the state's objects: those frees would then call into
** unmapped code.  Loading ourselves once more with RTLD_NODELETE keeps
** this library mapped until the process ends.
*/
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&hakl_alloc_foreign, &info) && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static size_t lua_total_bytes(lua_State *L) {
  int kb = lua_gc(L, LUA_GCCOUNT, 0);
  int b = lua_gc(L, LUA_GCCOUNTB, 0);
  if (kb < 0 || b < 0) luaL_error(L, "hakmem: cannot switch allocators inside a finalizer");
  return (size_t)kb * 1024 + (size_t)b;
}

/*
** Lua's own count of the bytes it holds is exact (the sum of the sizes of
** its live blocks), and every one of them belongs to the previous
** allocator at this point: the account starts from it, all of it foreign.
** Nothing may allocate between the count and lua_setallocf.
**
** The context comes from the C library (it must outlive the blocks it
** accounts for) and frees itself on the last free of lua_close
** (hakl_ctx.free_when_empty).
*/
static hakl_ctx *switch_state(lua_State *L) {
  void *prev_ud;
  lua_Alloc prev_f = lua_getallocf(L, &prev_ud);
  size_t total = lua_total_bytes(L);
  hakl_ctx *c = (hakl_ctx *)malloc(sizeof *c);
  if (c == NULL) luaL_error(L, "hakmem: not enough memory to switch allocators");
  pin_library();
  hakl_ctx_init(c, NULL, 0);
  c->prev_f = prev_f;
  c->prev_ud = prev_ud;
  c->free_when_empty = true;
  hakl_account_start(&c->acct, total, 0);
  c->acct.foreign = total;
  lua_setallocf(L, hakl_alloc_foreign, c);
  hakl_setctx(L, c);
  return c;
}

/* ------------------------------------------------------------------------
** The functions.  Each has the context as its first upvalue.
** --------------------------------------------------------------------- */

static hakl_ctx *ctx_of(lua_State *L) {
  return (hakl_ctx *)lua_touserdata(L, lua_upvalueindex(1));
}

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* The tags Lua allocates objects with; the others (boolean, number, light
** userdata) never reach the allocator. */
static const int object_tags[] = {
  LUA_TSTRING, LUA_TTABLE, LUA_TFUNCTION, LUA_TUSERDATA, LUA_TTHREAD,
  HAKL_TUPVAL, HAKL_TPROTO, 0};

static void push_types(lua_State *L, const uint64_t *v) {
  size_t i;
  lua_createtable(L, 0, (int)(sizeof object_tags / sizeof object_tags[0]));
  for (i = 0; i < sizeof object_tags / sizeof object_tags[0]; i++)
    set_int(L, hakl_typename(object_tags[i]), v[object_tags[i]]);
}

/*
** hakmem.stats(): the account as it stood when called (building the
** result allocates, which the next call will show), plus the process-wide
** figures of hakmem.
*/
static int m_stats(lua_State *L) {
  hakl_account a = ctx_of(L)->acct;
  hak_stats_t h;
  hak_stats_get(&h);
  lua_createtable(L, 0, 14);
  set_int(L, "in_use", a.in_use);
  set_int(L, "peak", a.peak);
  set_int(L, "limit", a.limit);
  set_int(L, "foreign", a.foreign);
  set_int(L, "allocs", hakl_account_nalloc(&a));
  set_int(L, "frees", a.nfree);
  set_int(L, "grows", a.ngrow);
  set_int(L, "shrinks", a.nshrink);
  set_int(L, "failures", a.nfail);
  set_int(L, "grow_bytes", a.grow_bytes);
  push_types(L, a.type_bytes);
  lua_setfield(L, -2, "bytes_by_type");
  push_types(L, a.type_count);
  lua_setfield(L, -2, "count_by_type");
  lua_createtable(L, 0, 13);
  set_int(L, "mapped", h.mapped);
  set_int(L, "committed", h.committed);
  set_int(L, "committed_peak", h.committed_peak);
  set_int(L, "in_use", h.in_use);
  set_int(L, "segments", h.segments);
  set_int(L, "pages", h.pages);
  set_int(L, "huge_blocks", h.huge_blocks);
  set_int(L, "purged", h.purged);
  set_int(L, "mmap_calls", h.mmap_calls);
  set_int(L, "threads", h.threads);
  set_int(L, "abandoned", h.abandoned);
  set_int(L, "remote_pending", h.remote_pending);
  set_int(L, "free_in_pages", h.free_in_pages);
  set_int(L, "kept_for_reuse", h.kept_for_reuse);
  lua_setfield(L, -2, "heap");
  return 1;
}

/* hakmem.limit([bytes]): returns the limit before the call (0 = none);
** with an argument, sets it (0 or nil removes it). */
static int m_limit(lua_State *L) {
  hakl_ctx *c = ctx_of(L);
  size_t old = c->acct.limit;
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "limit must be >= 0");
    hakl_setlimit(c, (size_t)n);
  } else if (lua_gettop(L) >= 1) {
    hakl_setlimit(c, 0);
  }
  lua_pushinteger(L, (lua_Integer)old);
  return 1;
}

/* hakmem.collect(): hands the calling thread's empty memory back to the OS
** now; returns the bytes returned.  Run collectgarbage() first to free
** the state's dead objects. */
static int m_collect(lua_State *L) {
  hak_stats_t before, after;
  hak_stats_get(&before);
  hak_collect(true);
  hak_stats_get(&after);
  lua_pushinteger(L, (lua_Integer)(after.purged - before.purged));
  return 1;
}

int luaopen_hakmem(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"stats", m_stats}, {"limit", m_limit}, {"collect", m_collect}, {NULL, NULL}};
  hakl_ctx *c = hakl_getctx(L);
  if (c == NULL) c = switch_state(L);
  luaL_newlibtable(L, funcs);
  lua_pushlightuserdata(L, c);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}
