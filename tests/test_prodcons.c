/*
** test_prodcons.c -- one thread allocates, another frees: every free is a
** remote free, hundreds of MiB of them, while little is live at any time.
**
** The producer allocates blocks, fills them, and passes them through a
** bounded ring to the consumer, which checks and frees them.  The live data
** never exceeds the ring's capacity, so the committed memory must not
** either, by more than a small bound: the producer must get the blocks the
** consumer frees back (through its pages' thread_free lists and the
** notification of full pages) instead of asking the OS for more.
**
** Run sizes: the defaults keep the test to a few seconds; HAK_SOAK=1 (or
** HAK_SOAK=N) in the environment passes 20 (N) times more.
** tests/plain/prodcons.c builds this file without Criterion for TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "threads_common.h"
#include "fixture.h"

TestSuite(prodcons, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define RING 1024 /* blocks in flight at most */

/*
** A single-producer single-consumer ring: head is written by the consumer
** only, tail by the producer only; slots [head, tail) hold blocks.  The
** release store of tail publishes the block (and its contents) to the
** consumer; the release store of head hands the slot back.
*/
typedef struct ring_s {
  _Atomic size_t head;
  _Atomic size_t tail;
  size_t depth; /* blocks in flight at most, <= RING */
  void *slot[RING];
} ring_t;

typedef struct prodcons_s {
  ring_t ring;
  size_t total_bytes;       /* the producer stops after this many bytes */
  size_t min_size, max_size;
  size_t blocks;            /* made by the producer */
  size_t bytes;             /* made by the producer */
  size_t freed;             /* freed by the consumer */
  size_t bad;               /* blocks the consumer found changed */
  bool alloc_failed;
} prodcons_t;

#define DONE ((void *)1) /* the producer's last message */

static void ring_put(ring_t *r, void *p) {
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  while (tail - atomic_load_explicit(&r->head, memory_order_acquire) >= r->depth) sched_yield();
  r->slot[tail % RING] = p;
  atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}

static void *ring_get(ring_t *r) {
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  while (atomic_load_explicit(&r->tail, memory_order_acquire) == head) sched_yield();
  void *p = r->slot[head % RING];
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return p;
}

static void *producer(void *arg) {
  prodcons_t *pc = arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, 2024);
  while (pc->bytes < pc->total_bytes) {
    /* log-uniform: as many blocks of each doubling of size */
    size_t n = pc->min_size == pc->max_size ? pc->min_size
                                            : hkt_rng_log(&rng, pc->min_size, pc->max_size);
    void *p = hak_malloc(n);
    if (!p) {
      pc->alloc_failed = true;
      break;
    }
    hkt_block_fill(p, n);
    hkt_check_every(pc->blocks, 2000); /* the consumer frees into this heap meanwhile */
    pc->blocks++;
    pc->bytes += n;
    ring_put(&pc->ring, p);
  }
  ring_put(&pc->ring, DONE);
  return NULL;
}

static void *consumer(void *arg) {
  prodcons_t *pc = arg;
  void *p;
  while ((p = ring_get(&pc->ring)) != DONE) {
    size_t n = hkt_block_check(p, pc->max_size);
    if (n == 0) pc->bad++;
    if (n && (pc->freed & 1)) hak_free_sized(p, n);
    else hak_free(p);
    pc->freed++;
  }
  return NULL;
}

/*
** Streams `total` bytes of blocks of min..max bytes from one thread to
** another, `depth` blocks in flight at most; the committed memory may
** exceed the most that can be live (depth blocks of max_size) by `slack`
** at most.
*/
static void run_prodcons(size_t total, size_t min_size, size_t max_size, size_t depth,
                         size_t slack) {
  prodcons_t *pc = calloc(1, sizeof *pc);
  cr_assert(pc != NULL, "setup");
  pc->total_bytes = total;
  pc->min_size = min_size;
  pc->max_size = max_size;
  pc->ring.depth = depth;

  hak_collect(true);
  hak_stats_t st0;
  hak_stats_get(&st0);

  pthread_t prod, cons;
  cr_assert(pthread_create(&cons, NULL, consumer, pc) == 0, "pthread_create");
  cr_assert(pthread_create(&prod, NULL, producer, pc) == 0, "pthread_create");
  pthread_join(prod, NULL);
  pthread_join(cons, NULL);

  hak_stats_t st1;
  hak_stats_get(&st1);
  cr_expect(!pc->alloc_failed, "the producer's allocation failed after %zu blocks", pc->blocks);
  cr_expect(pc->bad == 0, "%zu of %zu blocks arrived changed", pc->bad, pc->blocks);
  cr_expect(pc->freed == pc->blocks, "%zu blocks made, %zu freed", pc->blocks, pc->freed);

  size_t live_max = depth * max_size;
  size_t peak = st1.committed_peak > st0.committed ? st1.committed_peak - st0.committed : 0;
  cr_expect(peak <= live_max + slack,
            "%zu MiB passed in blocks of %zu..%zu B: committed rose by up to %zu KiB, but at "
            "most %zu KiB were ever live (bound: live + %zu KiB)",
            pc->bytes >> 20, min_size, max_size, peak >> 10, live_max >> 10, slack >> 10);
  cr_expect(st1.threads == st0.threads, "%zu threads live after both exited (%zu before)",
            st1.threads, st0.threads);
  cr_log_info("prodcons %zu..%zu B: %zu MiB in %zu blocks, committed peak +%zu KiB "
              "(live at most %zu KiB)",
              min_size, max_size, pc->bytes >> 20, pc->blocks, peak >> 10, live_max >> 10);
  free(pc);
}

/* Small blocks, the Lua objects' sizes: one size class after another fills
** pages that only the consumer's frees can empty. */
Test(prodcons, small_blocks, .timeout = 300) {
  run_prodcons(hkt_work(256, 96) * HKT_MiB, 16, 1024, RING, 8 * HKT_MiB);
}

/* Up to medium sizes (4-slice pages). */
Test(prodcons, medium_blocks, .timeout = 300) {
  run_prodcons(hkt_work(512, 128) * HKT_MiB, 16, 32 * HKT_KiB, 256, 8 * HKT_MiB);
}

/* One size only: the producer refills the same pages over and over. */
Test(prodcons, one_size, .timeout = 300) {
  run_prodcons(hkt_work(256, 64) * HKT_MiB, 48, 48, RING, 4 * HKT_MiB);
}

/* Large blocks (a span each): freed spans must go back to the producer's
** segments, not pile up. */
Test(prodcons, large_blocks, .timeout = 300) {
  run_prodcons(hkt_work(512, 128) * HKT_MiB, 40 * HKT_KiB, 512 * HKT_KiB, 32, 16 * HKT_MiB);
}
