/*
** heap.c -- heaps: the page queues of one owner thread, the slow path that
** finds a page with free blocks, and the heap API (new, delete, destroy,
** claim, collect).
*/
#include <errno.h>
#include <string.h>

#include "internal.h"

/*
** A thread's heap before its first allocation: every direct slot points to
** page_empty, so the fast path misses without a test of its own and the
** slow path makes the real heap.
*/
hak_heap_t heap_empty = {.pages_direct = {[0 ... HAK_DIRECT_SLOTS - 1] = &page_empty}};

/* ---- the pool of heap structures ---------------------------------------- */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_heap_t *pool_free;           /* released structures */
static uint8_t *pool_bump, *pool_end;   /* the newest chunk's untouched rest */

/* Heap structures (and the tables of blocks default heaps keep, keep.c) come
** from the OS in 64 KiB chunks, never from a heap, carved one at a time:
** a chunk's pages become resident only as its structures are used
** (threading a list through all of them would touch all 16 pages, 64 KiB
** of RSS for a process that has two heaps).  Carved memory is zero. */
static void *heap_pool_carve(size_t size) {
  size = (size + 63) & ~(size_t)63;
  if (pool_end - pool_bump < (ptrdiff_t)size) {
    uint8_t *chunk = os_map_aligned(HAK_SLICE_SIZE, HAK_OS_PAGE);
    if (!chunk) return NULL;
    stats_committed((intptr_t)HAK_SLICE_SIZE);
    pool_bump = chunk;
    pool_end = chunk + HAK_SLICE_SIZE;
  }
  void *p = pool_bump;
  pool_bump += size;
  return p;
}

void *heap_pool_alloc(size_t size) {
  pthread_mutex_lock(&pool_lock);
  void *p = heap_pool_carve(size);
  pthread_mutex_unlock(&pool_lock);
  return p;
}

static hak_heap_t *heap_struct_alloc(void) {
  pthread_mutex_lock(&pool_lock);
  hak_heap_t *heap = pool_free;
  if (heap) pool_free = heap->pool_next;
  else heap = heap_pool_carve(sizeof(hak_heap_t));
  pthread_mutex_unlock(&pool_lock);
  return heap;
}

static void heap_release_struct(hak_heap_t *heap) {
  pthread_mutex_lock(&pool_lock);
  heap->pool_next = pool_free;
  pool_free = heap;
  pthread_mutex_unlock(&pool_lock);
}

void heap_fork_lock(bool lock) {
  if (lock) pthread_mutex_lock(&pool_lock);
  else pthread_mutex_unlock(&pool_lock);
}

hak_heap_t *heap_create(bool is_default) {
  hak_heap_t *heap = heap_struct_alloc();
  if (!heap) return NULL;
  keep_t *keep = heap->keep; /* a structure from the pool keeps its table, empty */
  memset(heap, 0, sizeof *heap);
  heap->keep = keep;
  for (unsigned i = 0; i < HAK_DIRECT_SLOTS; i++) heap->pages_direct[i] = &page_empty;
  heap->tid = thread_id_assign();
  heap->is_default = is_default;
  return heap;
}

/* ---- the direct table ---------------------------------------------------- */

/*
** Points the direct slots of class `cls` at the first page of its queue.
** Slot i serves sizes 8i-7 .. 8i; slot 0 (size 0) belongs to the 16 B class.
*/
static void heap_set_direct(hak_heap_t *heap, unsigned cls) {
  if (cls >= HAK_CLASSES || class_size[cls] > HAK_SMALL_MAX) return;
  hak_page_t *page = heap->queues[cls].first ? heap->queues[cls].first : &page_empty;
  unsigned lo = cls == 0 ? 1 : class_size[cls - 1] / 8 + 1;
  unsigned hi = class_size[cls] / 8;
  if (heap->pages_direct[hi] == page) return; /* the slots always move together */
  for (unsigned i = lo; i <= hi; i++) heap->pages_direct[i] = page;
  if (cls == 1) heap->pages_direct[0] = page;
}

static void heap_set_direct_all(hak_heap_t *heap) {
  for (unsigned c = 0; c < HAK_CLASSES; c++) heap_set_direct(heap, c);
}

/* ---- moving pages between queues ---------------------------------------- */

static void heap_drain_notified(hak_heap_t *heap);

/* Puts a page that is in no queue into the right one for its state. */
static void heap_page_insert(hak_heap_t *heap, hak_page_t *page) {
  page->heap = heap;
  if (page->class_idx == HAK_CLASS_LARGE) { /* one block, handed out */
    page->flags |= PAGE_IN_FULL;
    page_queue_push_front(&heap->full, page);
    /* WANTED only while the list is empty: a block freed while nobody
    ** listened (an adoption or absorb in progress) notified no one, so the
    ** page notifies its heap itself and the next drain frees it */
    if (!atomic_cas_full(&page->thread_free, NOTIFY_NONE, NOTIFY_WANTED)) page_notify(heap, page);
    return;
  }
  page->flags &= (uint8_t)~PAGE_IN_FULL;
  page_queue_t *q = &heap->queues[page->class_idx];
  /* behind the first page, so the page being allocated from stays first */
  if (q->first) {
    page->prev = q->first;
    page->next = q->first->next;
    if (q->first->next) q->first->next->prev = page;
    else q->last = page;
    q->first->next = page;
  } else {
    page_queue_push_front(q, page);
    heap_set_direct(heap, page->class_idx);
  }
}

/*
** A page with no free block leaves its class queue for `full`, so that the
** slow path never scans it again.  Drain `notified` first: a page must not
** be on that stack twice, and it can be there from an earlier full period.
** After NOTIFY_WANTED is set, blocks freed remotely just before would go
** unnoticed: if there are any, the page goes straight back.
*/
static void heap_page_to_full(hak_heap_t *heap, hak_page_t *page) {
  heap_drain_notified(heap);
  page_queue_remove(&heap->queues[page->class_idx], page);
  page->flags |= PAGE_IN_FULL;
  page_queue_push_front(&heap->full, page);
  page_set_notify(page, NOTIFY_WANTED);
  if (tf_block(atomic_load_acquire(&page->thread_free))) heap_page_unfull(page);
}

/* A full page got a block back (local free, or a notification). */
void heap_page_unfull(hak_page_t *page) {
  hak_heap_t *heap = page->heap;
  if (!(page->flags & PAGE_IN_FULL)) return;
  page_set_notify(page, NOTIFY_NONE);
  page_queue_remove(&heap->full, page);
  page->flags &= (uint8_t)~PAGE_IN_FULL;
  heap_page_insert(heap, page); /* sets the direct slots if it is first */
}

/*
** An empty page goes back to its segment, unless it is the only page of its
** class: keeping one avoids a page fault storm when a program allocates and
** frees a few blocks of one size in a loop.
*/
void heap_page_retire(hak_page_t *page) {
  hak_heap_t *heap = page->heap;
  hak_assert(page->used == 0);
  page_queue_t *q = (page->flags & PAGE_IN_FULL) ? &heap->full : &heap->queues[page->class_idx];
  if (page->class_idx != HAK_CLASS_LARGE && q->first == page && q->last == page) return;
  /* the page may sit on `notified` from a full period it has left: take it
  ** off (drain) before its descriptor is cleared */
  heap_drain_notified(heap);
  if (page->flags & PAGE_IN_FULL) page_set_notify(page, NOTIFY_NONE);
  unsigned cls = page->class_idx;
  page_queue_remove(q, page);
  heap_set_direct(heap, cls);
  segment_page_free(page);
}

/*
** Takes the stack of full pages that other threads freed into, and puts
** each back in its class queue (or frees it, when it is empty).
*/
static void heap_drain_notified(hak_heap_t *heap) {
  uintptr_t head;
  do {
    head = atomic_load_acquire(&heap->notified);
    if (!head) return;
  } while (!atomic_cas_full(&heap->notified, head, 0));
  hak_page_t *next;
  for (hak_page_t *page = (hak_page_t *)head; page; page = next) {
    next = page->notify_next;
    page->notify_next = NULL;
    if (!(page->flags & PAGE_IN_FULL)) continue; /* a local free moved it already */
    page_collect(page);
    if (page->used == 0) { /* everything came back: return the span */
      page_set_notify(page, NOTIFY_NONE);
      page_queue_remove(&heap->full, page);
      segment_page_free(page);
    } else {
      heap_page_unfull(page);
    }
  }
}

static void heap_orphans_purge(void);
static void heap_purge_blocks(hak_heap_t *heap, bool now);
static void heap_trim_empty(hak_heap_t *heap);
static void heap_trim_refault(hak_heap_t *heap, hak_page_t *page);

/* ---- spans: the one way a heap gets more memory -------------------------- */

static bool heap_adopt_segment(hak_heap_t *heap, hak_segment_t *seg);

/*
** Segments that exited threads abandoned hold their live blocks and the
** memory around them: a heap short of space adopts a few before it maps a
** new segment, which is what keeps memory bounded when threads come and go
** by the thousand (a new thread's first span adopts them, warm, instead of
** mapping).  A few, not all: each adoption walks 63 descriptors.  Returns
** true if it kept any (an adopted segment that turned out empty is freed).
*/
#define HEAP_ADOPT_MAX 8
static bool heap_adopt(hak_heap_t *heap) {
  bool any = false;
  hak_segment_t *seg;
  for (int i = 0; i < HEAP_ADOPT_MAX && (seg = segment_take_abandoned()) != NULL; i++)
    any |= heap_adopt_segment(heap, seg);
  return any;
}

/* ---- the allocation slow path ------------------------------------------- */

static hak_page_t *heap_scan_queue(hak_heap_t *heap, unsigned cls);

/*
** A new page of class `cls` (HAK_CLASS_LARGE: one block of `bsize` bytes):
** the one path by which a heap gets memory, for pages and large blocks
** alike.  A span from the heap's own segments; else (a default heap) it
** adopts a few abandoned segments (heap_adopt) and takes a class page of theirs that
** has free blocks as it is, or else a span from them; else a span from a
** new segment (the cache's first, then a fresh mapping).  A class page is
** put in its queue.  NULL when the OS has no memory.
**
** Every abandoned segment comes up in turn (the list is first in, first
** out): taken newest first, the few on top cycled between threads while
** older ones, partly free, sank out of reach (test_churn: up to 690
** abandoned segments and 2 x live + 92 MiB committed; in turn, about 25).
*/
static hak_page_t *heap_page_new(hak_heap_t *heap, unsigned cls, size_t bsize, unsigned slices) {
  bool large = cls == HAK_CLASS_LARGE;
  hak_page_t *page = segment_span_alloc(heap, slices, large);
  /* Only a default heap adopts: an explicit one may be destroyed whole,
     and would take the adopted segments' live blocks with it. */
  if (!page && heap->is_default && heap_adopt(heap)) {
    if (!large && (page = heap_scan_queue(heap, cls)) != NULL) return page;
    page = segment_span_alloc(heap, slices, large);
  }
  if (!page && segment_new(heap)) page = segment_span_alloc(heap, slices, large);
  if (!page) return NULL;
  page_init(page, heap, cls, bsize);
  if (!large) page_queue_push_front(&heap->queues[cls], page);
  return page;
}

/*
** The first page of the class queue whose lists yield blocks, or that can
** be carved further; full pages met on the way leave the queue for good.
** A page that got back only a few blocks (its share of the frees since its
** last collect) goes to the back of the queue, once per search: the pages
** behind it have gathered frees for longer, and taking them in turn makes
** each collect worth more allocations.
** Free blocks come before fresh ones: a page that can be carved further
** is carved only when no page behind it has got back an eighth of its
** blocks.  Carving it at once, the rule before, left the blocks other
** pages got back idle and made fresh memory resident: bench/threads
** share T=1 15.7 -> 14.5 MiB peak RSS, tight 7.7 -> 7.1 (T=1) and 12.9 ->
** 12.2 (T=2), throughput unchanged (median of 5 interleaved runs).  Pages
** with fewer blocks back are passed over then, as carving gives more
** blocks per slow call (taking them cost bignum 3% more instructions).
*/
static hak_page_t *heap_scan_queue(hak_heap_t *heap, unsigned cls) {
  page_queue_t *q = &heap->queues[cls];
  hak_page_t *page = q->first, *next, *carvable = NULL;
  bool rotated = false;
  for (; page; page = next) {
    next = page->next;
    if (page->free || page_collect(page)) {
      if (page->capacity - page->used >= page->reserved / 8) return page;
      if (carvable != NULL) continue;
      if (rotated || !next) return page;
      rotated = true;
      page_queue_remove(q, page);
      page_queue_push_back(q, page);
      continue;
    }
    if (page->capacity < page->reserved) {
      if (carvable == NULL) carvable = page;
      continue;
    }
    heap_page_to_full(heap, page);
    if (!(page->flags & PAGE_IN_FULL) && page_collect(page)) return page; /* it came straight back */
  }
  if (carvable != NULL) {
    if (unlikely(carvable->capacity == 0)) heap_trim_refault(heap, carvable);
    page_extend(carvable);
  }
  return carvable;
}

/*
** Finds a page of class `cls` with a free block and makes it the first of
** its queue (and so the direct page): the first page whose lists yield
** blocks, or that can be carved further; full pages met on the way leave
** the queue for good.  Drains the notified pages first, and every 64th
** call purges what is due.  Returns NULL when the OS has no memory.
*/
hak_page_t *heap_find_page(hak_heap_t *heap, unsigned cls) {
  page_queue_t *q = &heap->queues[cls];
  hak_page_t *page;
  if (atomic_load_relaxed(&heap->notified)) heap_drain_notified(heap);
  if ((heap->slow_ticks & 63) == 0) { /* a tick (heap_tick): own, idle and orphaned segments */
    keep_tick(heap);
    segment_purge(heap, false);
    heap_orphans_purge();
    heap_purge_blocks(heap, false);
    heap_trim_empty(heap);
  }

  page = heap_scan_queue(heap, cls);
  if (!page) page = heap_page_new(heap, cls, class_size[cls], class_page_slices(cls));
  if (!page) { /* out of memory: the scan may have moved the direct page to full */
    heap_set_direct(heap, cls);
    return NULL;
  }
  if (q->first != page) {
    page_queue_remove(q, page);
    page_queue_push_front(q, page);
  }
  heap_set_direct(heap, cls); /* returns at once when the page was first */
  return page;
}

/*
** A large block: a span of its own, handed out at once, kept in `full`.
** Its size is rounded like the classes (8 steps per doubling), not to whole
** slices: the span's tail beyond it is never touched, so never resident.
** Secure builds make the OS page right after it a guard (sizes above
** HAK_MEDIUM_MAX are multiples of 4 KiB); segment_page_free lifts it.
*/
void *heap_large_alloc(hak_heap_t *heap, size_t size) {
  if (atomic_load_relaxed(&heap->notified)) heap_drain_notified(heap);
  /* A heap that allocates only large blocks (a Lua state's private heap,
  ** whose small blocks live in its region) rarely passes heap_find_page's
  ** periodic purge: its due purges go here, before the span is chosen. */
  if (heap->purge_pending) segment_purge_heap(heap, false);
  size_t bsize = class_large_size(size);
  unsigned slices = (unsigned)((bsize + SECURE_GUARD + HAK_SLICE_SIZE - 1) >> HAK_SLICE_SHIFT);
  hak_page_t *page = heap_page_new(heap, HAK_CLASS_LARGE, bsize, slices);
  if (!page) return NULL;
  if (SECURE_GUARD) os_guard(page->start + bsize, SECURE_GUARD, true);
  hak_block_t *b = page->free;
  block_forget(b);
  page->free = NULL;
  page->used = 1;
  heap_page_insert(heap, page);
  return b;
}

/* ---- collect, adopt, absorb ---------------------------------------------- */

/* Gives every empty page of the heap back to its segment.  Only the other
** threads' frees are taken back: `used` already counts the owner's, and
** appending local_free to a non-empty free list walks it (at a thread's
** exit, 4.5% of mstress T=2's time, perf). */
static void heap_free_empty_pages(hak_heap_t *heap) {
  heap_drain_notified(heap);
  for (unsigned c = 0; c < HAK_CLASSES; c++) {
    hak_page_t *next;
    for (hak_page_t *page = heap->queues[c].first; page; page = next) {
      next = page->next;
      page_collect_thread_free(page);
      if (page->used == 0) {
        page_queue_remove(&heap->queues[c], page);
        segment_page_free(page);
      }
    }
    heap_set_direct(heap, c);
  }
}

/*
** The free blocks of more than an OS page in the heap's class queues give
** back their memory past the first OS page (page_purge_free_blocks), those
** free for a round at least: a round is 100 purge delays (1 s by default),
** long beside the delay of whole slices, because these pages are in use
** and their free blocks likely to be taken again.  `now`: every free block
** at once (hak_collect(true), a thread's exit).  Full pages have none.
*/
#define BLOCKS_PURGE_ROUND 100
static void heap_purge_blocks(hak_heap_t *heap, bool now) {
  long delay = hak_option_get(HAK_OPT_PURGE_DELAY);
  if (delay < 0 && !now) return; /* never, but when forced */
  uint64_t ms = os_now_ms();
  if (!now && ms < heap->blocks_purge_at) return;
  heap->blocks_purge_at = ms + (uint64_t)(delay > 0 ? delay : 0) * BLOCKS_PURGE_ROUND;
  for (unsigned c = 0; c < HAK_CLASSES; c++) {
    if (class_size[c] <= HAK_OS_PAGE) continue;
    for (hak_page_t *page = heap->queues[c].first; page; page = page->next)
      page_purge_free_blocks(page, now);
  }
}

/*
** The one page a class keeps when it empties (heap_page_retire) holds the
** blocks it carved at its busiest, resident, until the class is used again:
** a Lua script's string buffers of 4.5-8 KiB, one or two of each class for
** a moment, left 160 KiB of such pages in json's heap at its peak.  A page
** left untouched for a whole purge delay starts again uncarved
** (page_reset_empty).  Two looks a delay apart: the first finds it empty
** and takes its local frees back into `free`; the second resets it if it
** is still empty and nothing was freed into it since (local_free still
** empty), so a page in use between the looks, emptied again by each look,
** is left alone.  The slow path gets a page's local frees back only when
** `free` is empty, and then hands a block out, so `used` is not 0 either.
** A reset page carved again within two delays is a refault: it doubles
** the heap's purge delay (segment_refaulted), which paces these looks too.
** The runtime's request tasks, a state each, made 200 resets a second
** before (each class's page empty at both instants of two looks, used
** in between), every one a madvise on a worker and a page fault after.
*/
#define TRIM_SEEN 1    /* page->empty_seen: found empty by the last look */
#define TRIM_RESET 2   /* page->empty_seen: reset, not carved since */
static void heap_trim_empty(hak_heap_t *heap) {
  long delay = segment_heap_delay(heap);
  if (delay < 0) return;
  uint64_t ms = os_now_ms();
  if (ms < heap->trim_at) return;
  heap->trim_at = ms + (uint64_t)delay;
  for (unsigned c = 0; c < HAK_CLASSES; c++) {
    hak_page_t *page = heap->queues[c].first;
    if (page == NULL || page->capacity == 0) continue;
    if (page->used != 0) {
      page->empty_seen = 0;
    } else if (page->local_free != NULL || !(page->empty_seen & TRIM_SEEN)) {
      page_collect(page); /* its local frees: another one by the next look is a use */
      page->empty_seen = TRIM_SEEN;
    } else {
      page->empty_seen = TRIM_RESET;
      page->trimmed_at = (uint32_t)ms;
      page_reset_empty(page);
    }
  }
}

/* The slow path carves a page again: if a trim reset it, the class wanted
** its memory back soon after (see above). */
static void heap_trim_refault(hak_heap_t *heap, hak_page_t *page) {
  if (page->empty_seen == TRIM_RESET) {
    uint64_t now = os_now_ms(); /* the reset's time from its low 32 bits */
    segment_refaulted(heap, now - (uint32_t)((uint32_t)now - page->trimmed_at));
  }
  page->empty_seen = 0;
}

/* Frees every empty page; purges what is due (force: everything, and
** unmaps the empty segments and the cache). */
static void heap_collect(hak_heap_t *heap, bool force) {
  heap_free_empty_pages(heap);
  heap_purge_blocks(heap, force);
  segment_purge(heap, force);
}

/*
** Takes an abandoned segment: its pages join this heap's queues, the empty
** ones are freed.  Returns false when the whole segment was empty and got
** freed.
*/
static bool heap_adopt_segment(hak_heap_t *heap, hak_segment_t *seg) {
  segment_set_owner(seg, heap);
  unsigned live = 0;
  for (unsigned i = 1; i < HAK_SLICES; i++) {
    hak_page_t *page = &seg->pages[i];
    if (page->slice_count == 0) continue;
    page->heap = heap;
    page->flags = 0;
    page_set_notify(page, NOTIFY_NONE);
    page_collect(page);
    if (page->used) live++;
  }
  if (live == 0) { /* every block came back while nobody owned it */
    segment_free(seg);
    return false;
  }
  segment_attach(heap, seg);
  for (unsigned i = 1; i < HAK_SLICES; i++) {
    hak_page_t *page = &seg->pages[i];
    if (page->slice_count == 0) continue;
    if (page->used == 0) segment_page_free(page); /* cannot empty seg: live > 0 */
    else heap_page_insert(heap, page);
  }
  return true;
}

/*
** Stops every remote freer from touching `heap` through its pages.  Drain
** first: draining moves pages back to NONE.  A page a freer pushes between
** the drain and its state change stays on a list nobody reads again, which
** is harmless: the caller re-queues every page from scratch.
*/
static void heap_detach_pages(hak_heap_t *heap, notify_state_t state) {
  heap_drain_notified(heap);
  for (hak_segment_t *seg = heap->segments; seg; seg = seg->next)
    for (unsigned i = 1; i < HAK_SLICES; i++)
      if (seg->pages[i].slice_count) page_set_notify(&seg->pages[i], state);
}

/* Moves every page out of `from` into `to` (same thread). */
static void heap_absorb(hak_heap_t *to, hak_heap_t *from) {
  heap_detach_pages(from, NOTIFY_NONE);
  hak_segment_t *seg;
  while ((seg = from->segments) != NULL) {
    segment_list_remove(&from->segments, seg);
    segment_attach(to, seg);
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      if (page->slice_count == 0) continue;
      page->flags = 0;
      page->next = page->prev = NULL;
      heap_page_insert(to, page);
    }
  }
  huge_move_all(to, from);
  heap_set_direct_all(to);
}

/*
** Thread exit: the empty pages go back to their segments, the empty
** segments to the cache, unpurged and mapped (the next thread takes them
** warm; what nobody takes is purged at its deadline), every segment with
** live blocks to the abandoned list (its free slices purged, see
** segment_abandon).  Nothing is unmapped.
*/
static void heap_abandon(hak_heap_t *heap) {
  /* the purges that are due, the cache's included: short-lived threads
  ** may never reach a periodic purge */
  heap_collect(heap, false);
  if (hak_option_get(HAK_OPT_PURGE_DELAY) >= 0) heap_purge_blocks(heap, true); /* nobody takes them soon */
  heap_detach_pages(heap, NOTIFY_NEVER);
  hak_segment_t *seg;
  while ((seg = heap->segments) != NULL) {
    segment_list_remove(&heap->segments, seg);
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      page->heap = NULL;
      page->next = page->prev = NULL;
    }
    if (segment_is_empty(seg)) segment_free(seg);
    else segment_abandon(seg);
  }
  huge_move_all(NULL, heap);
}

/* ---- the heap API -------------------------------------------------------- */

hak_heap_t *hak_heap_new(void) {
  hak_heap_t *heap = heap_create(false);
  if (!heap) errno = ENOMEM;
  return heap;
}

hak_heap_t *hak_heap_default(void) {
  hak_heap_t *heap = thread_heap;
  return heap != &heap_empty ? heap : thread_heap_init();
}

void hak_heap_delete(hak_heap_t *heap) {
  if (!heap || heap == &heap_empty) return;
  hak_heap_t *to = hak_heap_default();
  if (heap == to) return; /* the default heap lives as long as its thread */
  if (to) heap_absorb(to, heap);
  heap_release_struct(heap);
}

void hak_heap_destroy(hak_heap_t *heap) {
  if (!heap || heap == &heap_empty || heap->is_default) return;
  hak_segment_t *seg;
  while ((seg = heap->segments) != NULL) {
    segment_list_remove(&heap->segments, seg);
    segment_free(seg);
  }
  huge_destroy_all(heap);
  heap_release_struct(heap);
}

/* Every segment's tid follows heap->tid: 0 while the heap is in transit. */
static void heap_set_tid(hak_heap_t *heap, uintptr_t tid) {
  heap->tid = tid;
  for (hak_segment_t *seg = heap->segments; seg; seg = seg->next) segment_set_owner(seg, heap);
  huge_set_owner_all(heap);
}

void hak_heap_release(hak_heap_t *heap) {
  if (heap && heap != &heap_empty && !heap->is_default) heap_set_tid(heap, 0);
}

void hak_heap_claim(hak_heap_t *heap) {
  if (heap && heap != &heap_empty && !heap->is_default) heap_set_tid(heap, thread_id_assign());
}

/* ---- heaps of exited threads ---------------------------------------------- */

/*
** A thread that exits leaves its default heap whole, owned by nobody (its
** segments' tid 0: every free into it is a remote free, as while a heap is
** handed over), on a short list of orphans; the next thread to start takes
** one as its own: pages with free blocks, still resident, a direct table
** filled, and the segments of the blocks still live, with no purge, no
** mmap and no walk of descriptors.  Abandoning every segment at exit
** instead (its free slices purged then, the segments adopted a few at a
** time by the threads after) made churn (bench/threads, T=8 N=240) purge
** 345 MiB in 2,600 madvise calls and fault it back in.
**
** Beyond HAKMEM_ORPHAN_HEAPS (8) the heap is abandoned (heap_abandon).  An
** orphan's empty pages go back to its segments when it is left, what is
** overdue is purged, and the rest waits for its deadline, or, when its
** thread emptied at least ORPHAN_GRACE_MIN of pages at exit, for a grace
** (HAKMEM_ORPHAN_GRACE, 250 ms from the exit, never below the heap's purge
** delay); then any heap's periodic purge purges it (heap_orphans_purge).
** The grace is for threads that come and go (pools, request-per-thread
** servers, test runners): with the plain 10 ms delay, mstress (T=2) purged
** thread 0's heap 10 ms after it exited and the next round's thread took it
** 30 ms later and faulted it all back in.  The thread that takes an orphan
** gets one delay to reuse what the grace kept (segment_forget_refaults).
** Below 1 MiB a refault costs little (256 faults), and the threads of
** test_churn, which leave a few blocks each, would hold memory for nothing.
** The grace is bounded in bytes: beyond ORPHAN_GRACE_MAX for all orphans
** together, the oldest lose theirs and purge at their slices' deadlines.
** hak_collect(true) takes every orphan.  The list is guarded by pool_lock,
** under which nothing else is locked.
*/
#define ORPHAN_GRACE_MAX ((size_t)32 << 20) /* bytes all orphans' grace may hold */
#define ORPHAN_GRACE_MIN ((size_t)1 << 20)  /* emptied at exit, to earn a grace */

static hak_heap_t *orphans;  /* linked through pool_next, newest first */
static unsigned orphan_count;
static size_t orphan_dirty;  /* the orphans' orphan_dirty in grace, summed */
static hak_atomic_t orphan_purge_at; /* earliest deadline among them; 0: none */

static void heap_orphan_deadline(uint64_t at) {
  uintptr_t now = atomic_load_relaxed(&orphan_purge_at);
  if (at && (now == 0 || at < now)) atomic_store_relaxed(&orphan_purge_at, at);
}

/* The orphan's grace ends now (pool_lock held, or the heap off the list). */
static void heap_orphan_end_grace(hak_heap_t *heap) {
  if (heap->orphan_until) orphan_dirty -= heap->orphan_dirty;
  heap->orphan_until = 0;
  heap->orphan_dirty = 0;
}

/* Beyond the bytes in grace, the oldest orphans lose theirs (pool_lock held). */
static void heap_orphans_trim(void) {
  while (orphan_dirty > ORPHAN_GRACE_MAX) {
    hak_heap_t *oldest = NULL;
    for (hak_heap_t *heap = orphans; heap; heap = heap->pool_next)
      if (heap->orphan_until) oldest = heap;
    heap_orphan_end_grace(oldest);
    atomic_store_relaxed(&orphan_purge_at, 1); /* its slices' own deadlines */
  }
}

/* Thread exit (hak_thread_done): leaves the heap to the next thread. */
void heap_leave(hak_heap_t *heap) {
  keep_flush(heap);
  size_t dirty = segment_heap_dirty(heap);
  heap_free_empty_pages(heap);
  size_t now_dirty = segment_heap_dirty(heap); /* less if an empty segment left */
  size_t emptied = now_dirty > dirty ? now_dirty - dirty : 0; /* its pages at the end */
  long delay = segment_heap_delay(heap), grace = hak_option_get(HAK_OPT_ORPHAN_GRACE);
  /* 0 and -1 (at once, never) as before */
  bool graced = delay > 0 && grace > 0 && emptied >= ORPHAN_GRACE_MIN;
  uint64_t due = segment_purge_heap(heap, false); /* what is overdue */
  heap_set_tid(heap, 0);
  long max = hak_option_get(HAK_OPT_ORPHAN_HEAPS);
  pthread_mutex_lock(&pool_lock);
  bool kept = max > 0 && orphan_count < (unsigned long)max;
  if (kept) {
    heap->pool_next = orphans;
    orphans = heap;
    orphan_count++;
    heap->orphan_until = 0;
    heap->orphan_dirty = 0;
    if (graced && heap->purge_pending) {
      heap->orphan_until = os_now_ms() + (uint64_t)(grace > delay ? grace : delay);
      heap->orphan_dirty = segment_heap_dirty(heap);
      orphan_dirty += heap->orphan_dirty;
      due = heap->orphan_until;
      heap_orphans_trim();
    }
    heap_orphan_deadline(due);
  }
  pthread_mutex_unlock(&pool_lock);
  if (kept) return;
  heap_abandon(heap);
  heap_release_struct(heap);
}

/* An orphan for a thread that starts, made its own; NULL if none. */
hak_heap_t *heap_take_orphan(void) {
  pthread_mutex_lock(&pool_lock);
  hak_heap_t *heap = orphans;
  if (heap) {
    orphans = heap->pool_next;
    orphan_count--;
    heap_orphan_end_grace(heap);
  }
  pthread_mutex_unlock(&pool_lock);
  if (heap) {
    heap->pool_next = NULL;
    heap_set_tid(heap, thread_id_assign());
    segment_forget_refaults(heap); /* another thread's pattern */
  }
  return heap;
}

/* The orphans' purges whose deadline passed, their grace over (slices only:
** no segment changes hands, so no other lock is needed). */
static void heap_orphans_purge(void) {
  uint64_t at = atomic_load_relaxed(&orphan_purge_at);
  if (at == 0 || os_now_ms() < at) return;
  pthread_mutex_lock(&pool_lock);
  atomic_store_relaxed(&orphan_purge_at, 0);
  uint64_t now = os_now_ms();
  for (hak_heap_t *heap = orphans; heap; heap = heap->pool_next) {
    if (now < heap->orphan_until) {
      heap_orphan_deadline(heap->orphan_until);
      continue;
    }
    heap_orphan_end_grace(heap);
    heap_orphan_deadline(segment_purge_heap(heap, false));
  }
  pthread_mutex_unlock(&pool_lock);
}

/* Calls fn on every segment of every orphan, with the list locked
** (segment_stats_walk, which holds all_lock and idle_lock: the fork order). */
void heap_orphans_each_segment(void (*fn)(hak_segment_t *, void *), void *arg) {
  pthread_mutex_lock(&pool_lock);
  for (hak_heap_t *heap = orphans; heap; heap = heap->pool_next)
    for (hak_segment_t *seg = heap->segments; seg; seg = seg->next) fn(seg, arg);
  pthread_mutex_unlock(&pool_lock);
}

/* Takes every orphan off the list (hak_collect(true)). */
static hak_heap_t *heap_take_orphans(void) {
  pthread_mutex_lock(&pool_lock);
  hak_heap_t *list = orphans;
  orphans = NULL;
  orphan_count = 0;
  orphan_dirty = 0;
  atomic_store_relaxed(&orphan_purge_at, 0);
  pthread_mutex_unlock(&pool_lock);
  return list;
}

/*
** A thread without a heap (it never allocated: a thread pool's janitor, a
** monitoring thread) has no heap to adopt abandoned segments into, and
** should not get one just to collect.  It collects each segment where it
** is: nobody owns a segment while it is off the list, so the taker acts as
** its owner, takes what remote freers returned, frees the pages that
** emptied, frees the segment if nothing is left (into the cache, which the
** caller then unmaps), else purges its free slices and abandons it again.
*/
static void heap_collect_abandoned(void) {
  hak_segment_t *live = NULL, *seg;
  while ((seg = segment_take_abandoned()) != NULL) {
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      if (page->slice_count == 0) continue;
      page_collect(page);
      if (page->used == 0) segment_page_free(page); /* seg->heap is NULL: no heap work */
    }
    if (segment_is_empty(seg)) {
      segment_free(seg);
      continue;
    }
    segment_purge_free(seg);
    seg->next = live;
    live = seg;
  }
  while ((seg = live) != NULL) {
    live = seg->next;
    segment_abandon(seg);
  }
}

/*
** force: everything back to the OS now.  With a heap: its empty pages, then
** every orphan absorbed and every abandoned segment adopted (to free what
** is empty in them), every free slice purged, empty segments and the cache
** unmapped.  Without one (a thread that never allocated): the orphans
** abandoned, the abandoned segments collected where they are, the cache
** unmapped.  Not force: the heap's empty pages, and the purges whose
** deadline passed, the orphans' included.
*/
void hak_collect(bool force) {
  hak_heap_t *heap = thread_heap;
  if (!force) heap_orphans_purge();
  hak_heap_t *orphan = force ? heap_take_orphans() : NULL, *next;
  for (; orphan; orphan = next) {
    next = orphan->pool_next;
    if (heap != &heap_empty) heap_absorb(heap, orphan);
    else heap_abandon(orphan);
    heap_release_struct(orphan);
  }
  if (heap == &heap_empty) {
    if (force) {
      heap_collect_abandoned();
      segment_purge_idle(true);
    }
    return;
  }
  keep_flush(heap);
  heap_collect(heap, force);
  if (force) {
    hak_segment_t *seg;
    while ((seg = segment_take_abandoned()) != NULL) heap_adopt_segment(heap, seg);
    heap_collect(heap, true);
  }
}
