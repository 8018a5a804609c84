/*
** test_remote_batch.c -- batched remote frees (hak_remote_batch_begin/end).
**
** One thread allocates, another frees inside a batch: every block must go
** back to its page (the owner reuses it instead of mapping more), the
** pushes must be far fewer than the frees, nested batches push only at
** the outermost end, and the freer's own blocks are never held.
** tests/plain/remote_batch.c builds this file without Criterion for TSan.
*/
#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "threads_common.h"
#include "fixture.h"

TestSuite(remote_batch, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define NBLOCKS 20000

typedef struct owner_s {
  void **blocks;
  size_t n;
  _Atomic int phase;   /* 0 allocate, 1 blocks ready, 2 freed: reuse, 3 done */
  size_t mapped_before, mapped_after;
  size_t refilled;     /* blocks allocated again after the frees */
  bool concurrent;     /* keep allocating and freeing while the batch runs */
  size_t bad;
} owner_t;

static size_t size_of(size_t i) { return 16 + (i * 40) % 497; }

static size_t mapped_now(void) {
  hak_stats_t st;
  hak_stats_counters(&st);
  return st.mapped;
}

static void *owner_main(void *arg) {
  owner_t *o = (owner_t *)arg;
  for (size_t i = 0; i < o->n; i++) {
    o->blocks[i] = hak_malloc(size_of(i));
    if (o->blocks[i] == NULL) o->bad++;
    else hkt_block_fill(o->blocks[i], size_of(i));
  }
  atomic_store(&o->phase, 1);
  for (size_t i = 0; atomic_load(&o->phase) == 1; i++) {
    if (o->concurrent) { /* local traffic on the same pages meanwhile */
      void *p = hak_malloc(48);
      if (p != NULL) hak_free(p);
      hkt_check_every(i, 4096); /* while the batch pushes */
    }
  }
  hak_heap_check(NULL); /* every block pushed back, none taken yet */
  /* Every block came back: allocating them again needs no new memory. */
  o->mapped_before = mapped_now();
  for (size_t i = 0; i < o->n; i++) {
    o->blocks[i] = hak_malloc(size_of(i));
    if (o->blocks[i] != NULL) o->refilled++;
  }
  o->mapped_after = mapped_now();
  for (size_t i = 0; i < o->n; i++) hak_free(o->blocks[i]);
  atomic_store(&o->phase, 3);
  return NULL;
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return (x > y) - (x < y);
}

/* Frees the owner's blocks in one batch: in allocation order (classes
** interleaved, so pages' chains are found by hash), or sorted by address,
** as a Lua state's close frees them (hakl_core.c): then each page's
** blocks come one after the other. */
static void run_batch(bool concurrent, bool sorted) {
  owner_t o;
  pthread_t th;
  hak_thread_counters_t c0, c1;
  memset(&o, 0, sizeof o);
  o.n = NBLOCKS;
  o.concurrent = concurrent;
  o.blocks = (void **)calloc(o.n, sizeof *o.blocks);
  cr_assert(o.blocks != NULL, "calloc");
  cr_assert(pthread_create(&th, NULL, owner_main, &o) == 0, "pthread_create");
  while (atomic_load(&o.phase) == 0) sched_yield();
  cr_assert(o.bad == 0, "owner could not allocate");
  for (size_t i = 0; i < o.n; i++)
    cr_assert(hkt_block_check(o.blocks[i], 1 << 20) == size_of(i), "block %zu changed", i);

  void **order = (void **)malloc(o.n * sizeof *order);
  cr_assert(order != NULL, "malloc");
  memcpy(order, o.blocks, o.n * sizeof *order);
  size_t slices = 0; /* the 64 KiB slices the blocks lie in: a bound on their pages */
  if (sorted) {
    qsort(order, o.n, sizeof *order, by_address);
    for (size_t i = 0; i < o.n; i++)
      if (i == 0 || (uintptr_t)order[i] >> 16 != (uintptr_t)order[i - 1] >> 16) slices++;
  }

  hak_thread_counters(&c0);
  hak_remote_batch_begin();
  for (size_t i = 0; i < o.n; i++) hak_free(order[i]);
  hak_remote_batch_end();
  hak_thread_counters(&c1);
  atomic_store(&o.phase, 2);
  pthread_join(th, NULL);

  cr_expect(c1.remote_frees - c0.remote_frees == o.n, "remote frees %llu, expected %zu",
            (unsigned long long)(c1.remote_frees - c0.remote_frees), o.n);
  /* 20000 blocks of ~20 sizes sit in a few hundred pages */
  cr_expect(c1.remote_pushes - c0.remote_pushes < o.n / 8, "%llu pushes for %zu frees",
            (unsigned long long)(c1.remote_pushes - c0.remote_pushes), o.n);
  /* in address order: the first 64 frees pushed at once (remote.c), then
  ** one push per page at most */
  if (sorted)
    cr_expect(c1.remote_pushes - c0.remote_pushes <= 64 + slices, "%llu pushes for %zu slices",
              (unsigned long long)(c1.remote_pushes - c0.remote_pushes), slices);
  cr_expect(o.refilled == o.n, "owner refilled %zu of %zu", o.refilled, o.n);
  cr_expect(o.mapped_after <= o.mapped_before,
            "the owner mapped %zu more bytes: freed blocks did not come back",
            o.mapped_after - o.mapped_before);
  free(order);
  free(o.blocks);
}

Test(remote_batch, blocks_come_back) { run_batch(false, false); }

Test(remote_batch, owner_busy_meanwhile) { run_batch(true, false); }

Test(remote_batch, address_order_pushes_once_per_page) { run_batch(false, true); }

#define NMANY 200 /* more than a batch pushes at once before it holds */

typedef struct many_s {
  void *p[NMANY];
  _Atomic int phase;
} many_t;

static void *many_owner(void *arg) {
  many_t *o = (many_t *)arg;
  for (int i = 0; i < NMANY; i++) o->p[i] = hak_malloc(64);
  atomic_store(&o->phase, 1);
  while (atomic_load(&o->phase) == 1) sched_yield();
  return NULL;
}

/*
** A batch pushes its first frees at once (a close with a few remote frees,
** each on a page of its own, has nothing to gain from holding them), then
** holds the rest until the outermost end.
*/
Test(remote_batch, nested_and_own_blocks) {
  many_t o;
  pthread_t th;
  hak_thread_counters_t c0, cf, c1, c2;
  memset(&o, 0, sizeof o);
  cr_assert(pthread_create(&th, NULL, many_owner, &o) == 0, "pthread_create");
  while (atomic_load(&o.phase) == 0) sched_yield();
  for (int i = 0; i < NMANY; i++) cr_assert(o.p[i] != NULL, "owner malloc %d", i);

  void *mine = hak_malloc(64);
  cr_assert(mine != NULL, "malloc");
  hak_thread_counters(&c0);
  hak_remote_batch_begin();
  hak_remote_batch_begin();
  hak_free(mine); /* our own block: freed at once, not a remote free */
  for (int i = 0; i < NMANY; i++) hak_free(o.p[i]);
  hak_thread_counters(&cf);
  hak_remote_batch_end();
  hak_thread_counters(&c1);
  hak_remote_batch_end();
  hak_thread_counters(&c2);
  hak_remote_batch_end(); /* unbalanced: ignored */
  atomic_store(&o.phase, 2);
  pthread_join(th, NULL);

  unsigned long long direct = cf.remote_pushes - c0.remote_pushes;
  unsigned long long outer = c2.remote_pushes - c1.remote_pushes;
  cr_expect(c2.remote_frees - c0.remote_frees == NMANY, "%d remote frees, not %llu", NMANY,
            (unsigned long long)(c2.remote_frees - c0.remote_frees));
  cr_expect(direct > 0 && direct < NMANY / 2, "%llu of %d frees pushed before the batch held any",
            direct, NMANY);
  cr_expect(c1.remote_pushes == cf.remote_pushes, "an inner end pushed");
  cr_expect(outer >= 1 && outer <= 8, "the outer end pushed %llu chains for %llu held blocks", outer,
            (unsigned long long)(NMANY - direct));
}
