/*
** segment.c -- segments: 4 MiB aligned mappings cut into 64 KiB slices.
**
** A heap takes spans of slices from its segments to make pages and gives
** them back when the pages empty.  Freed slices stay resident until their
** purge deadline (HAKMEM_PURGE_DELAY) so that a page freed and soon needed
** again costs no page faults; then they are purged (MADV_DONTNEED).  A heap
** keeps one segment whose slices are all free to absorb churn; the others
** go to a small process-wide cache, from which the next new segment of any
** heap comes (a thread that starts reuses what an exited one left, warm,
** with no mmap), and are unmapped only when the cache is full.
**
** The delay adapts per heap.  A heap that purges slices and soon needs
** them again pays a page fault per 4 KiB for memory it gave back for
** nothing: glibc's thread benchmark shape (bench/threads tight, blocks up
** to 32 KiB) ran 3.4x slower with a fixed 10 ms delay than with none
** (1.54 s against 0.46 s, 245 madvise calls, 0.16 s of system time).  So a
** refault of slices that a timed purge returned, within twice the delay
** after it (memory given back and needed again at once), doubles the delay
** (up to PURGE_DELAY_MAX), and a second without one halves it again, never
** below HAKMEM_PURGE_DELAY.  Forced purges (hak_collect(true)) are asked
** for and never count; 0 (at once) and -1 (never) are not adapted.
**
** Segments without an owner are idle: abandoned ones (their thread exited
** with live blocks in them; the next heap short of space adopts them, see
** heap.c; their free slices are purged when they are abandoned) and cached
** ones.  A cached segment's free slices keep their purge deadline, and any
** heap's purge purges them when it passes.
**
** The segment map (segment_map.c) tells a segment's address from any
** other.
*/
#include <string.h>

#include "internal.h"

/* Every live segment, for statistics; guarded by all_lock. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_segment_t *all_segments;

/*
** Idle segments, guarded by idle_lock (taken after all_lock, never before):
** the abandoned list (first in, first out: every abandoned segment comes
** up for adoption in turn, none is left behind under newer ones) and the
** cache (newest first), both linked through seg->next.  Only
** the holder of the lock touches an idle segment's masks; remote freers
** touch only its pages' thread_free.  idle_purge_at is the earliest purge
** deadline among the cached ones (0: none), read without the lock for a
** cheap look.
*/
#define SEGMENT_CACHE_MAX 16 /* 64 MiB of address space; once purged, 8 KiB each */
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_atomic_t abandoned; /* hak_segment_t*, its head, written under idle_lock */
static hak_segment_t *abandoned_tail;
static hak_segment_t *cache;
static unsigned cache_count;
static hak_atomic_t idle_purge_at;

#define PURGE_DELAY_MAX 1000 /* ms: the adapted delay's ceiling */
#define PURGE_CALM_MS 1000   /* ms without a refault before it halves */

static uint64_t span_mask(unsigned idx, unsigned n) {
  return (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << idx;
}

/* Secure builds: lifts the guard after a large block whose span goes back. */
static void segment_large_unguard(hak_page_t *page) {
  if (SECURE_GUARD && page->class_idx == HAK_CLASS_LARGE)
    os_guard(page->start + page->block_size, SECURE_GUARD, false);
}

size_t segment_header_size(void) { return os_round_page(sizeof(hak_segment_t)); }

void segment_register(hak_segment_t *seg) {
  pthread_mutex_lock(&all_lock);
  seg->all_prev = NULL;
  seg->all_next = all_segments;
  if (all_segments) all_segments->all_prev = seg;
  all_segments = seg;
  pthread_mutex_unlock(&all_lock);
  segment_map_set(seg, true);
  atomic_add(&stats.segments, 1);
}

void segment_unregister(hak_segment_t *seg) {
  segment_map_set(seg, false);
  pthread_mutex_lock(&all_lock);
  if (seg->all_prev) seg->all_prev->all_next = seg->all_next;
  else all_segments = seg->all_next;
  if (seg->all_next) seg->all_next->all_prev = seg->all_prev;
  pthread_mutex_unlock(&all_lock);
  atomic_add(&stats.segments, -1);
}

void segment_fork_lock(bool lock) {
  if (lock) {
    pthread_mutex_lock(&all_lock);
    pthread_mutex_lock(&idle_lock);
  } else {
    pthread_mutex_unlock(&idle_lock);
    pthread_mutex_unlock(&all_lock);
  }
}

void segment_fork_child(void) {
  for (hak_segment_t *seg = all_segments; seg; seg = seg->all_next) {
    if (seg->kind != SEGMENT_NORMAL) continue;
    for (unsigned i = 1; i < HAK_SLICES; i++)
      if (seg->pages[i].slice_count != 0 && seg->pages[i].heap != NULL) page_fork_child(&seg->pages[i]);
  }
}

/* ---- a heap's segment list ---------------------------------------------- */

static void segment_list_push(hak_segment_t **list, hak_segment_t *seg) {
  seg->prev = NULL;
  seg->next = *list;
  if (*list) (*list)->prev = seg;
  *list = seg;
}

void segment_list_remove(hak_segment_t **list, hak_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else *list = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

/* Keeps the invariant "segments with a free slice come first". */
static void segment_list_push_back(hak_segment_t **list, hak_segment_t *seg) {
  seg->next = NULL;
  if (!*list) {
    seg->prev = NULL;
    *list = seg;
    return;
  }
  hak_segment_t *last = *list;
  while (last->next) last = last->next;
  last->next = seg;
  seg->prev = last;
}

/* ---- making and releasing segments ------------------------------------- */

void segment_set_owner(hak_segment_t *seg, hak_heap_t *heap) {
  if (seg->heap != heap) seg->purged_mask = 0; /* another heap's history */
  seg->heap = heap;
  atomic_store_relaxed(&seg->keepable, heap == NULL || heap->is_default);
  atomic_store_release(&seg->tid, heap ? heap->tid : 0);
}

static void segment_list_push_back(hak_segment_t **list, hak_segment_t *seg);

/*
** Makes `heap` the owner of a segment that has none (new, cached, adopted
** or absorbed) and links it where the list's invariant puts it: first with
** a free slice, last without.
*/
void segment_attach(hak_heap_t *heap, hak_segment_t *seg) {
  segment_set_owner(seg, heap);
  if (seg->free_mask) segment_list_push(&heap->segments, seg);
  else segment_list_push_back(&heap->segments, seg);
  if (segment_is_empty(seg)) heap->empty_segments++;
  if (seg->purge_mask) heap->purge_pending = true;
}

static hak_segment_t *segment_cache_take(void);

/* An empty segment for `heap`, first in its list: from the cache, else new. */
hak_segment_t *segment_new(hak_heap_t *heap) {
  hak_segment_t *seg = segment_cache_take();
  if (!seg) {
    seg = os_map_aligned(HAK_SEGMENT_SIZE, HAK_SEGMENT_SIZE);
    if (!seg) return NULL;
    if ((uintptr_t)seg >> TF_COUNT_SHIFT) { /* only with a hint above 2^47: never ours */
      os_unmap(seg, HAK_SEGMENT_SIZE);
      return NULL;
    }
    seg->kind = SEGMENT_NORMAL;
    seg->size = HAK_SEGMENT_SIZE;
    seg->free_mask = SEGMENT_USABLE_MASK;
    seg->commit_mask = 1; /* the header slice, counted by its touched bytes */
    /* secure builds: the last slice (never a page's) is a guard */
    if (SECURE_GUARD) os_guard((uint8_t *)seg + HAK_SEGMENT_SIZE - HAK_SLICE_SIZE, HAK_SLICE_SIZE, true);
    stats_committed((intptr_t)segment_header_size());
    segment_register(seg);
  }
  segment_attach(heap, seg);
  return seg;
}

static size_t segment_committed_bytes(hak_segment_t *seg) {
  return (size_t)__builtin_popcountll(seg->commit_mask & SEGMENT_USABLE_MASK) * HAK_SLICE_SIZE +
         segment_header_size();
}

static void segment_unmap(hak_segment_t *seg) {
  segment_unregister(seg);
  stats_committed(-(intptr_t)segment_committed_bytes(seg));
  os_unmap(seg, seg->size);
}

static void segment_purge_now(hak_segment_t *seg, uint64_t m);

/* Lowers idle_purge_at to `at` (caller holds idle_lock). */
static void segment_idle_deadline(uint64_t at) {
  uintptr_t now = atomic_load_relaxed(&idle_purge_at);
  if (now == 0 || at < now) atomic_store_relaxed(&idle_purge_at, at);
}

/*
** Frees a normal segment the caller has unlinked from its heap (or that has
** none): its blocks are gone, live or not (hak_heap_destroy frees segments
** that hold some).  It goes to the cache, every free slice purged at the
** delay like any other, or is unmapped when the cache is full.
*/
void segment_free(hak_segment_t *seg) {
  hak_assert(seg->kind == SEGMENT_NORMAL);
  if (seg->free_mask != SEGMENT_USABLE_MASK) { /* live pages: drop them */
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      if (seg->pages[i].slice_count == 0) continue;
      segment_large_unguard(&seg->pages[i]);
      atomic_add(&stats.pages, -1);
    }
    memset(&seg->pages[1], 0, sizeof(hak_page_t) * (HAK_SLICES - 1));
    seg->free_mask = SEGMENT_USABLE_MASK;
  }
  segment_set_owner(seg, NULL);
  long delay = hak_option_get(HAK_OPT_PURGE_DELAY);
  pthread_mutex_lock(&idle_lock);
  bool cached = cache_count < SEGMENT_CACHE_MAX;
  if (cached) {
    if (delay == 0) {
      segment_purge_now(seg, seg->commit_mask & SEGMENT_USABLE_MASK);
    } else if (delay > 0) {
      seg->purge_mask = seg->commit_mask & SEGMENT_USABLE_MASK;
      seg->purge_at = os_now_ms() + (uint64_t)delay;
      if (seg->purge_mask) segment_idle_deadline(seg->purge_at);
    }
    seg->prev = NULL;
    seg->next = cache;
    cache = seg;
    cache_count++;
  }
  pthread_mutex_unlock(&idle_lock);
  if (!cached) segment_unmap(seg); /* all_lock: not under idle_lock */
}

static hak_segment_t *segment_cache_take(void) {
  pthread_mutex_lock(&idle_lock);
  hak_segment_t *seg = cache;
  if (seg) {
    cache = seg->next;
    cache_count--;
    seg->next = NULL;
  }
  pthread_mutex_unlock(&idle_lock);
  return seg;
}

/* ---- abandoned segments --------------------------------------------------- */

/*
** A segment whose owner exited with live blocks in it (heap_abandon).  Its
** dirty free slices are purged now (one madvise per run): when an adopter
** comes is unknown, and a list of abandoned segments waiting with dirty
** slices held test_churn's committed memory at 2 x live + 22 to 31 MiB,
** against 12 to 16 MiB purged.  Empty segments go to the cache instead,
** unpurged: those are what the next thread takes first.
*/
void segment_abandon(hak_segment_t *seg) {
  segment_set_owner(seg, NULL);
  if (seg->purge_mask) segment_purge_now(seg, seg->purge_mask);
  pthread_mutex_lock(&idle_lock);
  seg->prev = seg->next = NULL;
  if (atomic_load_relaxed(&abandoned)) abandoned_tail->next = seg;
  else atomic_store_release(&abandoned, (uintptr_t)seg);
  abandoned_tail = seg;
  pthread_mutex_unlock(&idle_lock);
  atomic_add(&stats.abandoned, 1);
}

hak_segment_t *segment_take_abandoned(void) {
  if (!atomic_load_relaxed(&abandoned)) return NULL; /* a cheap look first */
  pthread_mutex_lock(&idle_lock);
  hak_segment_t *seg = (hak_segment_t *)atomic_load_relaxed(&abandoned);
  if (seg) {
    atomic_store_release(&abandoned, (uintptr_t)seg->next);
    if (!seg->next) abandoned_tail = NULL;
  }
  pthread_mutex_unlock(&idle_lock);
  if (seg) {
    seg->next = NULL;
    atomic_add(&stats.abandoned, -1);
  }
  return seg;
}

/* ---- spans -------------------------------------------------------------- */

/* The first run of n slices of `mask`; -1 if none. */
static int segment_find_run(uint64_t mask, unsigned n) {
  if ((unsigned)__builtin_popcountll(mask) < n) return -1;
  for (unsigned i = 1; i + n <= HAK_SLICES; i++) {
    uint64_t m = span_mask(i, n);
    if ((mask & m) == m) return (int)i;
  }
  return -1;
}

/*
** Which free slices a new span may take at `tier` (0 first; each tier
** takes what the one before did, and more).  Slices still resident from
** an earlier page come before cold ones: reusing them costs no page fault
** and adds nothing to the resident set.  But each kind first reuses what
** its own kind left.  A class page's carving wrote every block it
** reached, so its slices are resident whole; a large block's are resident
** only where the program wrote it (mstress writes two words of each).
** Taken warm-first together, large blocks settled on the slices class
** pages had left and class pages on the slices large blocks had left, and
** carved them cold: on mstress (T=2, 5 rounds, purging off) 2,335 of the
** 5,200 OS pages carved cold had been a large block's, and the run
** faulted 5,600 times against glibc's 4,200.  So a class page takes
** class pages' slices, then any warm one, then any; a large block takes
** large blocks' slices, then those and cold ones (a run may cross from
** one to the other), then any.
*/
static uint64_t segment_tier(const hak_segment_t *seg, bool large, unsigned tier) {
  uint64_t free = seg->free_mask, warm = free & seg->commit_mask;
  uint64_t own = large ? warm & seg->large_mask : warm & ~seg->large_mask;
  switch (tier) {
  case 0: return own;
  case 1: return large ? own | (free & ~seg->commit_mask) : warm;
  default: return free;
  }
}

#define SEGMENT_TIERS 3

/* A run of n slices of `mask`, -1 if none. */
static int segment_find_span(uint64_t mask, unsigned n) {
  if (mask == 0) return -1;
  if (n == 1) return __builtin_ctzll(mask);
  return segment_find_run(mask, n);
}

static hak_page_t *segment_take_span(hak_heap_t *heap, hak_segment_t *seg, unsigned idx, unsigned n) {
  uint64_t m = span_mask(idx, n);
  if (seg->free_mask == SEGMENT_USABLE_MASK) heap->empty_segments--;
  seg->free_mask &= ~m;
  seg->purge_mask &= ~m;
  seg->large_mask &= ~m;
  if (seg->free_mask == 0) { /* full segments go to the back */
    segment_list_remove(&heap->segments, seg);
    segment_list_push_back(&heap->segments, seg);
  }
  hak_page_t *page = &seg->pages[idx];
  page->slice_count = (uint8_t)n;
  slice_set_back(page, 0);
  for (unsigned j = 1; j < n; j++) {
    slice_set_back(&seg->pages[idx + j], j);
    seg->pages[idx + j].slice_count = 0;
  }
  page->start = (uint8_t *)seg + ((size_t)idx << HAK_SLICE_SHIFT);
  page->heap = heap;
  atomic_add(&stats.pages, 1);
  return page;
}

/* A span of `slices` slices from the heap's own segments, for a large
** block or a class page (segment_tier says which slices first); NULL if
** none has one (heap_page_new then adopts, or makes a new segment).
** A class page that takes slices a large block left gets them purged
** first: the program may have written the whole block, and the page
** carves a few KiB at a time, so the rest stayed resident for nothing
** (bench strings_build on a shared heap: three 5-7 KiB classes' pages held
** 64 KiB each for one block; the process 1144 KiB against 984 KiB since,
** and mstress T=1 7.8 MB against 6.9).  The page faults in what it carves,
** as on a cold slice; taking a cold slice instead left the warm ones idle
** (test churn::lagged_frees: 29 MB committed for 1.5 MB live). */
hak_page_t *segment_span_alloc(hak_heap_t *heap, unsigned slices, bool large) {
  for (unsigned tier = 0; tier < SEGMENT_TIERS; tier++) {
    for (hak_segment_t *seg = heap->segments; seg && seg->free_mask; seg = seg->next) {
      int idx = segment_find_span(segment_tier(seg, large, tier), slices);
      if (idx >= 0) {
        uint64_t left = seg->large_mask & span_mask((unsigned)idx, slices);
        hak_page_t *page = segment_take_span(heap, seg, (unsigned)idx, slices);
        if (!large && left != 0) os_purge(page->start, (size_t)slices << HAK_SLICE_SHIFT);
        return page;
      }
    }
  }
  return NULL;
}

/* The heap's purge delay in ms (the file's comment says how it adapts). */
static long segment_purge_delay(hak_heap_t *heap) {
  long base = hak_option_get(HAK_OPT_PURGE_DELAY);
  if (base <= 0 || heap == NULL) return base;
  if (heap->purge_delay < (uint64_t)base) heap->purge_delay = (uint32_t)base;
  return (long)heap->purge_delay;
}

long segment_heap_delay(hak_heap_t *heap) { return segment_purge_delay(heap); }

void segment_forget_refaults(hak_heap_t *heap) {
  heap->purge_delay = 0;
  heap->refault_at = 0;
  long delay = segment_purge_delay(heap);
  uint64_t now = os_now_ms();
  for (hak_segment_t *seg = heap->segments; seg; seg = seg->next) {
    seg->purged_mask = 0;
    /* slices the orphan's grace kept past their deadline: the new thread's
    ** to reuse within one delay (the others keep their deadline) */
    if (seg->purge_mask && delay > 0 && seg->purge_at <= now) seg->purge_at = now + (uint64_t)delay;
  }
}

size_t segment_heap_dirty(hak_heap_t *heap) {
  size_t n = 0;
  for (hak_segment_t *seg = heap->segments; seg; seg = seg->next)
    n += (size_t)__builtin_popcountll(seg->purge_mask & seg->commit_mask);
  return n << HAK_SLICE_SHIFT;
}

/* Memory a timed purge returned at `purged_at` is needed again: if that
** was soon after, wait longer. */
void segment_refaulted(hak_heap_t *heap, uint64_t purged_at) {
  long delay = segment_purge_delay(heap);
  uint64_t now = os_now_ms();
  if (delay <= 0 || now - purged_at > 2 * (uint64_t)delay) return;
  delay *= 2;
  if (delay > PURGE_DELAY_MAX) delay = PURGE_DELAY_MAX;
  if ((long)heap->purge_delay < delay) heap->purge_delay = (uint32_t)delay;
  heap->refault_at = now;
}

/* A calm second (no refault) halves the heap's delay, down to the option's. */
static void segment_purge_calm(hak_heap_t *heap, uint64_t now) {
  long base = hak_option_get(HAK_OPT_PURGE_DELAY);
  if (base <= 0 || heap->purge_delay <= (uint64_t)base || now - heap->refault_at < PURGE_CALM_MS)
    return;
  heap->purge_delay /= 2;
  if (heap->purge_delay < (uint64_t)base) heap->purge_delay = (uint32_t)base;
  heap->refault_at = now; /* the next halving after another calm second */
}

/*
** Marks the slices under the first `bytes` of a page as committed.  Pages
** are carved lazily, so a 4-slice page holding two blocks counts one slice:
** `committed` stays an upper bound of what the page made resident.
*/
void segment_commit(hak_page_t *page, size_t bytes) {
  hak_segment_t *seg = segment_of(page);
  unsigned idx = (unsigned)(page - seg->pages);
  unsigned n = (unsigned)((bytes + HAK_SLICE_SIZE - 1) >> HAK_SLICE_SHIFT);
  uint64_t fresh = span_mask(idx, n) & ~seg->commit_mask;
  if (!fresh) return;
  if ((fresh & seg->purged_mask) && seg->heap) segment_refaulted(seg->heap, seg->purged_at);
  seg->purged_mask &= ~fresh;
  seg->commit_mask |= fresh;
  stats_committed((intptr_t)((size_t)__builtin_popcountll(fresh) * HAK_SLICE_SIZE));
}

/*
** A large block that grows (a Lua array or string buffer doubling) takes
** the free slices right after its span when it can: no copy, and no moment
** when the old and the new block are both resident.
*/
bool segment_large_grow(hak_page_t *page, size_t size) {
  hak_segment_t *seg = segment_of(page);
  unsigned idx = (unsigned)(page - seg->pages);
  size_t bsize = class_large_size(size);
  unsigned n = page->slice_count;
  unsigned want = (unsigned)((bsize + SECURE_GUARD + HAK_SLICE_SIZE - 1) >> HAK_SLICE_SHIFT);
  if (idx + want > HAK_SLICES) return false;
  if (want > n) {
    uint64_t more = span_mask(idx + n, want - n);
    if ((seg->free_mask & more) != more) return false;
    seg->free_mask &= ~more;
    seg->purge_mask &= ~more;
    seg->large_mask &= ~more;
    for (unsigned j = n; j < want; j++) {
      slice_set_back(&seg->pages[idx + j], j);
      seg->pages[idx + j].slice_count = 0;
    }
    page->slice_count = (uint8_t)want;
    if (seg->free_mask == 0 && seg->heap) { /* full segments go to the back */
      segment_list_remove(&seg->heap->segments, seg);
      segment_list_push_back(&seg->heap->segments, seg);
    }
  }
  segment_large_unguard(page); /* the guard moves to the new end */
  page->block_size = bsize;
  if (SECURE_GUARD) os_guard(page->start + bsize, SECURE_GUARD, true);
  segment_commit(page, bsize);
  return true;
}

/* Purges the slices of `m` now. */
static void segment_purge_mask(hak_segment_t *seg, uint64_t m) {
  while (m) {
    unsigned idx = (unsigned)__builtin_ctzll(m);
    unsigned n = (unsigned)__builtin_ctzll(~(m >> idx)); /* run length */
    if (idx + n > 64) n = 64 - idx;
    os_purge((uint8_t *)seg + ((size_t)idx << HAK_SLICE_SHIFT), (size_t)n << HAK_SLICE_SHIFT);
    m &= ~span_mask(idx, n);
  }
}

static void segment_purge_now(hak_segment_t *seg, uint64_t m) {
  m &= seg->commit_mask; /* never-touched slices need no purge */
  segment_purge_mask(seg, m);
  seg->commit_mask &= ~m;
  seg->purge_mask &= ~m;
  seg->large_mask &= ~m;
  stats_committed(-(intptr_t)((size_t)__builtin_popcountll(m) * HAK_SLICE_SIZE));
}

/*
** A coloured page's carving reaches up to its colour (at most 4032 bytes)
** past what page_extend counts in commit_mask, which counts from the span:
** a slice the page's last blocks spilled into holds one resident OS page
** the purges never see, as the slice is not committed.  It goes back when
** the page does, at once (one OS page), unless purging is off (delay -1).
** (Counting it committed instead made it look warm, and class pages that
** then took it as warm faulted: mstress T=1 2,090 faults and 8.5 MiB peak
** RSS against 1,750 and 6.9.)
*/
static void segment_page_purge_spill(hak_page_t *page, long delay) {
  uint8_t *span = page_span(page);
  size_t carved = (size_t)page->capacity * page->block_size;
  uint8_t *counted = span + ((carved + HAK_SLICE_SIZE - 1) & ~(HAK_SLICE_SIZE - 1));
  uint8_t *end = page->start + carved;
  if (end <= counted || delay < 0) return;
  os_purge(counted, (size_t)(end - counted + HAK_OS_PAGE - 1) & ~(size_t)(HAK_OS_PAGE - 1));
}

/*
** Gives a page's span back to its segment.  The slices are purged after the
** delay (or now); an empty segment beyond the first one the heap keeps is
** unmapped at once.
*/
void segment_page_free(hak_page_t *page) {
  segment_large_unguard(page);
  hak_segment_t *seg = segment_of(page);
  hak_heap_t *heap = seg->heap;
  unsigned idx = (unsigned)(page - seg->pages);
  unsigned n = page->slice_count;
  uint64_t m = span_mask(idx, n);
  bool was_full = seg->free_mask == 0;
  long delay = segment_purge_delay(heap);
  if (page->class_idx == HAK_CLASS_LARGE) seg->large_mask |= m & seg->commit_mask;
  else segment_page_purge_spill(page, delay);
  memset(page, 0, sizeof(hak_page_t) * n);
  seg->free_mask |= m;
  atomic_add(&stats.pages, -1);
  if (delay == 0) {
    segment_purge_now(seg, m);
  } else if (delay > 0) {
    seg->purge_mask |= m & seg->commit_mask;
    seg->purge_at = os_now_ms() + (uint64_t)delay;
    if (heap) heap->purge_pending = true;
  }
  if (!heap) return; /* idle: whoever took it decides */
  if (was_full) {
    segment_list_remove(&heap->segments, seg);
    segment_list_push(&heap->segments, seg);
  }
  /* keep one empty segment for churn; with purging off (-1) keep all */
  if (seg->free_mask == SEGMENT_USABLE_MASK && ++heap->empty_segments > 1 && delay >= 0) {
    heap->empty_segments--;
    segment_list_remove(&heap->segments, seg);
    segment_free(seg);
  }
}

void segment_purge_free(hak_segment_t *seg) { segment_purge_now(seg, seg->free_mask); }

/* Purges the cached segments' slices whose deadline passed (abandoned ones
** were purged when abandoned); force: unmaps every cached segment. */
void segment_purge_idle(bool force) {
  uint64_t at = atomic_load_relaxed(&idle_purge_at);
  if (!force && (at == 0 || os_now_ms() < at)) return;
  uint64_t now = os_now_ms(), next = 0;
  hak_segment_t *unmap = NULL;
  pthread_mutex_lock(&idle_lock);
  for (hak_segment_t *seg = cache; seg; seg = seg->next) {
    if (!seg->purge_mask) continue;
    if (force || now >= seg->purge_at) segment_purge_now(seg, seg->purge_mask);
    else if (next == 0 || seg->purge_at < next) next = seg->purge_at;
  }
  if (force) {
    unmap = cache;
    cache = NULL;
    cache_count = 0;
  }
  atomic_store_relaxed(&idle_purge_at, next);
  pthread_mutex_unlock(&idle_lock);
  while (unmap) {
    hak_segment_t *seg = unmap;
    unmap = seg->next;
    segment_unmap(seg);
  }
}

/*
** Purges the free slices of the heap's own segments whose deadline has
** passed (all of them if force; force also frees its empty segments into
** the cache, which takes idle_lock).  Returns the earliest deadline still
** pending, 0 if none.
*/
uint64_t segment_purge_heap(hak_heap_t *heap, bool force) {
  if (!heap->purge_pending && !force) return 0;
  uint64_t now = os_now_ms(), next = 0;
  segment_purge_calm(heap, now);
  hak_segment_t *after;
  for (hak_segment_t *seg = heap->segments; seg; seg = after) {
    after = seg->next;
    if (force && seg->free_mask == SEGMENT_USABLE_MASK) {
      heap->empty_segments--;
      segment_list_remove(&heap->segments, seg);
      segment_free(seg); /* into the cache */
      continue;
    }
    if (!seg->purge_mask) continue;
    if (force) {
      segment_purge_now(seg, seg->purge_mask);
    } else if (now >= seg->purge_at) {
      uint64_t m = seg->purge_mask & seg->commit_mask;
      segment_purge_now(seg, m);
      seg->purged_mask |= m; /* a refault of these adapts the delay */
      seg->purged_at = now;
    } else if (next == 0 || seg->purge_at < next) {
      next = seg->purge_at;
    }
  }
  heap->purge_pending = next != 0;
  return next;
}

/*
** Purges the free slices whose deadline has passed (all of them if force),
** the heap's own and the idle segments'; with force, also unmaps the heap's
** empty segments and the cache.
*/
void segment_purge(hak_heap_t *heap, bool force) {
  segment_purge_heap(heap, force);
  segment_purge_idle(force);
}

/* ---- statistics --------------------------------------------------------- */

/*
** Blocks that remote frees returned to an abandoned segment's pages, or to
** an orphan heap's, are still in page->used: nobody has taken their
** thread_free lists.  Called with the abandoned list (or the orphans)
** locked, so nobody can take them meanwhile, and a list that only grows
** (remote freers push, nobody pops) can be walked.
*/
typedef struct stats_freed_s {
  stats_class_t *per_class; /* NULL: totals only */
  size_t bytes;             /* freed bytes still counted by their pages */
} stats_freed_t;

static void segment_stats_unowned(hak_segment_t *seg, void *arg) {
  stats_freed_t *freed = arg;
  stats_class_t *per_class = freed->per_class;
  for (unsigned i = 1; i < HAK_SLICES; i++) {
    hak_page_t *page = &seg->pages[i];
    if (page->slice_count == 0 || page->block_size == 0) continue;
    size_t n = 0;
    uintptr_t tf = atomic_load_acquire(&page->thread_free);
    for (hak_block_t *b = tf_block(tf); b; b = block_next(page, b)) n++;
    freed->bytes += n * page->block_size;
    if (per_class) {
      per_class[page->class_idx].blocks -= n;
      per_class[page->class_idx].bytes -= n * page->block_size;
    }
  }
}

/*
** Adds every live block to out->in_use, and fills out->remote_pending,
** out->free_in_pages and out->kept_for_reuse.  Reads other threads' page
** counters without synchronisation: exact only while they are not
** allocating.  Blocks other threads freed are not live, though their pages
** still count them: an owned page's thread_free word says how many
** (types.h), and the lists of abandoned segments and orphan heaps are
** walked (segment_stats_unowned).
*/
void segment_stats_walk(hak_stats_t *out, stats_class_t per_class[HAK_QUEUES]) {
  size_t in_use = 0, pending = 0, free_bytes = 0;
  pthread_mutex_lock(&all_lock);
  /* no segment changes hands during the walk: the pages of abandoned ones
  ** keep the counts this walk reads until their lists are walked */
  pthread_mutex_lock(&idle_lock);
  for (hak_segment_t *seg = all_segments; seg; seg = seg->all_next) {
    if (seg->kind == SEGMENT_HUGE) {
      in_use += seg->pages[0].block_size;
      continue;
    }
    /* an owner's pages: their thread_free word counts its list (the
    ** unowned ones' lists are walked below, the count may have saturated) */
    bool owned = atomic_load_relaxed(&seg->tid) != 0;
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      if (page->slice_count == 0 || page->block_size == 0) continue;
      size_t remote = owned ? tf_count(atomic_load_relaxed(&page->thread_free)) : 0;
      if (remote > page->used) remote = page->used; /* a count read mid-collect */
      size_t bytes = (size_t)(page->used - remote) * page->block_size;
      in_use += bytes;
      pending += remote * page->block_size;
      free_bytes += (size_t)(page->capacity - page->used) * page->block_size;
      if (per_class) {
        stats_class_t *c = &per_class[page->class_idx];
        c->pages++;
        c->blocks += page->used - remote;
        c->bytes += bytes;
        c->capacity += (size_t)page->reserved * page->block_size;
      }
    }
  }
  stats_freed_t freed = {per_class, 0};
  for (hak_segment_t *seg = (hak_segment_t *)atomic_load_relaxed(&abandoned); seg; seg = seg->next)
    segment_stats_unowned(seg, &freed);
  heap_orphans_each_segment(segment_stats_unowned, &freed);
  pthread_mutex_unlock(&idle_lock);
  pthread_mutex_unlock(&all_lock);
  /* blocks threads keep for their own allocations are `used` in their
  ** pages too (keep.c) */
  size_t kept = keep_held();
  in_use -= freed.bytes;
  out->in_use = in_use > kept ? in_use - kept : 0;
  out->remote_pending = pending + freed.bytes;
  out->free_in_pages = free_bytes;
  out->kept_for_reuse = kept;
}
