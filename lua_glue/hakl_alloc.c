/*
** hakl_alloc.c -- hakl_alloc, the lua_Alloc of hakmem, and its account.
**
** Uses only Lua's official API and hakmem.h.
*/
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hakl.h"
#include "hakl_account.h"
#include "hakl_core.h"
#include "hakl_region.h"

#if defined(__GNUC__)
#define hakl_noinline __attribute__((noinline))
#else
#define hakl_noinline
#endif
/* Out of line and with its arguments as declared: GCC would drop an unused
** one (a clone), which costs the caller moves of the others. */
#if defined(__GNUC__) && !defined(__clang__)
#define hakl_jump_target __attribute__((noinline, noipa))
#else
#define hakl_jump_target hakl_noinline
#endif

void hakl_ctx_init(hakl_ctx *ctx, hak_heap_t *heap, size_t limit) {
  memset(ctx, 0, sizeof *ctx);
  ctx->heap = heap;
  ctx->region.top = heap != NULL ? HAKL_REGION_TOP : HAKL_REGION_MAX;
  if (HAKL_REGION_SECURE) hakl_region_secure_init(&ctx->region);
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

void hakl_account_new_other(hakl_account *a, size_t n) {
  hakl_account_new_tagged(a, 0, n);
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
** Blocks up to region.top bytes come from the state's region
** (hakl_region.h): a pop or a bump, every size in allocation order; larger
** ones from the core.  The fast paths serve the 8-byte classes (up to
** HAKL_REGION_MAX); the few larger region blocks go out of line.  A
** block's size says where it lives, and Lua always tells it, so the glue
** needs no lookup.
**
** new_block and resize_block stay out of line: hakl_alloc then needs no
** saved registers, and the free path (half of all calls) stays a few
** instructions.
*/

/*
** Every helper takes `reg`, a constant: true in hakl_alloc; false for the
** blocks of a state the module switched (hakl_alloc_foreign), which tells
** its blocks from the previous allocator's with hak_owns, true of block
** starts of the core only: such a state allocates from the core alone.
*/

/* The blocks above the region of a state of `reg` (hakl_alloc's): from
** the core, in core_bytes, and in the state's set when it keeps one
** (hakl_core.h). */
static hakl_noinline void *core_new(hakl_ctx *c, size_t n) {
  void *p = hak_heap_malloc8(c->heap, n);
  if (p != NULL) c->core_bytes += n;
  if (p != NULL && c->core_on) hakl_core_add(c, p);
  return p;
}

static hakl_noinline void core_free(hakl_ctx *c, void *ptr, size_t n) {
  c->core_bytes -= n;
  if (c->core_on) hakl_core_remove(c, ptr);
  hak_free_sized(ptr, n);
}

static hakl_noinline void *core_resize(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  void *p = hak_heap_realloc8(c->heap, ptr, osize, nsize);
  if (p != NULL) c->core_bytes += nsize - osize; /* size_t: a shrink wraps right */
  if (p != NULL && p != ptr && c->core_on) {
    hakl_core_remove(c, ptr);
    hakl_core_add(c, p);
  }
  return p;
}

/* n bytes (n > 0) from the region or the core; NULL without memory. */
static inline void *block_new(hakl_ctx *c, size_t n, bool reg) {
  void *p;
  size_t k;
  if (!reg) return hak_heap_malloc8(c->heap, n);
  if (n > c->region.top) return core_new(c, n);
  k = hakl_region_class_any(n);
  p = hakl_region_take(&c->region, k);
  /* The region's live bytes are at most the state's less its core blocks'
  ** (a larger value while hakl_close drops the state: no recycling then). */
  if (hakl_unlikely(p == NULL)) p = hakl_region_refill(&c->region, k, c->acct.in_use - c->core_bytes);
  return p;
}

/* The free of a block of exactly n bytes.  The account reaching zero is the
** end of lua_close (the state's own block goes last): the region's chunks
** go back then. */
/* Returns NULL, so that the free path's tail call goes here. */
static hakl_noinline void *free_last(hakl_ctx *c, void *ptr, size_t n) {
  if (n > c->region.top) core_free(c, ptr, n);
  hakl_region_release(&c->region);
  return NULL;
}

/* A block of the core; returns NULL, so that the free path stays a leaf
** with tail calls only. */
static hakl_noinline void *free_core(void *ptr, size_t n) {
  hak_free_sized(ptr, n);
  return NULL;
}

/* A block of the region above its 8-byte classes, or of the core. */
static hakl_noinline void *free_above(hakl_ctx *c, void *ptr, size_t n) {
  if (n > c->region.top) core_free(c, ptr, n);
  else hakl_region_give(&c->region, ptr, hakl_region_class_any(n));
  return NULL;
}

/* Returns NULL (Lua's result for a free). */
static inline void *free_block(hakl_ctx *c, void *ptr, size_t n, bool reg) {
  hakl_account_free(&c->acct, n);
  if (reg && hakl_unlikely(c->acct.in_use == 0)) return free_last(c, ptr, n);
  if (!reg) return free_core(ptr, n);
  if (n > HAKL_REGION_MAX) return free_above(c, ptr, n);
  hakl_region_give(&c->region, ptr, hakl_region_class(n));
  return NULL;
}

/* A core block that shrank to a region size when the region had no
** memory: the region keeps it as a stray (hakl_region.c), out of the core
** set, since Lua frees it as a region block.  The tail fits: core classes
** above the region are 128 bytes apart or more, so a core block of more
** than region.top bytes has room past any region class. */
static hakl_noinline void *keep_core_block(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  c->core_bytes -= osize;
  if (c->core_on) hakl_core_remove(c, ptr);
  hakl_region_stray(&c->region, ptr, hakl_region_class_any(nsize), hak_usable_size(ptr), osize);
  return ptr;
}

/* ptr (osize bytes) as a block of nsize bytes: the same one when both
** sizes share a region class, realloc in the core when both are above the
** region, else a new block, a copy and a free.  NULL when no memory; a
** shrink then keeps the block (it never fails, as Lua's manual requires),
** which Lua frees later with its smaller size: a region block goes to a
** smaller class, a core block into the region as a stray. */
static inline void *block_resize(hakl_ctx *c, void *ptr, size_t osize, size_t nsize,
                                 bool reg) {
  void *p;
  size_t top = c->region.top;
  if (!reg) return hak_heap_realloc8(c->heap, ptr, osize, nsize);
  if (osize > top && nsize > top) return core_resize(c, ptr, osize, nsize);
  if (osize <= top && nsize <= top) {
    hakl_region *r = &c->region;
    size_t ko = hakl_region_class_any(osize), kn = hakl_region_class_any(nsize);
    if (ko == kn) return ptr;
    /* The newest block of the chunk (a buffer Lua grows while it makes
    ** nothing else) grows in place. */
    if (kn > ko && (char *)ptr + hakl_region_size(ko) == r->bump &&
        (size_t)(r->end - (char *)ptr) >= hakl_region_size(kn)) {
      r->bump = (char *)ptr + hakl_region_size(kn);
      return ptr;
    }
  }
  if ((p = block_new(c, nsize, true)) == NULL) {
    if (nsize > osize) return NULL;
    return osize > top ? keep_core_block(c, ptr, osize, nsize) : ptr;
  }
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  if (osize <= top) hakl_region_give(&c->region, ptr, hakl_region_class_any(osize));
  else core_free(c, ptr, osize);
  return p;
}

static hakl_noinline void *new_block_slow(hakl_ctx *c, size_t tag, size_t nsize, bool reg) {
  void *p;
  if (!hakl_account_permits(&c->acct, nsize)) return refuse(c);
  if ((p = block_new(c, nsize, reg)) == NULL) return refuse(c);
  hakl_account_new(&c->acct, tag, nsize);
  hakl_account_repeak(&c->acct);
  return p;
}

/* `tag` is Lua's osize for a new block: a type tag, or 0. */
static hakl_noinline void *new_block(hakl_ctx *c, size_t tag, size_t nsize, bool reg) {
  void *p;
  if (hakl_unlikely(hakl_account_rises(&c->acct, nsize)))
    return new_block_slow(c, tag, nsize, reg);
  p = block_new(c, nsize, reg);
  if (hakl_unlikely(p == NULL)) return refuse(c);
  hakl_account_new(&c->acct, tag, nsize);
  return p;
}

static hakl_noinline void *grow_slow(hakl_ctx *c, void *ptr, size_t osize, size_t nsize,
                                     bool reg) {
  void *p;
  if (!hakl_account_permits(&c->acct, nsize - osize)) return refuse(c);
  if ((p = block_resize(c, ptr, osize, nsize, reg)) == NULL) return refuse(c);
  hakl_account_grow(&c->acct, nsize - osize);
  hakl_account_repeak(&c->acct);
  return p;
}

static inline void *resize_block(hakl_ctx *c, void *ptr, size_t osize, size_t nsize,
                                 bool reg) {
  void *p;
  if (nsize > osize) {
    if (hakl_unlikely(hakl_account_rises(&c->acct, nsize - osize)))
      return grow_slow(c, ptr, osize, nsize, reg);
    p = block_resize(c, ptr, osize, nsize, reg);
    if (hakl_unlikely(p == NULL)) return refuse(c);
    hakl_account_grow(&c->acct, nsize - osize);
  } else {
    p = block_resize(c, ptr, osize, nsize, reg);
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
/* The out-of-line cases, once for each `reg`. */
/* The region's common case inline: no call, so no saved registers; a new
** chunk, a block above the region, the limit and the peak go to new_block. */
/* new_block for new_region's rare cases, its arguments in hakl_alloc's
** registers: new_region's tail calls then move none. */
static hakl_jump_target void *new_slow(hakl_ctx *c, void *none, size_t tag, size_t nsize) {
  (void)none;
  return new_block(c, tag, nsize, true);
}

/* A new block of the 8-byte classes that moves the peak (a heap growing:
** half of churn's new blocks) in a state without a limit: the pop or bump,
** and the new peak, which is the new use (the mark was the peak, and the
** use passed it).  A limit, no memory or a new chunk go to new_block. */
static hakl_jump_target void *new_rising(hakl_ctx *c, void *none, size_t tag, size_t nsize) {
  hakl_account *a = &c->acct;
  void *p;
  (void)none;
  if (nsize > HAKL_REGION_MAX || a->limit != 0 ||
      (p = hakl_region_take8(&c->region, hakl_region_class(nsize))) == NULL)
    return new_slow(c, NULL, tag, nsize);
  hakl_account_new(a, tag, nsize);
  a->peak = a->mark = a->in_use;
  return p;
}

/* A new block of the 8-byte classes, inside hakl_alloc: it needs no saved
** register either, and its result is already where hakl_alloc returns it
** (a jump to it cost two instructions of every new block).  Everything
** else leaves by a tail call with hakl_alloc's arguments in place. */
static inline void *new_region(hakl_ctx *c, size_t tag, size_t nsize) {
  void *p;
  if (hakl_unlikely(hakl_account_rises(&c->acct, nsize))) return new_rising(c, NULL, tag, nsize);
  if (hakl_unlikely(nsize > HAKL_REGION_MAX)) return new_slow(c, NULL, tag, nsize);
  p = hakl_region_take8(&c->region, hakl_region_class(nsize));
  if (hakl_unlikely(p == NULL)) return new_slow(c, NULL, tag, nsize);
  hakl_account_new(&c->acct, tag, nsize);
  return p;
}
static hakl_noinline void *new_core(hakl_ctx *c, size_t tag, size_t nsize) {
  return new_block(c, tag, nsize, false);
}
/* Any resize of a state's block, out of line, so that resize_region's
** calls of it are tail calls and resize_region saves no registers. */
static hakl_noinline void *resize_any(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  return resize_block(c, ptr, osize, nsize, true);
}

/* The copy of a resize that moves more than 2 words, out of line (a call
** inside resize_region would make it save registers): words 1 .. n-1 from
** src, which is back on its list already (its first word is a link now),
** and w0, its first word before that.  Returns dst. */
static hakl_noinline void *move_words(void *dst, const void *src, size_t n, uint64_t w0) {
  memcpy((char *)dst + 8, (const char *)src + 8, (n - 1) * 8);
  memcpy(dst, &w0, 8);
  return dst;
}

/* The same for a growth within the 8-byte classes (an array part growing
** from 1 to 2 slots: a third of binary_trees' calls): a pop or a bump, the
** account, a push, and a copy; anything else goes to resize_any. */
static hakl_noinline void *resize_region(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  hakl_region *r = &c->region;
  size_t ko, kn;
  void *p;
  uint64_t w0;
  /* A growth (nsize > osize, so both fit when nsize does) below the mark;
  ** shrinks are rare in Lua. */
  if (hakl_unlikely(nsize <= osize || nsize > HAKL_REGION_MAX) ||
      hakl_unlikely(hakl_account_rises(&c->acct, nsize - osize)))
    return resize_any(c, ptr, osize, nsize);
  ko = hakl_region_class(osize);
  kn = hakl_region_class(nsize);
  if (ko == kn) {
    hakl_account_grow(&c->acct, nsize - osize);
    return ptr;
  }
  if (hakl_unlikely((p = hakl_region_take8(r, kn)) == NULL)) return resize_any(c, ptr, osize, nsize);
  hakl_account_grow(&c->acct, nsize - osize);
  /* Both blocks hold whole words: a few copy in a loop, faster than
  ** memcpy's dispatch or a string instruction; more in move_words. */
  memcpy(&w0, ptr, 8);
  hakl_region_give(r, ptr, ko); /* its first word becomes a link */
  if (ko > 2) return move_words(p, ptr, ko, w0);
  memcpy(p, &w0, 8);
  for (size_t i = 1; i < ko; i++) {
    uint64_t w; /* memcpy of one word: a load and a store, any type's bytes */
    memcpy(&w, (char *)ptr + 8 * i, 8);
    memcpy((char *)p + 8 * i, &w, 8);
  }
  return p;
}
static hakl_noinline void *resize_core(hakl_ctx *c, void *ptr, size_t osize, size_t nsize) {
  return resize_block(c, ptr, osize, nsize, false);
}

static inline void *alloc_cases(hakl_ctx *c, void *ptr, size_t osize, size_t nsize, bool reg) {
  if (nsize == 0) return ptr != NULL ? free_block(c, ptr, osize, reg) : NULL;
  if (ptr == NULL) return reg ? new_region(c, osize, nsize) : new_core(c, osize, nsize);
  return reg ? resize_region(c, ptr, osize, nsize) : resize_core(c, ptr, osize, nsize);
}

void *hakl_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  return alloc_cases((hakl_ctx *)ud, ptr, osize, nsize, true);
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
** During a fast close the heap is about to be destroyed whole: a free is
** only counted.  Once the sweep of lua_close frees the block that
** hakl_close marked, every finalizer has run and only frees are left:
** the jump back to hakl_close skips them (hakl_state.c says why that is
** safe).  A separate function (installed by hakl_close) keeps these tests
** off hakl_alloc's free path.
*/
void *hakl_alloc_dropping(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  void *p;
  if (nsize == 0) {
    if (ptr == NULL) return NULL;
    if (c->close_jmp != NULL && (uintptr_t)c->close_mark - (uintptr_t)ptr < osize)
      longjmp(*(jmp_buf *)c->close_jmp, 1);
    hakl_account_free(&c->acct, osize);
    c->close_lua -= osize;
    return NULL;
  }
  p = hakl_alloc(ud, ptr, osize, nsize);
  if (p != NULL) c->close_lua += nsize - (ptr != NULL ? osize : 0);
  return p;
}

/*
** During the close of a state on a shared heap: the region goes back whole
** after lua_close (hakl_close), so a free of one of its blocks is only
** counted.  Pushing it would write a link into every block the sweep
** frees: on the collector thread, a store into each line the worker that
** ran the state may still hold, which then comes back to that worker
** invalidated.  Blocks above region.top (free_block's split) are the
** core's and are freed.
*/
void *hakl_alloc_closing(void *ud, void *ptr, size_t osize, size_t nsize) {
  hakl_ctx *c = (hakl_ctx *)ud;
  if (nsize == 0 && ptr != NULL && osize <= c->region.top) {
    hakl_account_free(&c->acct, osize);
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
  p = block_new(c, nsize, false);
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
  else p = alloc_cases(c, ptr, osize, nsize, false);
  if (nsize == 0 && c->acct.in_use == 0 && c->free_when_empty) free(c);
  return p;
}
