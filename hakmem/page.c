/*
** page.c -- one page: carving blocks, the three free lists, page queues,
** and the remote-free protocol.
**
** Why three lists: the allocation fast path pops `free` and never looks
** elsewhere; the owner's frees go to `local_free` with plain stores (no
** atomics, and they do not disturb the list being popped); other threads
** push on `thread_free` with a CAS.  When `free` runs dry the slow path
** moves the other two into it in one step each.
*/
#include <sched.h>

#include "internal.h"

/* The page every empty pages_direct slot points to: never has a free block. */
hak_page_t page_empty;

/*
** A page of a class above HAK_PAGE_SMALL_MAX starts 0 to 63 cache lines
** into its span, chosen by the span's address.  Why: every span starts at
** a 64 KiB multiple, so without a colour the n-th block of a class has the
** same cache set (address bits 6-11 for L1, 6-15 for L2) in every page of
** it: for the 4 KiB multiples among the 9-32 KiB classes, the first and
** last lines of every block land in one or a few sets and evict each other
** long before the caches are full (bench/threads tight, a third of whose
** requests are 1-32 KiB: 43.6 -> 50.4 Mops/s at T=1, median of 9
** interleaved runs; tcmalloc 56.0).  It costs at most one block of the 31
** to 113 a page holds, in address space only: the colour's bytes are never
** touched.  Blocks stay 64-byte aligned; aligned requests above 64 bytes
** take the uncoloured twins of these classes instead (class_aligned).
** 1-slice pages are not coloured: a block fewer there is 1/8 to 1/64 of
** the page, and colouring them cost mstress T=1 2.3 MiB of peak RSS (more
** pages, more purged slices faulted back).
*/
size_t page_colour(const uint8_t *span, unsigned cls) {
  if (cls >= HAK_CLASS_TWIN_FIRST || class_size[cls] <= HAK_PAGE_SMALL_MAX) return 0;
  uint64_t h = ((uint64_t)(uintptr_t)span >> HAK_SLICE_SHIFT) * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 58) % HAK_PAGE_COLOURS * HAK_PAGE_COLOUR_STEP;
}

/* `page->start` is its span's first byte (segment_take_span). */
void page_init(hak_page_t *page, hak_heap_t *heap, unsigned cls, size_t block_size) {
  page->heap = heap;
  page->class_idx = (uint8_t)cls;
  page->block_size = block_size;
  size_t colour = page_colour(page->start, cls);
  page->start += colour;
  /* a large page holds its one block, whatever room its span has left
  ** (secure builds add a guard page after it) */
  page->reserved = cls == HAK_CLASS_LARGE
                      ? 1
                      : (uint32_t)((((size_t)page->slice_count << HAK_SLICE_SHIFT) - colour) / block_size);
  page->capacity = 0;
  page->used = 0;
  page->flags = 0;
  page->empty_seen = 0; /* not a look of the page this descriptor held before */
  page->free = NULL;
  page->local_free = NULL;
  page->notify_next = NULL;
  atomic_store_relaxed(&page->thread_free, NOTIFY_NONE);
  secure_page_init(page);
  page_extend(page);
}

/*
** Carves the next blocks of a page into `free`, in address order (secure
** builds: in a random order, secure_carve): one OS page of them, or one
** block if a block is bigger.  Carving writes a link into every block, so
** whatever it reaches becomes resident: a class a script barely uses costs
** it one OS page, and a page's carved blocks stay within one OS page of
** its peak use.  Carves that doubled up to 32 KiB held 120-150 KiB more
** of bench/threads bignum (2.54 against 2.42 MiB peak RSS), for 0.5-1.7%
** fewer instructions there and in tight (callgrind): the slow path that
** carves is rare beside the fault its first touch takes anyway.
*/
void page_extend(hak_page_t *page) {
  hak_assert(page->free == NULL);
  size_t bsize = page->block_size;
  uint32_t n = bsize < HAK_CARVE ? (uint32_t)(HAK_CARVE / bsize) : 1;
  if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
  if (n == 0) return;
  uint8_t *first = page->start + (size_t)page->capacity * bsize;
#if HAK_SECURE
  page->free = secure_carve(page, first, n);
#else
  uint8_t *p = first;
  for (uint32_t i = 1; i < n; i++, p += bsize) block_set_next(page, (hak_block_t *)p, (hak_block_t *)(p + bsize));
  block_set_next(page, (hak_block_t *)p, NULL);
  page->free = (hak_block_t *)first;
#endif
  page->capacity += n;
  /* Counted from the span, without the colour: a slice is marked once the
  ** carving reaches it past its first OS page, not when the block before
  ** spills its colour's bytes (at most 4032) into it.  Marking it at the
  ** spill made slices look warm that held one OS page, and class pages
  ** that took them faulted: mstress T=1 2,090 faults and 8.6 MiB peak RSS
  ** against 1,760 and 7.0.  The OS page past the counted slices goes back
  ** when the page does: segment_page_purge_spill). */
  segment_commit(page, (size_t)page->capacity * bsize);
}

/* Appends list `head` to `free` (usually empty, so usually one store). */
static void page_append_free(hak_page_t *page, hak_block_t *head) {
  if (!page->free) {
    page->free = head;
    return;
  }
  hak_block_t *tail = head, *next;
  while ((next = block_next(page, tail)) != NULL) tail = next;
  block_set_next(page, tail, page->free);
  page->free = head;
}

/*
** Takes the whole thread_free list, keeping its notify state: a CAS to
** "empty list, same state", retried while remote freers push.  The word
** counts the list's blocks (types.h), so a list that lands on an empty
** `free` is taken whole; one that must be appended, or whose count
** saturated, is walked.
*/
void page_collect_thread_free(hak_page_t *page) {
  uintptr_t tf;
  do {
    tf = atomic_load_relaxed(&page->thread_free);
    if (tf_block(tf) == NULL) return;
  } while (!atomic_cas_full(&page->thread_free, tf, tf & NOTIFY_MASK));
  hak_block_t *head = tf_block(tf);
  uintptr_t count = tf_count(tf);
  /* Secure and debug builds walk every list: a block freed twice by other
  ** threads made it a loop, and the walk counts more blocks than are in
  ** use.  Release builds take a list whole, as they take a local double
  ** free, unchecked (10% of the thread churn benchmark's time). */
  if (page->free == NULL && count < TF_COUNT_MAX && !HAK_SECURE && !HAK_DEBUG) {
    page->used -= (uint32_t)count;
    page->free = head;
    return;
  }
  count = 1;
  hak_block_t *tail = head, *next;
  while ((next = block_next(page, tail)) != NULL) {
    tail = next;
    if (unlikely(++count > page->used)) /* a loop */
      hak_fatal("heap corruption: thread_free list of page %p holds more blocks than are in use, "
                "%p among them (a double free from another thread?)", (void *)page->start, (void *)tail);
  }
  page->used -= (uint32_t)count;
  block_set_next(page, tail, page->free);
  page->free = head;
}

/* Other threads' frees first: onto an empty free list they go whole, and
** it is the owner's own frees, likely still in its cache, that a walk
** appends when both lists have blocks (the other order walked the remote
** chain, blocks other cores wrote: 4.3% of churn's time, perf). */
bool page_collect(hak_page_t *page) {
  page_collect_thread_free(page);
  if (page->local_free) {
    page_append_free(page, page->local_free);
    page->local_free = NULL;
  }
  return page->free != NULL;
}

/* ---- free blocks' memory --------------------------------------------------- */

/*
** A page lives as long as one block of it does, and carving only grows: a
** class whose live count swings keeps its highest count carved and
** resident.  In a page of 1 MiB of 8-32 KiB blocks that is most of it (the
** thread soak: those pages held 5.5 MiB of live blocks and 19 carved after
** a minute, 26 after four).  So a free block of more than an OS page gives
** back the OS pages past its first (which holds its link, and its tag
** here): the list stays intact, and the block comes back zero-filled.
**
** The tag in the block's second word says what a walk saw: free once
** (seen), or purged already (done).  A block is purged when a walk finds it
** seen, free since the walk before; `now` purges at the first sighting.  An
** allocation leaves the tag, and the program usually overwrites it; a
** purged block that comes back with its tag unchanged is not purged again,
** which costs memory, never correctness.
*/
#define PURGE_SEEN ((uintptr_t)0x5ee4f2eeb10c6ed1ull)
#define PURGE_DONE ((uintptr_t)0xd04eb10c6a3e9a11ull)

static void page_purge_list(hak_page_t *page, hak_block_t *b, bool now) {
  for (; b; b = block_next(page, b)) {
    uintptr_t *tag = (uintptr_t *)b + 1;
    uintptr_t lo = ((uintptr_t)(tag + 1) + HAK_OS_PAGE - 1) & ~(uintptr_t)(HAK_OS_PAGE - 1);
    uintptr_t hi = ((uintptr_t)b + page->block_size) & ~(uintptr_t)(HAK_OS_PAGE - 1);
    if (hi <= lo || *tag == ((uintptr_t)b ^ PURGE_DONE)) continue;
    if (!now && *tag != ((uintptr_t)b ^ PURGE_SEEN)) {
      *tag = (uintptr_t)b ^ PURGE_SEEN;
      continue;
    }
    os_purge((void *)lo, hi - lo); /* counts them in stats.purged */
    *tag = (uintptr_t)b ^ PURGE_DONE;
  }
}

void page_purge_free_blocks(hak_page_t *page, bool now) {
  if (page->block_size <= HAK_OS_PAGE) return;
  page_purge_list(page, page->free, now);
  page_purge_list(page, page->local_free, now);
}

/*
** An empty page (used == 0: every block it carved is on `free` or
** `local_free`, none handed out, so none can come back through
** thread_free) forgets its blocks and gives their OS pages back: it starts
** again uncarved, and the next allocation carves its first OS page anew.
** For the one page a class keeps when it empties (heap_page_retire), which
** otherwise holds its highest carve resident for good.
*/
void page_reset_empty(hak_page_t *page) {
  hak_assert(page->used == 0 && tf_block(atomic_load_relaxed(&page->thread_free)) == NULL);
  uintptr_t lo = (uintptr_t)page->start & ~(uintptr_t)(HAK_OS_PAGE - 1);
  uintptr_t hi = ((uintptr_t)page->start + (size_t)page->capacity * page->block_size + HAK_OS_PAGE - 1) &
                 ~(uintptr_t)(HAK_OS_PAGE - 1);
  page->free = NULL;
  page->local_free = NULL;
  page->capacity = 0;
  if (hi > lo) os_purge((void *)lo, hi - lo);
}

/* ---- queues ------------------------------------------------------------- */

void page_queue_push_front(page_queue_t *q, hak_page_t *page) {
  page->prev = NULL;
  page->next = q->first;
  if (q->first) q->first->prev = page;
  else q->last = page;
  q->first = page;
}

void page_queue_push_back(page_queue_t *q, hak_page_t *page) {
  page->next = NULL;
  page->prev = q->last;
  if (q->last) q->last->next = page;
  else q->first = page;
  q->last = page;
}

void page_queue_remove(page_queue_t *q, hak_page_t *page) {
  if (page->prev) page->prev->next = page->next;
  else q->first = page->next;
  if (page->next) page->next->prev = page->prev;
  else q->last = page->prev;
  page->next = page->prev = NULL;
}

/* ---- the remote-free protocol ------------------------------------------ */

/*
** Owner side: sets the notify state, waiting while a remote freer is busy
** pushing the page on the heap's notified list (it finishes in a few
** instructions).  After this returns with NONE or NEVER, no freer will
** touch the heap through this page any more.  The load acquires: when it
** sees a freer's BUSY -> NONE, the owner must also see that freer done
** with page->heap and notify_next before it rewrites them.
*/
void page_set_notify(hak_page_t *page, notify_state_t state) {
  for (;;) {
    uintptr_t tf = atomic_load_acquire(&page->thread_free);
    if ((tf & NOTIFY_MASK) == NOTIFY_BUSY) {
      sched_yield();
      continue;
    }
    if ((tf & NOTIFY_MASK) == (uintptr_t)state) return;
    if (atomic_cas_full(&page->thread_free, tf, (tf & ~NOTIFY_MASK) | state)) return;
  }
}

/* Pushes `page` on the heap's notified stack (any thread). */
void page_notify(hak_heap_t *heap, hak_page_t *page) {
  for (;;) {
    uintptr_t head = atomic_load_relaxed(&heap->notified);
    page->notify_next = (hak_page_t *)head;
    if (atomic_cas_full(&heap->notified, head, (uintptr_t)page)) return;
  }
}

/*
** fork copies only its caller: a remote freer that was between its CAS to
** BUSY and the one back to NONE (page_push_remote_list) is gone in the
** child, and the page would stay BUSY, so that the owner's next free into
** it, or its heap's exit, waited for good.  Only this thread runs: the
** state becomes what the freer would have left.  NONE if the page made it
** onto its heap's notified stack (the owner will find it there), else
** WANTED, as before the freer came (the next remote free notifies).
*/
void page_fork_child(hak_page_t *page) {
  uintptr_t tf = atomic_load_relaxed(&page->thread_free);
  if ((tf & NOTIFY_MASK) != NOTIFY_BUSY) return;
  notify_state_t state = NOTIFY_WANTED;
  for (hak_page_t *p = (hak_page_t *)atomic_load_relaxed(&page->heap->notified); p; p = p->notify_next)
    if (p == page) state = NOTIFY_NONE;
  atomic_store_relaxed(&page->thread_free, (tf & ~NOTIFY_MASK) | state);
}

/*
** A free from a thread that does not own the page.  While the thread has
** a remote batch open (remote.c) the block is held there and pushed later
** with its page's other blocks.
*/
void page_push_remote(hak_page_t *page, hak_block_t *block) {
  remote_frees++;
  if (remote_batch_depth != 0) {
    remote_batch_add(page, block);
    return;
  }
  page_push_remote_list(page, block, block, 1);
}

/*
** Pushes the chain first..last on thread_free.  If the page is full
** (NOTIFY_WANTED) its owner is not looking at it, so the first remote
** freer also pushes the page on the owner heap's `notified` stack: the
** owner finds it there on its next slow path, without scanning its full
** pages.  BUSY keeps the heap alive while we push (abandoning or deleting
** a heap waits for BUSY to clear).
*/
void page_push_remote_list(hak_page_t *page, hak_block_t *first, hak_block_t *last, uint32_t n) {
  uintptr_t tf, state;
  remote_pushes++;
  for (;;) {
    tf = atomic_load_relaxed(&page->thread_free);
    state = tf & NOTIFY_MASK;
    if (state == NOTIFY_BUSY) {
      sched_yield();
      continue;
    }
    block_set_next(page, last, tf_block(tf));
    uintptr_t count = tf_count(tf) + n;
    if (count > TF_COUNT_MAX) count = TF_COUNT_MAX; /* saturated: the owner walks */
    uintptr_t next_state = state == NOTIFY_WANTED ? NOTIFY_BUSY : state;
    if (atomic_cas_full(&page->thread_free, tf, (uintptr_t)first | count << TF_COUNT_SHIFT | next_state)) break;
  }
  if (state != NOTIFY_WANTED) return;
  page_notify(page->heap, page);
  for (;;) { /* BUSY -> NONE; the owner may take the list meanwhile */
    tf = atomic_load_relaxed(&page->thread_free);
    if (atomic_cas_full(&page->thread_free, tf, (tf & ~NOTIFY_MASK) | NOTIFY_NONE)) break;
  }
}

/* Is `block` in `list`?  A list longer than the page's blocks is a loop. */
static bool page_list_contains(hak_page_t *page, hak_block_t *list, hak_block_t *block) {
  uint32_t n = 0;
  for (hak_block_t *b = list; b; b = block_next(page, b)) {
    if (b == block) return true;
    if (++n > page->capacity)
      hak_fatal("heap corruption: a free list of page %p loops (a double free?)", (void *)page->start);
  }
  return false;
}

/* Debug and secure builds' double-free check (owner thread only). */
bool page_contains_free(hak_page_t *page, hak_block_t *block) {
  hak_block_t *remote = tf_block(atomic_load_acquire(&page->thread_free));
  return page_list_contains(page, page->free, block) || page_list_contains(page, page->local_free, block) ||
         page_list_contains(page, remote, block);
}
