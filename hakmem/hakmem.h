/*
** hakmem.h -- the public interface of the hakmem allocator.
**
** hakmem is a general allocator tuned for embedded scripting VMs (Lua 5.4
** first).  Every thread allocates from its own heap without locks; a block
** freed by another thread goes back to its owner through an atomic list.
** This header is the whole contract: lua_glue/ and runtime/ use nothing else.
*/
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HAK_API __attribute__((visibility("default")))
#define HAK_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define HAK_API
#define HAK_MALLOC_LIKE
#endif

/* -------------------------------------------------------------------------
** The C allocation API.  Blocks are aligned to 16 bytes (or to whatever
** alignment was asked).  Failures return NULL with errno = ENOMEM (EINVAL
** for a bad alignment); hak_free(NULL) does nothing.
** ---------------------------------------------------------------------- */
HAK_API void *hak_malloc(size_t size) HAK_MALLOC_LIKE;
HAK_API void *hak_calloc(size_t count, size_t size) HAK_MALLOC_LIKE;
HAK_API void *hak_realloc(void *p, size_t size);
HAK_API void hak_free(void *p);
/* `size` is the size last asked for this block (malloc or realloc). */
HAK_API void hak_free_sized(void *p, size_t size);
/* `align` must be a power of two; `size` need not be a multiple of it. */
HAK_API void *hak_aligned_alloc(size_t align, size_t size) HAK_MALLOC_LIKE;
/* Bytes usable in the block p (>= the size asked); 0 for NULL. */
HAK_API size_t hak_usable_size(const void *p);
/* True when p is a block start that hakmem handed out and that lives in one
** of its segments; false for any other pointer, including NULL. */
HAK_API bool hak_owns(const void *p);

/* -------------------------------------------------------------------------
** Heaps.  Each thread has a default heap, made on its first allocation.
** An explicit heap belongs to the thread that made it (or that last called
** hak_heap_claim on it): only that thread allocates from it.  Any thread may
** free any block.
** ---------------------------------------------------------------------- */
typedef struct hak_heap_s hak_heap_t;

HAK_API hak_heap_t *hak_heap_new(void);
/* Live blocks survive: they move to the calling thread's default heap. */
HAK_API void hak_heap_delete(hak_heap_t *heap);
/* Releases every block of the heap at once; its pointers become invalid,
** and so do frees of its blocks that another thread's remote batch still
** holds (hak_remote_batch_begin). */
HAK_API void hak_heap_destroy(hak_heap_t *heap);
/* Handing a heap to another thread (a heap that moves with a Lua state
** between worker threads): the owner calls hak_heap_release, the hand-over
** is synchronised by the caller (a mutex, a queue), the new owner calls
** hak_heap_claim.  In between, nobody owns the heap: every free into it is
** a remote free, so a thread that gave the heap away can still free its
** blocks safely.  A heap whose owner exited without releasing it can be
** claimed the same way. */
HAK_API void hak_heap_release(hak_heap_t *heap);
HAK_API void hak_heap_claim(hak_heap_t *heap);
/* The calling thread's default heap. */
HAK_API hak_heap_t *hak_heap_default(void);

HAK_API void *hak_heap_malloc(hak_heap_t *heap, size_t size) HAK_MALLOC_LIKE;
HAK_API void *hak_heap_calloc(hak_heap_t *heap, size_t count, size_t size) HAK_MALLOC_LIKE;
HAK_API void *hak_heap_realloc(hak_heap_t *heap, void *p, size_t size);
HAK_API void *hak_heap_aligned_alloc(hak_heap_t *heap, size_t align, size_t size) HAK_MALLOC_LIKE;

/* -------------------------------------------------------------------------
** The sized, 8-byte-aligned API for VM clients.  Lua's objects need only
** 8-byte alignment and its hottest sizes (40, 56 B) are odd multiples of 8:
** these calls give them exact classes instead of rounding to 16.  `heap` may
** be NULL for the calling thread's default heap.  Free such blocks with
** hak_free_sized (or hak_free).
** hak_heap_realloc8 never fails when newsize <= oldsize: a shrink that cannot
** get a smaller block keeps the old one.  A block it grows to 16-32 KiB gets
** room to double again in place (VMs grow vectors by doubling).
** ---------------------------------------------------------------------- */
HAK_API void *hak_heap_malloc8(hak_heap_t *heap, size_t size) HAK_MALLOC_LIKE;
HAK_API void *hak_heap_realloc8(hak_heap_t *heap, void *p, size_t oldsize, size_t newsize);

/* -------------------------------------------------------------------------
** Memory return and threads.
** ---------------------------------------------------------------------- */
/* Frees what the calling thread's heaps hold empty; force = return it to the
** OS now instead of after the purge delay. */
HAK_API void hak_collect(bool force);
/* The calling thread will allocate no more (thread pools call it early; it
** runs by itself at thread exit).  Its live blocks stay valid. */
HAK_API void hak_thread_done(void);

/* Batched remote frees.  Between begin and end, the calling thread's frees
** of blocks owned by other threads' pages are held and grouped by page;
** each page's group then goes back with one atomic push instead of one per
** block (closing a Lua state that ran on other threads frees thousands of
** blocks of a few hundred pages).  A batch's first few dozen remote frees
** go back at once: a batch that frees only that many has nothing to
** group.  Calls nest; the outermost end pushes everything held.  Held
** blocks stay counted as live, so their pages stay valid; frees of the
** thread's own blocks are never held.  Not across a heap's end: a
** hak_heap_destroy of a heap whose blocks a batch holds drops their
** pages, and the end then pushes onto whatever reuses them (end the
** batch first; the runtime claims a private heap before it closes a
** state on it, so its frees are local).  A thread ends its batches
** before it exits. */
HAK_API void hak_remote_batch_begin(void);
HAK_API void hak_remote_batch_end(void);

/* What the calling thread did so far (cumulative, this thread only). */
typedef struct hak_thread_counters_s {
  uint64_t remote_frees;   /* frees of blocks owned by other threads' pages */
  uint64_t remote_pushes;  /* atomic pushes they took (fewer when batched) */
} hak_thread_counters_t;
HAK_API void hak_thread_counters(hak_thread_counters_t *out);

/* What one heap holds (`heap` NULL: the calling thread's default heap).
** Only the heap's owner may call it, between its own allocations: it walks
** the heap's pages without locks.  in_use counts whole blocks, and blocks
** that other threads freed but the owner has not taken back yet. */
typedef struct hak_heap_figures_s {
  size_t segments;   /* normal segments the heap owns */
  size_t committed;  /* bytes of them that may be resident */
  size_t pages;      /* pages holding class blocks */
  size_t in_use;     /* bytes in blocks handed out */
  long purge_delay;  /* ms its free memory waits before it goes back to the OS:
                        HAKMEM_PURGE_DELAY, doubled each time memory given back
                        was needed again soon after (up to 1 s), halved after a
                        calm second; 0: at once, -1: never */
} hak_heap_figures_t;
HAK_API void hak_heap_figures(hak_heap_t *heap, hak_heap_figures_t *out);

/* Walks one heap (`heap` NULL: the calling thread's default heap) and checks
** every invariant of its segments, pages, free lists, queues and direct
** table.  Only the heap's owner may call it, between its own allocations;
** other threads may go on freeing into the heap meanwhile.  Returns 0 when
** everything holds; on the first broken invariant it does not return: it
** prints a message naming the heap, the page, the pointer and the
** invariant, and aborts.  In every build; it costs the walk of every page
** and free block of the heap. */
HAK_API int hak_heap_check(hak_heap_t *heap);

/* -------------------------------------------------------------------------
** Statistics.  The OS-level figures are exact counters.  `in_use` is
** counted in whole blocks (so with class rounding) by walking every live
** page; it is exact when no other thread is allocating at that moment.
** Where committed memory that is not in use goes: `remote_pending` (freed
** by other threads, reusable once the page's owner takes it back),
** `free_in_pages` (free blocks on their owners' lists), `kept_for_reuse`
** (freed by other threads, which keep them for themselves), and the rest in
** free slices waiting for reuse or their purge, and pages' uncarved tails.
** ---------------------------------------------------------------------- */
typedef struct hak_stats_s {
  size_t mapped;          /* bytes of address space reserved from the OS */
  size_t committed;       /* bytes that may be resident (not purged) */
  size_t committed_peak;  /* highest `committed` seen */
  size_t in_use;          /* bytes in live blocks (process-wide) */
  size_t segments;        /* live segments (normal and huge) */
  size_t pages;           /* live pages holding class blocks */
  size_t huge_blocks;     /* live huge blocks (mappings of their own) */
  size_t purged;          /* bytes returned to the OS so far (cumulative) */
  size_t mmap_calls;      /* mappings made so far */
  size_t threads;         /* threads whose heaps are live */
  size_t abandoned;       /* segments waiting for adoption */
  size_t remote_pending;  /* bytes of blocks freed by other threads that their
                             page's owner has not taken back yet (not in_use) */
  size_t free_in_pages;   /* bytes of free blocks on the pages' own lists */
  size_t kept_for_reuse;  /* bytes of blocks threads freed into other threads'
                             pages and keep for their own next allocations
                             (at most 256 KiB a thread; not in_use) */
} hak_stats_t;

HAK_API void hak_stats_get(hak_stats_t *out);
/* The counters alone, without the page walk: safe to call while other
** threads allocate.  in_use and pages are 0. */
HAK_API void hak_stats_counters(hak_stats_t *out);
HAK_API void hak_stats_print(FILE *out);

/* -------------------------------------------------------------------------
** Options.  Each is read once from its environment variable (HAKMEM_<NAME>,
** e.g. HAKMEM_PURGE_DELAY=10) unless set through the API first.
** ---------------------------------------------------------------------- */
typedef enum hak_option_e {
  HAK_OPT_SHOW_STATS,   /* HAKMEM_SHOW_STATS: print stats at exit (0/1) */
  HAK_OPT_PURGE_DELAY,  /* HAKMEM_PURGE_DELAY: ms before empty memory is
                           returned to the OS; 0 = at once, -1 = never */
  HAK_OPT_VERBOSE,      /* HAKMEM_VERBOSE: print warnings (0/1) */
  HAK_OPT_ORPHAN_HEAPS, /* HAKMEM_ORPHAN_HEAPS: exited threads' heaps kept
                           whole for the next threads (8); 0 = abandon their
                           segments at exit */
  HAK_OPT_ORPHAN_GRACE, /* HAKMEM_ORPHAN_GRACE: ms an orphan's free memory
                           stays resident for the next thread (250) when its
                           thread emptied 1 MiB or more at exit, within 32 MiB
                           for all orphans; never below the purge delay;
                           0 = the purge delay alone */
  HAK_OPT__COUNT
} hak_option_t;

HAK_API long hak_option_get(hak_option_t opt);
HAK_API void hak_option_set(hak_option_t opt, long value);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
