/*
** hakl_alloc.c -- hakl_alloc, the lua_Alloc of hakmem, and its account.
**
** Uses only Lua's official API and hakmem.h.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hakl.h"
#include "hakl_account.h"

#if defined(__GNUC__)
#define hakl_noinline __attribute__((noinline))
#else
#define hakl_noinline
#endif

void hakl_ctx_init(hakl_ctx *ctx, hak_heap_t *heap, size_t limit) {
  memset(ctx, 0, sizeof *ctx);
  ctx->heap = heap;
  hakl_account_start(&ctx->acct, 0, limit);
}

size_t hakl_setlimit(hakl_ctx *ctx, size_t limit) {
  size_t old = ctx->acct.limit;
  ctx->acct.limit = limit;
  hakl_account_remark(&ctx->acct);
  return old;
}

const char *hakl_typename(int tag) {
  static const char *const names[HAKL_NTYPES] = {
    "other", "boolean", "lightuserdata", "number", "string", "table",
    "function", "userdata", "thread", "upvalue", "proto"};
  return (tag > 0 && tag < HAKL_NTYPES) ? names[tag] : names[0];
}

static void *refuse(hakl_ctx *c) {
  hakl_account_refuse(&c->acct);
  return NULL;
}

/* ------------------------------------------------------------------------
** The three cases.  The account's common case is one add and one compare
** (hakl_account.h); past the mark, the *_slow functions test the limit
** and move the peak.
** --------------------------------------------------------------------- */

/*
** new_block and resize_block stay out of line: hakl_alloc then needs no
** saved registers, and the free path (half of all calls) stays a few
** instructions and one call.
*/

static hakl_noinline void *new_block_slow(hakl_ctx *c, size_t tag, size_t nsize) {
  void *p;
  if (!hakl_account_permits(&c->acct, nsize)) return refuse(c);
  if ((p = hak_heap_malloc8(c->heap, nsize)) == NULL) return refuse(c);
  hakl_account_new(&c->acct, tag, nsize);
  hakl_account_repeak(&c->acct);
  return p;
}

/* `tag` is Lua's osize for a new block: a type tag, or 0. */
static hakl_noinline void *new_block(hakl_ctx *c, size_t tag, size_t nsize) {
  void *p;
  if (hakl_unlikely(hakl_account_rises(&c->acct, nsize)))
    return new_block_slow(c, tag, nsize);
  p = hak_heap_malloc8(c->heap, nsize);
  if (hakl_unlikely(p == NULL)) return refuse(c);
  hakl_account_new(&c->acct, tag, nsize);
  return p;
}

static inline void free_block(hakl_ctx *c, void *ptr, size_t osize) {
  hakl_account_free(&c->acct, osize);
  hak_free_sized(ptr, osize);
}

static hakl_noinline void *grow_slow(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  void *p;
  if (!hakl_account_permits(&c->acct, nsize - osize)) return refuse(c);
  if ((p = hak_heap_realloc8(c->heap, ptr, osize, nsize)) == NULL) return refuse(c);
  hakl_account_grow(&c->acct, nsize - osize);
  hakl_account_repeak(&c->acct);
  return p;
}

static hakl_noinline void *resize_block(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  void *p;
  if (nsize > osize) {
    if (hakl_unlikely(hakl_account_rises(&c->acct, nsize - osize)))
      return grow_slow(c, ptr, osize, nsize);
    p = hak_heap_realloc8(c->heap, ptr, osize, nsize);
    if (hakl_unlikely(p == NULL)) return refuse(c);
    hakl_account_grow(&c->acct, nsize - osize);
  } else {
    /* hak_heap_realloc8 keeps the block when it cannot shrink it: a shrink
    ** never fails, which Lua's own test allocator also promises. */
    p = hak_heap_realloc8(c->heap, ptr, osize, nsize);
    hakl_account_shrink(&c->acct, osize - nsize);
  }
  return p;
}

/*
** hakl_alloc: Lua's allocation function.  Lua 5.4 calls it as
**   frealloc(ud, ptr, osize, nsize)
** with these cases (lmem.c):
**
** - ptr == NULL, nsize == 0: nothing to do, return NULL.  Lua does this
**   to "free" an empty vector: up to a third of all calls, so it is the
**   first test and costs two comparisons.
** - ptr == NULL, nsize > 0: a new block of nsize bytes.  osize is then not
**   a size but the type of what is being created: LUA_TSTRING,
**   LUA_TTABLE, LUA_TFUNCTION, LUA_TUSERDATA, LUA_TTHREAD, or the internal
**   tags of upvalues (9) and prototypes (10); 0 for any other memory.
**   Return NULL on failure: Lua then runs an emergency collection, tries
**   once more, and raises "not enough memory" if that fails too.
** - ptr != NULL, nsize == 0: free ptr, whose size is exactly osize.
**   Return NULL.
** - ptr != NULL, nsize > 0: resize ptr (exactly osize bytes) to nsize,
**   keeping min(osize, nsize) bytes.  NULL when it cannot grow, and then
**   ptr is untouched; a shrink never fails.
**
** Because osize is exact, frees and reallocations are sized: hakmem needs
** no lookup to find the block's class.  Blocks need 8-byte alignment only
** (LUAI_MAXALIGN), so hak_heap_malloc8 gives 40- and 56-byte objects exact
** classes.
*/
void *hakl_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  if (nsize == 0) {
    if (ptr != NULL) free_block(c, ptr, osize);
    return NULL;
  }
  if (ptr == NULL) return new_block(c, osize, nsize);
  return resize_block(c, ptr, osize, nsize);
}

/*
** hakl_alloc_libc: the same cases and the same account over the C
** library.  A new block is malloc, as Lua's own l_alloc gets it from
** realloc(NULL, n); a shrink that realloc refuses keeps the old block.
*/
void *hakl_alloc_libc(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  hakl_account *a = &c->acct;
  void *p;
  if (nsize == 0) {
    if (ptr != NULL) {
      hakl_account_free(a, osize);
      free(ptr);
    }
    return NULL;
  }
  if (ptr == NULL || nsize > osize) {
    size_t more = ptr == NULL ? nsize : nsize - osize;
    bool slow = hakl_account_rises(a, more);
    if (slow && !hakl_account_permits(a, more)) return refuse(c);
    if ((p = ptr == NULL ? malloc(nsize) : realloc(ptr, nsize)) == NULL) return refuse(c);
    if (ptr == NULL) hakl_account_new(a, osize, nsize);
    else hakl_account_grow(a, more);
    if (slow) hakl_account_repeak(a);
    return p;
  }
  p = realloc(ptr, nsize);
  hakl_account_shrink(a, osize - nsize);
  return p != NULL ? p : ptr;
}

bool hakl_charge(hakl_ctx *c, size_t n, bool enforce_limit) {
  if (enforce_limit && !hakl_account_permits(&c->acct, n)) {
    hakl_account_refuse(&c->acct);
    return false;
  }
  c->acct.in_use += n;
  hakl_account_repeak(&c->acct);
  return true;
}

void hakl_uncharge(hakl_ctx *c, size_t n) {
  c->acct.in_use -= n;
}

/*
** During a fast close the heap is about to be destroyed whole: the sweep
** of lua_close only has to walk its objects, not free them.  A separate
** function (installed by hakl_close) keeps this test off hakl_alloc's
** free path.
*/
void *hakl_alloc_dropping(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  if (nsize == 0) {
    if (ptr != NULL) hakl_account_free(&c->acct, osize);
    return NULL;
  }
  return hakl_alloc(ud, ptr, osize, nsize);
}

/*
** A block of a state that began on another allocator (the module switched
** it): hakmem does not own it, so it goes back to that allocator.  Grown
** or shrunk, it moves into hakmem when it can, copying min(osize, nsize)
** bytes; a shrink that cannot get a hakmem block shrinks in place, so it
** still never fails.
*/
static void *foreign_block(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  void *p;
  if (nsize == 0) {
    c->prev_f(c->prev_ud, ptr, osize, 0);
    hakl_account_free(&c->acct, osize);
    c->acct.foreign -= osize;
    return NULL;
  }
  if (nsize > osize && !hakl_account_permits(&c->acct, nsize - osize)) return refuse(c);
  p = hak_heap_malloc8(c->heap, nsize);
  if (p != NULL) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    c->prev_f(c->prev_ud, ptr, osize, 0);
    c->acct.foreign -= osize;
  } else if (nsize <= osize) {
    p = c->prev_f(c->prev_ud, ptr, osize, nsize);
    if (p == NULL) return refuse(c); /* an allocator that fails a shrink */
    c->acct.foreign -= osize - nsize;
  } else {
    return refuse(c);
  }
  if (nsize > osize) {
    hakl_account_grow(&c->acct, nsize - osize);
    hakl_account_repeak(&c->acct);
  } else {
    hakl_account_shrink(&c->acct, osize - nsize);
  }
  return p;
}

/*
** Lua's count is exact and includes the state's own block, which lua_close
** frees last: when the account reaches zero the state is gone, and this
** was the last call with this context.
*/
void *hakl_alloc_foreign(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  void *p;
  if (ptr != NULL && !hak_owns(ptr)) p = foreign_block(c, ptr, osize, nsize);
  else p = hakl_alloc(ud, ptr, osize, nsize);
  if (nsize == 0 && c->acct.in_use == 0 && c->free_when_empty) free(c);
  return p;
}
