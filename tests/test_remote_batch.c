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

static void run_batch(bool concurrent) {
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

  hak_thread_counters(&c0);
  hak_remote_batch_begin();
  for (size_t i = 0; i < o.n; i++) hak_free(o.blocks[i]);
  hak_remote_batch_end();
  hak_thread_counters(&c1);
  atomic_store(&o.phase, 2);
  pthread_join(th, NULL);

  cr_expect(c1.remote_frees - c0.remote_frees == o.n, "remote frees %llu, expected %zu",
            (unsigned long long)(c1.remote_frees - c0.remote_frees), o.n);
  /* 20000 blocks of ~20 sizes sit in a few hundred pages */
  cr_expect(c1.remote_pushes - c0.remote_pushes < o.n / 8, "%llu pushes for %zu frees",
            (unsigned long long)(c1.remote_pushes - c0.remote_pushes), o.n);
  cr_expect(o.refilled == o.n, "owner refilled %zu of %zu", o.refilled, o.n);
  cr_expect(o.mapped_after <= o.mapped_before,
            "the owner mapped %zu more bytes: freed blocks did not come back",
            o.mapped_after - o.mapped_before);
  free(o.blocks);
}

Test(remote_batch, blocks_come_back) { run_batch(false); }

Test(remote_batch, owner_busy_meanwhile) { run_batch(true); }

typedef struct one_s {
  void *p;
  _Atomic int phase;
} one_t;

static void *one_owner(void *arg) {
  one_t *o = (one_t *)arg;
  o->p = hak_malloc(64);
  atomic_store(&o->phase, 1);
  while (atomic_load(&o->phase) == 1) sched_yield();
  return NULL;
}

Test(remote_batch, nested_and_own_blocks) {
  one_t o = {NULL, 0};
  pthread_t th;
  hak_thread_counters_t c0, c1, c2;
  cr_assert(pthread_create(&th, NULL, one_owner, &o) == 0, "pthread_create");
  while (atomic_load(&o.phase) == 0) sched_yield();
  cr_assert(o.p != NULL, "owner malloc");

  void *mine = hak_malloc(64);
  cr_assert(mine != NULL, "malloc");
  hak_thread_counters(&c0);
  hak_remote_batch_begin();
  hak_remote_batch_begin();
  hak_free(mine); /* our own block: freed at once, not a remote free */
  hak_free(o.p);
  hak_remote_batch_end();
  hak_thread_counters(&c1);
  hak_remote_batch_end();
  hak_thread_counters(&c2);
  hak_remote_batch_end(); /* unbalanced: ignored */
  atomic_store(&o.phase, 2);
  pthread_join(th, NULL);

  cr_expect(c1.remote_frees - c0.remote_frees == 1, "one remote free");
  cr_expect(c1.remote_pushes == c0.remote_pushes, "an inner end pushed");
  cr_expect(c2.remote_pushes - c1.remote_pushes == 1, "the outer end pushed %llu",
            (unsigned long long)(c2.remote_pushes - c1.remote_pushes));
}
