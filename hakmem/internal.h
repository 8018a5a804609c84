/*
** internal.h -- declarations shared between hakmem's files, grouped under
** the file that defines them: this header is a map of hakmem/.
*/
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

#include "types.h"

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define noinline __attribute__((noinline))
#define tls_initial_exec __attribute__((tls_model("initial-exec")))
#else
#define likely(x) (x)
#define unlikely(x) (x)
#define noinline
#define tls_initial_exec
#endif

/* Assertions, tiered: hak_assert is on in debug builds only. */
#if HAK_DEBUG
#define hak_assert(c) ((c) ? (void)0 : hak_fatal("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__))
#else
#define hak_assert(c) ((void)0)
#endif

/* ---- classes.c ---------------------------------------------------------- */
extern const uint32_t class_size[HAK_CLASSES];
extern const uint8_t class_of_slot[HAK_DIRECT_SLOTS];
extern const uint8_t class_of_medium[HAK_MEDIUM_SLOTS];
/* The smallest class holding `size`, for size <= HAK_MEDIUM_MAX. */
unsigned class_of(size_t size);
/* Slices of a page of class `cls`. */
unsigned class_page_slices(unsigned cls);
/* The smallest class >= size whose blocks are multiples of `align`
** (align <= HAK_SLICE_SIZE), or HAK_CLASSES when none is small enough. */
unsigned class_aligned(size_t size, size_t align);
size_t class_large_size(size_t size);

/* ---- os.c: the OS contract (map, purge, unmap, remap, protect) -------- */
/* A fresh zeroed mapping of `size` bytes at a multiple of `align` (a power
** of two >= the OS page), or NULL. */
void *os_map_aligned(size_t size, size_t align);
/* The same, placed so that the mapping plus `offset` is a multiple of
** `align` (offset < align, a multiple of the OS page). */
void *os_map_aligned_at(size_t size, size_t align, size_t offset);
void os_unmap(void *p, size_t size);
/* The range's contents may be dropped; it stays mapped and reads as zero. */
void os_purge(void *p, size_t size);
/* Moves or resizes the aligned mapping [p, p+old) to `size` bytes, still
** aligned to `align`; NULL (and p untouched) on failure. */
void *os_remap_aligned(void *p, size_t old, size_t size, size_t align);
uint64_t os_now_ms(void);
/* Makes [p, p+size) a guard (no access) or ordinary memory again. */
void os_guard(void *p, size_t size, bool guard);
size_t os_round_page(size_t size);

/* ---- segment.c ---------------------------------------------------------- */
static inline hak_segment_t *segment_of(const void *p) {
  return (hak_segment_t *)((uintptr_t)p & ~(uintptr_t)HAK_SEGMENT_MASK);
}
/*
** A block at a segment boundary: NULL, or a huge block aligned to 4 MiB or
** more.  Every other block lies past its segment's header slice, so
** `p & ~MASK` finds its header; such a block would be the start of its
** own segment, and its header sits one segment below instead (huge.c).
*/
static inline bool segment_is_boundary(const void *p) {
  return ((uintptr_t)p & HAK_SEGMENT_MASK) == 0;
}
/* The segment of block p (not NULL), segment-aligned huge blocks included. */
static inline hak_segment_t *segment_of_block(const void *p) {
  if (unlikely(segment_is_boundary(p))) return (hak_segment_t *)((uintptr_t)p - HAK_SEGMENT_SIZE);
  return segment_of(p);
}
/* Marks `slice` as the n-th slice of its span (n = 0: the page itself). */
static inline void slice_set_back(hak_page_t *slice, unsigned n) {
  slice->slice_back = (uint16_t)(n * sizeof(hak_page_t));
}
/* The page holding block p: one index, one step back for multi-slice spans. */
static inline hak_page_t *page_of(hak_segment_t *seg, const void *p) {
  hak_page_t *slice = &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> HAK_SLICE_SHIFT];
  return (hak_page_t *)((uint8_t *)slice - slice->slice_back);
}
/* p's 4 MiB unit is ours: the first unit of a segment, or the unit of a
** segment-aligned huge block (the override's foreign-pointer test). */
bool segment_is_mapped(const void *p);
/* One bit per 4 MiB unit of the 48-bit address space: a segment starts
** there (segment_map.c keeps it). */
#define SEGMENT_MAP_UNITS ((uint64_t)1 << (48 - HAK_SEGMENT_SHIFT))
extern hak_atomic_t segment_map[SEGMENT_MAP_UNITS / 64];
/* p's 4 MiB unit starts a segment, so segment_of(p) is its header: false
** inside a segment-aligned huge block's first unit, which segment_is_mapped
** counts (any p; reads no memory at p).  Inline: secure builds ask it at
** every free. */
static inline bool segment_has_header(const void *p) {
  uint64_t unit = (uint64_t)(uintptr_t)p >> HAK_SEGMENT_SHIFT;
  if (unit >= SEGMENT_MAP_UNITS) return false;
  return (atomic_load_acquire(&segment_map[unit / 64]) >> (unit % 64)) & 1;
}
/* p is a segment-aligned huge block (any p; reads no memory at p). */
bool segment_is_aligned_huge(const void *p);
void segment_map_set(hak_segment_t *seg, bool on); /* segment_map.c */
void segment_register(hak_segment_t *seg);       /* map + process list */
void segment_unregister(hak_segment_t *seg);
/* Every slice but the header's is free. */
/* Slices a page may take: all but the header's (and in secure builds the
** last one, a guard between this segment and the next mapping). */
#define SEGMENT_USABLE_MASK (~(uint64_t)1 & ~((uint64_t)HAK_SECURE << (HAK_SLICES - 1)))
static inline bool segment_is_empty(const hak_segment_t *seg) {
  return seg->free_mask == SEGMENT_USABLE_MASK;
}
/* An empty segment for heap, first in its list: from the cache, else mapped. */
hak_segment_t *segment_new(hak_heap_t *heap);
/* Gives a segment without an owner to heap, linked where its list wants it. */
void segment_attach(hak_heap_t *heap, hak_segment_t *seg);
/* A span from the heap's own segments, for a large block or a class page
** (each kind takes the slices its own kind left first); NULL if none has
** room. */
hak_page_t *segment_span_alloc(hak_heap_t *heap, unsigned slices, bool large);
void segment_page_free(hak_page_t *page);
void segment_commit(hak_page_t *page, size_t bytes);
/* Grows a large block's span in place to hold `size`; false if the slices
** after it are taken.  Owner thread only. */
bool segment_large_grow(hak_page_t *page, size_t size);
/* The heap's expired purges, and the idle segments' (force: all now, and
** the heap's empty segments and the cache unmapped). */
void segment_purge(hak_heap_t *heap, bool force);
/* The heap's own segments only; returns the earliest deadline left (0: none). */
uint64_t segment_purge_heap(hak_heap_t *heap, bool force);
/* A heap taken by another thread (an orphan) starts its purge delay anew:
** the base delay, and one more delay for the slices whose deadline passed. */
void segment_forget_refaults(hak_heap_t *heap);
/* Bytes of the heap's free slices still resident (purge pending). */
size_t segment_heap_dirty(hak_heap_t *heap);
/* The heap's delay in ms (0: at once, -1: never). */
long segment_heap_delay(hak_heap_t *heap);
/* Memory the heap's timed purge (or trim) returned at `purged_at` (ms) is
** needed again: within two delays, the delay doubles. */
void segment_refaulted(hak_heap_t *heap, uint64_t purged_at);
/* The same for the idle segments (abandoned and cached) alone. */
void segment_purge_idle(bool force);
/* Purges every free slice of a segment now. */
void segment_purge_free(hak_segment_t *seg);
/* Into the cache (its blocks dropped, live or not), or unmapped. */
void segment_free(hak_segment_t *seg);
/* The abandoned list: segments whose thread exited with live blocks. */
void segment_abandon(hak_segment_t *seg);
hak_segment_t *segment_take_abandoned(void);
void segment_set_owner(hak_segment_t *seg, hak_heap_t *heap);
size_t segment_header_size(void);
void segment_list_remove(hak_segment_t **list, hak_segment_t *seg);
/* Per size class (HAK_CLASS_LARGE last), for hak_stats_print. */
typedef struct stats_class_s {
  size_t pages, blocks, bytes, capacity;
} stats_class_t;
void segment_stats_walk(hak_stats_t *out, stats_class_t per_class[HAK_QUEUES]);
void segment_fork_lock(bool lock);
/* In the child of a fork (segment_fork_lock held): the pages whose remote
** freer was between its two CASes, a thread the child does not have. */
void segment_fork_child(void);

/* ---- secure.c: free-list links, and the checks of secure builds -------- */
/*
** Every link stored in a free block (free, local_free, the thread_free
** chain, remote batches) is read with block_next and written with
** block_set_next.  In release and debug builds they are the plain load and
** store.  In secure builds (HAK_SECURE) a link is stored encoded with its
** page's keys, and every link read is decoded and checked to be NULL or a
** block of the page before anyone follows it: a link overwritten by a
** stray write (past a block's end, after a free) stops the program instead
** of handing out the address the write put there.
*/
static inline uint64_t secure_rotl(uint64_t x, unsigned r) {
  return (x << (r & 63)) | (x >> ((64 - r) & 63));
}
static inline uint64_t secure_rotr(uint64_t x, unsigned r) {
  return (x >> (r & 63)) | (x << ((64 - r) & 63));
}
/* The index of the block starting at p in `page`, or a number far above
** `reserved` when p is not a block start of the page (see hak_page_t). */
static inline uint64_t secure_block_index(const hak_page_t *page, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)page->start);
  return secure_rotr(off * page->div_inv, page->div_shift);
}
/* The link stored in free block b, decoded but not checked. */
static inline hak_block_t *secure_decode(const hak_page_t *page, const hak_block_t *b) {
  uint64_t x = (uint64_t)(uintptr_t)b->next;
  return (hak_block_t *)(uintptr_t)(secure_rotr(x - page->key[1], (unsigned)page->key[0]) ^ page->key[0]);
}
void secure_bad_link(const hak_page_t *page, const hak_block_t *b, const void *next)
    __attribute__((noreturn, cold));

/* The link in free block b, decoded but not checked (hak_heap_check's
** walks, which check it themselves and say more). */
static inline hak_block_t *block_peek(const hak_page_t *page, const hak_block_t *b) {
#if HAK_SECURE
  return secure_decode(page, b);
#else
  (void)page;
  return b->next;
#endif
}

static inline hak_block_t *block_next(const hak_page_t *page, const hak_block_t *b) {
  hak_block_t *next = block_peek(page, b);
#if HAK_SECURE
  if (unlikely(next != NULL && secure_block_index(page, next) >= page->capacity))
    secure_bad_link(page, b, next);
#endif
  return next;
}

static inline void block_set_next(const hak_page_t *page, hak_block_t *b, hak_block_t *next) {
#if HAK_SECURE
  uint64_t x = (uint64_t)(uintptr_t)next ^ page->key[0];
  b->next = (hak_block_t *)(uintptr_t)(secure_rotl(x, (unsigned)page->key[0]) + page->key[1]);
#else
  (void)page;
  b->next = next;
#endif
}

/* A block just popped: secure builds clear its link, which would tell the
** program a page key, and which would make its free look like a double
** free to secure_free_check. */
static inline void block_forget(hak_block_t *b) {
#if HAK_SECURE
  b->next = NULL;
#else
  (void)b;
#endif
}

/* Secure builds: a guard page (PROT_NONE) after every segment, large block
** and huge block; 0 elsewhere. */
#define SECURE_GUARD ((size_t)(HAK_SECURE ? HAK_OS_PAGE : 0))
/* Keys and block-index constants of a page being initialised. */
void secure_page_init(hak_page_t *page);
/* Links the n blocks from `first` (block_size apart) into a list in a
** random order; returns its head. */
hak_block_t *secure_carve(hak_page_t *page, uint8_t *first, uint32_t n);
/* The checks of a pointer to free that need no list (debug builds too):
** returns p's page, or NULL for a huge block. */
hak_page_t *secure_check_pointer(const void *p);
/* secure_free_check's rare cases, out of line (see there). */
void secure_free_odd(const void *p);
void secure_free_confirm(hak_page_t *page, const void *p);

/* ---- page.c ------------------------------------------------------------- */
size_t page_colour(const uint8_t *span, unsigned cls);
/* The first byte of a page's span: its start less its colour. */
static inline uint8_t *page_span(const hak_page_t *page) {
  return (uint8_t *)((uintptr_t)page->start & ~(uintptr_t)(HAK_SLICE_SIZE - 1));
}
void page_init(hak_page_t *page, hak_heap_t *heap, unsigned cls, size_t block_size);
void page_extend(hak_page_t *page);
/* An empty page (used == 0) forgets its blocks, purged: uncarved again. */
void page_reset_empty(hak_page_t *page);
/* Moves local_free and thread_free into free; returns true if free != NULL. */
bool page_collect(hak_page_t *page);
/* Takes thread_free back (its blocks off `used`), local_free left alone. */
void page_collect_thread_free(hak_page_t *page);
/* Purges the OS pages past the first of free blocks bigger than one (in
** `free` and `local_free`): those seen free by the walk before, or all if
** `now` (os_purge counts them in the stats). */
void page_purge_free_blocks(hak_page_t *page, bool now);
void page_queue_push_front(page_queue_t *q, hak_page_t *page);
void page_queue_push_back(page_queue_t *q, hak_page_t *page);
void page_queue_remove(page_queue_t *q, hak_page_t *page);
/* Owner side of the notify protocol (see types.h, notify_state_t). */
void page_set_notify(hak_page_t *page, notify_state_t state);
/* A free into another thread's page (held when a remote batch is open). */
void page_push_remote(hak_page_t *page, hak_block_t *block);
/* Pushes the chain first..last (linked through next) with one CAS. */
void page_push_remote_list(hak_page_t *page, hak_block_t *first, hak_block_t *last, uint32_t n);
/* Pushes a page on heap->notified, for the heap's next drain. */
void page_notify(hak_heap_t *heap, hak_page_t *page);
/* In the child of a fork: a page left BUSY by a freer that is not there. */
void page_fork_child(hak_page_t *page);
/* Owner thread: is `block` in one of the page's free lists? */
bool page_contains_free(hak_page_t *page, hak_block_t *block);
extern hak_page_t page_empty;

/* ---- heap.c ------------------------------------------------------------- */
extern hak_heap_t heap_empty; /* a thread's heap before its first allocation */
/* Counts a slow call: every 64th (a tick) takes the long way, which also
** purges and gives back kept blocks that sat idle. */
static inline bool heap_tick(hak_heap_t *heap) { return (++heap->slow_ticks & 63) == 0; }
hak_page_t *heap_find_page(hak_heap_t *heap, unsigned cls);
/*
** The common cases of a refill, with no queue work: the first page of the
** class has blocks (a medium class, which has no direct slot), or its
** owner's frees refill it (free is empty here, so local_free becomes free
** whole).  NULL when the long way (heap_find_page) is needed: no such
** page, or a notification to drain.
*/
static inline hak_page_t *heap_page_quick(hak_heap_t *heap, unsigned cls) {
  hak_page_t *page = heap->queues[cls].first;
  if (!page || atomic_load_relaxed(&heap->notified)) return NULL;
  if (page->free) return page;
  if (page->local_free) {
    page->free = page->local_free;
    page->local_free = NULL;
    if (!page->next || page->capacity - page->used >= page->reserved / 8) return page;
  }
  return NULL;
}

void heap_page_retire(hak_page_t *page);
void heap_page_unfull(hak_page_t *page);
void *heap_large_alloc(hak_heap_t *heap, size_t size);
/* Thread exit: the heap becomes an orphan for the next thread, or is
** abandoned when there are enough of those. */
void heap_leave(hak_heap_t *heap);
/* An exited thread's heap, made the calling thread's; NULL if none. */
hak_heap_t *heap_take_orphan(void);
/* Zeroed memory from the heap structures' pool, never given back. */
void *heap_pool_alloc(size_t size);
void heap_orphans_each_segment(void (*fn)(hak_segment_t *, void *), void *arg);
void heap_fork_lock(bool lock);
hak_heap_t *heap_create(bool is_default);

/* ---- remote.c: batched remote frees ------------------------------------ */
extern __thread unsigned remote_batch_depth tls_initial_exec; /* > 0: a batch is open */
void remote_batch_add(hak_page_t *page, hak_block_t *block);
/* hak_thread_counters' figures, counted on the remote paths. */
extern __thread uint64_t remote_frees tls_initial_exec, remote_pushes tls_initial_exec;

/* ---- thread.c ----------------------------------------------------------- */
extern __thread hak_heap_t *thread_heap tls_initial_exec;
/*
** Thread ids: a number per thread, never reused, given out when a thread
** first owns a heap.  A segment's tid 0 means no thread owns it (abandoned,
** or its heap is in transit); THREAD_ID_NONE, the id of a thread that owns
** nothing yet, matches no segment either.  Not the address of a TLS
** variable: glibc gives a new thread the stack (and TLS) of an exited one,
** so the new thread would match the segments of a heap the exited thread
** still held, and free into them as their owner while another thread
** claims the heap.
*/
#define THREAD_ID_NONE ((uintptr_t)1)
extern __thread uintptr_t thread_tid tls_initial_exec;
static inline uintptr_t thread_id(void) { return thread_tid; }
/* This thread's id, given out now if it has none. */
uintptr_t thread_id_assign(void);
hak_heap_t *thread_heap_init(void);

/* ---- alloc.c ------------------------------------------------------------ */
void *alloc_slow(hak_heap_t *heap, size_t size, size_t align);
void free_slow(hak_segment_t *seg, hak_page_t *page, void *p);
/* The owner's free of a block of any of its pages (full, large). */
void free_block_local(hak_page_t *page, void *p);

/* ---- keep.c: blocks of other heaps kept for this thread's allocations -- */
/* Every kept block back to its page (thread exit, hak_collect). */
void keep_flush(hak_heap_t *heap);
/* The heap's periodic look: classes untouched since the last one go back. */
void keep_tick(hak_heap_t *heap);
/* Bytes kept by all threads (hak_stats_get). */
size_t keep_held(void);

/* The heap's kept blocks of class cls; NULL when it has no table or the
** class is not small. */
static inline keep_class_t *keep_class(hak_heap_t *heap, unsigned cls) {
  return heap->keep != NULL && cls < KEEP_CLASSES ? &heap->keep->cls[cls] : NULL;
}

/* The last kept block of class cls (c->n > 0). */
static inline void *keep_take(hak_heap_t *heap, keep_class_t *c, unsigned cls) {
  keep_t *r = heap->keep;
  c->stale = 0;
  atomic_store_relaxed(&r->bytes, atomic_load_relaxed(&r->bytes) - class_size[cls]);
  return c->slot[--c->n];
}

bool keep_free_slow(hak_heap_t *heap, unsigned cls, void *p);

/*
** A free of another thread's block, of a page of `seg`: true if the
** calling thread kept it.  Out of line when the table is to be made or a
** limit is reached.
*/
static inline bool keep_free(hak_segment_t *seg, hak_page_t *page, void *p) {
  hak_heap_t *heap = thread_heap;
  unsigned cls = page->class_idx; /* set before the block was handed out */
  if (!heap->is_default || cls >= KEEP_CLASSES || remote_batch_depth != 0 ||
      !atomic_load_relaxed(&seg->keepable))
    return false;
  keep_t *r = heap->keep;
  if (unlikely(r == NULL)) return keep_free_slow(heap, cls, p);
  keep_class_t *c = &r->cls[cls];
  uintptr_t bytes = atomic_load_relaxed(&r->bytes) + class_size[cls];
  if (unlikely(c->n == KEEP_SLOTS || bytes > KEEP_BYTES || HAK_DEBUG || HAK_SECURE))
    return keep_free_slow(heap, cls, p);
  c->slot[c->n++] = p;
  c->stale = 0;
  atomic_store_relaxed(&r->bytes, bytes);
  return true;
}

/* ---- huge.c ------------------------------------------------------------- */
void *huge_alloc(hak_heap_t *heap, size_t size, size_t align);
void huge_free(hak_segment_t *seg);
void *huge_realloc(hak_segment_t *seg, size_t size);
void huge_move_all(hak_heap_t *to, hak_heap_t *from);
void huge_destroy_all(hak_heap_t *heap);
void huge_set_owner_all(hak_heap_t *heap);
void huge_fork_lock(bool lock);
/* Calls fn on each huge segment of `heap`, under the huge lock (check.c). */
void huge_each(hak_heap_t *heap, void (*fn)(hak_segment_t *seg, void *arg), void *arg);

/* ---- stats.c ------------------------------------------------------------ */
typedef struct stats_global_s {
  hak_atomic_t mapped, committed, committed_peak, segments, pages;
  hak_atomic_t huge_blocks, purged, mmap_calls, threads, abandoned;
} stats_global_t;
extern stats_global_t stats;
void stats_committed(intptr_t delta);

/* ---- options.c ---------------------------------------------------------- */
void hak_fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void hak_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- secure.c: the check of a free (inline; it needs thread_id) --------- */
/*
** Secure builds stop a free of p that would corrupt the heap, before
** anything is written: a foreign or interior pointer, a pointer into a
** header or a free page, or, from the page's owner, a double free.  Inline
** for the common case (a block of a normal segment): one map bit, one
** index check, and the decode of the block's first word; anything unusual
** goes to secure_free_odd, which finds what it is (a huge block is fine).
** A double free is suspected when the block's first word decodes to NULL
** or to a block of its page, as a free block's link does (a live block's
** was cleared when it was handed out), and confirmed by walking the
** page's lists (mimalloc's idea).  Other threads cannot read the owner's
** lists: a block they free twice makes thread_free loop, which the
** owner's collect, walking the list in secure builds, stops at.
*/
static inline __attribute__((always_inline)) void secure_free_check(const void *p) {
  hak_segment_t *seg = segment_of(p);
  if (unlikely(segment_is_boundary(p) || !segment_has_header(p) || seg->kind != SEGMENT_NORMAL ||
               (uintptr_t)p - (uintptr_t)seg < HAK_SLICE_SIZE)) {
    secure_free_odd(p);
    return;
  }
  hak_page_t *page = page_of(seg, p);
  /* a free page is all zeros: reserved 0 fails this too */
  if (unlikely(secure_block_index(page, p) >= page->reserved)) secure_free_odd(p);
  if (atomic_load_relaxed(&seg->tid) != thread_id()) return;
  if (unlikely(page->used == 0)) secure_free_odd(p);
  hak_block_t *next = secure_decode(page, p);
  if (unlikely(next == NULL || secure_block_index(page, next) < page->capacity)) secure_free_confirm(page, p);
}

#endif
