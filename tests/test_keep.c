/*
** test_keep.c -- blocks a thread frees into other threads' pages, kept for
** its own allocations (hakmem/keep.c).
**
** A thread that frees another default heap's small blocks keeps them and
** hands them out again when its own page of the class has no free block;
** it keeps at most KEEP_SLOTS (32) a class and 256 KiB in all; they go back
** to their pages at hak_collect and at the thread's exit; an explicit
** heap's blocks are never kept (the heap may be destroyed under them), nor
** blocks freed inside a remote batch.  The stats count kept blocks apart
** from in_use.  tests/plain/keep.c builds this file without Criterion for
** TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "hakmem.h"
#include "threads_common.h"
#include "fixture.h"

TestSuite(keep, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define KEEP_PER_CLASS 32
#define KEEP_MAX_BYTES (256u << 10)
#define MANY 2000

/* What the other thread allocates: n blocks of `size` (from its default
** heap, or from an explicit heap it makes), filled with their pattern. */
typedef struct batch_s {
  size_t n, size;
  bool explicit_heap;
  hak_heap_t *heap;
  void *blocks[MANY];
} batch_t;

static void *allocate_batch(void *arg) {
  batch_t *b = (batch_t *)arg;
  if (b->explicit_heap) b->heap = hak_heap_new();
  for (size_t i = 0; i < b->n; i++) {
    b->blocks[i] = b->explicit_heap ? hak_heap_malloc(b->heap, b->size) : hak_malloc(b->size);
    if (b->blocks[i] != NULL) hkt_block_fill(b->blocks[i], b->size);
  }
  if (b->explicit_heap) hak_heap_release(b->heap); /* the test thread frees and destroys it */
  return NULL;
}

static batch_t *batch_of(size_t n, size_t size, bool explicit_heap) {
  hak_free(hak_malloc(1)); /* a thread without a heap keeps nothing: it never allocates */
  batch_t *b = calloc(1, sizeof *b);
  cr_assert(b != NULL, "out of memory");
  b->n = n;
  b->size = size;
  b->explicit_heap = explicit_heap;
  hkt_run_thread(allocate_batch, b); /* the thread has exited: its heap waits whole */
  for (size_t i = 0; i < n; i++) cr_assert(b->blocks[i] != NULL, "block %zu of %zu", i, n);
  return b;
}

static hak_stats_t stats_now(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s;
}

/* The blocks come back to the thread that freed them, newest first, and
** the stats count them apart from in_use meanwhile. */
Test(keep, a_thread_hands_out_the_blocks_it_freed_of_another) {
  const size_t size = 950; /* class 960: the test thread has no page of it */
  batch_t *b = batch_of(16, size, false);
  hak_stats_t before = stats_now();
  for (size_t i = 0; i < b->n; i++) {
    cr_expect(hkt_block_check(b->blocks[i], size) == size, "block %zu changed", i);
    hak_free(b->blocks[i]);
  }
  hak_stats_t kept = stats_now();
  cr_expect(kept.kept_for_reuse == b->n * 960, "kept %zu bytes, want %zu", kept.kept_for_reuse,
            b->n * 960);
  cr_expect(kept.in_use + b->n * 960 == before.in_use, "in_use %zu after the frees, %zu before",
            kept.in_use, before.in_use);
  hak_heap_check(NULL); /* which checks the kept blocks too */
  for (size_t i = b->n; i-- > 0;) {
    void *p = hak_malloc(size);
    cr_expect(p == b->blocks[i], "allocation %zu: %p, want the kept %p", b->n - 1 - i, p, b->blocks[i]);
    hkt_block_fill(p, size);
  }
  cr_expect(stats_now().kept_for_reuse == 0, "all kept blocks were handed out");
  cr_expect(stats_now().in_use == before.in_use, "in_use %zu, %zu before", stats_now().in_use,
            before.in_use);
  for (size_t i = 0; i < b->n; i++) hak_free(b->blocks[i]);
  hak_collect(false);
  free(b);
}

/* hak_collect gives kept blocks back to their pages: the stats then count
** them as free, and hak_collect(true) returns what they held. */
Test(keep, collect_gives_kept_blocks_back) {
  batch_t *b = batch_of(24, 200, false);
  hak_stats_t before = stats_now();
  for (size_t i = 0; i < b->n; i++) hak_free(b->blocks[i]);
  cr_expect(stats_now().kept_for_reuse == b->n * 208, "kept %zu bytes", stats_now().kept_for_reuse);
  hak_collect(false);
  hak_stats_t after = stats_now();
  cr_expect(after.kept_for_reuse == 0, "still kept after hak_collect: %zu bytes", after.kept_for_reuse);
  cr_expect(after.in_use + b->n * 208 == before.in_use, "in_use %zu, %zu before the frees",
            after.in_use, before.in_use);
  cr_expect(after.remote_pending >= before.remote_pending + b->n * 208,
            "the blocks went back to their pages: %zu bytes pending, %zu before",
            after.remote_pending, before.remote_pending);
  free(b);
}

/* At most 32 blocks a class and 256 KiB in all; the rest goes back at once. */
Test(keep, kept_blocks_are_bounded) {
  batch_t *b = batch_of(MANY, 512, false);
  for (size_t i = 0; i < b->n; i++) hak_free(b->blocks[i]);
  hak_stats_t s = stats_now();
  cr_expect(s.kept_for_reuse > 0 && s.kept_for_reuse <= KEEP_PER_CLASS * 512,
            "kept %zu bytes of one class, at most %u", s.kept_for_reuse, KEEP_PER_CLASS * 512);
  hak_heap_check(NULL);
  free(b);
  /* every small class of 256 B and up, 32 blocks each: above 256 KiB */
  size_t total = 0;
  for (size_t size = 256; size <= 1024; size += 64) {
    batch_t *c = batch_of(KEEP_PER_CLASS, size, false);
    for (size_t i = 0; i < c->n; i++) hak_free(c->blocks[i]);
    total += c->n * size;
    s = stats_now();
    cr_expect(s.kept_for_reuse <= KEEP_MAX_BYTES, "kept %zu bytes, at most %u", s.kept_for_reuse,
              KEEP_MAX_BYTES);
    free(c);
  }
  cr_expect(total > KEEP_MAX_BYTES, "the test frees more than the bound (%zu)", total);
  hak_heap_check(NULL);
  hak_collect(false);
}

/* An explicit heap's blocks are never kept: it may be destroyed right
** after, with every block in it. */
Test(keep, an_explicit_heaps_blocks_are_not_kept) {
  batch_t *b = batch_of(64, 300, true);
  for (size_t i = 0; i < b->n; i++) hak_free(b->blocks[i]);
  cr_expect(stats_now().kept_for_reuse == 0, "kept %zu bytes of an explicit heap",
            stats_now().kept_for_reuse);
  hak_heap_check(NULL);
  hak_heap_claim(b->heap);
  hak_heap_destroy(b->heap);
  free(b);
}

/* Inside a remote batch (the runtime's collector closing a state) blocks
** go to the batch, not to the thread's keep. */
Test(keep, a_remote_batch_keeps_nothing) {
  batch_t *b = batch_of(64, 120, false);
  hak_remote_batch_begin();
  for (size_t i = 0; i < b->n; i++) hak_free(b->blocks[i]);
  hak_remote_batch_end();
  cr_expect(stats_now().kept_for_reuse == 0, "kept %zu bytes in a batch", stats_now().kept_for_reuse);
  free(b);
}

/* A thread that keeps blocks and exits gives them back to their pages (the
** test thread's, whose blocks it freed). */
typedef struct mine_s {
  void *blocks[20];
  size_t kept;
} mine_t;

static void *free_mine(void *arg) {
  mine_t *m = (mine_t *)arg;
  hak_free(hak_malloc(1)); /* it has a heap */
  for (size_t i = 0; i < 20; i++) hak_free(m->blocks[i]);
  hak_stats_t s;
  hak_stats_get(&s);
  m->kept = s.kept_for_reuse;
  return NULL;
}

Test(keep, an_exiting_thread_gives_its_kept_blocks_back) {
  static mine_t m;
  hak_stats_t before = stats_now();
  for (size_t i = 0; i < 20; i++) cr_assert((m.blocks[i] = hak_malloc(640)) != NULL, "block %zu", i);
  hkt_run_thread(free_mine, &m);
  cr_expect(m.kept == 20 * 640, "the freeing thread kept %zu bytes, want %u", m.kept, 20 * 640);
  hak_stats_t after = stats_now();
  cr_expect(after.kept_for_reuse == 0, "%zu bytes kept after the thread exited", after.kept_for_reuse);
  cr_expect(after.in_use == before.in_use, "in_use %zu, %zu before", after.in_use, before.in_use);
  cr_expect(after.remote_pending >= 20 * 640, "the blocks are back in their pages (%zu bytes pending)",
            after.remote_pending);
}

/* Two threads trading blocks through a shared table while each allocates
** and frees its own: every block intact, each heap's invariants hold with
** blocks kept, and nothing stays kept at the end. */
#define TABLE 512
typedef struct trade_s {
  _Atomic(void *) table[TABLE];
  size_t rounds;
  unsigned seed;
  size_t bad;
} trade_t;

typedef struct trader_s {
  trade_t *t;
  unsigned seed;
  size_t bad;
} trader_t;

static void *trader(void *arg) {
  trader_t *me = (trader_t *)arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, me->seed);
  void *own[64] = {0};
  for (size_t i = 0; i < me->t->rounds; i++) {
    size_t size = hkt_rng_range(&rng, HKT_BLOCK_MIN, 1024);
    void *p = hak_malloc(size);
    if (p == NULL) {
      me->bad++;
      continue;
    }
    hkt_block_fill(p, size);
    void *old;
    if (hkt_rng_next(&rng) & 1) {
      old = atomic_exchange(&me->t->table[hkt_rng_next(&rng) % TABLE], p);
    } else {
      size_t k = hkt_rng_next(&rng) % 64;
      old = own[k];
      own[k] = p;
    }
    if (old != NULL) {
      if (hkt_block_check(old, 1024) == 0) me->bad++;
      hak_free(old);
    }
    hkt_check_every(i, 1000);
  }
  for (size_t k = 0; k < 64; k++)
    if (own[k]) hak_free(own[k]);
  hak_heap_check(NULL);
  return NULL;
}

Test(keep, threads_trading_blocks_keep_them_intact) {
  static trade_t t;
  memset(&t, 0, sizeof t);
  t.rounds = hkt_work(200000, 20000);
  trader_t a = {&t, 1, 0}, b = {&t, 2, 0};
  pthread_t ta, tb;
  cr_assert(pthread_create(&ta, NULL, trader, &a) == 0, "pthread_create");
  cr_assert(pthread_create(&tb, NULL, trader, &b) == 0, "pthread_create");
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  cr_expect(a.bad == 0 && b.bad == 0, "%zu and %zu blocks changed or failed", a.bad, b.bad);
  for (size_t k = 0; k < TABLE; k++) {
    void *p = atomic_load(&t.table[k]);
    if (p) {
      cr_expect(hkt_block_check(p, 1024) != 0, "table block %zu changed", k);
      hak_free(p);
    }
  }
  hak_collect(false);
  cr_expect(stats_now().kept_for_reuse == 0, "%zu bytes kept at the end", stats_now().kept_for_reuse);
}
