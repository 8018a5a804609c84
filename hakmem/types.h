/*
** types.h -- hakmem's constants and data structures, with their invariants.
**
** Memory is reserved from the OS in segments: 4 MiB mappings aligned to
** 4 MiB, so `p & ~(SEGMENT_SIZE-1)` finds the segment of any block.  A
** segment is cut into 64 slices of 64 KiB; slice 0 holds the segment header
** (only the bytes it touches become resident), the others are grouped into
** pages.  A page is a span of 1..63 slices holding blocks of one size class,
** or one large block.  Huge blocks get a segment of their own of any size.
*/
#ifndef HAKMEM_TYPES_H
#define HAKMEM_TYPES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "hakmem.h"

/* ------------------------------------------------------------------------
** Build-time knobs.
** --------------------------------------------------------------------- */
#ifndef HAK_DEBUG
#define HAK_DEBUG 0 /* 1: assertions, double-free and foreign-free checks */
#endif
#ifndef HAK_SECURE
#define HAK_SECURE 0 /* 1: encoded free lists, checked pops and frees, guard pages */
#endif

#define HAK_SEGMENT_SHIFT 22 /* 4 MiB segments */
#define HAK_SLICE_SHIFT 16   /* 64 KiB slices */
#define HAK_SEGMENT_SIZE ((size_t)1 << HAK_SEGMENT_SHIFT)
#define HAK_SEGMENT_MASK (HAK_SEGMENT_SIZE - 1)
#define HAK_SLICE_SIZE ((size_t)1 << HAK_SLICE_SHIFT)
#define HAK_SLICES (HAK_SEGMENT_SIZE / HAK_SLICE_SIZE) /* 64: one bit each in a uint64_t */

#define HAK_SMALL_MAX 1024          /* sizes found by one table index */
#define HAK_MEDIUM_MAX (32 * 1024)  /* largest block kept in a class page */
#define HAK_LARGE_MAX (2u << 20)    /* largest block in a span of a segment */
#define HAK_DIRECT_SLOTS (HAK_SMALL_MAX / 8 + 1) /* pages_direct[(size+7)>>3] */
#define HAK_MEDIUM_SLOTS ((HAK_MEDIUM_MAX - HAK_SMALL_MAX) / 128) /* class_of_medium */

/* Classes: 8..128 every 8 B (16 classes), then 8 classes per doubling up to
** HAK_MEDIUM_MAX, so that a block wastes at most 1/9 of itself above 128 B;
** then HAK_ALIGNED_TWINS classes of the 4 KiB multiples from 12 to 32 KiB
** whose pages are not coloured, for aligned requests only (classes.c). */
#define HAK_ALIGNED_TWINS 6
#define HAK_CLASS_TWIN_FIRST 80
#define HAK_CLASSES (HAK_CLASS_TWIN_FIRST + HAK_ALIGNED_TWINS)
#define HAK_CLASS_LARGE HAK_CLASSES /* queue index of one-block large pages */
#define HAK_QUEUES (HAK_CLASSES + 1)

#define HAK_PAGE_SMALL_MAX (8 * 1024) /* blocks up to this use 1-slice pages */
#define HAK_PAGE_MEDIUM_SLICES 16     /* bigger class blocks: 1 MiB pages (classes.c) */
/* Those 1 MiB pages start 0 to 63 cache lines into their span, by the
** span's address (page_colour, page.c), but for the aligned twins; every
** other page at its span. */
#define HAK_PAGE_COLOUR_STEP 64
#define HAK_PAGE_COLOURS 64
#define HAK_CARVE (4 * 1024) /* bytes of blocks one carve makes (page.c) */

#define HAK_OS_PAGE 4096

/* ------------------------------------------------------------------------
** Blocks.  A free block holds the pointer to the next one in its list.
** --------------------------------------------------------------------- */
typedef struct hak_block_s {
  struct hak_block_s *next;
} hak_block_t;

/* The low two bits of page->thread_free say whether the owner wants to hear
** about remote frees (see "full pages" in docs/architecture.md). */
typedef enum notify_state_e {
  NOTIFY_NONE = 0,   /* page is in a normal queue: just push */
  NOTIFY_WANTED = 1, /* page is full: the next remote freer notifies the heap */
  NOTIFY_BUSY = 2,   /* a remote freer is pushing the page on heap->notified */
  NOTIFY_NEVER = 3,  /* page has no heap (abandoned segment): just push */
} notify_state_t;
#define NOTIFY_MASK ((uintptr_t)3)

/*
** The rest of page->thread_free: the list's first block in bits 2..47
** (user addresses stay below 2^48: segment_new refuses others) and, in
** bits 48..63, how many blocks the list holds, saturating at TF_COUNT_MAX.
** The pushers add their chain's length in the same CAS, so the owner
** takes the list without walking it: a walk is a chain of cache misses on
** blocks that other threads wrote (bench/threads churn: 17% of its time).
*/
#define TF_COUNT_SHIFT 48
#define TF_COUNT_MAX ((uintptr_t)0xffff)
#define TF_BLOCK_MASK ((((uintptr_t)1 << TF_COUNT_SHIFT) - 1) & ~NOTIFY_MASK)

static inline hak_block_t *tf_block(uintptr_t tf) {
  return (hak_block_t *)(tf & TF_BLOCK_MASK);
}

static inline uintptr_t tf_count(uintptr_t tf) {
  return tf >> TF_COUNT_SHIFT;
}

/* Page flags, tested together on the local free fast path. */
#define PAGE_IN_FULL 1 /* in heap->full, not in its class queue */
#define PAGE_HUGE 2    /* the block of a huge segment */

/* ------------------------------------------------------------------------
** A page: a span of slices holding blocks of one size.
**
** Invariants:
** - `free`, `local_free` and the list in `thread_free` are disjoint lists
**   of blocks of this page; `free` and `local_free` are touched by the
**   owner thread only, `thread_free` by anyone (CAS).
** - used = capacity - |free| - |local_free|: the blocks handed out,
**   including those already in `thread_free` (the owner subtracts those
**   when it takes the list).  used == 0 means the page is empty.
** - capacity <= reserved; blocks [capacity, reserved) are not carved yet
**   and their memory may never have been touched.
** - A page is in exactly one of its heap's queues: queues[class_idx] or
**   full (flags & PAGE_IN_FULL).  A full page has NOTIFY_WANTED (or a
**   freer has just turned it to BUSY/NONE and pushed it on heap->notified).
** - Only the first slice's descriptor of a span is a page; the others hold
**   slice_back, the distance back to it in bytes (free subtracts it with
**   no scaling; it is 0 in the page itself).
** - The fields free touches (free, used, flags, slice_back, local_free)
**   share the first cache line.
** --------------------------------------------------------------------- */
typedef struct hak_page_s {
  hak_block_t *free;         /* allocation pops here */
  uint32_t used;             /* blocks handed out (see above) */
  uint8_t flags;             /* PAGE_IN_FULL | PAGE_HUGE */
  uint8_t class_idx;         /* size class, or HAK_CLASS_LARGE */
  uint16_t slice_back;       /* bytes back to the span's first descriptor */
  hak_block_t *local_free;   /* owner's frees, no atomics */
  hak_atomic_t thread_free;  /* remote frees: hak_block_t* | notify_state_t */
  size_t block_size;         /* bytes per block */
  uint32_t capacity;         /* blocks carved into the lists so far */
  uint32_t reserved;         /* blocks that fit in the span */
  uint8_t *start;            /* first block */
  struct hak_heap_s *heap;   /* owning heap (NULL in an abandoned segment) */
  struct hak_page_s *next;   /* class queue or full queue */
  struct hak_page_s *prev;
  struct hak_page_s *notify_next; /* link in heap->notified */
  uint8_t slice_count;            /* slices in the span (0: not a page start) */
  /* Secure builds (HAK_SECURE, secure.c): the keys of the free-list links
  ** and block_size = odd << shift with inv = odd^-1 mod 2^64, so that
  ** "is this offset a block start, and which one" is a multiply and a
  ** rotate.  Set by page_init; unused in other builds. */
  uint8_t div_shift;
  uint8_t empty_seen; /* heap_trim_empty: found empty by the last look, or reset */
  uint8_t pad[1];
  uint32_t trimmed_at; /* heap_trim_empty: ms (mod 2^32) of its reset */
  uint64_t key[2];
  uint64_t div_inv;
  uint8_t pad2[8]; /* 128 bytes: free finds a page by a shift */
} hak_page_t;

_Static_assert(sizeof(hak_page_t) == 128, "page descriptors are 128 bytes");

/* ------------------------------------------------------------------------
** A segment.
**
** Invariants:
** - The segment starts at a multiple of HAK_SEGMENT_SIZE and is registered
**   in the segment map (segment.c) while it is mapped.
** - A normal segment: slice 0 is the header; free_mask has a bit for each
**   slice not in a page; commit_mask for each slice that may be resident;
**   purge_mask (a subset of free_mask & commit_mask) for free slices waiting
**   for their purge deadline; purged_mask (disjoint from commit_mask) for
**   slices a timed purge returned and nothing has touched since;
**   large_mask (a subset of free_mask & commit_mask) for free slices that
**   a large block left, resident only where the program wrote it.
** - A huge segment (kind SEGMENT_HUGE) holds one block at `huge_offset`
**   and every descriptor's slice_back leads to pages[0].  huge_offset is
**   the header size rounded up to the block's alignment, or, above 2 MiB,
**   HAK_SEGMENT_SIZE: that block starts a 4 MiB unit of its own, its header
**   one unit below (segment_of_block).
** - tid is the owning heap's thread (0 when abandoned); frees compare it to
**   their own thread to choose a local or a remote free.
** --------------------------------------------------------------------- */
typedef enum segment_kind_e { SEGMENT_NORMAL, SEGMENT_HUGE } segment_kind_t;

/*
** The header's fields start SEGMENT_COLOUR bytes in.  At offset 0 they
** would share their L1 cache set (address bits 6-11) with every page start
** (all at 64 KiB multiples) and every block of the 4, 8, 16 and 32 KiB
** classes, which crowd that set; `tid`, read by every free, was then a
** miss on most of them (tight T=1 under cachegrind: 457,000 misses on it
** per million frees, 114,000 with the colour).
*/
#define SEGMENT_COLOUR (5 * 64)

typedef struct hak_segment_s {
  uint8_t colour[SEGMENT_COLOUR]; /* never touched */
  hak_atomic_t tid;             /* owner thread id, read by every free */
  struct hak_heap_s *heap;      /* owner heap (NULL: abandoned) */
  hak_atomic_t keepable;        /* 1: a default heap's or abandoned (keep.c) */
  segment_kind_t kind;
  size_t size;                  /* bytes mapped */
  size_t huge_offset;           /* huge: where the block starts */
  uint64_t free_mask;           /* free slices */
  uint64_t commit_mask;         /* slices possibly resident */
  uint64_t purge_mask;          /* free dirty slices to purge at purge_at */
  uint64_t purge_at;            /* deadline in ms (monotonic clock) */
  uint64_t purged_mask;         /* returned by a timed purge, untouched since */
  uint64_t purged_at;           /* ms of that purge */
  uint64_t large_mask;          /* free slices a large block left */
  struct hak_segment_s *next;   /* heap's segment list (or abandoned list) */
  struct hak_segment_s *prev;
  struct hak_segment_s *all_next; /* process-wide list, for stats */
  struct hak_segment_s *all_prev;
  hak_page_t pages[HAK_SLICES]; /* one descriptor per slice */
} hak_segment_t;

_Static_assert(offsetof(hak_segment_t, tid) % 4096 != 0, "tid off the page starts' cache set");

/* ------------------------------------------------------------------------
** A heap: the pages one thread allocates from.
**
** Invariants:
** - Only the owner thread (tid) touches a heap, except `notified`, which
**   remote freers push onto.
** - pages_direct[i] is the first page of the queue of class
**   class_of_slot[i], or &page_empty when that queue is empty; it is
**   never NULL, so the fast path needs no check beyond "free != NULL".
** - segments: the heap's normal segments, those with a free slice first.
** - huge: huge segments owned by the heap, guarded by the global huge lock
**   (any thread may free a huge block).
** --------------------------------------------------------------------- */
typedef struct page_queue_s {
  hak_page_t *first;
  hak_page_t *last;
} page_queue_t;

/*
** The small blocks a default heap's thread freed into other default heaps'
** pages and keeps for its own allocations (keep.c).  Only the owner
** thread touches it; `bytes` is also read by hak_stats_get.
** - cls[c].slot[0 .. n) are live blocks (counted in their pages' `used`)
**   of class c, of segments with `keepable` set, no two alike.
** - bytes = sum over classes of n * class_size[c] <= KEEP_BYTES.
** - stale: n > 0 and no allocation took one since the heap's last tick.
*/
#define KEEP_CLASSES 40                /* the small classes, up to HAK_SMALL_MAX */
#define KEEP_SLOTS 32                  /* blocks kept per class */
#define KEEP_BYTES ((size_t)256 << 10) /* bytes kept in all */

typedef struct keep_class_s {
  uint32_t n;
  uint32_t stale;
  void *slot[KEEP_SLOTS];
} keep_class_t;

typedef struct keep_s {
  hak_atomic_t bytes;
  struct keep_s *all_next; /* every table made (keep.c) */
  keep_class_t cls[KEEP_CLASSES];
} keep_t;

struct hak_heap_s {
  hak_page_t *pages_direct[HAK_DIRECT_SLOTS]; /* the fast path's table */
  page_queue_t queues[HAK_QUEUES];            /* pages with (maybe) free blocks */
  page_queue_t full;                          /* pages without any */
  hak_atomic_t notified;        /* stack of full pages that got remote frees */
  uintptr_t tid;                /* owner thread */
  hak_segment_t *segments;      /* normal segments */
  hak_segment_t *huge;          /* huge segments (global huge lock) */
  size_t empty_segments;        /* segments with every slice free */
  bool purge_pending;           /* some segment has purge_mask != 0 */
  uint32_t purge_delay;         /* ms, adapted (segment.c); 0 until first used */
  uint64_t refault_at;          /* ms of the last refault of purged slices */
  bool is_default;              /* a thread's default heap */
  uint32_t slow_ticks;          /* slow-path calls, to pace purge checks */
  uint64_t blocks_purge_at;     /* ms of the next walk of free blocks (heap.c) */
  uint64_t trim_at;             /* ms of the next look at empty pages (heap.c) */
  struct hak_heap_s *pool_next; /* heap pool free list (or the orphans) */
  uint64_t orphan_until;        /* an orphan: ms its grace ends (heap.c) */
  size_t orphan_dirty;          /* an orphan: bytes of free slices unpurged */
  keep_t *keep;               /* a default heap's kept blocks, made on first
                                   use; it stays with the structure (pool) */
};

#endif
