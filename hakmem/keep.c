/*
** keep.c -- blocks a thread frees into other threads' pages, kept for its
** own next allocations of their class.
**
** A page belongs to one heap, and only that heap allocates from it.  When
** threads hand blocks to each other (a shared table, a queue, a cache of
** records) and take turns on the cores, each heap's pages sit at that
** heap's own peak: the thread that filled the table holds the pages, the
** thread that replaced the entries grows pages of its own, and the first
** one's blocks come back to pages nobody allocates from until their owner
** runs again.  bench/threads churn (8 threads on 2 cores, half the blocks
** replacing entries of a shared table) held 38-45 MiB for 8.8 MiB live this
** way, as mimalloc did (50); jemalloc held 24, and 39-50 with its thread
** cache off (MALLOC_CONF=tcache:false), which moves blocks between threads.
**
** So a thread that frees a small block of another default heap's page
** keeps it, up to KEEP_SLOTS per class and KEEP_BYTES in all, and its
** allocation slow path hands it out again when the first page of the class
** has no free block of its own, before the long way that collects other
** threads' frees and carves (alloc.c, alloc_in_class): the block moves to
** the thread that needs one.  A kept block stays `used` in its page (live,
** as far as the page knows), so the page and its segment stay put
** meanwhile, and whoever frees it later frees it into its page as any
** block.  Kept blocks go back to their pages (the owner's own free, or a
** remote push per run of one page) when their class's slots are full, when
** the bytes are, when the class was not allocated from between two of the
** heap's ticks (every 64th slow call), and at thread exit and hak_collect.
** A thread that only frees keeps at most KEEP_BYTES until it exits.
**
** Only default heaps' blocks are kept, and only by a default heap: an
** explicit heap may be destroyed with its blocks, and a block it handed out
** through another heap would vanish under its holder.  The segment says
** which it is (`keepable`, set with its owner): a segment with a kept block
** in it is not empty, so it cannot change hands to an explicit heap.  A
** remote batch (the runtime's collector closing a state) keeps nothing.
** The slots hold pointers; nothing is written into a kept block.
**
** Measured (bench/threads, interleaved, medians of 7; see
** docs/architecture.md, Threads): churn T=8 peak RSS 39.9 -> 30.2 MiB at
** the same throughput; churn T=2 12.2 -> 11.0 MiB.  Handing kept blocks
** out first, before the page's own frees, took churn T=8 to 23 MiB but
** cost churn T=2 a quarter of its throughput: a block that moved keeps
** moving (the thread frees it again, remotely, and keeps it again), and
** each of its frees reads a page descriptor another core writes.
*/
#include <string.h>

#include "internal.h"

/* Every table made, linked through all_next, never unmapped (stats). */
static hak_atomic_t keep_all;

static keep_t *keep_make(hak_heap_t *heap) {
  keep_t *r = heap_pool_alloc(sizeof(keep_t));
  if (r == NULL) return NULL;
  uintptr_t head;
  do {
    head = atomic_load_relaxed(&keep_all);
    r->all_next = (keep_t *)head;
  } while (!atomic_cas_full(&keep_all, head, (uintptr_t)r));
  heap->keep = r;
  return r;
}

/*
** A class's kept blocks back to their pages: the owner's own free where
** this thread owns the page now (it took the orphan heap meanwhile), else
** a remote push, one CAS for each run of blocks of one page (a consumer
** keeps a producer's blocks in the order they came, page by page).
** Straight to thread_free, never into a remote batch, whose table is
** allocated: this runs inside the allocation slow path.
*/
static void keep_flush_class(keep_t *r, unsigned cls) {
  keep_class_t *c = &r->cls[cls];
  uint32_t n = c->n;
  c->n = 0; /* first: giving back may free a page, never call back here */
  atomic_store_relaxed(&r->bytes, atomic_load_relaxed(&r->bytes) - (uintptr_t)n * class_size[cls]);
  for (uint32_t i = 0; i < n;) {
    hak_block_t *first = c->slot[i];
    hak_segment_t *seg = segment_of(first);
    hak_page_t *page = page_of(seg, first);
    if (atomic_load_relaxed(&seg->tid) == thread_id()) {
      free_block_local(page, first);
      i++;
      continue;
    }
    hak_block_t *last = first;
    uint32_t run = 1;
    for (i++; i < n && page_of(segment_of(c->slot[i]), c->slot[i]) == page; i++, run++) {
      block_set_next(page, last, (hak_block_t *)c->slot[i]);
      last = c->slot[i];
    }
    remote_frees += run;
    page_push_remote_list(page, first, last, run);
  }
}

void keep_flush(hak_heap_t *heap) {
  keep_t *r = heap->keep;
  if (r == NULL || atomic_load_relaxed(&r->bytes) == 0) return;
  for (unsigned cls = 0; cls < KEEP_CLASSES; cls++)
    if (r->cls[cls].n) keep_flush_class(r, cls);
}

void keep_tick(hak_heap_t *heap) {
  keep_t *r = heap->keep;
  if (r == NULL || atomic_load_relaxed(&r->bytes) == 0) return;
  for (unsigned cls = 0; cls < KEEP_CLASSES; cls++) {
    keep_class_t *c = &r->cls[cls];
    if (c->n == 0) continue;
    if (c->stale) keep_flush_class(r, cls);
    else c->stale = 1;
  }
}

/* keep_free's other cases: the thread's first kept block (the table is
** made), a class or the bytes at their limit (given back first), and every
** keep of the debug and secure builds, which stop at a double free. */
bool keep_free_slow(hak_heap_t *heap, unsigned cls, void *p) {
  keep_t *r = heap->keep;
  if (r == NULL && (r = keep_make(heap)) == NULL) return false;
  keep_class_t *c = &r->cls[cls];
#if HAK_DEBUG || HAK_SECURE
  for (uint32_t i = 0; i < c->n; i++)
    if (c->slot[i] == p) hak_fatal("free(%p): double free", p);
#endif
  if (c->n == KEEP_SLOTS) keep_flush_class(r, cls);
  uintptr_t bytes = atomic_load_relaxed(&r->bytes);
  if (bytes + class_size[cls] > KEEP_BYTES) {
    keep_flush(heap);
    bytes = 0;
  }
  c->slot[c->n++] = p;
  c->stale = 0;
  atomic_store_relaxed(&r->bytes, bytes + class_size[cls]);
  return true;
}

size_t keep_held(void) {
  size_t sum = 0;
  for (keep_t *r = (keep_t *)atomic_load_acquire(&keep_all); r; r = r->all_next)
    sum += atomic_load_relaxed(&r->bytes);
  return sum;
}
