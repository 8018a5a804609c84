/*
** alloc.c -- the allocation API, and the slow paths its fast paths
** (alloc_fast.h, shared with the override's malloc and free) fall into.
*/
#include <errno.h>
#include <string.h>

#include "alloc_fast.h"

/* ---- slow paths ---------------------------------------------------------- */

/*
** A block of class `cls` when the heap's direct page has none: the first
** page's own frees (the quick refill, which keeps the fast path fed), else
** a block the thread kept from another heap (keep.c), else the long way
** through the class's pages, which collects other threads' frees, carves
** and grows.  The long way's tick (every 64th call) is never skipped.
*/
static inline void *alloc_in_class(hak_heap_t *heap, unsigned cls) {
  hak_page_t *page = NULL;
  if (!heap_tick(heap)) {
    if ((page = heap_page_quick(heap, cls)) != NULL) return page_pop(page, page->free);
    keep_class_t *kept = keep_class(heap, cls);
    if (kept != NULL && kept->n != 0) return keep_take(heap, kept, cls);
  }
  if ((page = heap_find_page(heap, cls)) == NULL) return NULL;
  return page_pop(page, page->free);
}

/*
** Everything the fast paths do not do: the thread's first allocation,
** refilling a page, medium sizes whose page has no block, large and huge
** sizes, alignment.
*/
static noinline void *alloc_general(hak_heap_t *heap, size_t size, size_t align) {
  void *p = NULL;
  if (unlikely(heap == &heap_empty)) {
    heap = thread_heap_init();
    if (!heap) goto fail;
  }
  if (size > PTRDIFF_MAX) goto fail;
  if (size > HAK_LARGE_MAX || align > HAK_SLICE_SIZE) {
    p = huge_alloc(heap, size, align);
  } else {
    unsigned cls;
    if (align <= 16 && size <= HAK_SMALL_MAX) cls = class_of_slot[align == 8 ? direct8(size) : direct16(size)];
    else if (align <= 16) cls = size <= HAK_MEDIUM_MAX ? class_of(size) : HAK_CLASSES;
    else cls = class_aligned(size, align);
    if (cls == HAK_CLASSES) {
      p = heap_large_alloc(heap, size); /* spans start at 64 KiB boundaries */
    } else {
      p = alloc_in_class(heap, cls);
    }
  }
  if (p) return p;
fail:
  errno = ENOMEM;
  return NULL;
}

/*
** Where the small fast path sends every other request.  A medium size
** whose class's first page has a free block is popped here, with one push:
** the fast path of the sizes above the direct table, a range test and two
** loads more than a small size's.  Without one, the class is known:
** straight to heap_find_page.  heap_empty's queues are empty: its first
** allocation goes the general way, which makes the heap.
*/
noinline void *alloc_slow(hak_heap_t *heap, size_t size, size_t align) {
  if (likely(size - (HAK_SMALL_MAX + 1) < HAK_MEDIUM_MAX - HAK_SMALL_MAX && align <= 16)) {
    unsigned cls = class_of_medium[((size - 1) >> 7) - HAK_SMALL_MAX / 128];
    hak_page_t *page = heap->queues[cls].first;
    if (likely(page != NULL)) {
      if (likely(page->free != NULL)) return page_pop(page, page->free);
      void *p = alloc_in_class(heap, cls);
      if (p == NULL) errno = ENOMEM;
      return p;
    }
  }
  return alloc_general(heap, size, align);
}

/*
** A free that is not a local free into a normal page: a huge block, a page
** in the full queue, or a block of another thread's page.
*/
noinline void free_slow(hak_segment_t *seg, hak_page_t *page, void *p) {
  if (seg->kind == SEGMENT_HUGE) { /* not page->flags: that is the owner's */
    huge_free(seg);
    return;
  }
  if (atomic_load_relaxed(&seg->tid) == thread_id()) free_block_local(page, p);
  else if (!keep_free(seg, page, p)) page_push_remote(page, (hak_block_t *)p);
}

/* The owner's free of a block of any of its pages (full, large). */
void free_block_local(hak_page_t *page, void *p) {
  hak_block_t *block = p;
  page->used--;
  if (page->class_idx == HAK_CLASS_LARGE) { /* its one block: the span goes back */
    heap_page_retire(page);
    return;
  }
  block_set_next(page, block, page->local_free);
  page->local_free = block;
  heap_page_unfull(page);
  if (page->used == 0) heap_page_retire(page);
}

#if HAK_DEBUG
/* The debug build stops at a free that would corrupt the heap. */
static void free_check(const void *p) {
  hak_page_t *page = secure_check_pointer(p);
  /* the lists and counters belong to the owner: only it can check them */
  if (page == NULL || atomic_load_relaxed(&segment_of(p)->tid) != thread_id()) return;
  if (secure_block_index(page, p) >= page->capacity) hak_fatal("free(%p): not a block handed out", p);
  if (page->used == 0 || page_contains_free(page, (hak_block_t *)p)) hak_fatal("free(%p): double free", p);
}
#endif

/* ---- the C API ------------------------------------------------------------ */

void *hak_malloc(size_t size) { return heap_alloc16(thread_heap, size); }
void *hak_heap_malloc(hak_heap_t *heap, size_t size) { return heap_alloc16(heap, size); }

/*
** NULL, or a huge block aligned to 4 MiB or more: the one kind of block
** whose header is not at `p & ~MASK`.  Testing for both at once costs the
** fast path nothing over a test for NULL alone.
*/
static noinline void free_boundary(void *p) {
  if (p) huge_free(segment_of_block(p));
}

void hak_free(void *p) {
#if HAK_DEBUG
  if (p) free_check(p);
#elif HAK_SECURE
  if (p) secure_free_check(p);
#endif
  if (unlikely(segment_is_boundary(p))) {
    free_boundary(p);
    return;
  }
  free_block(p);
}

/*
** With the size known, a free needs no more than a free: the page lookup is
** already a mask and an index.  The debug build checks the size is right.
*/
void hak_free_sized(void *p, size_t size) {
#if HAK_DEBUG
  if (p) {
    free_check(p);
    if (size > hak_usable_size(p)) hak_fatal("free_sized(%p, %zu): size larger than the block", p, size);
  }
#elif HAK_SECURE
  if (p) secure_free_check(p);
  (void)size;
#else
  (void)size;
#endif
  if (unlikely(segment_is_boundary(p))) {
    free_boundary(p);
    return;
  }
  free_block(p);
}

static void *heap_calloc(hak_heap_t *heap, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = heap_alloc16(heap, total);
  /* huge blocks are fresh mappings, zero already */
  if (p && total <= HAK_LARGE_MAX) memset(p, 0, total);
  return p;
}

void *hak_calloc(size_t count, size_t size) { return heap_calloc(thread_heap, count, size); }
void *hak_heap_calloc(hak_heap_t *heap, size_t count, size_t size) { return heap_calloc(heap, count, size); }

size_t hak_usable_size(const void *p) {
  if (!p) return 0;
  hak_segment_t *seg = segment_of_block(p);
  if (seg->kind == SEGMENT_HUGE) return seg->size - seg->huge_offset - SECURE_GUARD;
  return page_of(seg, p)->block_size;
}

/*
** realloc keeps the block when the new size fits and would not waste more
** than half of it, or when a shrink finds no memory for a smaller block
** (it would be the one realloc that fails with a fitting block); huge blocks are resized by mremap (no copy) when the
** kernel can; everything else moves.
*/
static void *heap_realloc(hak_heap_t *heap, void *p, size_t size, size_t copy_max, size_t align) {
  size_t usable = hak_usable_size(p);
  hak_segment_t *seg = segment_of_block(p);
  if (seg->kind == SEGMENT_HUGE && size > HAK_LARGE_MAX && seg->huge_offset == segment_header_size()) {
    void *q = huge_realloc(seg, size);
    if (q) return q; /* else it moves like any block */
  }
  if (size <= usable && size >= usable / 2) return p;
  if (size > usable && size <= HAK_LARGE_MAX && seg->kind == SEGMENT_NORMAL &&
      atomic_load_relaxed(&seg->tid) == thread_id()) {
    hak_page_t *page = page_of(seg, p);
    if (page->class_idx == HAK_CLASS_LARGE && segment_large_grow(page, size)) return p;
  }
  void *q = align == 8 ? heap_alloc8(heap, size) : heap_alloc16(heap, size);
  if (!q) return size <= usable ? p : NULL; /* a shrink keeps the block rather than fail */
  size_t n = size < usable ? size : usable;
  memcpy(q, p, n < copy_max ? n : copy_max);
  hak_free(p);
  return q;
}

void *hak_heap_realloc(hak_heap_t *heap, void *p, size_t size) {
  if (!p) return heap_alloc16(heap, size);
#if HAK_SECURE
  secure_free_check(p); /* realloc of a freed or foreign block */
#endif
  if (size == 0) {
    hak_free(p);
    return NULL;
  }
  return heap_realloc(heap, p, size, SIZE_MAX, 16);
}

void *hak_realloc(void *p, size_t size) { return hak_heap_realloc(thread_heap, p, size); }

static bool align_ok(size_t align) { return align != 0 && (align & (align - 1)) == 0; }

/*
** Any power of two: up to 64 KiB from the classes and spans, above that
** from a huge segment placed to suit (huge_alloc); an alignment the address
** space cannot hold fails with ENOMEM, like any impossible size.
*/
static void *heap_aligned(hak_heap_t *heap, size_t align, size_t size) {
  if (!align_ok(align)) {
    errno = EINVAL;
    return NULL;
  }
  if (align <= 16) return heap_alloc16(heap, size);
  return alloc_slow(heap, size, align);
}

void *hak_aligned_alloc(size_t align, size_t size) { return heap_aligned(thread_heap, align, size); }
void *hak_heap_aligned_alloc(hak_heap_t *heap, size_t align, size_t size) { return heap_aligned(heap, align, size); }

bool hak_owns(const void *p) {
  if (segment_is_boundary(p)) return segment_is_aligned_huge(p); /* NULL: false */
  /* not segment_is_mapped: inside an aligned huge block's first unit,
     segment_of(p) is the block itself, not a header */
  if (!segment_has_header(p)) return false;
  hak_segment_t *seg = segment_of(p);
  if (seg->kind == SEGMENT_HUGE) return (const uint8_t *)p == (const uint8_t *)seg + seg->huge_offset;
  if ((uintptr_t)p - (uintptr_t)seg < HAK_SLICE_SIZE) return false; /* header slice */
  hak_page_t *page = page_of(seg, p);
  if (page->slice_count == 0 || page->block_size == 0) return false;
  size_t off = (size_t)((const uint8_t *)p - page->start);
  return off % page->block_size == 0 && off / page->block_size < page->reserved;
}

/* ---- the sized, 8-byte-aligned API for VMs -------------------------------- */

void *hak_heap_malloc8(hak_heap_t *heap, size_t size) {
  return heap_alloc8(heap ? heap : thread_heap, size);
}

/*
** The old size bounds the copy (a Lua vector of 100 bytes in a 128-byte
** block copies 100), and a shrink never fails: without memory for a smaller
** block, the old one stays.
*/
void *hak_heap_realloc8(hak_heap_t *heap, void *p, size_t oldsize, size_t newsize) {
  if (!heap) heap = thread_heap;
  if (!p) return heap_alloc8(heap, newsize);
  if (newsize == 0) {
    hak_free_sized(p, oldsize);
    return NULL;
  }
#if HAK_SECURE
  secure_free_check(p);
#endif
  hak_segment_t *seg = segment_of_block(p);
  if (likely(newsize <= HAK_SMALL_MAX && oldsize <= HAK_SMALL_MAX && seg->kind == SEGMENT_NORMAL)) {
    /* Lua's vectors growing a step: small to small, no large or huge case */
    size_t usable = page_of(seg, p)->block_size;
    if (newsize <= usable && newsize >= usable / 2) return p;
    void *q = heap_alloc8(heap, newsize);
    if (unlikely(!q)) return newsize <= oldsize ? p : NULL;
    memcpy(q, p, oldsize < newsize ? oldsize : newsize);
#if HAK_DEBUG
    free_check(p);
#endif
    free_block(p);
    return q;
  }
  /* A VM's vector grows by doubling (Lua's array parts and string
  ** buffers): one that grows to half the largest class block or more gets
  ** a large block, a span of its own, whose next doublings stay in it or
  ** take the free slices after it (segment_large_grow) instead of a copy
  ** each.  Its pages become resident only as they are written. */
  size_t want = newsize;
  if (newsize > oldsize && newsize >= HAK_MEDIUM_MAX / 2 && newsize <= HAK_MEDIUM_MAX)
    want = HAK_MEDIUM_MAX + 1;
  void *q = heap_realloc(heap, p, want, oldsize, 8);
  if (!q && want != newsize) q = heap_realloc(heap, p, newsize, oldsize, 8);
  if (!q && newsize <= oldsize) return p;
  return q;
}
