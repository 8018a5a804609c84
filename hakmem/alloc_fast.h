/*
** alloc_fast.h -- the allocation and free fast paths, inline: alloc.c's API
** and override.c's malloc and free are built from these same lines, so
** they are the same instructions (tests/fastpath.py counts them).
**
** Allocation of a small size: one table index finds the page, one test
** checks its free list, one pop.  Free: a mask finds the segment, an index
** the page; if this thread owns it and the page is in a normal queue, a push
** on local_free and a decrement.  Everything else is out of line, in the
** slow path the caller names (alloc.c's, or the override's, which first
** recognises pointers hakmem did not hand out).
*/
#ifndef HAKMEM_ALLOC_FAST_H
#define HAKMEM_ALLOC_FAST_H

#include "internal.h"

/* 16-byte-aligned sizes use every other direct slot: 16, 32, 48, ... */
static inline size_t direct16(size_t size) { return ((size + 15) >> 4) << 1; }
static inline size_t direct8(size_t size) { return (size + 7) >> 3; }

/* `slow` is a constant at every call (alloc_slow, or the override's
** operator new, which throws when it fails): a direct tail jump. */
typedef void *alloc_slow_fn(hak_heap_t *heap, size_t size, size_t align);

/* Hands out the first block of page->free, which is not empty. */
static inline void *page_pop(hak_page_t *page, hak_block_t *block) {
  page->free = block_next(page, block);
  block_forget(block);
  page->used++;
  return block;
}

static inline void *heap_alloc_small(hak_heap_t *heap, size_t slot, size_t size, size_t align,
                                     alloc_slow_fn *slow) {
  hak_page_t *page = heap->pages_direct[slot];
  hak_block_t *block = page->free;
  if (likely(block != NULL)) return page_pop(page, block);
  return slow(heap, size, align);
}

static inline void *heap_alloc16_or(hak_heap_t *heap, size_t size, alloc_slow_fn *slow) {
  if (likely(size <= HAK_SMALL_MAX)) return heap_alloc_small(heap, direct16(size), size, 16, slow);
  return slow(heap, size, 16);
}

static inline void *heap_alloc16(hak_heap_t *heap, size_t size) {
  return heap_alloc16_or(heap, size, alloc_slow);
}

static inline void *heap_alloc8(hak_heap_t *heap, size_t size) {
  if (likely(size <= HAK_SMALL_MAX)) return heap_alloc_small(heap, direct8(size), size, 8, alloc_slow);
  return alloc_slow(heap, size, 8);
}

/*
** The free of a block that is not at a segment boundary (not NULL, not a
** segment-aligned huge block): a local push, or `slow` (a constant at every
** call, so the call is a direct tail jump).
*/
static inline void free_block_or(void *p, void (*slow)(hak_segment_t *, hak_page_t *, void *)) {
  hak_segment_t *seg = segment_of(p);
  hak_page_t *page = page_of(seg, p);
  if (likely(atomic_load_relaxed(&seg->tid) == thread_id() && page->flags == 0)) {
    hak_block_t *block = p;
    block_set_next(page, block, page->local_free);
    page->local_free = block;
    if (unlikely(--page->used == 0)) heap_page_retire(page);
    return;
  }
  slow(seg, page, p);
}

static inline void free_block(void *p) { free_block_or(p, free_slow); }

#endif
