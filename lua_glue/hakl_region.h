/*
** hakl_region.h -- a state's region: where its blocks up to HAKL_REGION_TOP
** bytes come from.
**
** A Lua state is run by one thread at a time and tells the size of every
** block it frees, so its small blocks need none of the core's per-block
** work: a free pushes the block on the LIFO list of its class (exact
** 8-byte classes up to HAKL_REGION_MAX, the hot sizes; in a state with a
** private heap, 128-byte ones up to HAKL_REGION_TOP too: the few larger
** blocks a small state has, its global state, string table and first hash
** parts, which in a heap of its own would each take an OS page of a class
** page, and the heap a segment), a new block pops that list or bumps
** through the current chunk,
** every size from one chunk in allocation order, so that what Lua makes
** together (a table, its parts, its strings) lies together (the mixed
** floor's placement, bench/lua: 1.2x faster than size classes on churn).
** Chunks are blocks of the core (hak_aligned_alloc(4096) from the running
** thread's default heap, also for a state with a private heap: a small state then
** pays no segment of its own); they go back when the state's account
** reaches zero (the end of lua_close) or in hakl_close.  Before a new
** chunk, a small region recycles: runs of adjacent free blocks become
** spans that every size bumps through like a chunk (hakl_region.c).
**
** Thread safety is the state's: the region is touched only by the state's
** own allocation calls, so a state moving between threads takes its region
** with it (the hand-over that synchronises the state synchronises this);
** chunks freed on another thread than the one that made them are remote
** frees of the core.
*/
#ifndef HAKL_REGION_H
#define HAKL_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "hakl.h"
#include "hakmem.h"

/* Secure builds of the core (-DHAK_SECURE=1) encode the region's links. */
#if defined(HAK_SECURE) && HAK_SECURE
#define HAKL_REGION_SECURE 1
#else
#define HAKL_REGION_SECURE 0
#endif

/* The class of n bytes, n <= HAKL_REGION_MAX (the fast path's). */
static inline size_t hakl_region_class(size_t n) {
  return (n + 7) >> 3;
}

/* The class of n bytes, any n <= HAKL_REGION_TOP. */
static inline size_t hakl_region_class_any(size_t n) {
  if (n <= HAKL_REGION_MAX) return hakl_region_class(n);
  return HAKL_REGION_MAX / 8 + ((n - HAKL_REGION_MAX + 127) >> 7);
}

/* The bytes of a block of class c. */
static inline size_t hakl_region_size(size_t c) {
  if (c <= HAKL_REGION_MAX / 8) return c * 8;
  return HAKL_REGION_MAX + (c - HAKL_REGION_MAX / 8) * 128;
}

/*
** The links of the free lists, in secure builds.  A program that writes
** past a block's end, or into a block after its free, overwrites the link
** at the start of a free block; a plain list hands out whatever address
** was written.  Here a link is stored as
**   rotl(next ^ key0, 29) + key1
** with the state's random keys (hakl_region_secure_init): a written
** value decodes to an address that is almost never inside the state's
** chunks, and the pop that reads it stops the program.  A block whose
** first word decodes to NULL or into the chunks may be free already: its
** class list is walked, and a double free stops the program.  As in the
** core's secure pages, the check is a property of the encoding, not of
** Lua: every size keeps the region's placement.
*/
void hakl_region_secure_init(hakl_region *r);
void hakl_region_bad_link(const hakl_region *r, const void *p, uintptr_t next);
void hakl_region_confirm_free(const hakl_region *r, const void *p, size_t c);

/* A fixed rotation (one instruction) moves a pointer's zero high bits
** under the keys' random low ones: a stored link never looks like a plain
** address. */
#define HAKL_REGION_ROT 29

static inline uintptr_t hakl_region_decode(const hakl_region *r, uintptr_t stored) {
  uintptr_t x = stored - r->key[1];
  return ((x >> HAKL_REGION_ROT) | (x << (64 - HAKL_REGION_ROT))) ^ r->key[0];
}

static inline uintptr_t hakl_region_encode(const hakl_region *r, uintptr_t next) {
  uintptr_t x = next ^ r->key[0];
  return ((x << HAKL_REGION_ROT) | (x >> (64 - HAKL_REGION_ROT))) + r->key[1];
}

/* Could `next` be a link of this region: NULL, or 8-aligned in a chunk. */
static inline int hakl_region_plausible(const hakl_region *r, uintptr_t next) {
  return next == 0 || ((next & 7) == 0 && next - r->lo < r->hi - r->lo);
}

/* The link in free block p, checked in secure builds. */
static inline void *hakl_region_next(const hakl_region *r, void *p) {
#if HAKL_REGION_SECURE
  uintptr_t next = hakl_region_decode(r, *(uintptr_t *)p);
  if (!hakl_region_plausible(r, next)) hakl_region_bad_link(r, p, next);
  *(uintptr_t *)p = 0; /* handed out: no stale link to mistake for a free block */
  return (void *)next;
#else
  (void)r;
  return *(void **)p;
#endif
}

/* A block of class c (1 .. HAKL_REGION_CLASSES - 1): its list's first, or
** the next hakl_region_size(c) bytes of the chunk; NULL when
** hakl_region_refill must run. */
static inline void *hakl_region_take(hakl_region *r, size_t c) {
  void *p = r->free[c];
  size_t bytes = hakl_region_size(c);
  if (p != NULL) {
    r->free[c] = hakl_region_next(r, p);
    return p;
  }
  if ((size_t)(r->end - r->bump) < bytes) return NULL;
  p = r->bump;
  r->bump += bytes;
  return p;
}

/* The same for an 8-byte class c (<= HAKL_REGION_MAX / 8): the fast
** paths' pop or bump. */
static inline void *hakl_region_take8(hakl_region *r, size_t c) {
  void *p = r->free[c];
  if (p != NULL) {
    r->free[c] = hakl_region_next(r, p);
    return p;
  }
  if ((size_t)(r->end - r->bump) < c * 8) return NULL;
  p = r->bump;
  r->bump += c * 8;
  return p;
}

/* A free block of class c back on its list (in secure builds, unless it
** is there already). */
static inline void hakl_region_give(hakl_region *r, void *p, size_t c) {
#if HAKL_REGION_SECURE
  if (hakl_region_plausible(r, hakl_region_decode(r, *(uintptr_t *)p)))
    hakl_region_confirm_free(r, p, c);
  *(uintptr_t *)p = hakl_region_encode(r, (uintptr_t)r->free[c]);
#else
  *(void **)p = r->free[c];
#endif
  r->free[c] = p;
}

/* A block of class c when the bump space is used up: the rest of it to
** the lists, then the next span, else a new chunk from the running
** thread's default heap (recycling free blocks into spans first, when
** the state's `live` bytes, which bound the region's, leave room for it:
** hakl_region.c).  NULL when the core has no memory. */
void *hakl_region_refill(hakl_region *r, size_t c, size_t live);

/* Core block p (`bytes` of it usable, `osize` asked for) kept as a block of
** class c: a shrink that found no region memory, which must not fail
** (hakl_region.c, "strays").  bytes >= hakl_region_size(c) + HAKL_STRAY_TAIL. */
#define HAKL_STRAY_TAIL 24
void hakl_region_stray(hakl_region *r, void *p, size_t c, size_t bytes, size_t osize);
/* Every chunk back to the core; the region empty again. */
void hakl_region_release(hakl_region *r);

#endif /* HAKL_REGION_H */
