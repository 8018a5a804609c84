/*
** test_check.c -- the invariant checker (hak_heap_check, hakmem/check.c):
** a healthy heap passes after every kind of work, one checked while another
** thread frees into it included; each structure corrupted on purpose is
** reported, with a message that names the invariant, the heap and the page.
**
** The corruption tests write into hakmem's structures, so this file reads
** their layout from the internal headers (internal.h, types.h).  Each
** corruption happens in a forked child (hkt_run_child), which must die of
** SIGABRT; the test then reads what the child wrote to stderr.  The checker
** is in every build, so these tests run in every mode.
*/
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "helpers.h"
#include "internal.h" /* the structures the tests corrupt; segment_of, page_of */
#include "fixture.h"

TestSuite(check, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

static hak_page_t *page_of_block(void *p) { return page_of(segment_of(p), p); }

static void *free_blocks(void *arg) {
  void **b = arg;
  for (; *b != NULL; b++) hak_free(*b);
  return NULL;
}

/* =========================================================================
** Healthy heaps pass
** ====================================================================== */

Test(check, a_thread_without_a_heap_passes) {
  cr_expect_eq(hak_heap_check(NULL), 0, "a thread that never allocated");
}

/*
** Small, medium, large, huge, aligned and 8-byte blocks, reallocs, local
** frees, remote frees from another thread (left in thread_free, and full
** pages notified), a collect, an explicit heap: the checker passes at every
** step.  The figures show it had pages to walk.
*/
Test(check, healthy_heap_passes_after_mixed_work) {
  enum { N = 4000 };
  void **b = calloc(N + 1, sizeof *b);
  void **remote = calloc(N + 1, sizeof *remote);
  cr_assert(b && remote, "setup");
  hkt_rng_t rng;
  hkt_rng_init(&rng, 42);
  for (size_t i = 0; i < N; i++) {
    switch (i % 8) {
    case 0: b[i] = hak_malloc(hkt_rng_log(&rng, HKT_SMALL_MAX + 1, HKT_MEDIUM_MAX)); break;
    case 1: b[i] = hak_heap_malloc8(NULL, 8 * hkt_rng_range(&rng, 1, 16)); break;
    case 2: b[i] = hak_aligned_alloc((size_t)1 << hkt_rng_range(&rng, 4, 12), 100); break;
    default: b[i] = hak_malloc(hkt_rng_size(&rng)); break;
    }
    cr_assert_not_null(b[i]);
  }
  b[0] = hak_realloc(b[0], 300 * HKT_KiB); /* large */
  b[8] = hak_realloc(b[8], 3 * HKT_MiB);   /* huge */
  cr_expect_eq(hak_heap_check(NULL), 0, "after the allocations");
  hak_heap_figures_t fig;
  hak_heap_figures(NULL, &fig);
  cr_expect(fig.pages > 10 && fig.segments >= 1, "the walk had %zu pages in %zu segments",
            fig.pages, fig.segments);

  for (size_t i = 3; i < N; i += 3) {
    void *q = hak_realloc(b[i], hkt_rng_size(&rng));
    cr_assert_not_null(q);
    b[i] = q;
  }
  cr_expect_eq(hak_heap_check(NULL), 0, "after reallocs");
  for (size_t i = 1; i < N; i += 2) {
    hak_free(b[i]);
    b[i] = NULL;
  }
  cr_expect_eq(hak_heap_check(NULL), 0, "after local frees");

  size_t r = 0;
  for (size_t i = 0; i < N; i += 4) {
    remote[r++] = b[i];
    b[i] = NULL;
  }
  hkt_run_thread(free_blocks, remote); /* into thread_free, and full pages notified */
  cr_expect_eq(hak_heap_check(NULL), 0, "with remote frees not taken back yet");

  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  void *hb[64];
  for (size_t i = 0; i < 64; i++) hb[i] = hak_heap_malloc(h, 16 + i * 100);
  for (size_t i = 0; i < 64; i += 2) hak_free(hb[i]);
  cr_expect_eq(hak_heap_check(h), 0, "an explicit heap");
  hak_heap_destroy(h);

  hak_collect(false);
  cr_expect_eq(hak_heap_check(NULL), 0, "after hak_collect(false)");
  for (size_t i = 0; i < N; i++) hak_free(b[i]);
  cr_expect_eq(hak_heap_check(NULL), 0, "after every block was freed");
  hak_collect(true);
  cr_expect_eq(hak_heap_check(NULL), 0, "after hak_collect(true)");
  free(remote);
  free(b);
}

/*
** The owner checks its heap over and over while another thread frees the
** owner's blocks: the checker reads each thread_free list once and walks
** only that snapshot.
*/
typedef struct race_s {
  void **blocks;
  size_t n;
  atomic_int done;
} race_t;

static void *free_slowly(void *arg) {
  race_t *r = arg;
  for (size_t i = 0; i < r->n; i++) hak_free(r->blocks[i]);
  atomic_store(&r->done, 1);
  return NULL;
}

Test(check, passes_while_another_thread_frees_into_the_heap) {
  enum { N = 200000 };
  race_t r = {calloc(N, sizeof(void *)), N, 0};
  cr_assert_not_null(r.blocks);
  for (size_t i = 0; i < N; i++) r.blocks[i] = hak_malloc(16 + (i % 64) * 8);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, free_slowly, &r), 0);
  size_t checks = 0;
  while (!atomic_load(&r.done)) {
    cr_assert_eq(hak_heap_check(NULL), 0, "check %zu", checks);
    checks++;
  }
  pthread_join(t, NULL);
  cr_expect_eq(hak_heap_check(NULL), 0, "after the frees");
  cr_log_info("%zu checks while the other thread freed", checks);
  free(r.blocks);
}

/* =========================================================================
** Corrupted heaps are reported
** ====================================================================== */

/* The scene every corruption starts from, made in the test before the fork:
** three blocks of one 48 B page, b freed (local_free = b), c freed by
** another thread (thread_free = c), a large block of 5 slices, a huge one. */
static struct scene_s {
  hak_heap_t *heap;
  hak_segment_t *seg;
  hak_page_t *page;  /* of a, b, c */
  void *a, *b, *c;
  hak_page_t *large; /* a large block's page */
  void *huge;
} sc;

static void *large_block; /* sc.large's block */

static void *free_c(void *arg) {
  (void)arg;
  hak_free(sc.c);
  return NULL;
}

static void scene(void) {
  sc.heap = hak_heap_default();
  sc.a = hak_malloc(48);
  sc.b = hak_malloc(48);
  sc.c = hak_malloc(48);
  void *large = large_block = hak_malloc(300 * HKT_KiB);
  sc.huge = hak_malloc(5 * HKT_MiB);
  cr_assert(sc.heap && sc.a && sc.b && sc.c && large && sc.huge, "setup");
  sc.page = page_of_block(sc.a);
  sc.seg = segment_of(sc.a);
  sc.large = page_of_block(large);
  cr_assert(page_of_block(sc.b) == sc.page && page_of_block(sc.c) == sc.page, "setup: one page");
  cr_assert(sc.large->slice_count >= 3, "setup: a large span of %u slices", sc.large->slice_count);
  hak_free(sc.b);
  hkt_run_thread(free_c, NULL);
  cr_assert(sc.page->local_free == (hak_block_t *)sc.b, "setup: b in local_free");
  cr_assert(tf_block(atomic_load_relaxed(&sc.page->thread_free)) == (hak_block_t *)sc.c,
            "setup: c in thread_free");
  cr_assert_eq(hak_heap_check(NULL), 0, "the scene itself is healthy");
}

/* Runs corrupt() and the check in a child: it must abort, with a message
** that names the invariant (`words`), the heap and the page. */
static void expect_caught(void (*corrupt)(void), const char *words, const void *page) {
  scene();
  char out[4096];
  bool aborted = hkt_run_child((void (*)(void *))corrupt, NULL, out, sizeof out);
  cr_expect(aborted, "the check did not abort; stderr: \"%s\"", out);
  cr_expect(hkt_mentions(out, "heap check"), "not the checker's message: \"%s\"", out);
  cr_expect(hkt_mentions(out, words), "the message does not say \"%s\": \"%s\"", words, out);
  cr_expect(hkt_names_pointer(out, sc.heap), "the message does not name the heap %p: \"%s\"",
            (void *)sc.heap, out);
  if (page)
    cr_expect(hkt_names_pointer(out, page), "the message does not name the page %p: \"%s\"",
              page, out);
  /* the child died with the corruption; the scene here is intact */
  hak_free(sc.a);
  hak_free(large_block);
  hak_free(sc.huge);
}

#define CORRUPTION(name, words, page, ...)                        \
  static void corrupt_##name(void) {                              \
    __VA_ARGS__;                                                  \
    hak_heap_check(NULL);                                         \
  }                                                               \
  Test(check, name) { expect_caught(corrupt_##name, words, page); }

/* ---- a page's counters and lists ---------------------------------------- */

CORRUPTION(used_off_by_one, "used == capacity - |free| - |local_free|", sc.page,
           sc.page->used++)

CORRUPTION(capacity_over_reserved, "capacity <= reserved", sc.page,
           sc.page->capacity = sc.page->reserved + 1)

CORRUPTION(block_size_of_another_class, "block_size matches class_idx", sc.page,
           sc.page->block_size = 64)

/* local_free (b) goes on into the free list: those blocks are in two lists */
CORRUPTION(block_in_two_lists, "the free and local_free lists", sc.page,
           block_set_next(sc.page, (hak_block_t *)sc.b, sc.page->free))

/* c, in thread_free, is linked into local_free too */
CORRUPTION(block_in_local_and_thread_free, "the local_free and thread_free lists", sc.page,
           block_set_next(sc.page, (hak_block_t *)sc.b, sc.c))

/* thread_free holds c alone; its word says two blocks */
CORRUPTION(thread_free_count_off, "thread_free's count is its list's length", sc.page,
           atomic_store_relaxed(&sc.page->thread_free,
                                atomic_load_relaxed(&sc.page->thread_free) + ((uintptr_t)1 << TF_COUNT_SHIFT)))

CORRUPTION(cycle_in_local_free, "cycle", sc.page, block_set_next(sc.page, (hak_block_t *)sc.b, sc.b))

CORRUPTION(cycle_in_free, "cycle", sc.page,
           block_set_next(sc.page, block_peek(sc.page, sc.page->free), sc.page->free))

CORRUPTION(link_inside_a_block, "block boundaries", sc.page,
           block_set_next(sc.page, (hak_block_t *)sc.b, (hak_block_t *)((char *)sc.a + 8)))

CORRUPTION(link_out_of_the_page, "inside their page", sc.page,
           block_set_next(sc.page, (hak_block_t *)sc.b, (hak_block_t *)sc.huge))

/* ---- queues and the direct table ---------------------------------------- */

CORRUPTION(queue_prev_link, "prev is", sc.page, sc.page->prev = sc.page)

CORRUPTION(queue_last, "last is", NULL, sc.heap->queues[sc.page->class_idx].last = NULL)

/* the 48 B page leaves its queue (first and last cleared) */
CORRUPTION(page_in_no_queue, "exactly one queue", sc.page,
           sc.heap->queues[sc.page->class_idx].first = NULL;
           sc.heap->queues[sc.page->class_idx].last = NULL)

/* the large page (the only full one) moves from full to the 8 B queue */
CORRUPTION(page_in_a_class_queue_with_the_full_flag,
           "a page is in queues[class_idx] unless PAGE_IN_FULL", sc.large,
           sc.heap->full.first = sc.heap->full.last = NULL;
           sc.heap->queues[0].first = sc.heap->queues[0].last = sc.large)

CORRUPTION(class_page_flagged_full, "a page in full has no free block", sc.page,
           sc.page->flags |= PAGE_IN_FULL)

CORRUPTION(large_page_out_of_full, "a large page is in the full queue", sc.large,
           sc.large->flags = 0)

/* the large page is full (WANTED): NONE says a freer put it on `notified` */
CORRUPTION(full_page_not_notified, "not on the heap's notified stack", sc.large,
           atomic_store_relaxed(&sc.large->thread_free, NOTIFY_NONE))

/* slot 6 (41..48 B) points at slot 128's page (1 KiB: none, page_empty) */
CORRUPTION(pages_direct_wrong, "pages_direct[6]", NULL,
           sc.heap->pages_direct[6] = sc.heap->pages_direct[128])

/* ---- segments, slices, masks -------------------------------------------- */

static unsigned large_idx(void) { return (unsigned)(sc.large - sc.seg->pages); }

CORRUPTION(purge_mask_on_a_used_slice, "purge_mask is a subset", NULL,
           sc.seg->purge_mask |= (uint64_t)1 << large_idx())

CORRUPTION(free_mask_on_the_header, "free_mask excludes the header", NULL,
           sc.seg->free_mask |= 1)

CORRUPTION(slice_of_a_span_marked_free, "slices covered once", sc.large,
           sc.seg->free_mask |= (uint64_t)1 << (large_idx() + 1))

CORRUPTION(slice_back_wrong, "slice_back leads to the span's page", sc.large,
           sc.seg->pages[large_idx() + 2].slice_back = sizeof(hak_page_t))

CORRUPTION(empty_segments_miscounted, "empty_segments", NULL, sc.heap->empty_segments += 1)

CORRUPTION(segment_of_another_heap, "segment heap is the heap", NULL,
           sc.seg->heap = (hak_heap_t *)sc.a)

CORRUPTION(huge_slice_back, "huge segment", NULL,
           segment_of(sc.huge)->pages[7].slice_back = 0)

/* Large blocks of one slice each until a second segment opens: the first
** is full, and goes behind the new one.  The child puts it back in front. */
static void full_segment_first(void *arg) {
  hak_segment_t *full = arg, *other = sc.heap->segments;
  other->next = NULL;
  other->prev = full;
  full->prev = NULL;
  full->next = other;
  sc.heap->segments = full;
  hak_heap_check(NULL);
}

Test(check, full_segment_before_one_with_room) {
  enum { MAX = 200 };
  void *b[MAX];
  size_t n = 0;
  hak_heap_figures_t fig = {0};
  sc.heap = hak_heap_default();
  while (n < MAX && fig.segments < 2) {
    b[n] = hak_malloc(40000);
    cr_assert_not_null(b[n]);
    hak_heap_figures(NULL, &fig);
    n++;
  }
  hak_segment_t *full = segment_of(b[0]);
  cr_assert(fig.segments == 2 && full->free_mask == 0 && sc.heap->segments->next == full &&
                full->next == NULL,
            "setup: %zu segments, the first one's free_mask %#llx", fig.segments,
            (unsigned long long)full->free_mask);
  cr_assert_eq(hak_heap_check(NULL), 0, "the scene itself is healthy");
  char out[4096];
  bool aborted = hkt_run_child(full_segment_first, full, out, sizeof out);
  cr_expect(aborted, "the check did not abort; stderr: \"%s\"", out);
  cr_expect(hkt_mentions(out, "segments with a free slice come first"),
            "the message does not name the order: \"%s\"", out);
  cr_expect(hkt_names_pointer(out, sc.heap->segments), "the message does not name the segment");
  for (size_t i = 0; i < n; i++) hak_free(b[i]);
}

/* ---- the caller ----------------------------------------------------------- */

static void *check_scene_heap(void *arg) {
  (void)arg;
  hak_heap_check(sc.heap);
  return NULL;
}

CORRUPTION(called_by_another_thread, "called by the heap's owner", NULL,
           hkt_run_thread(check_scene_heap, NULL))

/* The same in Criterion's own form: the test process itself aborts. */
Test(check, corrupted_used_aborts_the_test, .signal = SIGABRT) {
  scene();
  sc.page->used--;
  hak_heap_check(NULL);
}
