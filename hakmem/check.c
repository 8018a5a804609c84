/*
** check.c -- the invariant checker: hak_heap_check walks one heap and tests
** what types.h states in prose about its segments, slices, pages, free
** lists, queues, direct table and kept blocks.  The first broken invariant stops the
** program (hak_fatal) with a message naming the heap, the page, the
** pointer and the invariant.
**
** It is in every build: no fast path calls it, so it costs nothing until
** called, and a release build is where a host meets the bug it wants to
** pin down (call it after each request, or from a fuzzer).
**
** Only the owner thread calls it, between its own allocations: the walk
** reads the heap's lists without locks.  Other threads may push on a page's
** thread_free meanwhile, so each page's thread_free is read once (acquire)
** and only that snapshot is walked: a pushed chain is never rewritten by
** its pushers, and only the owner takes it.  Its blocks count as used.
**
** Every pointer is checked before it is followed, so a corrupted link ends
** in a message, not in a wild read.
*/
#include <stdarg.h>
#include <string.h>

#include "internal.h"

/* Blocks in a page at most: a one-slice page of 8-byte blocks. */
#define CHECK_MAX_BLOCKS (HAK_SLICE_SIZE / 8)

/* Which list a block was met in (check_t.seen). */
enum { LIST_NONE, LIST_FREE, LIST_LOCAL, LIST_THREAD };
static const char *const check_list_name[] = {"no list", "free", "local_free", "thread_free"};

typedef struct check_s {
  hak_heap_t *heap;
  size_t pages; /* pages found in the heap's segments */
  /* the list each block of the page being checked was met in, 2 bits per
  ** block: 2 KiB, on the caller's stack */
  uint8_t seen[CHECK_MAX_BLOCKS / 4];
} check_t;

static unsigned check_seen(const check_t *c, size_t i) { return (c->seen[i / 4] >> (i % 4 * 2)) & 3; }
static void check_see(check_t *c, size_t i, unsigned list) {
  c->seen[i / 4] |= (uint8_t)(list << (i % 4 * 2));
}

/* ---- reporting ------------------------------------------------------------ */

static void __attribute__((noreturn, format(printf, 4, 5)))
check_fail(const hak_heap_t *heap, const void *page, const void *p, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  hak_fatal("heap check: heap %p, page %p, pointer %p: %s", (const void *)heap, page, p, what);
}

#define CHECK(cond, c, page, p, ...) \
  do {                                \
    if (unlikely(!(cond))) check_fail((c)->heap, (page), (p), __VA_ARGS__); \
  } while (0)

/* ---- free lists ----------------------------------------------------------- */

/*
** Walks one list of `page`: every block inside the page, at a block
** boundary, below capacity, met once (a second meeting in the same list is
** a cycle, in another list a block in two lists).  Returns its length.
*/
static size_t check_list(check_t *c, const hak_page_t *page, hak_block_t *head, unsigned list) {
  size_t n = 0;
  const char *name = check_list_name[list];
  for (hak_block_t *b = head; b != NULL; b = block_peek(page, b)) { /* decoded in secure builds */
    uintptr_t at = (uintptr_t)b, start = (uintptr_t)page->start;
    CHECK(at >= start && at - start < (uintptr_t)page->capacity * page->block_size, c, page, b,
          "lists inside their page: a block of the %s list is outside the page's %u carved blocks "
          "of %zu B at %p", name, page->capacity, page->block_size, (void *)page->start);
    size_t off = at - start;
    CHECK(off % page->block_size == 0, c, page, b,
          "lists at block boundaries: a block of the %s list is %zu B into a block of %zu B",
          name, off % page->block_size, page->block_size);
    size_t i = off / page->block_size;
    unsigned seen = check_seen(c, i);
    CHECK(seen != list, c, page, b, "lists acyclic: the %s list meets this block twice (a cycle)",
          name);
    CHECK(seen == LIST_NONE, c, page, b, "lists disjoint: the block is in the %s and %s lists",
          check_list_name[seen], name);
    check_see(c, i, list);
    n++;
  }
  return n;
}

/* ---- pages ---------------------------------------------------------------- */

/* Is `page` on the heap's notified stack?  Loaded after the page's state. */
static bool check_is_notified(check_t *c, const hak_page_t *page) {
  size_t n = 0;
  for (hak_page_t *p = (hak_page_t *)atomic_load_acquire(&c->heap->notified); p; p = p->notify_next) {
    if (p == page) return true;
    CHECK(++n <= c->pages, c, page, NULL, "notified stack ends: more entries than the heap has pages");
  }
  return false;
}

/* The size and shape a page's class gives it. */
static void check_page_class(check_t *c, const hak_page_t *page) {
  unsigned cls = page->class_idx;
  size_t span = (size_t)page->slice_count << HAK_SLICE_SHIFT;
  if (cls == HAK_CLASS_LARGE) {
    CHECK(page->block_size > HAK_MEDIUM_MAX && page->block_size <= HAK_LARGE_MAX &&
              page->block_size <= span, c, page, NULL,
          "block_size matches class_idx: a large block of %zu B in a span of %zu B",
          page->block_size, span);
    CHECK(page->capacity == 1 && page->reserved == 1, c, page, NULL,
          "a large page holds one block: capacity %u, reserved %u", page->capacity, page->reserved);
    CHECK(page->flags & PAGE_IN_FULL, c, page, NULL, "a large page is in the full queue");
    return;
  }
  CHECK(cls < HAK_CLASSES, c, page, NULL, "class_idx in range: %u", cls);
  CHECK(page->block_size == class_size[cls], c, page, NULL,
        "block_size matches class_idx: %zu B in class %u of %u B", page->block_size, cls,
        class_size[cls]);
  CHECK(page->slice_count == class_page_slices(cls), c, page, NULL,
        "slice_count matches class_idx: %u slices for class %u", page->slice_count, cls);
  size_t room = span - (size_t)(page->start - page_span(page)); /* past the colour */
  CHECK(page->reserved == room / page->block_size, c, page, NULL,
        "reserved is the blocks that fit in the span past its colour: %u, not %zu", page->reserved,
        room / page->block_size);
}

/*
** The notify state of thread_free (types.h, notify_state_t): NONE in a
** class queue; in full, WANTED, or BUSY while a remote freer pushes the page
** on `notified`, or NONE once it has (check_queue checks that one, once the
** pages are counted).  NEVER only in abandoned segments.
*/
static void check_page_notify(check_t *c, const hak_page_t *page, uintptr_t state) {
  CHECK(state != NOTIFY_NEVER, c, page, NULL, "notify state: NEVER in a page that has a heap");
  if (!(page->flags & PAGE_IN_FULL))
    CHECK(state == NOTIFY_NONE, c, page, NULL,
          "notify state: a page in a class queue has state %u, not NONE", (unsigned)state);
}

/* One page: its fields, its three lists, its counters. */
static void check_page(check_t *c, hak_segment_t *seg, unsigned idx) {
  hak_page_t *page = &seg->pages[idx];
  CHECK(page->heap == c->heap, c, page, NULL, "page->heap is its segment's heap: %p",
        (void *)page->heap);
  CHECK((page->flags & ~PAGE_IN_FULL) == 0, c, page, NULL, "flags of a normal page: %#x",
        (unsigned)page->flags);
  uint8_t *span = (uint8_t *)seg + ((size_t)idx << HAK_SLICE_SHIFT);
  CHECK(page->start == span + page_colour(span, page->class_idx), c, page, page->start,
        "start is the span's first byte plus the class's colour");
  check_page_class(c, page);
  CHECK(page->capacity <= page->reserved, c, page, NULL, "capacity <= reserved: %u > %u",
        page->capacity, page->reserved);
  CHECK(page->capacity <= CHECK_MAX_BLOCKS, c, page, NULL, "capacity fits a page: %u",
        page->capacity);
  memset(c->seen, 0, (page->capacity + 3) / 4);
  size_t nfree = check_list(c, page, page->free, LIST_FREE);
  size_t nlocal = check_list(c, page, page->local_free, LIST_LOCAL);
  uintptr_t tf = atomic_load_acquire(&page->thread_free);
  size_t nthread = check_list(c, page, tf_block(tf), LIST_THREAD);
  CHECK(page->used == page->capacity - nfree - nlocal, c, page, NULL,
        "used == capacity - |free| - |local_free|: used %u, capacity %u, free %zu, local_free %zu",
        page->used, page->capacity, nfree, nlocal);
  CHECK(nthread <= page->used, c, page, NULL,
        "thread_free blocks are counted in used: %zu of them, used %u", nthread, page->used);
  CHECK(tf_count(tf) == TF_COUNT_MAX ? nthread >= TF_COUNT_MAX : nthread == tf_count(tf), c, page, NULL,
        "thread_free's count is its list's length: count %zu, list %zu", (size_t)tf_count(tf), nthread);
  if (page->flags & PAGE_IN_FULL)
    CHECK(nfree == 0 && nlocal == 0 && page->capacity == page->reserved, c, page, NULL,
          "a page in full has no free block: free %zu, local_free %zu, %u of %u blocks carved",
          nfree, nlocal, page->capacity, page->reserved);
  check_page_notify(c, page, tf & NOTIFY_MASK);
}

/* ---- segments and slices ---------------------------------------------------- */

/*
** The 63 slices after the header: each one free (its descriptor clear) or
** in exactly one page's span, whose other descriptors lead back to it.
** Secure builds keep the last slice as a guard: never free, never a page's.
*/
static void check_slices(check_t *c, hak_segment_t *seg) {
  unsigned idx = 1, end = HAK_SLICES - (HAK_SECURE ? 1 : 0);
  if (HAK_SECURE)
    CHECK(seg->pages[end].slice_count == 0 && seg->pages[end].block_size == 0, c, &seg->pages[end], NULL,
          "the guard slice is no page's (segment %p)", (void *)seg);
  while (idx < end) {
    hak_page_t *d = &seg->pages[idx];
    if (seg->free_mask >> idx & 1) {
      CHECK(d->slice_count == 0 && d->slice_back == 0 && d->block_size == 0, c, d, NULL,
            "a free slice's descriptor is clear (slice %u of segment %p)", idx, (void *)seg);
      idx++;
      continue;
    }
    unsigned n = d->slice_count;
    CHECK(n != 0 && d->slice_back == 0, c, d, NULL,
          "slices covered once: slice %u of segment %p is neither free nor a page's first",
          idx, (void *)seg);
    CHECK(idx + n <= end, c, d, NULL,
          "span inside its segment: %u slices from slice %u", n, idx);
    for (unsigned j = 1; j < n; j++) {
      hak_page_t *s = &seg->pages[idx + j];
      CHECK(!(seg->free_mask >> (idx + j) & 1), c, d, NULL,
            "slices covered once: slice %u is in a span and in free_mask", idx + j);
      CHECK(s->slice_count == 0 && s->slice_back == j * sizeof(hak_page_t), c, d, s,
            "slice_back leads to the span's page: slice %u has slice_back %u, slice_count %u",
            idx + j, (unsigned)s->slice_back, (unsigned)s->slice_count);
    }
    check_page(c, seg, idx);
    c->pages++;
    idx += n;
  }
}

/* The masks' rules (types.h, hak_segment_t). */
static void check_masks(check_t *c, const hak_segment_t *seg) {
  CHECK(!(seg->free_mask & ~SEGMENT_USABLE_MASK), c, NULL, seg,
        "free_mask excludes the header slice (and secure builds' guard slice): %#llx",
        (unsigned long long)seg->free_mask);
  CHECK(seg->commit_mask & 1, c, NULL, seg, "commit_mask includes the header slice: %#llx",
        (unsigned long long)seg->commit_mask);
  uint64_t outside = seg->purge_mask & ~(seg->free_mask & seg->commit_mask);
  CHECK(outside == 0, c, NULL, seg,
        "purge_mask is a subset of free_mask & commit_mask: slices %#llx are not",
        (unsigned long long)outside);
  outside = seg->large_mask & ~(seg->free_mask & seg->commit_mask);
  CHECK(outside == 0, c, NULL, seg,
        "large_mask is a subset of free_mask & commit_mask: slices %#llx are not",
        (unsigned long long)outside);
  CHECK(!(seg->purged_mask & seg->commit_mask), c, NULL, seg,
        "purged_mask and commit_mask are disjoint: slices %#llx are in both",
        (unsigned long long)(seg->purged_mask & seg->commit_mask));
}

/*
** The heap's normal segments: linked both ways, owned by the heap, those
** with a free slice first; empty_segments counts the empty ones, and a
** pending purge sets purge_pending.
*/
static void check_segments(check_t *c) {
  hak_heap_t *heap = c->heap;
  hak_segment_t *prev = NULL;
  size_t empty = 0;
  bool full_seen = false, purge = false;
  for (hak_segment_t *seg = heap->segments; seg != NULL; prev = seg, seg = seg->next) {
    CHECK(((uintptr_t)seg & HAK_SEGMENT_MASK) == 0 && segment_is_mapped(seg), c, NULL, seg,
          "segment list: an entry is not a mapped segment");
    CHECK(seg->prev == prev, c, NULL, seg, "segment list: prev is %p, not %p",
          (void *)seg->prev, (void *)prev);
    CHECK(seg->kind == SEGMENT_NORMAL && seg->size == HAK_SEGMENT_SIZE, c, NULL, seg,
          "segment list: a huge or odd-sized segment (%zu B)", seg->size);
    CHECK(seg->heap == heap, c, NULL, seg, "segment heap is the heap: %p", (void *)seg->heap);
    CHECK(atomic_load_relaxed(&seg->tid) == heap->tid, c, NULL, seg,
          "segment tid is the heap's thread: %#lx, heap's %#lx",
          (unsigned long)atomic_load_relaxed(&seg->tid), (unsigned long)heap->tid);
    check_masks(c, seg);
    if (seg->free_mask == 0) full_seen = true;
    else CHECK(!full_seen, c, NULL, seg, "segments with a free slice come first");
    if (segment_is_empty(seg)) empty++;
    if (seg->purge_mask) purge = true;
    check_slices(c, seg);
  }
  CHECK(empty == heap->empty_segments, c, NULL, heap,
        "empty_segments counts the empty segments: %zu, counted %zu", heap->empty_segments, empty);
  CHECK(!purge || heap->purge_pending, c, NULL, heap,
        "purge_pending is set while a segment has a purge_mask");
}

/* A huge segment of the heap (called under the huge lock). */
static void check_huge(hak_segment_t *seg, void *arg) {
  check_t *c = arg;
  hak_page_t *page = &seg->pages[0];
  CHECK(segment_is_mapped(seg) && seg->kind == SEGMENT_HUGE && page->flags == PAGE_HUGE, c, page,
        seg, "huge segment: kind %d, flags %#x", (int)seg->kind, (unsigned)page->flags);
  CHECK(seg->huge_offset >= segment_header_size() && seg->huge_offset <= HAK_SEGMENT_SIZE &&
            seg->huge_offset < seg->size, c, page, seg,
        "huge segment: huge_offset %zu is past the header, at most a segment", seg->huge_offset);
  CHECK(page->block_size == seg->size - seg->huge_offset - SECURE_GUARD &&
            page->start == (uint8_t *)seg + seg->huge_offset, c, page, page->start,
        "huge segment: the block is the mapping past huge_offset %zu", seg->huge_offset);
  CHECK(atomic_load_relaxed(&seg->tid) == c->heap->tid, c, page, seg,
        "segment tid is the heap's thread (huge segment)");
  for (unsigned i = 1; i < HAK_SLICES; i++)
    CHECK(seg->pages[i].slice_back == i * sizeof(hak_page_t), c, page, &seg->pages[i],
          "huge segment: slice_back of slice %u leads to pages[0]", i);
}

/* ---- queues and the direct table -------------------------------------------- */

/* A queue entry must be a page of one of the heap's segments before it is read. */
static void check_is_heap_page(check_t *c, const hak_page_t *page, const char *where) {
  hak_segment_t *seg = segment_of(page);
  uintptr_t off = (uintptr_t)page - (uintptr_t)seg->pages;
  CHECK(segment_is_mapped(seg) && (uintptr_t)page >= (uintptr_t)&seg->pages[1] &&
            off < sizeof seg->pages && off % sizeof(hak_page_t) == 0, c, page, NULL,
        "%s: an entry is not a page descriptor", where);
  CHECK(seg->kind == SEGMENT_NORMAL && seg->heap == c->heap && page->slice_count != 0 &&
            page->slice_back == 0, c, page, NULL,
        "%s: an entry is not a live page of this heap", where);
}

/* One queue: linked both ways, first and last right, each page where its
** class and flags say.  Returns its length. */
static size_t check_queue(check_t *c, const page_queue_t *q, unsigned qi) {
  const char *what = qi == HAK_QUEUES ? "full queue" : "class queue";
  hak_page_t *prev = NULL;
  size_t n = 0;
  for (hak_page_t *page = q->first; page != NULL; prev = page, page = page->next) {
    check_is_heap_page(c, page, what);
    CHECK(page->prev == prev, c, page, NULL, "%s %u: prev is %p, not %p", what, qi,
          (void *)page->prev, (void *)prev);
    if (qi == HAK_QUEUES) {
      CHECK(page->flags & PAGE_IN_FULL, c, page, NULL,
            "a page is in full iff PAGE_IN_FULL: in full without the flag");
      /* NONE in full: a freer pushed the page on `notified` before it set
      ** NONE, so the stack, loaded after the state, holds it */
      if ((atomic_load_acquire(&page->thread_free) & NOTIFY_MASK) == NOTIFY_NONE)
        CHECK(check_is_notified(c, page), c, page, NULL,
              "notify state: a full page with state NONE is not on the heap's notified stack");
    } else
      CHECK(!(page->flags & PAGE_IN_FULL) && page->class_idx == qi, c, page, NULL,
            "a page is in queues[class_idx] unless PAGE_IN_FULL: class %u, flags %#x, in queue %u",
            (unsigned)page->class_idx, (unsigned)page->flags, qi);
    CHECK(++n <= c->pages, c, page, NULL, "%s %u: more entries than the heap has pages", what, qi);
  }
  CHECK(q->last == prev, c, q->last, prev, "%s %u: last is %p, not the final page %p", what, qi,
        (void *)q->last, (void *)prev);
  return n;
}

/* The queue a page belongs in. */
static const page_queue_t *check_queue_of(const hak_heap_t *heap, const hak_page_t *page) {
  return (page->flags & PAGE_IN_FULL) ? &heap->full : &heap->queues[page->class_idx];
}

/* After queue lengths disagree with the page count: the page in no queue. */
static void check_find_unqueued(check_t *c) {
  for (hak_segment_t *seg = c->heap->segments; seg != NULL; seg = seg->next)
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      if (page->slice_count == 0) continue;
      const hak_page_t *p = check_queue_of(c->heap, page)->first;
      while (p != NULL && p != page) p = p->next;
      CHECK(p == page, c, page, NULL, "each page in exactly one queue: the page is in none");
    }
}

static void check_queues(check_t *c) {
  size_t queued = 0;
  for (unsigned qi = 0; qi < HAK_QUEUES; qi++) queued += check_queue(c, &c->heap->queues[qi], qi);
  queued += check_queue(c, &c->heap->full, HAK_QUEUES);
  if (queued != c->pages) check_find_unqueued(c);
  CHECK(queued == c->pages, c, NULL, NULL,
        "each page in exactly one queue: %zu queue entries for %zu pages", queued, c->pages);
  size_t n = 0;
  for (hak_page_t *p = (hak_page_t *)atomic_load_acquire(&c->heap->notified); p; p = p->notify_next) {
    check_is_heap_page(c, p, "notified stack");
    CHECK(++n <= c->pages, c, p, NULL, "notified stack: more entries than the heap has pages");
  }
}

/* pages_direct[i]: the first page of class class_of_slot[i]'s queue, or
** page_empty (which never has a free block). */
static void check_direct(check_t *c) {
  CHECK(page_empty.free == NULL && page_empty.local_free == NULL, c, &page_empty, page_empty.free,
        "page_empty has no free block");
  for (unsigned i = 0; i < HAK_DIRECT_SLOTS; i++) {
    hak_page_t *first = c->heap->queues[class_of_slot[i]].first;
    hak_page_t *want = first ? first : &page_empty;
    CHECK(c->heap->pages_direct[i] == want, c, c->heap->pages_direct[i], NULL,
          "pages_direct[%u] is the first page of class %u's queue (%p) or page_empty", i,
          (unsigned)class_of_slot[i], (void *)want);
  }
}

/* The blocks the heap keeps from other heaps (types.h, keep_t): live
** blocks of small class pages of keepable segments, each class's of its
** class, none twice, `bytes` their sum.  Their pages belong to other heaps,
** whose lists only their owners may read. */
static void check_keep(check_t *c) {
  keep_t *k = c->heap->keep;
  if (k == NULL) return;
  size_t bytes = 0;
  for (unsigned cls = 0; cls < KEEP_CLASSES; cls++) {
    keep_class_t *kc = &k->cls[cls];
    CHECK(kc->n <= KEEP_SLOTS, c, NULL, NULL, "kept blocks of class %u: %u, at most %u", cls,
          (unsigned)kc->n, (unsigned)KEEP_SLOTS);
    CHECK(kc->n == 0 || c->heap->is_default, c, NULL, NULL, "an explicit heap keeps no block");
    for (uint32_t i = 0; i < kc->n; i++) {
      void *p = kc->slot[i];
      CHECK(p != NULL && segment_is_mapped(p), c, NULL, p, "a kept block is in a mapped segment");
      hak_segment_t *seg = segment_of(p);
      CHECK(seg->kind == SEGMENT_NORMAL && atomic_load_relaxed(&seg->keepable), c, NULL, p,
            "a kept block's segment is a normal one of a default heap (keepable)");
      hak_page_t *page = page_of(seg, p);
      CHECK(page->slice_count != 0 && page->class_idx == cls, c, page, p,
            "a block kept as class %u is in a page of that class (%u)", cls, (unsigned)page->class_idx);
      /* start, block_size and reserved are set before any block is handed
      ** out; capacity and the lists are the owner's, read only when this
      ** thread owns the page now */
      size_t off = (size_t)((uint8_t *)p - page->start);
      CHECK((uint8_t *)p >= page->start && off % page->block_size == 0 &&
                off / page->block_size < page->reserved,
            c, page, p, "a kept block is a block start of its page");
      for (uint32_t j = 0; j < i; j++)
        CHECK(kc->slot[j] != p, c, page, p, "a block is kept twice (a double free)");
      if (atomic_load_relaxed(&seg->tid) == thread_id())
        CHECK(off / page->block_size < page->capacity && !page_contains_free(page, p), c, page, p,
              "a kept block of this thread's page is carved and not free");
    }
    bytes += (size_t)kc->n * class_size[cls];
  }
  CHECK(atomic_load_relaxed(&k->bytes) == bytes && bytes <= KEEP_BYTES, c, NULL, NULL,
        "the heap keeps %zu bytes, its count says %zu (at most %zu)", bytes,
        (size_t)atomic_load_relaxed(&k->bytes), (size_t)KEEP_BYTES);
}

/* ---- the API ---------------------------------------------------------------- */

int hak_heap_check(hak_heap_t *heap) {
  if (heap == NULL) heap = thread_heap;
  if (heap == &heap_empty) return 0; /* the thread has no heap yet */
  check_t check = {.heap = heap}, *c = &check;
  CHECK(heap->tid == thread_id(), c, NULL, NULL,
        "hak_heap_check is called by the heap's owner: thread %#lx, owner %#lx",
        (unsigned long)thread_id(), (unsigned long)heap->tid);
  CHECK(heap->is_default == (heap == thread_heap), c, NULL, NULL,
        "is_default is set on the thread's default heap only");
  check_segments(c);
  check_queues(c);
  check_direct(c);
  check_keep(c);
  huge_each(heap, check_huge, c);
  return 0;
}
