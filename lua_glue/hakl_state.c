/*
** hakl_state.c -- states that allocate through hakmem: creation with the
** standard handlers, the context registry entry, fast close, hand-over
** between threads.
**
** Uses only Lua's official API and hakmem.h.
*/
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "hakl.h"
#include "hakl_core.h"
#include "hakl_region.h"

/* ------------------------------------------------------------------------
** The standard handlers.  lauxlib's are static, so these behave the same:
** the panic prints the error; warnings start off and obey the control
** messages "@on" and "@off"; a message may come in pieces (tocont).
** --------------------------------------------------------------------- */

static int hakl_panic(lua_State *L) {
  const char *msg = (lua_type(L, -1) == LUA_TSTRING) ? lua_tostring(L, -1)
                                                      : "error object is not a string";
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
  fflush(stderr);
  return 0; /* Lua aborts */
}

static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);
static void warn_cont(void *ud, const char *msg, int tocont);

/* A whole message starting with '@' is a control message: handle it. */
static int warn_control(lua_State *L, const char *msg, int tocont) {
  if (tocont || msg[0] != '@') return 0;
  if (strcmp(msg, "@off") == 0)
    lua_setwarnf(L, warn_off, L);
  else if (strcmp(msg, "@on") == 0)
    lua_setwarnf(L, warn_on, L);
  return 1; /* other control messages are ignored */
}

static void warn_off(void *ud, const char *msg, int tocont) {
  warn_control((lua_State *)ud, msg, tocont);
}

static void warn_cont(void *ud, const char *msg, int tocont) {
  lua_State *L = (lua_State *)ud;
  fputs(msg, stderr);
  if (tocont) {
    lua_setwarnf(L, warn_cont, L);
  } else {
    fputs("\n", stderr);
    fflush(stderr);
    lua_setwarnf(L, warn_on, L);
  }
}

static void warn_on(void *ud, const char *msg, int tocont) {
  if (warn_control((lua_State *)ud, msg, tocont)) return;
  fputs("Lua warning: ", stderr);
  warn_cont(ud, msg, tocont);
}

/* ------------------------------------------------------------------------
** The context of a state.
** --------------------------------------------------------------------- */

static int set_ctx_field(lua_State *L) {
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, HAKL_CTX_KEY);
  return 0;
}

void hakl_setctx(lua_State *L, hakl_ctx *ctx) {
  /* Protected: under a tight limit the registry may fail to grow, and the
  ** entry is only needed by another copy of the glue. */
  lua_pushcfunction(L, set_ctx_field);
  lua_pushlightuserdata(L, ctx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

hakl_ctx *hakl_getctx(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  hakl_ctx *c = NULL;
  if (f == hakl_alloc || f == hakl_alloc_foreign || f == hakl_alloc_dropping ||
      f == hakl_alloc_closing || f == hakl_alloc_libc)
    return (hakl_ctx *)ud;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HAKL_CTX_KEY) == LUA_TLIGHTUSERDATA)
    c = (hakl_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  /* The entry counts only while the state still allocates with it. */
  return (c != NULL && ud == c) ? c : NULL;
}

/* ------------------------------------------------------------------------
** Creation and close.
** --------------------------------------------------------------------- */

/* A libc state's context comes from libc too: nothing of it in hakmem. */
static void ctx_free(hakl_ctx *c) {
  if (c->libc) free(c);
  else hak_free(c);
}

lua_State *hakl_openstate(lua_Alloc f, void *ud) {
  lua_State *L = lua_newstate(f, ud);
  if (L != NULL) {
    lua_atpanic(L, hakl_panic);
    lua_setwarnf(L, warn_off, L);
  }
  return L;
}

lua_State *hakl_newstate(const hakl_config *cfg) {
  static const hakl_config defaults = {0, false, false};
  hak_heap_t *heap = NULL;
  hakl_ctx *c;
  lua_State *L;
  if (cfg == NULL) cfg = &defaults;
  /* The context lives outside the state's heap: it must outlive it. */
  c = (hakl_ctx *)(cfg->libc ? malloc(sizeof *c) : hak_malloc(sizeof *c));
  if (c == NULL) return NULL;
  if (!cfg->libc && cfg->private_heap && (heap = hak_heap_new()) == NULL) {
    hak_free(c);
    return NULL;
  }
  hakl_ctx_init(c, heap, cfg->limit);
  c->own_heap = (heap != NULL);
  c->newstate = true;
  c->libc = cfg->libc;
  if (!c->libc && heap == NULL) hakl_core_start(c); /* so that its close can drop */
  L = hakl_openstate(c->libc ? hakl_alloc_libc : hakl_alloc, c);
  if (L == NULL) {
    if (heap != NULL) hak_heap_destroy(heap);
    hakl_core_stop(c);
    ctx_free(c);
    return NULL;
  }
  hakl_setctx(L, c);
  return L;
}

/*
** With a private heap, every block of the state is in that heap or in its
** region, and nothing outside the state points into either; on the shared
** heaps, every block is in its region or in its set of larger blocks
** (hakl_core.h), unless the set was lost.  lua_close
** still runs: it closes pending to-be-closed variables, switches a
** generational collector back to incremental, and calls the pending
** finalizers exactly as always; then it sweeps every object.  That sweep
** (a walk of the whole heap, a string table removal per string) is all
** that is left, and the heap (or the region and the set) is about to go
** whole: it is skipped.
**
** The mark: a userdata made last, so that no old object is freed before
** it, and held by the registry, so that no collection before the sweep
** frees it (during lua_close the collector is stopped once the finalizers
** start; before, only the to-be-closed variables' handlers run, and the
** registry is alive).  Its free is therefore the sweep's, after every
** finalizer: hakl_alloc_dropping jumps back here, out of lua_close, whose
** remaining work is frees only.  Frees before it (blocks the finalizers
** or the sweep of newer objects let go) are counted, not done.  Without
** memory for the mark, lua_close runs to its end with every free counted.
*/
#define HAKL_MARK_KEY "hakmem.close"

static int make_mark(lua_State *L) {
  void *mark = lua_newuserdatauv(L, 1, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, HAKL_MARK_KEY);
  lua_pushlightuserdata(L, mark);
  return 1;
}

/* lua_close(L) with every free counted, not done, and its final sweep
** skipped; the account then shows every block gone. */
static void close_dropping(lua_State *L, hakl_ctx *c) {
  jmp_buf back;
  lua_pushcfunction(L, make_mark);
  if (lua_pcall(L, 0, 1, 0) == LUA_OK) {
    c->close_mark = lua_touserdata(L, -1);
    c->close_lua = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    c->close_jmp = &back;
  }
  lua_pop(L, 1);
  lua_setallocf(L, hakl_alloc_dropping, c);
  if (setjmp(back) == 0) {
    lua_close(L);
  } else { /* the sweep began: Lua's blocks left go with the heap */
    c->acct.in_use -= c->close_lua;
    c->acct.nfree = hakl_account_nalloc(&c->acct);
  }
  c->close_jmp = NULL;
}

void hakl_close(lua_State *L, hakl_account *final) {
  void *ud;
  hakl_ctx *c;
  lua_Alloc f = lua_getallocf(L, &ud);
  c = (f == hakl_alloc || f == hakl_alloc_libc) ? (hakl_ctx *)ud : NULL;
  if (c == NULL || !c->newstate) { /* not made by hakl_newstate */
    lua_close(L);
    if (final != NULL) {
      if (c != NULL) *final = c->acct;
      else memset(final, 0, sizeof *final);
    }
    return;
  }
  /* A private heap, or a complete set of the blocks above the region
  ** (hakl_core.h): everything the sweep would free is known, so it is
  ** dropped; else lua_close frees the core's blocks one by one. */
  bool drop = c->own_heap || (f == hakl_alloc && hakl_core_complete(c));
  if (drop) {
    close_dropping(L, c);
  } else {
    if (f == hakl_alloc) lua_setallocf(L, hakl_alloc_closing, c);
    lua_close(L);
  }
  /* The region's chunks went back when the account reached zero, unless
  ** the host left bytes charged or the close dropped the blocks. */
  hakl_region_release(&c->region);
  if (drop && !c->own_heap) hakl_core_free_all(c);
  else hakl_core_stop(c);
  if (c->own_heap) hak_heap_destroy(c->heap);
  if (final != NULL) *final = c->acct;
  ctx_free(c);
}

void hakl_release(lua_State *L) {
  hakl_ctx *c = hakl_getctx(L);
  if (c != NULL && c->heap != NULL) hak_heap_release(c->heap);
}

void hakl_claim(lua_State *L) {
  hakl_ctx *c = hakl_getctx(L);
  if (c != NULL && c->heap != NULL) hak_heap_claim(c->heap);
}
