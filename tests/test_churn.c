/*
** test_churn.c -- ten thousand short-lived threads, each leaving a few live
** blocks behind, freed later by the test's own thread.
**
** Every exiting thread abandons the segments that hold its live blocks;
** the next threads must adopt them (and the test thread's frees, remote
** frees into segments nobody owns, must reach them), or the memory would
** grow with the number of threads.  The committed memory is sampled after
** every batch of threads: its median and its worst sample must stay within
** twice the bytes live plus a constant each (run_churn); the count of live
** thread heaps must come back to where it was.
**
** Run sizes: the defaults keep the test to a few seconds; HAK_SOAK=1 (or
** HAK_SOAK=N) in the environment runs 20 (N) times more threads.
** tests/plain/churn.c builds this file without Criterion for TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <stdlib.h>

#include "threads_common.h"
#include "fixture.h"

TestSuite(churn, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define PER_THREAD 4 /* blocks each thread leaves behind */
#define BATCH 8      /* threads alive at once */
#define MEDIUM_MAX (32 * HKT_KiB)

typedef struct churn_s {
  size_t threads;        /* threads in all */
  size_t lag;            /* batches a block outlives its thread; 0: to the end */
  void *(*block)[PER_THREAD];
  size_t *size;          /* bytes each thread left (a few blocks) */
  size_t bad;            /* blocks found changed */
  size_t alloc_failed;
} churn_t;

typedef struct churner_s {
  churn_t *c;
  size_t index;
} churner_t;

static void *churner(void *arg) {
  churner_t *w = arg;
  churn_t *c = w->c;
  hkt_rng_t rng;
  hkt_rng_init(&rng, w->index + 1);
  size_t bytes = 0;
  for (unsigned k = 0; k < PER_THREAD; k++) {
    size_t n = (hkt_rng_next(&rng) % 16 == 0) ? hkt_rng_log(&rng, 1025, MEDIUM_MAX)
                                               : hkt_rng_range(&rng, HKT_BLOCK_MIN, 1024);
    void *p = (k & 1) ? hak_heap_malloc8(NULL, n) : hak_malloc(n);
    if (!p) {
      __atomic_fetch_add(&c->alloc_failed, 1, __ATOMIC_RELAXED);
      continue;
    }
    hkt_block_fill(p, n);
    c->block[w->index][k] = p;
    bytes += n;
  }
  /* A short-lived block too, freed before the thread goes. */
  void *tmp = hak_malloc(100);
  hak_free(tmp);
  c->size[w->index] = bytes;
  hak_heap_check(NULL); /* with what it adopted from exited threads */
  /* One thread in three leaves like a pool worker: hak_thread_done first
  ** (it must not count twice when the thread then exits). */
  if (w->index % 3 == 0) hak_thread_done();
  return NULL;
}

static void free_blocks_of(churn_t *c, size_t t) {
  for (unsigned k = 0; k < PER_THREAD; k++) {
    void *p = c->block[t][k];
    if (!p) continue;
    size_t n = hkt_block_check(p, MEDIUM_MAX);
    if (n == 0) c->bad++;
    if (n && (k & 1)) hak_free_sized(p, n);
    else hak_free(p);
    c->block[t][k] = NULL;
  }
}

/*
** Runs c->threads threads, BATCH at a time; the blocks of batch b are freed
** after batch b + lag (at the end with lag 0).  Committed memory above the
** start is sampled after every batch: a page a thread leaves holds few
** blocks, but the next threads must fill it, not open pages of their own.
** Two bounds, both over twice the bytes live:
** - the median sample may exceed it by `typical`: each heap (the threads
**   alive at once, and the orphans they leave) holds about a 64 KiB page of
**   every class it has live blocks in, 80 classes, and free slices wait for
**   their purge delay; measured 11-18 MiB (release and secure builds,
**   alone and three test programs at once on 2 cores);
** - the worst sample by `worst`: more threads at once (a loaded machine)
**   means more heaps, each of up to 5 MiB; measured 13-24 MiB at 10,000
**   threads, and once over 24 MiB under CI's load, the bound until then.
**   Memory that grows with the number of threads fails it: with abandoned
**   segments taken newest first, 92 MiB (heap.c).
*/
static int size_cmp(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static void run_churn(size_t threads, size_t lag, size_t typical, size_t worst) {
  churn_t *c = calloc(1, sizeof *c);
  cr_assert(c != NULL, "setup");
  c->threads = threads;
  c->lag = lag;
  c->block = calloc(threads, sizeof *c->block);
  c->size = calloc(threads, sizeof *c->size);
  cr_assert(c->block && c->size, "setup");

  /* This thread's heap first: it is in the baseline, and it adopts what
  ** is left at the end. */
  hak_free(hak_malloc(1));
  hak_collect(true);
  hak_stats_t st0;
  hak_stats_get(&st0);

  size_t live = 0, worst_excess = 0, worst_live = 0, max_abandoned = 0;
  size_t worst_committed = 0;
  size_t batches = (threads + BATCH - 1) / BATCH;
  size_t *excess = calloc(batches, sizeof *excess); /* each sample's, over 2 x live */
  cr_assert(excess != NULL, "setup");
  for (size_t b = 0; b < batches; b++) {
    pthread_t tid[BATCH];
    churner_t w[BATCH];
    size_t first = b * BATCH, n = threads - first < BATCH ? threads - first : BATCH;
    for (size_t i = 0; i < n; i++) {
      w[i] = (churner_t){c, first + i};
      cr_assert(pthread_create(&tid[i], NULL, churner, &w[i]) == 0, "pthread_create %zu",
                first + i);
    }
    for (size_t i = 0; i < n; i++) pthread_join(tid[i], NULL);
    for (size_t i = 0; i < n; i++) live += c->size[first + i];
    if (lag && b >= lag) {
      size_t old = (b - lag) * BATCH;
      for (size_t t = old; t < old + BATCH; t++) {
        free_blocks_of(c, t);
        live -= c->size[t];
      }
    }
    hak_stats_t st;
    hak_stats_get(&st);
    size_t grown = st.committed > st0.committed ? st.committed - st0.committed : 0;
    excess[b] = grown > 2 * live ? grown - 2 * live : 0;
    if (excess[b] > worst_excess) {
      worst_excess = excess[b];
      worst_live = live;
      worst_committed = grown;
    }
    if (st.abandoned > max_abandoned) max_abandoned = st.abandoned;
  }
  hak_stats_t st1;
  hak_stats_get(&st1);
  size_t peak = st1.committed_peak > st0.committed ? st1.committed_peak - st0.committed : 0;

  for (size_t t = 0; t < threads; t++) free_blocks_of(c, t);
  cr_expect(c->alloc_failed == 0, "%zu allocations failed", c->alloc_failed);
  cr_expect(c->bad == 0, "%zu blocks left by exited threads were changed", c->bad);
  cr_expect(st1.threads == st0.threads, "%zu thread heaps live after %zu threads exited (%zu "
            "before)", st1.threads, threads, st0.threads);
  qsort(excess, batches, sizeof *excess, size_cmp);
  size_t median = excess[batches / 2];
  cr_expect(median <= typical,
            "after %zu threads, committed grew by a median %zu KiB over 2 x live (bound %zu KiB)",
            threads, median >> 10, typical >> 10);
  cr_expect(worst_excess <= worst,
            "after %zu threads, committed grew by %zu KiB with %zu KiB live "
            "(bound: 2 x live + %zu KiB)",
            threads, worst_committed >> 10, worst_live >> 10, worst >> 10);

  hak_collect(true);
  hak_stats_t st2;
  hak_stats_get(&st2);
  cr_expect(st2.abandoned == 0, "%zu abandoned segments after hak_collect(true)", st2.abandoned);
  cr_expect(st2.committed <= st0.committed + 512 * HKT_KiB,
            "committed %zu KiB after every block was freed and collected (%zu KiB before)",
            st2.committed >> 10, st0.committed >> 10);
  cr_log_info("churn: %zu threads, lag %zu: committed peak +%zu KiB, over 2 x live: median "
              "%zu KiB, most %zu KiB; at most %zu abandoned segments",
              threads, lag, peak >> 10, median >> 10, worst_excess >> 10, max_abandoned);
  free(excess);
  free(c->block);
  free(c->size);
  free(c);
}

/* Blocks outlive their thread by 50 batches (400 threads). */
Test(churn, lagged_frees, .timeout = 300) {
  run_churn(hkt_work(10000, 10000), 50, 24 * HKT_MiB, 48 * HKT_MiB);
}

/* Every block stays until all threads are gone. */
Test(churn, frees_at_the_end, .timeout = 300) {
  run_churn(hkt_work(10000, 10000), 0, 24 * HKT_MiB, 48 * HKT_MiB);
}
