/*
** test_reuse.c -- what an exited thread leaves is reused, not remapped.
**
** A thread that exits gives its empty pages back to its segments and
** leaves its heap whole for the next thread (an orphan), or, with
** HAKMEM_ORPHAN_HEAPS=0, gives its empty segments to the segment cache,
** unpurged, and its segments with live blocks to the abandoned list; it
** unmaps nothing.  The next thread takes the orphan, or adopts the
** abandoned segments and takes the cached ones, before it maps anything.
** Free memory nobody takes is purged at its deadline by any heap's purge,
** and hak_collect(true) unmaps it; an orphan whose thread emptied 1 MiB or
** more at exit keeps it for a grace (HAKMEM_ORPHAN_GRACE) first.
**
** Each test sets a purge delay of its own, so that no deadline passes
** (or one surely does) while it looks.  tests/plain/reuse.c builds this
** file without Criterion for TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <time.h>

#include "threads_common.h"
#include "fixture.h"

TestSuite(reuse, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define KEEP 8 /* blocks a worker leaves live, spread over its segments */
#define WORK_BYTES (6u << 20) /* what a worker allocates: two segments' worth */
#define BLOCK 1000 /* bytes per block */

static void *kept[2][KEEP];

/* Allocates WORK_BYTES in blocks of BLOCK bytes, keeps KEEP of them (spread
** over the run) in kept[round], frees the rest, and exits. */
static void *worker(void *arg) {
  size_t round = (size_t)arg;
  size_t n = WORK_BYTES / BLOCK;
  void **all = hak_malloc(n * sizeof *all);
  if (!all) return NULL;
  for (size_t i = 0; i < n; i++) {
    all[i] = hak_malloc(BLOCK);
    if (all[i]) memset(all[i], (int)i, BLOCK);
  }
  for (size_t i = 0; i < n; i++) {
    if (i % (n / KEEP) == 0 && i / (n / KEEP) < KEEP) kept[round][i / (n / KEEP)] = all[i];
    else hak_free(all[i]);
  }
  hak_free(all);
  hak_heap_check(NULL); /* with the segments it took from the one before */
  return NULL;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* A thread exit unmaps nothing; the next thread maps nothing. */
static void next_thread_takes_what_an_exited_one_left(long orphan_heaps) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 100000); /* no deadline passes in this test */
  hak_option_set(HAK_OPT_ORPHAN_HEAPS, orphan_heaps);
  hak_free(hak_malloc(1));
  hak_collect(true);
  hak_stats_t s0, s1, s2, s3;
  hak_stats_counters(&s0);

  hkt_run_thread(worker, (void *)0);
  hak_stats_counters(&s1);
  cr_expect(s1.mmap_calls > s0.mmap_calls, "the first worker mapped nothing");
  if (orphan_heaps == 0) cr_expect(s1.abandoned >= 1, "no segment with live blocks was abandoned");
  else cr_expect(s1.abandoned == 0, "%zu segments abandoned: the heap should wait whole", s1.abandoned);
  cr_expect(s1.mapped >= s0.mapped + 2 * (4u << 20), "a thread exit unmapped its segments "
                "(mapped %zu KiB, %zu KiB before it)", s1.mapped >> 10, s0.mapped >> 10);

  hkt_run_thread(worker, (void *)1);
  hak_stats_counters(&s2);
  cr_expect(s2.mmap_calls == s1.mmap_calls,
               "the second worker mapped %zu times instead of taking the first one's segments",
               s2.mmap_calls - s1.mmap_calls);
  cr_expect(s2.mapped == s1.mapped, "mapped %zu KiB after the second worker, %zu KiB after "
               "the first", s2.mapped >> 10, s1.mapped >> 10);

  size_t bad = 0;
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < KEEP; k++) {
      unsigned char *p = kept[r][k];
      cr_assert(p != NULL, "block %d of worker %d", k, r);
      if (hkt_check_byte(p + 1, BLOCK - 1, p[0]) != BLOCK - 1) bad++;
      hak_free(p);
    }
  cr_expect(bad == 0, "%zu blocks left by exited threads changed", bad);
  hak_collect(true);
  hak_stats_get(&s3);
  cr_expect(s3.abandoned == 0, "%zu segments still abandoned", s3.abandoned);
  cr_expect(s3.mapped <= s0.mapped, "hak_collect(true) left %zu KiB mapped (%zu KiB before)",
                s3.mapped >> 10, s0.mapped >> 10);
  cr_expect(s3.in_use == s0.in_use, "in_use %zu, was %zu", s3.in_use, s0.in_use);
}

Test(reuse, next_thread_takes_an_exited_ones_heap) { next_thread_takes_what_an_exited_one_left(8); }

Test(reuse, next_thread_adopts_an_exited_ones_segments) { next_thread_takes_what_an_exited_one_left(0); }

static void *worker_frees_all(void *arg) {
  (void)arg;
  size_t n = WORK_BYTES / BLOCK;
  void **all = hak_malloc(n * sizeof *all);
  if (!all) return NULL;
  for (size_t i = 0; i < n; i++) {
    all[i] = hak_malloc(BLOCK);
    if (all[i]) memset(all[i], 1, BLOCK);
  }
  for (size_t i = 0; i < n; i++) hak_free(all[i]);
  hak_free(all);
  return NULL;
}

/* An exited thread's empty segments stay mapped and unpurged in the cache,
** and are purged once their deadline passes. */
Test(reuse, cached_segments_are_purged_at_their_deadline) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 20);
  hak_free(hak_malloc(1));
  hak_collect(true);
  hak_stats_t s0, s1, s2;
  hak_stats_counters(&s0);
  hkt_run_thread(worker_frees_all, NULL);
  hak_stats_counters(&s1);
  cr_expect(s1.purged == s0.purged, "a thread exit purged %zu B of empty segments",
            s1.purged - s0.purged);
  cr_expect(s1.mapped >= s0.mapped + (4u << 20), "the worker's segments were "
                "unmapped at its exit (mapped %zu KiB, %zu KiB before)", s1.mapped >> 10,
                s0.mapped >> 10);
  sleep_ms(60); /* three delays */
  hak_collect(false); /* purges what is due, the idle segments' included */
  hak_stats_counters(&s2);
  cr_expect(s2.purged - s1.purged >= WORK_BYTES / 2, "only %zu KiB purged after the deadline",
                (s2.purged - s1.purged) >> 10);
  cr_expect(s2.committed <= s0.committed + 512 * 1024,
                "%zu KiB committed after the deadline, %zu KiB before the worker",
                s2.committed >> 10, s0.committed >> 10);
  cr_expect(s2.mapped == s1.mapped, "the purge unmapped: the cache should keep them");
  hak_collect(true);
  hak_stats_counters(&s2);
  cr_expect(s2.mapped <= s0.mapped, "hak_collect(true) left %zu KiB mapped (%zu KiB before)",
                s2.mapped >> 10, s0.mapped >> 10);
}

/* ---- more exited heaps than are kept ------------------------------------ */

#define CROWD 5 /* threads that exit together */
#define KEPT 2  /* HAKMEM_ORPHAN_HEAPS for the test */

static pthread_barrier_t crowd_barrier;
static void *crowd_block[2][CROWD];

/* Leaves one live block, and exits once every thread of its crowd has
** allocated: none of them can take another's heap. */
static void *crowd_worker(void *arg) {
  void **slot = arg;
  *slot = hak_malloc(BLOCK);
  if (*slot) memset(*slot, 7, BLOCK);
  pthread_barrier_wait(&crowd_barrier);
  hak_heap_check(NULL); /* the second crowd: with a taken heap or adopted segments */
  return NULL;
}

static void run_crowd(void **blocks) {
  pthread_t t[CROWD];
  pthread_barrier_init(&crowd_barrier, NULL, CROWD);
  for (int i = 0; i < CROWD; i++)
    cr_assert(pthread_create(&t[i], NULL, crowd_worker, &blocks[i]) == 0, "pthread_create");
  for (int i = 0; i < CROWD; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&crowd_barrier);
}

/* KEPT heaps wait whole; the segments of the others are abandoned, and the
** next threads take both kinds. */
Test(reuse, heaps_beyond_the_kept_ones_are_abandoned) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 100000);
  hak_option_set(HAK_OPT_ORPHAN_HEAPS, KEPT);
  hak_free(hak_malloc(1));
  hak_collect(true);
  hak_stats_t s0, s1, s2;
  hak_stats_get(&s0);
  run_crowd(crowd_block[0]);
  hak_stats_get(&s1);
  cr_expect(s1.abandoned == s0.abandoned + (CROWD - KEPT),
            "%zu segments abandoned by %d exited threads with %d heaps kept (want %d)",
            s1.abandoned - s0.abandoned, CROWD, KEPT, CROWD - KEPT);
  run_crowd(crowd_block[1]);
  size_t bad = 0;
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < CROWD; i++) {
      unsigned char *p = crowd_block[r][i];
      cr_assert(p != NULL, "block of thread %d of crowd %d", i, r);
      if (hkt_check_byte(p, BLOCK, 7) != BLOCK) bad++;
      hak_free(p);
    }
  cr_expect(bad == 0, "%zu blocks of exited threads changed", bad);
  hak_collect(true);
  hak_stats_get(&s2);
  cr_expect(s2.abandoned == 0, "%zu segments still abandoned", s2.abandoned);
  cr_expect(s2.in_use == s0.in_use, "in_use %zu, was %zu", s2.in_use, s0.in_use);
  cr_expect(s2.committed <= s0.committed + 512 * 1024, "committed %zu KiB after the collect, %zu KiB before",
            s2.committed >> 10, s0.committed >> 10);
}

/* ---- which free slices a new span takes ---------------------------------- */

#define SPAN_LARGE (512 * HKT_KiB) /* a large block: 8 slices (9 with a guard) */
#define PAGE_BLOCKS 64             /* 1024 B blocks in a one-slice class page */
#define PAGE_BLOCK_SIZE 1024

typedef struct kinds_s {
  unsigned char *large, *large2, *small;
} kinds_t;

/* In a fresh segment: a large block, then three class pages after it; the
** large block and two of the pages are freed, then a page of another class
** and a large block of the same size are made. */
static void *worker_kinds(void *arg) {
  kinds_t *k = arg;
  void *blocks[3 * PAGE_BLOCKS];
  k->large = hak_malloc(SPAN_LARGE);
  for (int i = 0; i < 3 * PAGE_BLOCKS; i++) {
    blocks[i] = hak_malloc(PAGE_BLOCK_SIZE);
    if (blocks[i]) memset(blocks[i], 3, PAGE_BLOCK_SIZE);
  }
  if (k->large) {
    k->large[0] = 1; /* what mstress writes of a large block: its ends */
    k->large[SPAN_LARGE - 1] = 1;
  }
  for (int i = 0; i < 2 * PAGE_BLOCKS; i++) hak_free(blocks[i]); /* two pages empty */
  hak_free(k->large);
  k->small = hak_malloc(512); /* a class with no page yet (one slice too) */
  k->large2 = hak_malloc(SPAN_LARGE);
  hak_heap_check(NULL);
  for (int i = 2 * PAGE_BLOCKS; i < 3 * PAGE_BLOCKS; i++) hak_free(blocks[i]);
  hak_free(k->small);
  hak_free(k->large2);
  return NULL;
}

/* A class page takes the slices that class pages left, resident whole from
** their carving, not those a large block left, which are resident only
** where the program wrote it; a large block takes the slices a large block
** left.  Taken warm-first together, each kind settled where the other had
** been and carved it cold (bench/threads mstress: 5,600 page faults with
** purging off, against glibc's 4,200). */
Test(reuse, each_kind_takes_the_slices_its_kind_left) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 100000); /* every freed slice stays warm */
  hak_option_set(HAK_OPT_ORPHAN_HEAPS, 0);     /* the worker's heap is a new one */
  hak_free(hak_malloc(1));
  hak_collect(true); /* and so is its segment */
  kinds_t k = {0};
  hkt_run_thread(worker_kinds, &k);
  cr_assert(k.large && k.large2 && k.small, "allocation failed");
  cr_expect(!(k.small >= k.large && k.small < k.large + SPAN_LARGE),
            "the new class page %p took a slice the large block %p left, with two slices "
            "class pages left free", (void *)k.small, (void *)k.large);
  cr_expect(k.large2 == k.large, "the second large block %p is not where the first %p was",
            (void *)k.large2, (void *)k.large);
  hak_collect(true);
}

/*
** The orphan's grace (heap.c): a thread that emptied pages at exit (here
** 2 MiB of blocks another thread freed) leaves them resident for
** HAKMEM_ORPHAN_GRACE, well past the purge delay, so that the next thread
** takes them warm; after the grace they are purged.  With the plain delay
** (grace 0) they were purged 10 ms after the exit.
*/
#define GRACE_MS 600
#define GRACE_BLOCKS 2048 /* of 1 KiB: 2 MiB */

typedef struct grace_s {
  void *block[GRACE_BLOCKS];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int step;          /* 1: blocks made; 2: freed by the test thread */
  size_t grew;       /* committed bytes the taker's allocations added */
} grace_t;

static void grace_wait(grace_t *g, int step) {
  pthread_mutex_lock(&g->lock);
  while (g->step < step) pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
}

static void grace_step(grace_t *g, int step) {
  pthread_mutex_lock(&g->lock);
  g->step = step;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

/* Makes the blocks, waits until the test thread freed them all, exits. */
static void *grace_leaver(void *arg) {
  grace_t *g = arg;
  for (size_t i = 0; i < GRACE_BLOCKS; i++) {
    g->block[i] = hak_malloc(1024);
    if (g->block[i]) memset(g->block[i], 1, 1024);
  }
  grace_step(g, 1);
  grace_wait(g, 2);
  return NULL;
}

/* Takes the orphan: the same blocks again, from what the grace kept. */
static void *grace_taker(void *arg) {
  grace_t *g = arg;
  hak_stats_t st0, st1;
  hak_stats_counters(&st0);
  for (size_t i = 0; i < GRACE_BLOCKS; i++) {
    g->block[i] = hak_malloc(1024);
    if (g->block[i]) memset(g->block[i], 2, 1024);
  }
  hak_stats_counters(&st1);
  g->grew = st1.committed > st0.committed ? st1.committed - st0.committed : 0;
  for (size_t i = 0; i < GRACE_BLOCKS; i++) hak_free(g->block[i]);
  return NULL;
}

/* Runs a leaver to its exit, its blocks freed remotely; committed after. */
static size_t grace_leave(grace_t *g) {
  pthread_t t;
  g->step = 0;
  cr_assert(pthread_create(&t, NULL, grace_leaver, g) == 0, "pthread_create");
  grace_wait(g, 1);
  for (size_t i = 0; i < GRACE_BLOCKS; i++) {
    cr_assert(g->block[i] != NULL, "hak_malloc(1024)");
    hak_free(g->block[i]);
  }
  grace_step(g, 2);
  pthread_join(t, NULL);
  hak_stats_t st;
  hak_stats_counters(&st);
  return st.committed;
}

static size_t committed_after_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  hak_collect(false); /* the orphans' purges that are due */
  hak_stats_t st;
  hak_stats_counters(&st);
  return st.committed;
}

static grace_t *grace_setup(void) {
  grace_t *g = calloc(1, sizeof *g);
  cr_assert(g != NULL, "setup");
  pthread_mutex_init(&g->lock, NULL);
  pthread_cond_init(&g->cond, NULL);
  hak_option_set(HAK_OPT_PURGE_DELAY, 10); /* the default: the grace is 60 of them */
  hak_option_set(HAK_OPT_ORPHAN_GRACE, GRACE_MS);
  hak_free(hak_malloc(1)); /* this thread's heap, not an orphan's */
  hak_collect(true);       /* no other orphan */
  return g;
}

static void grace_teardown(grace_t *g) {
  hak_option_set(HAK_OPT_ORPHAN_GRACE, 250);
  hak_collect(true);
  pthread_mutex_destroy(&g->lock);
  pthread_cond_destroy(&g->cond);
  free(g);
}

/* Not taken: resident through the grace (4 purge delays and more), purged after. */
Test(reuse, orphan_grace_then_purge, .timeout = 60) {
  grace_t *g = grace_setup();
  size_t left = grace_leave(g);
  size_t within = committed_after_ms(GRACE_MS / 6);
  size_t after = committed_after_ms(GRACE_MS + GRACE_MS / 3);
  cr_expect(within + 256 * HKT_KiB >= left,
            "committed fell from %zu to %zu KiB %u ms after the exit, within the grace",
            left >> 10, within >> 10, GRACE_MS / 6);
  cr_expect(after + 1536 * HKT_KiB <= left,
            "committed %zu KiB after the grace, %zu KiB at the exit: the orphan was not purged",
            after >> 10, left >> 10);
  grace_teardown(g);
}

/* Taken within the grace: the next thread's same blocks commit nothing new. */
Test(reuse, orphan_grace_taken_warm, .timeout = 60) {
  grace_t *g = grace_setup();
  grace_leave(g);
  committed_after_ms(GRACE_MS / 6);
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, grace_taker, g) == 0, "pthread_create");
  pthread_join(t, NULL);
  cr_expect(g->grew <= 256 * HKT_KiB,
            "the thread that took the orphan committed %zu KiB anew for 2 MiB of blocks",
            g->grew >> 10);
  grace_teardown(g);
}
