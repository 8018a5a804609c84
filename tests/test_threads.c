/*
** test_threads.c -- many threads at once: the stress test, and heaps that
** move between threads while others free into them.
**
** The stress test follows mimalloc's test-stress: rounds of worker threads
** are created and joined; each worker allocates a mix of short-lived blocks
** (freed by itself soon after), long-lived ones (most outlive the worker:
** a worker of the next round frees them), and blocks it swaps into a shared
** transfer array (atomic exchange), so that those are freed by whichever
** thread swaps them out.  Some workers call hak_thread_done() early and go
** on freeing.  Every block carries its size and a pattern made from its
** address (threads_common.h); every free checks the whole block first.
** At the end every block is freed, and hakmem must give its memory back.
**
** Run sizes: the defaults keep the test to a few seconds; HAK_SOAK=1 (or
** HAK_SOAK=N) in the environment makes every worker do 20 (N) times more.
** tests/plain/threads.c builds this file without Criterion for TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "threads_common.h"
#include "fixture.h"

TestSuite(threads, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define SIZE_LIMIT (16 * HKT_MiB) /* no block is bigger (hkt_rng_size: 8 MiB) */

/* -------------------------------------------------------------------------
** Failures seen by worker threads: counted, the first few described; the
** test thread reports them after the join.
** ---------------------------------------------------------------------- */
#define FAIL_MSGS 4

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t fail_count;
static char fail_msg[FAIL_MSGS][200];

static void note_failure(const char *fmt, ...) {
  pthread_mutex_lock(&fail_lock);
  if (fail_count < FAIL_MSGS) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_msg[fail_count], sizeof fail_msg[0], fmt, ap);
    va_end(ap);
  }
  fail_count++;
  pthread_mutex_unlock(&fail_lock);
}

static void report_failures(const char *what) {
  pthread_mutex_lock(&fail_lock);
  for (size_t i = 0; i < fail_count && i < FAIL_MSGS; i++)
    cr_expect(false, "%s: %s", what, fail_msg[i]);
  cr_expect(fail_count == 0, "%s: %zu failure(s) in worker threads", what, fail_count);
  pthread_mutex_unlock(&fail_lock);
}

/* -------------------------------------------------------------------------
** Checked allocation and free, through every allocation call of the API.
** ---------------------------------------------------------------------- */

static size_t draw_size(hkt_rng_t *rng) {
  size_t n = hkt_rng_size(rng);
  return n < HKT_BLOCK_MIN ? HKT_BLOCK_MIN : n;
}

static void *alloc_checked(hkt_rng_t *rng, size_t size) {
  unsigned how = (unsigned)(hkt_rng_next(rng) % 10);
  size_t align = 16;
  void *p;
  if (how < 6) {
    p = hak_malloc(size);
  } else if (how == 6) {
    p = hak_calloc(1, size);
    if (p && hkt_check_byte(p, size, 0) != size)
      note_failure("calloc(1, %zu) = %p is not zeroed", size, p);
  } else if (how == 7) {
    align = (size_t)16 << (hkt_rng_next(rng) % 9); /* 16 .. 4096 */
    p = hak_aligned_alloc(align, size);
  } else {
    align = 8;
    p = hak_heap_malloc8(NULL, size);
  }
  if (!p) {
    note_failure("allocation of %zu B failed", size);
    return NULL;
  }
  if (!hkt_aligned(p, align)) note_failure("block %p of %zu B is not %zu-aligned", p, size, align);
  if (hak_usable_size(p) < size)
    note_failure("block %p of %zu B has only %zu usable", p, size, hak_usable_size(p));
  hkt_block_fill(p, size);
  return p;
}

static void free_checked(hkt_rng_t *rng, void *p) {
  if (!p) return;
  size_t size = hkt_block_check(p, SIZE_LIMIT);
  if (size == 0) note_failure("block %p was changed while it was live", p);
  if (size && (hkt_rng_next(rng) & 1)) hak_free_sized(p, size);
  else hak_free(p);
}

/* realloc keeps the contents up to the smaller size, wherever it moves. */
static void *realloc_checked(hkt_rng_t *rng, void *p, size_t newsize) {
  size_t size = hkt_block_check(p, SIZE_LIMIT);
  if (size == 0) {
    note_failure("block %p was changed while it was live (before realloc)", p);
    free_checked(rng, p);
    return alloc_checked(rng, newsize);
  }
  uint64_t seed = hkt_seed(p, size);
  void *q = hak_realloc(p, newsize);
  if (!q) {
    note_failure("realloc(%p, %zu) failed", p, newsize);
    return p;
  }
  size_t keep = (size < newsize ? size : newsize) - sizeof(size_t);
  if (hkt_check((char *)q + sizeof(size_t), keep, seed) != keep)
    note_failure("realloc(%p of %zu B, %zu) = %p lost the contents", p, size, newsize, q);
  hkt_block_fill(q, newsize);
  return q;
}

/* =========================================================================
** The stress test
** ====================================================================== */

#define RECENT 32      /* short-lived blocks a worker holds at once */
#define MAX_THREADS 64

typedef struct stress_s {
  unsigned threads;
  unsigned rounds;
  size_t iters;           /* operations of each worker */
  size_t retain;          /* long-lived slots of each worker */
  size_t transfer_slots;
  _Atomic(void *) *transfer;
  /* keep arrays left by the workers of a round, [round % 2][worker]: the
  ** workers of the next round free them (written before a join, read
  ** after it) */
  void **leftover[2][MAX_THREADS];
} stress_t;

typedef struct worker_s {
  stress_t *s;
  unsigned index;
  unsigned round;
} worker_t;

static void free_keep_array(hkt_rng_t *rng, void **keep, size_t n) {
  if (!keep) return;
  for (size_t i = 0; i < n; i++) free_checked(rng, keep[i]);
  hak_free(keep);
}

static void *stress_worker(void *arg) {
  worker_t *w = arg;
  stress_t *s = w->s;
  hkt_rng_t rng;
  hkt_rng_init(&rng, ((uint64_t)w->round << 32) ^ (w->index * 7919u) ^ 0x5eed);

  /* The long-lived blocks of a worker of the previous round: their thread
  ** has exited, so their pages are abandoned or already adopted. */
  if (w->round > 0) {
    void ***prev = &s->leftover[(w->round - 1) % 2][(w->index + 1) % s->threads];
    free_keep_array(&rng, *prev, s->retain);
    *prev = NULL;
  }

  void *recent[RECENT] = {0};
  void **keep = hak_calloc(s->retain, sizeof(void *));
  if (!keep) {
    note_failure("calloc of the keep array failed");
    return NULL;
  }
  for (size_t i = 0; i < s->retain; i++)
    if (keep[i]) note_failure("calloc'ed keep array is not zeroed at %zu", i);

  for (size_t it = 0; it < s->iters; it++) {
    hkt_check_every(it, 500); /* other workers free into this heap meanwhile */
    unsigned op = (unsigned)(hkt_rng_next(&rng) % 100);
    size_t r = (size_t)hkt_rng_next(&rng);
    if (op < 40) { /* short-lived */
      void **slot = &recent[r % RECENT];
      free_checked(&rng, *slot);
      *slot = alloc_checked(&rng, draw_size(&rng));
    } else if (op < 60) { /* swap with whatever another thread left there */
      void *p = alloc_checked(&rng, draw_size(&rng));
      void *old = atomic_exchange(&s->transfer[r % s->transfer_slots], p);
      if (old && (r & (1u << 20))) {
        void **slot = &keep[(r >> 21) % s->retain];
        free_checked(&rng, *slot);
        *slot = old;
      } else {
        free_checked(&rng, old);
      }
    } else if (op < 70) { /* grow or shrink */
      void **slot = &recent[r % RECENT];
      if (*slot) *slot = realloc_checked(&rng, *slot, draw_size(&rng));
    } else if (op < 90) { /* long-lived */
      void **slot = &keep[r % s->retain];
      free_checked(&rng, *slot);
      *slot = alloc_checked(&rng, draw_size(&rng));
    } else {
      void **slot = &keep[r % s->retain];
      free_checked(&rng, *slot);
      *slot = NULL;
    }
  }

  for (unsigned i = 0; i < RECENT; i++) free_checked(&rng, recent[i]);
  hak_heap_check(NULL);
  unsigned fate = (w->index + w->round) % 4;
  if (fate == 0) { /* a clean exit */
    free_keep_array(&rng, keep, s->retain);
    keep = NULL;
  } else if (fate == 1) {
    /* A thread pool's worker: done with hakmem, yet it frees on. */
    hak_thread_done();
    for (size_t i = 0; i < s->retain; i += 2) {
      free_checked(&rng, keep[i]);
      keep[i] = NULL;
    }
  }
  /* the others die with every long-lived block live */
  s->leftover[w->round % 2][w->index] = keep;
  return NULL;
}

static void run_stress(unsigned threads, unsigned rounds, size_t iters) {
  stress_t *s = calloc(1, sizeof *s);
  cr_assert(s != NULL && threads <= MAX_THREADS, "setup");
  s->threads = threads;
  s->rounds = rounds;
  s->iters = iters;
  s->retain = 256;
  s->transfer_slots = 1024;
  s->transfer = calloc(s->transfer_slots, sizeof *s->transfer);
  cr_assert(s->transfer != NULL, "setup");

  /* The test thread's heap exists first, so that threads counts it in the
  ** baseline and hak_collect(true) at the end adopts what was abandoned. */
  hak_free(hak_malloc(1));
  hak_collect(true);
  hak_stats_t st0;
  hak_stats_get(&st0);

  worker_t w[MAX_THREADS];
  pthread_t tid[MAX_THREADS];
  for (unsigned round = 0; round < rounds; round++) {
    for (unsigned i = 0; i < threads; i++) {
      w[i] = (worker_t){s, i, round};
      cr_assert(pthread_create(&tid[i], NULL, stress_worker, &w[i]) == 0, "pthread_create");
    }
    for (unsigned i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  }

  /* Everything still live goes, freed by this thread. */
  hkt_rng_t rng;
  hkt_rng_init(&rng, 99);
  for (unsigned i = 0; i < threads; i++)
    for (unsigned g = 0; g < 2; g++) {
      free_keep_array(&rng, s->leftover[g][i], s->retain);
      s->leftover[g][i] = NULL;
    }
  for (size_t i = 0; i < s->transfer_slots; i++)
    free_checked(&rng, atomic_exchange(&s->transfer[i], NULL));
  report_failures("stress");

  hak_stats_t st1;
  hak_stats_get(&st1);
  cr_expect(st1.threads == st0.threads, "%zu threads live after every worker exited (%zu before)",
            st1.threads, st0.threads);
  hak_collect(true);
  hak_stats_t st2;
  hak_stats_get(&st2);
  cr_expect(st2.abandoned == 0, "%zu abandoned segments left after hak_collect(true)",
            st2.abandoned);
  cr_expect(st2.in_use <= st0.in_use + 64 * HKT_KiB,
            "%zu B still in use after every block was freed (%zu before)", st2.in_use,
            st0.in_use);
  cr_expect(st2.huge_blocks == st0.huge_blocks, "%zu huge blocks left (%zu before)",
            st2.huge_blocks, st0.huge_blocks);
  /* heap structures (64 KiB chunks) are kept; everything else comes back */
  cr_expect(st2.committed <= st0.committed + 512 * HKT_KiB,
            "committed %zu B after every block was freed and collected (%zu B before, "
            "peak %zu B)",
            st2.committed, st0.committed, st2.committed_peak);
  cr_log_info("stress: %u threads x %u rounds x %zu ops: committed peak %.1f MiB",
              threads, rounds, iters, (double)st2.committed_peak / (double)HKT_MiB);
  free(s->transfer);
  free(s);
}

Test(threads, stress, .timeout = 300) {
  run_stress(4, 10, hkt_work(20000, 8000));
}

/* More threads than cores, short lives: exits and adoptions dominate. */
Test(threads, stress_many_short_threads, .timeout = 300) {
  run_stress(16, 12, hkt_work(2000, 800));
}

/* =========================================================================
** Heaps passed between threads (a Lua state moving between workers), while
** every thread also frees blocks of heaps it does not hold.
** ====================================================================== */

#define RELAY_HEAPS 6
#define RELAY_BLOCKS 200

typedef struct relay_heap_s {
  hak_heap_t *heap;
  void *block[RELAY_BLOCKS]; /* this heap's blocks, touched by its holder */
  size_t passes;             /* times a thread held it */
} relay_heap_t;

/* Heaps waiting for a thread wait in a FIFO, so that a heap given back
** goes on to another thread. */
typedef struct relay_s {
  pthread_mutex_t lock; /* guards the pool: the hand-over of heaps */
  relay_heap_t *pool[RELAY_HEAPS];
  unsigned first, pooled;
  _Atomic(void *) transfer[256];
  size_t turns; /* heaps each thread takes in turn */
} relay_t;

static relay_heap_t *relay_take(relay_t *r) {
  relay_heap_t *h = NULL;
  while (!h) {
    pthread_mutex_lock(&r->lock);
    if (r->pooled) {
      h = r->pool[r->first];
      r->first = (r->first + 1) % RELAY_HEAPS;
      r->pooled--;
    }
    pthread_mutex_unlock(&r->lock);
    if (!h) sched_yield();
  }
  return h;
}

static void relay_give(relay_t *r, relay_heap_t *h) {
  pthread_mutex_lock(&r->lock);
  r->pool[(r->first + r->pooled++) % RELAY_HEAPS] = h;
  pthread_mutex_unlock(&r->lock);
}

static void *relay_worker(void *arg) {
  relay_t *r = arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, (uint64_t)(uintptr_t)&rng);
  for (size_t turn = 0; turn < r->turns; turn++) {
    relay_heap_t *h = relay_take(r);
    hak_heap_claim(h->heap);
    hak_heap_check(h->heap); /* as the last holder left it */
    h->passes++;
    for (unsigned k = 0; k < 50; k++) {
      size_t i = (size_t)(hkt_rng_next(&rng) % RELAY_BLOCKS);
      free_checked(&rng, h->block[i]); /* blocks of earlier holders */
      size_t n = HKT_BLOCK_MIN + (size_t)(hkt_rng_next(&rng) % 2000);
      void *p = hak_heap_malloc(h->heap, n);
      if (!p) {
        note_failure("hak_heap_malloc(%zu) failed", n);
        h->block[i] = NULL;
        continue;
      }
      hkt_block_fill(p, n);
      /* a few leave the heap's holder: any thread may free them */
      if (k % 8 == 0) {
        size_t t = (size_t)(hkt_rng_next(&rng) % 256);
        free_checked(&rng, atomic_exchange(&r->transfer[t], p));
        h->block[i] = NULL;
      } else {
        h->block[i] = p;
      }
    }
    hak_heap_check(h->heap);
    hak_heap_release(h->heap);
    relay_give(r, h);
  }
  return NULL;
}

Test(threads, heap_relay, .timeout = 300) {
  enum { T = 4 };
  relay_t *r = calloc(1, sizeof *r);
  cr_assert(r != NULL, "setup");
  pthread_mutex_init(&r->lock, NULL);
  r->turns = hkt_work(2000, 600);
  relay_heap_t heaps[RELAY_HEAPS];
  memset(heaps, 0, sizeof heaps);
  for (unsigned i = 0; i < RELAY_HEAPS; i++) {
    heaps[i].heap = hak_heap_new();
    cr_assert(heaps[i].heap != NULL, "hak_heap_new");
    r->pool[r->pooled++] = &heaps[i];
  }
  pthread_t tid[T];
  for (unsigned i = 0; i < T; i++)
    cr_assert(pthread_create(&tid[i], NULL, relay_worker, r) == 0, "pthread_create");
  for (unsigned i = 0; i < T; i++) pthread_join(tid[i], NULL);

  hkt_rng_t rng;
  hkt_rng_init(&rng, 7);
  size_t passes = 0;
  for (unsigned i = 0; i < RELAY_HEAPS; i++) {
    hak_heap_claim(heaps[i].heap);
    for (unsigned k = 0; k < RELAY_BLOCKS; k++) free_checked(&rng, heaps[i].block[k]);
    passes += heaps[i].passes;
    hak_heap_delete(heaps[i].heap);
  }
  for (unsigned t = 0; t < 256; t++) free_checked(&rng, atomic_exchange(&r->transfer[t], NULL));
  report_failures("heap relay");
  cr_expect(passes == T * r->turns, "%zu hand-overs, expected %zu", passes, (size_t)T * r->turns);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* =========================================================================
** Adoption of a segment that has no free slice left.
** ====================================================================== */

#define ADOPT_MAX 20000

typedef struct adopt_s {
  void *block[ADOPT_MAX];
  size_t count;
  size_t segments_before;
} adopt_t;

static size_t stats_segments(void) {
  hak_stats_t st;
  hak_stats_get(&st);
  return st.segments;
}

/* Fills a whole segment with 1 KiB blocks (one more spills into a second
** segment, freed again), then exits: a segment without any free slice is
** abandoned. */
static void *fill_one_segment(void *arg) {
  adopt_t *a = arg;
  while (a->count < ADOPT_MAX) {
    void *p = hak_malloc(1024);
    if (!p) break;
    if (stats_segments() == a->segments_before + 2) {
      hak_free(p);
      break;
    }
    hkt_block_fill(p, 1024);
    a->block[a->count++] = p;
  }
  return NULL;
}

/* A fresh thread: its first allocation takes the abandoned, full segment. */
static void *allocate_after_adoption(void *arg) {
  adopt_t *a = arg;
  for (size_t i = 0; i < 256 && a->count < ADOPT_MAX; i++) {
    void *p = hak_malloc(1024);
    if (!p) break;
    hkt_block_fill(p, 1024);
    a->block[a->count++] = p;
  }
  hak_heap_check(NULL); /* with the adopted segment */
  return NULL;
}

Test(threads, adopt_full_segment) {
  hak_option_set(HAK_OPT_ORPHAN_HEAPS, 0); /* the exited thread's segments abandoned */
  adopt_t *a = calloc(1, sizeof *a);
  cr_assert(a != NULL, "setup");
  a->segments_before = stats_segments();
  hkt_run_thread(fill_one_segment, a);
  size_t filled = a->count;
  hak_stats_t st;
  hak_stats_get(&st);
  cr_assert(filled < ADOPT_MAX && st.abandoned >= 1,
            "setup: %zu blocks did not fill a segment (%zu abandoned)", filled, st.abandoned);
  hkt_run_thread(allocate_after_adoption, a);
  cr_expect(a->count == filled + 256, "%zu allocations failed after the adoption",
            filled + 256 - a->count);
  size_t bad = 0;
  for (size_t i = 0; i < a->count; i++) {
    HKT_EXPECT(bad, hkt_block_check(a->block[i], 1024) == 1024 && hak_owns(a->block[i]),
               "block %zu (%p) of %zu changed after a full segment was adopted", i,
               a->block[i], a->count);
  }
  HKT_EXPECT_NONE(bad, "blocks of a full abandoned segment and of its adopter");
  for (size_t i = 0; i < a->count; i++) hak_free(a->block[i]);
  free(a);
}

/* =========================================================================
** A heap whose holder exited without hak_heap_release.  glibc gives the
** next thread the exited one's stack and TLS: that thread must still free
** the heap's blocks as a remote thread (it does not own them), while
** another thread claims the heap and allocates from it.
** ====================================================================== */

#define ORPHAN_BLOCKS 4000

typedef struct orphan_s {
  hak_heap_t *heap;
  void *block[ORPHAN_BLOCKS];
  _Atomic int claimed;
  const void *tls_of_maker, *tls_of_freer;
} orphan_t;

static __thread int tls_probe;

static void *orphan_maker(void *arg) {
  orphan_t *o = arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, 11);
  o->tls_of_maker = &tls_probe;
  o->heap = hak_heap_new();
  if (!o->heap) {
    note_failure("hak_heap_new failed");
    return NULL;
  }
  for (unsigned i = 0; i < ORPHAN_BLOCKS; i++) {
    size_t n = HKT_BLOCK_MIN + (size_t)(hkt_rng_next(&rng) % 300);
    o->block[i] = hak_heap_malloc(o->heap, n);
    if (o->block[i]) hkt_block_fill(o->block[i], n);
  }
  return NULL; /* exits holding the heap */
}

/* Frees the maker's blocks, half before the claim is known, half after. */
static void *orphan_freer(void *arg) {
  orphan_t *o = arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, 12);
  o->tls_of_freer = &tls_probe;
  for (unsigned i = 0; i < ORPHAN_BLOCKS; i++) {
    if (i == ORPHAN_BLOCKS / 2)
      while (!atomic_load(&o->claimed)) sched_yield();
    free_checked(&rng, o->block[i]);
    o->block[i] = NULL;
  }
  return NULL;
}

/* Claims the heap and allocates from it: its slow paths collect the frees. */
static void *orphan_claimer(void *arg) {
  orphan_t *o = arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, 13);
  void *mine[64] = {0};
  hak_heap_claim(o->heap);
  hak_heap_check(o->heap); /* as its exited maker left it */
  atomic_store(&o->claimed, 1);
  for (unsigned k = 0; k < 40000; k++) {
    if (k % 1000 == 0) hak_heap_check(o->heap); /* the freer frees into it meanwhile */
    void **slot = &mine[hkt_rng_next(&rng) % 64];
    free_checked(&rng, *slot);
    size_t n = HKT_BLOCK_MIN + (size_t)(hkt_rng_next(&rng) % 300);
    *slot = hak_heap_malloc(o->heap, n);
    if (*slot) hkt_block_fill(*slot, n);
  }
  for (unsigned i = 0; i < 64; i++) free_checked(&rng, mine[i]);
  hak_heap_release(o->heap);
  return NULL;
}

Test(threads, heap_of_exited_holder) {
  orphan_t *o = calloc(1, sizeof *o);
  cr_assert(o != NULL, "setup");
  hkt_run_thread(orphan_maker, o);
  cr_assert(o->heap != NULL, "hak_heap_new");
  pthread_t freer, claimer;
  cr_assert(pthread_create(&freer, NULL, orphan_freer, o) == 0, "pthread_create");
  cr_assert(pthread_create(&claimer, NULL, orphan_claimer, o) == 0, "pthread_create");
  pthread_join(freer, NULL);
  pthread_join(claimer, NULL);
  report_failures("heap of an exited holder");
  cr_log_info("heap of an exited holder: the freer %s the maker's TLS",
              o->tls_of_freer == o->tls_of_maker ? "reused" : "did not reuse");
  hak_heap_claim(o->heap);
  hak_heap_destroy(o->heap);
  free(o);
}

/* =========================================================================
** A remote free into a full page, then a local free into the same page,
** with no synchronisation between the two threads but the allocator's own
** (the flag below is relaxed on purpose).  The local free puts the page
** back in its queue: the owner must have synchronised with the remote
** freer's notification (it read page->heap) before it rewrites the page.
** TSan reported this race before page_set_notify loaded with acquire.
** ====================================================================== */

typedef struct full_page_s {
  _Atomic(void *) handoff;
  atomic_int done;
} full_page_t;

static void *free_handed_block(void *arg) {
  full_page_t *f = arg;
  void *p;
  while (!(p = atomic_load_explicit(&f->handoff, memory_order_acquire))) sched_yield();
  if (hkt_block_check(p, 1024) != 1024) note_failure("block %p changed before its remote free", p);
  hak_free(p);
  atomic_store_explicit(&f->done, 1, memory_order_relaxed);
  return NULL;
}

Test(threads, local_free_after_remote_notify) {
  enum { MAX = 1000 };
  void **b = calloc(MAX, sizeof *b);
  full_page_t *f = calloc(1, sizeof *f);
  cr_assert(b != NULL && f != NULL, "setup");
  /* Fill the first page of the 1 KiB class: the allocation that lands on
  ** another page has moved the first one to the full queue. */
  size_t n = 0;
  uintptr_t first_page = 0;
  for (; n < MAX; n++) {
    b[n] = hak_malloc(1024);
    cr_assert(b[n] != NULL, "hak_malloc(1024)");
    hkt_block_fill(b[n], 1024);
    uintptr_t page = (uintptr_t)b[n] >> 16;
    if (n == 0) first_page = page;
    else if (page != first_page) break;
  }
  cr_assert(n < MAX && n >= 2, "setup: %zu blocks did not fill a page", n);
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, free_handed_block, f) == 0, "pthread_create");
  atomic_store_explicit(&f->handoff, b[0], memory_order_release);
  while (!atomic_load_explicit(&f->done, memory_order_relaxed)) sched_yield();
  hak_heap_check(NULL); /* a full page with a remote free, maybe notified */
  hak_free(b[1]); /* a local free into the notified full page */
  pthread_join(t, NULL);
  report_failures("local free after a remote notification");
  size_t bad = 0;
  for (size_t i = 2; i <= n; i++) {
    HKT_EXPECT(bad, hkt_block_check(b[i], 1024) == 1024, "block %zu changed", i);
    hak_free(b[i]);
  }
  HKT_EXPECT_NONE(bad, "blocks of the full page and the next");
  /* the page is usable again: its two free blocks come back */
  void *x = hak_malloc(1024), *y = hak_malloc(1024);
  cr_expect(x && y, "hak_malloc after the frees");
  hak_free(x);
  hak_free(y);
  free(f);
  free(b);
}
