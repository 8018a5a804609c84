/*
** test_heap.c -- explicit heaps (new, malloc, destroy, delete, claim), the
** default heap, and blocks that cross threads (a free by another thread,
** a thread that exits with live blocks).
*/
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(heap, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* -------------------------------------------------------------------------
** hak_heap_destroy: everything goes at once.
** ---------------------------------------------------------------------- */

/* Fills a heap with `count` blocks of mixed sizes; returns the bytes asked. */
static size_t fill_heap(hak_heap_t *h, void **blk, size_t count, uint64_t seed) {
  hkt_rng_t rng;
  hkt_rng_init(&rng, seed);
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    size_t n = (i % 1000 == 999) ? hkt_rng_log(&rng, 40000, 3 * HKT_MiB)
                                 : hkt_rng_range(&rng, 1, 2000);
    blk[i] = (i & 1) ? hak_heap_malloc(h, n) : hak_heap_malloc8(h, n);
    cr_assert_not_null(blk[i], "heap allocation %zu of %zu B", i, n);
    memset(blk[i], (int)(i & 0xFF), n);
    total += n;
  }
  return total;
}

Test(heap, destroy_releases_every_block) {
  enum { N = 100000 };
  static void *blk[N];
  hak_collect(true);
  size_t c0 = hkt_committed();
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  size_t total = fill_heap(h, blk, N, 1);
  size_t c1 = hkt_committed();
  cr_assert_geq(c1, c0 + total, "committed %zu -> %zu for %zu B of blocks", c0, c1, total);
  hak_heap_destroy(h);
  hak_collect(true);
  size_t c2 = hkt_committed();
  size_t left = c2 > c0 ? c2 - c0 : 0;
  cr_expect_leq(left, (c1 - c0) / 10,
                "after destroy and collect, committed is %zu (was %zu before, %zu full)", c2,
                c0, c1);
}

Test(heap, destroy_does_not_touch_other_heaps) {
  hak_heap_t *a = hak_heap_new(), *b = hak_heap_new();
  cr_assert(a && b);
  enum { N = 5000 };
  static void *pa[N], *pb[N];
  for (int i = 0; i < N; i++) {
    size_t n = 16 + (size_t)(i % 500) * 8;
    pa[i] = hak_heap_malloc(a, n);
    pb[i] = hak_heap_malloc(b, n);
    cr_assert(pa[i] && pb[i]);
    hkt_fill(pb[i], n, hkt_seed(pb[i], n));
    memset(pa[i], 0xEE, n);
  }
  void *d = hak_malloc(1000); /* the default heap too */
  hkt_fill(d, 1000, 5);
  hak_heap_destroy(a);
  for (int i = 0; i < 1000; i++) { /* reuse a's memory */
    void *q = hak_heap_malloc(b, 16 + (size_t)(i % 500) * 8);
    memset(q, 0x33, 16 + (size_t)(i % 500) * 8);
  }
  size_t fails = 0;
  for (int i = 0; i < N; i++) {
    size_t n = 16 + (size_t)(i % 500) * 8;
    HKT_EXPECT(fails, hkt_check(pb[i], n, hkt_seed(pb[i], n)) == n,
               "block %p of heap b changed when heap a was destroyed", pb[i]);
  }
  HKT_EXPECT_NONE(fails, "heap b intact");
  cr_expect_eq(hkt_check(d, 1000, 5), 1000, "a default-heap block changed");
  hak_free(d);
  hak_heap_destroy(b);
}

/*
** A thread that exits with live blocks abandons their segments; an explicit
** heap short of space must not adopt them, or destroying it would release
** those blocks too (the fuzz target found it: tests/fuzz/regress/core/
** destroy-adopted-segment).
*/
enum { ORPHANS = 8 };
static void *alloc_orphans(void *arg) {
  void **blk = arg;
  for (int i = 0; i < ORPHANS; i++) {
    size_t n = i % 2 ? 100 : 300 * 1024;
    blk[i] = hak_malloc(n);
    hkt_fill(blk[i], n, hkt_seed(blk[i], n));
  }
  return NULL;
}

Test(heap, destroy_spares_blocks_of_exited_threads) {
  void *blk[ORPHANS];
  hkt_run_thread(alloc_orphans, blk);
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  for (int i = 0; i < 64; i++) cr_assert_not_null(hak_heap_malloc(h, i % 2 ? 200 : 500 * 1024));
  hak_heap_destroy(h);
  hak_collect(false);
  size_t fails = 0;
  void *mine[64]; /* the memory a destroy would have released, reused */
  for (int i = 0; i < 64; i++) {
    mine[i] = hak_malloc(i % 2 ? 100 : 300 * 1024);
    cr_assert_not_null(mine[i]);
    memset(mine[i], 0x77, i % 2 ? 100 : 300 * 1024);
  }
  for (int i = 0; i < ORPHANS; i++) {
    size_t n = i % 2 ? 100 : 300 * 1024;
    HKT_EXPECT(fails, hak_owns(blk[i]), "block %p of the exited thread released by the destroy", blk[i]);
    HKT_EXPECT(fails, hkt_check(blk[i], n, hkt_seed(blk[i], n)) == n, "block %p changed", blk[i]);
  }
  HKT_EXPECT_NONE(fails, "blocks of an exited thread survive an explicit heap's destroy");
  for (int i = 0; i < ORPHANS; i++)
    if (hak_owns(blk[i])) hak_free(blk[i]);
  for (int i = 0; i < 64; i++) hak_free(mine[i]);
}

/* -------------------------------------------------------------------------
** hak_heap_delete: live blocks survive in the default heap.
** ---------------------------------------------------------------------- */

Test(heap, delete_keeps_live_blocks) {
  enum { N = 20000 };
  static void *blk[N];
  static size_t len[N];
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  hkt_rng_t rng;
  hkt_rng_init(&rng, 3);
  for (int i = 0; i < N; i++) {
    len[i] = hkt_rng_size(&rng);
    blk[i] = hak_heap_malloc(h, len[i]);
    cr_assert_not_null(blk[i]);
    hkt_fill(blk[i], len[i], hkt_seed(blk[i], len[i]));
  }
  /* Free half before the delete, so pages are partly used. */
  for (int i = 0; i < N; i += 2) hak_free(blk[i]);
  hak_heap_delete(h);
  /* The default heap allocates on: it must not hand out live blocks. */
  enum { M = 20000 };
  static void *more[M];
  for (int i = 0; i < M; i++) {
    size_t n = hkt_rng_size(&rng);
    more[i] = hak_malloc(n);
    cr_assert_not_null(more[i]);
    memset(more[i], 0xC3, n);
  }
  size_t fails = 0;
  for (int i = 1; i < N; i += 2) {
    HKT_EXPECT(fails, hak_owns(blk[i]), "block %p not owned after hak_heap_delete", blk[i]);
    size_t at = hkt_check(blk[i], len[i], hkt_seed(blk[i], len[i]));
    HKT_EXPECT(fails, at == len[i], "block %p (%zu B) changed at %zu after hak_heap_delete",
               blk[i], len[i], at);
    hak_free(blk[i]);
  }
  HKT_EXPECT_NONE(fails, "blocks survive hak_heap_delete");
  for (int i = 0; i < M; i++) hak_free(more[i]);
}

/* A block of a deleted heap can still be reallocated. */
Test(heap, delete_then_realloc) {
  hak_heap_t *h = hak_heap_new();
  void *p = hak_heap_malloc(h, 100);
  void *big = hak_heap_malloc(h, 3 * HKT_MiB);
  cr_assert(p && big);
  hkt_fill(p, 100, 9);
  hkt_fill(big, 3 * HKT_MiB, 10);
  hak_heap_delete(h);
  p = hak_realloc(p, 5000);
  big = hak_realloc(big, 5 * HKT_MiB);
  cr_assert(p && big);
  cr_expect_eq(hkt_check(p, 100, 9), 100);
  cr_expect_eq(hkt_check(big, 3 * HKT_MiB, 10), 3 * HKT_MiB);
  hak_free(p);
  hak_free(big);
}

/* -------------------------------------------------------------------------
** Heap identity.
** ---------------------------------------------------------------------- */

static void *default_heap_of_thread(void *out) {
  *(hak_heap_t **)out = hak_heap_default();
  void *p = hak_malloc(10); /* the thread's heap works */
  hak_free(p);
  return NULL;
}

Test(heap, default_heap_is_per_thread) {
  hak_heap_t *mine = hak_heap_default(), *theirs = NULL;
  cr_assert_not_null(mine);
  cr_expect_eq(hak_heap_default(), mine, "hak_heap_default changed within a thread");
  hkt_run_thread(default_heap_of_thread, &theirs);
  cr_expect_not_null(theirs);
  cr_expect_neq(theirs, mine, "two threads share a default heap");
}

Test(heap, explicit_heaps_are_distinct) {
  hak_heap_t *a = hak_heap_new(), *b = hak_heap_new();
  cr_assert(a && b);
  cr_expect_neq(a, b);
  cr_expect_neq(a, hak_heap_default());
  hak_heap_destroy(a);
  hak_heap_destroy(b);
}

/* An empty heap can be made and dropped many times without growing. */
Test(heap, new_and_destroy_do_not_leak) {
  for (int i = 0; i < 100; i++) {
    hak_heap_t *h = hak_heap_new();
    hak_free(hak_heap_malloc(h, 64));
    hak_heap_destroy(h);
  }
  hak_collect(true);
  size_t c0 = hkt_committed();
  for (int i = 0; i < 5000; i++) {
    hak_heap_t *h = hak_heap_new();
    cr_assert_not_null(h);
    void *p = hak_heap_malloc(h, (size_t)(i % 2000) + 1);
    cr_assert_not_null(p);
    if (i & 1) hak_heap_delete(h); /* p moves to the default heap */
    else hak_heap_destroy(h);
    if (i & 1) hak_free(p);
  }
  hak_collect(true);
  size_t c1 = hkt_committed();
  cr_expect_leq(c1, c0 + 8 * HKT_MiB, "5000 heaps made and dropped: committed %zu -> %zu",
                c0, c1);
}

/* -------------------------------------------------------------------------
** Threads: remote frees, claim, thread exit.
** ---------------------------------------------------------------------- */

typedef struct batch_s {
  void **blk;
  size_t count, size;
  uint64_t seed;
  size_t bad; /* blocks whose pattern the other thread found changed */
} batch_t;

static void *check_and_free_batch(void *arg) {
  batch_t *b = arg;
  for (size_t i = 0; i < b->count; i++) {
    if (hkt_check(b->blk[i], b->size, b->seed + i) != b->size) b->bad++;
    hak_free(b->blk[i]);
  }
  return NULL;
}

/*
** Blocks made here, freed by another thread: the memory comes back to this
** thread.  Repeated over many rounds, committed memory stays bounded (a
** remote free that never came back would grow it by a batch each round).
*/
Test(heap, cross_thread_free_memory_is_reused) {
  enum { N = 20000, ROUNDS = 30 };
  static void *blk[N];
  const size_t sizes[] = {24, 56, 200, 1000, 6000, 70000};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k], count = n > 10000 ? 500 : N, peak = 0, first = 0;
    for (int round = 0; round < ROUNDS; round++) {
      for (size_t i = 0; i < count; i++) {
        blk[i] = hak_malloc(n);
        cr_assert_not_null(blk[i]);
        hkt_fill(blk[i], n, 1000 * (uint64_t)round + i);
      }
      batch_t b = {blk, count, n, 1000 * (uint64_t)round, 0};
      hkt_run_thread(check_and_free_batch, &b);
      cr_expect_eq(b.bad, 0, "%zu blocks of %zu B arrived changed in the other thread", b.bad,
                   n);
      hak_collect(false); /* gives the owner a chance to take its remote frees */
      size_t c = hkt_committed();
      if (round == 1) first = c;
      if (c > peak) peak = c;
    }
    cr_expect_leq(peak, first + 3 * count * hkt_round_up(n, 16) + 4 * HKT_MiB,
                  "%zu B blocks freed remotely: committed rose from %zu to %zu over %d rounds",
                  n, first, peak, ROUNDS);
  }
}

/*
** Free blocks come before fresh ones: page A of a class is filled, page B
** carves its first blocks, a quarter of A's blocks are freed; once B's
** carved blocks are handed out, the next blocks come from A, not from
** more of B (which would make fresh memory resident beside A's free ones).
*/
Test(heap, free_blocks_of_a_later_page_come_before_carving) {
  enum { SIZE = 1536, MAX = 200 };
  static char *blk[MAX];
  size_t n = 0;
  blk[n++] = hak_malloc(SIZE);
  cr_assert_not_null(blk[0]);
  uintptr_t page_a = (uintptr_t)blk[0] >> 16;
  for (; n < MAX; n++) { /* page A full, then B's first block */
    cr_assert_not_null(blk[n] = hak_malloc(SIZE));
    if ((uintptr_t)blk[n] >> 16 != page_a) break;
  }
  cr_assert_lt(n, MAX, "%d blocks of %d B in one 64 KiB page", MAX, SIZE);
  uintptr_t page_b = (uintptr_t)blk[n] >> 16;
  size_t in_a = n, freed = 0;
  for (size_t i = 0; i < in_a; i += 4, freed++) { /* a quarter of A */
    hak_free(blk[i]);
    blk[i] = NULL;
  }
  size_t carved_b = 4096 / SIZE; /* B's first carve: one OS page of blocks */
  size_t from_a = 0, from_b = 1;
  for (size_t k = 0; k < carved_b + freed / 2; k++) {
    char *p = hak_malloc(SIZE);
    cr_assert_not_null(p);
    if ((uintptr_t)p >> 16 == page_a) from_a++;
    else if ((uintptr_t)p >> 16 == page_b) from_b++;
    blk[++n] = p;
  }
  cr_expect_leq(from_b, carved_b, "page B carved more (%zu blocks from it) while page A had %zu free",
                from_b, freed);
  cr_expect_geq(from_a, freed / 2 - 1, "only %zu of the blocks came from page A's %zu free", from_a, freed);
  for (size_t i = 0; i <= n; i++) hak_free(blk[i]);
}

/* A remote free into an explicit heap; the block then serves that heap. */
Test(heap, cross_thread_free_into_an_explicit_heap) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  enum { N = 3000 };
  static void *blk[N];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) {
      blk[i] = hak_heap_malloc(h, 48);
      cr_assert_not_null(blk[i]);
      hkt_fill(blk[i], 48, (uint64_t)i);
    }
    batch_t b = {blk, N, 48, 0, 0};
    hkt_run_thread(check_and_free_batch, &b);
    cr_expect_eq(b.bad, 0);
  }
  hak_heap_destroy(h);
}

static void *alloc_and_exit(void *arg) {
  batch_t *b = arg;
  for (size_t i = 0; i < b->count; i++) {
    b->blk[i] = hak_malloc(b->size);
    if (b->blk[i]) hkt_fill(b->blk[i], b->size, b->seed + i);
  }
  return NULL; /* the thread exits with every block live */
}

/* Blocks outlive the thread that made them (abandoned, then adopted). */
Test(heap, blocks_outlive_their_thread) {
  enum { N = 5000 };
  static void *blk[N];
  const size_t sizes[] = {40, 700, 9000, 100000, 3 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k], count = n > 50000 ? 20 : N;
    batch_t b = {blk, count, n, 77, 0};
    hkt_run_thread(alloc_and_exit, &b);
    size_t fails = 0;
    for (size_t i = 0; i < count; i++) {
      cr_assert_not_null(blk[i]);
      HKT_EXPECT(fails, hkt_check(blk[i], n, 77 + i) == n,
                 "block %p of %zu B changed after its thread exited", blk[i], n);
    }
    /* This thread allocates the same size: it must not get a live block. */
    void *mine[64];
    for (int i = 0; i < 64; i++) {
      mine[i] = hak_malloc(n);
      memset(mine[i], 0x99, n);
    }
    for (size_t i = 0; i < count; i++) {
      HKT_EXPECT(fails, hkt_check(blk[i], n, 77 + i) == n,
                 "block %p of %zu B of an exited thread was handed out again", blk[i], n);
      hak_free(blk[i]);
    }
    for (int i = 0; i < 64; i++) hak_free(mine[i]);
    HKT_EXPECT_NONE(fails, "blocks of an exited thread");
  }
}

typedef struct claim_s {
  hak_heap_t *heap;
  void *blocks[100];
} claim_t;

static void *claim_and_allocate(void *arg) {
  claim_t *c = arg;
  hak_heap_claim(c->heap);
  for (int i = 0; i < 100; i++) {
    c->blocks[i] = hak_heap_malloc(c->heap, (size_t)(i + 1) * 8);
    if (c->blocks[i]) memset(c->blocks[i], i, (size_t)(i + 1) * 8);
  }
  hak_heap_release(c->heap);
  return NULL;
}

/* A heap that moves to another thread (a Lua state moving between workers). */
Test(heap, claim_moves_a_heap_between_threads) {
  claim_t c = {hak_heap_new(), {0}};
  cr_assert_not_null(c.heap);
  void *mine = hak_heap_malloc(c.heap, 500);
  memset(mine, 0x42, 500);
  hak_heap_release(c.heap);
  hkt_run_thread(claim_and_allocate, &c);
  hak_heap_claim(c.heap); /* back to this thread */
  for (int i = 0; i < 100; i++) {
    cr_assert_not_null(c.blocks[i]);
    cr_expect_eq(hkt_check_byte(c.blocks[i], (size_t)(i + 1) * 8, (unsigned char)i),
                 (size_t)(i + 1) * 8);
  }
  cr_expect_eq(hkt_check_byte(mine, 500, 0x42), 500);
  void *again = hak_heap_malloc(c.heap, 64);
  cr_expect_not_null(again);
  hak_heap_destroy(c.heap);
}
