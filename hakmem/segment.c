/*
** segment.c -- segments: 4 MiB aligned mappings cut into 64 KiB slices.
**
** A heap takes spans of slices from its segments to make pages and gives
** them back when the pages empty.  Freed slices stay resident until their
** purge deadline (HAKMEM_PURGE_DELAY) so that a page freed and soon needed
** again costs no page faults; then they are purged (MADV_DONTNEED).  A
** segment whose slices are all free is unmapped, but a heap keeps one such
** segment to absorb churn.
**
** The segment map answers "is this a hakmem segment?" for any address
** without touching the address: one bit per 4 MiB of the 48-bit address
** space (8 MiB of zero-filled .bss, of which only the touched pages become
** resident), and as much again for the huge blocks aligned to 4 MiB or
** more, whose header is one unit below them.
*/
#include <string.h>

#include "internal.h"

#define SEGMENT_USABLE_MASK (~(uint64_t)1) /* every slice but the header's */
#define MAP_UNITS ((uint64_t)1 << (48 - HAK_SEGMENT_SHIFT))

/* Units where a segment (its header) starts. */
static hak_atomic_t segment_map[MAP_UNITS / 64];
/* Units where a segment-aligned huge block starts, one unit past its header:
** the one kind of hakmem pointer outside its segment's first unit. */
static hak_atomic_t segment_aligned_map[MAP_UNITS / 64];

/* Every live segment, for statistics; guarded by all_lock. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_segment_t *all_segments;

static uint64_t span_mask(unsigned idx, unsigned n) {
  return (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << idx;
}

size_t segment_header_size(void) { return os_round_page(sizeof(hak_segment_t)); }

/* ---- the segment map ---------------------------------------------------- */

static bool segment_map_test(hak_atomic_t *map, const void *p) {
  uint64_t unit = (uint64_t)(uintptr_t)p >> HAK_SEGMENT_SHIFT;
  if (unit >= MAP_UNITS) return false;
  return (atomic_load_acquire(&map[unit / 64]) >> (unit % 64)) & 1;
}

bool segment_is_mapped(const void *p) {
  return segment_map_test(segment_map, p) || segment_map_test(segment_aligned_map, p);
}

bool segment_is_aligned_huge(const void *p) {
  return segment_is_boundary(p) && segment_map_test(segment_aligned_map, p);
}

static void segment_map_set_unit(hak_atomic_t *map, const void *at, bool on) {
  uint64_t unit = (uint64_t)(uintptr_t)at >> HAK_SEGMENT_SHIFT;
  if (unit >= MAP_UNITS) hak_fatal("segment %p is outside the 48-bit address space", at);
  hak_atomic_t *word = &map[unit / 64];
  uintptr_t bit = (uintptr_t)1 << (unit % 64);
  for (;;) {
    uintptr_t old = atomic_load_relaxed(word);
    uintptr_t val = on ? (old | bit) : (old & ~bit);
    if (atomic_cas_full(word, old, val)) return;
  }
}

/*
** The segment's first unit, where its header is; and for a segment-aligned
** huge block, the block's own unit, in a map of its own: the override
** tells hakmem's pointers from foreign ones by their unit alone, and a
** pointer at a unit start is a block only if that second map says so (a
** unit start in the first map is a header, never a block).
*/
static void segment_map_set(hak_segment_t *seg, bool on) {
  segment_map_set_unit(segment_map, seg, on);
  if (seg->kind == SEGMENT_HUGE && seg->huge_offset == HAK_SEGMENT_SIZE)
    segment_map_set_unit(segment_aligned_map, (uint8_t *)seg + HAK_SEGMENT_SIZE, on);
}

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
  if (lock) pthread_mutex_lock(&all_lock);
  else pthread_mutex_unlock(&all_lock);
}

/* ---- a heap's segment list ---------------------------------------------- */

void segment_list_push(hak_segment_t **list, hak_segment_t *seg) {
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
  seg->heap = heap;
  atomic_store_release(&seg->tid, heap ? heap->tid : 0);
}

static hak_segment_t *segment_new(hak_heap_t *heap) {
  hak_segment_t *seg = os_map_aligned(HAK_SEGMENT_SIZE, HAK_SEGMENT_SIZE);
  if (!seg) return NULL;
  seg->kind = SEGMENT_NORMAL;
  seg->size = HAK_SEGMENT_SIZE;
  seg->free_mask = SEGMENT_USABLE_MASK;
  seg->commit_mask = 1; /* the header slice, counted by its touched bytes */
  stats_committed((intptr_t)segment_header_size());
  segment_set_owner(seg, heap);
  segment_register(seg);
  segment_list_push(&heap->segments, seg);
  heap->empty_segments++;
  return seg;
}

static size_t segment_committed_bytes(hak_segment_t *seg) {
  return (size_t)__builtin_popcountll(seg->commit_mask & SEGMENT_USABLE_MASK) * HAK_SLICE_SIZE +
         segment_header_size();
}

/* Unmaps a normal segment; the caller has unlinked it from its heap. */
void segment_free(hak_segment_t *seg) {
  hak_assert(seg->kind == SEGMENT_NORMAL);
  for (unsigned i = 1; i < HAK_SLICES; i++)
    if (seg->pages[i].slice_count) atomic_add(&stats.pages, -1);
  segment_unregister(seg);
  stats_committed(-(intptr_t)segment_committed_bytes(seg));
  os_unmap(seg, seg->size);
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
** A run of n free slices, -1 if none.  Slices still resident from an
** earlier page (dirty, waiting for their purge) come first: reusing them
** costs no page fault and adds nothing to the resident set, where a cold
** slice would add to it while the dirty ones wait.
*/
static int segment_find_span(hak_segment_t *seg, unsigned n) {
  uint64_t free = seg->free_mask;
  if (free == 0) return -1;
  uint64_t warm = free & seg->commit_mask;
  if (n == 1) return __builtin_ctzll(warm ? warm : free);
  int idx = warm ? segment_find_run(warm, n) : -1;
  return idx >= 0 ? idx : segment_find_run(free, n);
}

static hak_page_t *segment_take_span(hak_heap_t *heap, hak_segment_t *seg, unsigned idx, unsigned n) {
  uint64_t m = span_mask(idx, n);
  if (seg->free_mask == SEGMENT_USABLE_MASK) heap->empty_segments--;
  seg->free_mask &= ~m;
  seg->purge_mask &= ~m;
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

/*
** A span of `slices` slices from the heap's segments, else from a segment
** another thread abandoned, else from a new segment.
*/
hak_page_t *segment_page_alloc(hak_heap_t *heap, unsigned slices) {
  for (hak_segment_t *seg = heap->segments; seg && seg->free_mask; seg = seg->next) {
    int idx = segment_find_span(seg, slices);
    if (idx >= 0) return segment_take_span(heap, seg, (unsigned)idx, slices);
  }
  hak_segment_t *seg;
  while ((seg = thread_take_abandoned()) != NULL) {
    if (!heap_adopt_segment(heap, seg)) continue; /* it was empty: unmapped */
    int idx = segment_find_span(seg, slices);
    if (idx >= 0) return segment_take_span(heap, seg, (unsigned)idx, slices);
  }
  seg = segment_new(heap);
  if (!seg) return NULL;
  return segment_take_span(heap, seg, 1, slices);
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
  unsigned want = (unsigned)((bsize + HAK_SLICE_SIZE - 1) >> HAK_SLICE_SHIFT);
  if (idx + want > HAK_SLICES) return false;
  if (want > n) {
    uint64_t more = span_mask(idx + n, want - n);
    if ((seg->free_mask & more) != more) return false;
    seg->free_mask &= ~more;
    seg->purge_mask &= ~more;
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
  page->block_size = bsize;
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
  stats_committed(-(intptr_t)((size_t)__builtin_popcountll(m) * HAK_SLICE_SIZE));
}

/*
** Gives a page's span back to its segment.  The slices are purged after the
** delay (or now); an empty segment beyond the first one the heap keeps is
** unmapped at once.
*/
void segment_page_free(hak_page_t *page) {
  hak_segment_t *seg = segment_of(page);
  hak_heap_t *heap = seg->heap;
  unsigned idx = (unsigned)(page - seg->pages);
  unsigned n = page->slice_count;
  uint64_t m = span_mask(idx, n);
  bool was_full = seg->free_mask == 0;
  memset(page, 0, sizeof(hak_page_t) * n);
  seg->free_mask |= m;
  atomic_add(&stats.pages, -1);
  long delay = hak_option_get(HAK_OPT_PURGE_DELAY);
  if (delay == 0) {
    segment_purge_now(seg, m);
  } else if (delay > 0) {
    seg->purge_mask |= m & seg->commit_mask;
    seg->purge_at = os_now_ms() + (uint64_t)delay;
    if (heap) heap->purge_pending = true;
  }
  if (!heap) return; /* abandoned: the adopter decides */
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

/*
** Purges the free slices whose deadline has passed (all of them if force);
** with force, also unmaps the heap's empty segments.
*/
void segment_purge(hak_heap_t *heap, bool force) {
  uint64_t now = os_now_ms();
  bool pending = false;
  hak_segment_t *next;
  for (hak_segment_t *seg = heap->segments; seg; seg = next) {
    next = seg->next;
    if (force && seg->free_mask == SEGMENT_USABLE_MASK) {
      heap->empty_segments--;
      segment_list_remove(&heap->segments, seg);
      segment_free(seg);
      continue;
    }
    if (!seg->purge_mask) continue;
    if (force || now >= seg->purge_at) segment_purge_now(seg, seg->purge_mask);
    else pending = true;
  }
  heap->purge_pending = pending;
}

/*
** A segment taken off the abandoned list by a thread with no heap to adopt
** it into (hak_collect on a thread that never allocated).  Nobody owns it
** while it is off the list, so the taker may act as its owner: it takes
** what remote freers returned, frees the pages that emptied and purges
** every free slice now.  Returns false when nothing live was left and the
** segment got unmapped; else the caller abandons it again.
*/
bool segment_collect_abandoned(hak_segment_t *seg) {
  for (unsigned i = 1; i < HAK_SLICES; i++) {
    hak_page_t *page = &seg->pages[i];
    if (page->slice_count == 0) continue;
    page_collect(page);
    if (page->used == 0) segment_page_free(page); /* seg->heap is NULL: no heap work */
  }
  if (seg->free_mask == SEGMENT_USABLE_MASK) {
    segment_free(seg);
    return false;
  }
  segment_purge_now(seg, seg->free_mask);
  return true;
}

/* ---- statistics --------------------------------------------------------- */

/*
** Blocks that remote frees returned to an abandoned segment's pages are
** still in page->used: nobody has taken its thread_free lists.  Called with
** the abandoned list locked, so nobody can take them meanwhile, and a list
** that only grows (remote freers push, nobody pops) can be walked.
*/
typedef struct stats_freed_s {
  stats_class_t *per_class; /* NULL: totals only */
  size_t bytes;             /* freed bytes still counted by their pages */
} stats_freed_t;

static void segment_stats_abandoned(hak_segment_t *seg, void *arg) {
  stats_freed_t *freed = arg;
  stats_class_t *per_class = freed->per_class;
  for (unsigned i = 1; i < HAK_SLICES; i++) {
    hak_page_t *page = &seg->pages[i];
    if (page->slice_count == 0 || page->block_size == 0) continue;
    size_t n = 0;
    uintptr_t tf = atomic_load_acquire(&page->thread_free);
    for (hak_block_t *b = (hak_block_t *)(tf & ~NOTIFY_MASK); b; b = b->next) n++;
    freed->bytes += n * page->block_size;
    if (per_class) {
      per_class[page->class_idx].blocks -= n;
      per_class[page->class_idx].bytes -= n * page->block_size;
    }
  }
}

/*
** Adds every live block to out->in_use.  Reads other threads' page counters
** without synchronisation: exact only while they are not allocating.
** Blocks freed into abandoned segments are not live, though their pages
** still count them (segment_stats_abandoned).
*/
void segment_stats_walk(hak_stats_t *out, stats_class_t per_class[HAK_QUEUES]) {
  size_t in_use = 0;
  pthread_mutex_lock(&all_lock);
  /* no segment changes hands during the walk: the pages of abandoned ones
  ** keep the counts this walk reads until their lists are walked */
  thread_abandoned_lock(true);
  for (hak_segment_t *seg = all_segments; seg; seg = seg->all_next) {
    if (seg->kind == SEGMENT_HUGE) {
      in_use += seg->pages[0].block_size;
      continue;
    }
    for (unsigned i = 1; i < HAK_SLICES; i++) {
      hak_page_t *page = &seg->pages[i];
      if (page->slice_count == 0 || page->block_size == 0) continue;
      size_t bytes = (size_t)page->used * page->block_size;
      in_use += bytes;
      if (per_class) {
        stats_class_t *c = &per_class[page->class_idx];
        c->pages++;
        c->blocks += page->used;
        c->bytes += bytes;
        c->capacity += (size_t)page->reserved * page->block_size;
      }
    }
  }
  stats_freed_t freed = {per_class, 0};
  thread_abandoned_each(segment_stats_abandoned, &freed);
  thread_abandoned_lock(false);
  pthread_mutex_unlock(&all_lock);
  out->in_use = in_use - freed.bytes;
}
