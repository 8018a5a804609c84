/*
** hakl_region.h -- a state's region: where its blocks up to HAKL_REGION_MAX
** bytes come from.
**
** A Lua state is run by one thread at a time and tells the size of every
** block it frees, so its small blocks need none of the core's per-block
** work: a free pushes the block on the LIFO list of its exact 8-byte
** class, a new block pops that list or bumps through the current chunk,
** every size from one chunk in allocation order, so that what Lua makes
** together (a table, its parts, its strings) lies together (the mixed
** floor's placement, bench/lua: 1.2x faster than size classes on churn).
** Chunks are blocks of the core (hak_heap_malloc8 of the state's heap);
** they go back when the state's account reaches zero (the end of
** lua_close) or with the state's private heap.
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

#include "hakl.h"
#include "hakmem.h"

static inline size_t hakl_region_class(size_t n) {
  return (n + 7) >> 3;
}

/* A block of class c (1 .. HAKL_REGION_CLASSES - 1): its list's first, or
** the next c * 8 bytes of the chunk; NULL when hakl_region_refill must
** run. */
static inline void *hakl_region_take(hakl_region *r, size_t c) {
  void *p = r->free[c];
  if (p != NULL) {
    r->free[c] = *(void **)p;
    return p;
  }
  if ((size_t)(r->end - r->bump) < c * 8) return NULL;
  p = r->bump;
  r->bump += c * 8;
  return p;
}

/* A free block of class c back on its list. */
static inline void hakl_region_give(hakl_region *r, void *p, size_t c) {
  *(void **)p = r->free[c];
  r->free[c] = p;
}

/* A new chunk from `heap` (NULL: the running thread's), the rest of the
** old one given to its class; then a block of class c from it.  NULL when
** the core has no memory. */
void *hakl_region_refill(hakl_region *r, hak_heap_t *heap, size_t c);
/* Every chunk back to the core; the region empty again. */
void hakl_region_release(hakl_region *r);

#endif /* HAKL_REGION_H */
