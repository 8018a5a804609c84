/*
** test_random.c -- millions of random operations (malloc, calloc, aligned,
** malloc8, realloc, realloc8, free, free_sized) over a working set of
** slots.  Every block is filled with a pattern derived from its address and
** size and checked before it is freed or reallocated: a block handed out
** twice, overlapping another, or corrupted by the allocator's own lists is
** caught at its next use.  The sequence is deterministic (fixed seeds).
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(random, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* -------------------------------------------------------------------------
** One slot of the working set.
** Invariant: ptr == NULL, or ptr is a live block whose first `size` bytes
** hold the pattern of `seed`; kind tells which API family made it (blocks
** from the 8-byte API are reallocated with realloc8 and freed sized).
** ---------------------------------------------------------------------- */
enum kind { K_MALLOC, K_ALIGNED, K_EIGHT };

typedef struct slot_s {
  void *ptr;
  size_t size;
  uint64_t seed;
  enum kind kind;
} slot_t;

typedef struct run_s {
  hkt_rng_t rng;
  hak_heap_t *heap; /* NULL: the default heap */
  slot_t *slots;
  size_t nslots;
  size_t fails;     /* checks that failed */
  size_t ops;       /* operations done */
  bool threaded;    /* on a thread of its own: no Criterion call, keep `first` */
  char first[256];  /* the first failure's message */
} run_t;

/*
** A failed check.  Criterion's assertions belong to the test's own thread,
** so a worker thread only counts and keeps the first message, which the
** test reports after joining it.
*/
static void report(run_t *r, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->fails++ == 0) memcpy(r->first, msg, sizeof msg);
  if (!r->threaded && r->fails <= HKT_REPORT_MAX) cr_expect(false, "%s", msg);
}

#define EXPECT(r, cond, ...) \
  do {                       \
    if (!(cond)) report((r), __VA_ARGS__); \
  } while (0)

static void *heap_malloc(run_t *r, size_t n) {
  return r->heap ? hak_heap_malloc(r->heap, n) : hak_malloc(n);
}

/* Checks the slot's pattern; reports the first failures. */
static void check_slot(run_t *r, slot_t *s, const char *before) {
  size_t at = hkt_check(s->ptr, s->size, s->seed);
  EXPECT(r, at == s->size,
             "op %zu: block %p (%zu B, kind %d) corrupted at offset %zu before %s", r->ops,
             s->ptr, s->size, (int)s->kind, at, before);
}

static void new_block(run_t *r, slot_t *s) {
  size_t n = hkt_rng_size(&r->rng);
  unsigned pick = (unsigned)(hkt_rng_next(&r->rng) % 16);
  if (pick < 9) {
    s->kind = K_MALLOC;
    s->ptr = heap_malloc(r, n);
  } else if (pick < 11) {
    s->kind = K_MALLOC;
    s->ptr = r->heap ? hak_heap_calloc(r->heap, 1, n) : hak_calloc(n, 1);
    if (s->ptr)
      EXPECT(r, hkt_check_byte(s->ptr, n, 0) == n,
                 "op %zu: calloc(%zu) = %p not zeroed", r->ops, n, s->ptr);
  } else if (pick < 13) {
    size_t align = (size_t)1 << hkt_rng_range(&r->rng, 3, 16);
    s->kind = K_ALIGNED;
    s->ptr = r->heap ? hak_heap_aligned_alloc(r->heap, align, n) : hak_aligned_alloc(align, n);
    if (s->ptr)
      EXPECT(r, hkt_aligned(s->ptr, align), "op %zu: aligned_alloc(%zu) = %p",
                 r->ops, align, s->ptr);
  } else {
    s->kind = K_EIGHT;
    s->ptr = hak_heap_malloc8(r->heap, n);
    if (s->ptr)
      EXPECT(r, hkt_aligned(s->ptr, 8), "op %zu: malloc8 = %p", r->ops, s->ptr);
  }
  if (!s->ptr) {
    report(r, "op %zu: allocation of %zu B returned NULL", r->ops, n);
    return;
  }
  if (s->kind != K_EIGHT)
    EXPECT(r, hkt_aligned(s->ptr, 16), "op %zu: block %p not 16-aligned", r->ops,
               s->ptr);
  s->size = n;
  s->seed = hkt_seed(s->ptr, n);
  hkt_fill(s->ptr, n, s->seed);
}

static void free_block(run_t *r, slot_t *s) {
  check_slot(r, s, "free");
  if (s->kind == K_EIGHT || (hkt_rng_next(&r->rng) & 1))
    hak_free_sized(s->ptr, s->size);
  else
    hak_free(s->ptr);
  s->ptr = NULL;
}

/*
** Reallocation: mostly small steps (a growing buffer), sometimes a jump to
** any size.  The first min(old, new) bytes keep the old pattern; the block
** is then refilled with its own.
*/
static void realloc_block(run_t *r, slot_t *s) {
  check_slot(r, s, "realloc");
  size_t n;
  if (hkt_rng_next(&r->rng) & 1)
    n = hkt_rng_size(&r->rng);
  else if (hkt_rng_next(&r->rng) & 1)
    n = s->size + s->size / 2 + 1;
  else
    n = s->size / 2;
  if (n > 16 * HKT_MiB) n = 16 * HKT_MiB;
  if (n == 0 && s->kind == K_EIGHT) n = 1; /* realloc8 to 0 is not in the contract */
  void *q;
  if (s->kind == K_EIGHT)
    q = hak_heap_realloc8(r->heap, s->ptr, s->size, n);
  else
    q = r->heap ? hak_heap_realloc(r->heap, s->ptr, n) : hak_realloc(s->ptr, n);
  if (n == 0 && s->kind != K_EIGHT) {
    /* realloc(p, 0) frees p and returns NULL. */
    EXPECT(r, q == NULL, "op %zu: realloc(p, 0) returned %p", r->ops, q);
    s->ptr = NULL;
    return;
  }
  if (!q) {
    report(r, "op %zu: realloc(%zu -> %zu) returned NULL", r->ops, s->size, n);
    return; /* the old block is still valid */
  }
  size_t keep = n < s->size ? n : s->size;
  size_t at = hkt_check(q, keep, s->seed);
  EXPECT(r, at == keep, "op %zu: realloc(%p, %zu -> %zu) = %p lost byte %zu",
             r->ops, s->ptr, s->size, n, q, at);
  if (s->kind == K_ALIGNED) s->kind = K_MALLOC; /* realloc keeps 16 B only */
  s->ptr = q;
  s->size = n;
  s->seed = hkt_seed(q, n);
  hkt_fill(q, n, s->seed);
}

/* The invariant checker walks the run's heap every CHECK_EVERY operations
** (by the thread that owns it: each run belongs to one thread). */
#define CHECK_EVERY 5000

static void run_ops(run_t *r, size_t nops) {
  for (size_t i = 0; i < nops; i++, r->ops++) {
    if (r->ops % CHECK_EVERY == 0) hak_heap_check(r->heap);
    slot_t *s = &r->slots[hkt_rng_next(&r->rng) % r->nslots];
    if (!s->ptr)
      new_block(r, s);
    else if (hkt_rng_next(&r->rng) % 4 == 0)
      realloc_block(r, s);
    else
      free_block(r, s);
  }
}

static void free_all(run_t *r) {
  for (size_t i = 0; i < r->nslots; i++)
    if (r->slots[i].ptr) free_block(r, &r->slots[i]);
}

static void run_init(run_t *r, uint64_t seed, size_t nslots, hak_heap_t *heap) {
  memset(r, 0, sizeof *r);
  hkt_rng_init(&r->rng, seed);
  r->heap = heap;
  r->nslots = nslots;
  r->slots = calloc(nslots, sizeof *r->slots); /* test memory: the C library's */
  cr_assert_not_null(r->slots);
}

/* -------------------------------------------------------------------------
** The tests: 6 million operations in all on the default heap, more on an
** explicit heap and across threads.
** ---------------------------------------------------------------------- */

struct workload {
  uint64_t seed;
  size_t slots;
  size_t ops;
};

ParameterizedTestParameters(random, default_heap) {
  static struct workload cases[] = {
      {1, 400, 2000000},   /* a small working set: pages turn over fast */
      {2, 8192, 3000000},  /* a larger one: many pages live at once */
      {3, 50000, 1000000}, /* wide: many classes and pages partly full */
  };
  return cr_make_param_array(struct workload, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct workload *w, random, default_heap) {
  hak_stats_t before, after;
  hak_stats_get(&before);
  run_t r;
  run_init(&r, w->seed, w->slots, NULL);
  run_ops(&r, w->ops);
  free_all(&r);
  HKT_EXPECT_NONE(r.fails, "random operations");
  hak_stats_get(&after);
  cr_expect_eq(after.in_use, before.in_use,
               "after freeing every block, in_use is %zu (was %zu before the run)",
               after.in_use, before.in_use);
  cr_expect_eq(after.huge_blocks, before.huge_blocks, "huge blocks left: %zu (was %zu)",
               after.huge_blocks, before.huge_blocks);
  free(r.slots);
}

Test(random, explicit_heap_then_destroy) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  run_t r;
  run_init(&r, 4, 2000, h);
  run_ops(&r, 500000);
  /* Check every live block, then drop them all with the heap. */
  for (size_t i = 0; i < r.nslots; i++)
    if (r.slots[i].ptr) check_slot(&r, &r.slots[i], "destroy");
  hak_heap_destroy(h);
  HKT_EXPECT_NONE(r.fails, "random operations on an explicit heap");
  free(r.slots);
}

/*
** Two threads, each with its own heap and slots, and a hand-off: every
** 64th block a thread frees is instead given to the other thread (through
** a locked mailbox), which checks it and frees it: remote frees mixed into
** a random load.
*/
typedef struct mailbox_s {
  pthread_mutex_t lock;
  slot_t items[4096];
  size_t count; /* items[0..count) hold live blocks */
} mailbox_t;

typedef struct worker_s {
  run_t run;
  mailbox_t *inbox, *outbox;
} worker_t;

static void drain(worker_t *w) {
  pthread_mutex_lock(&w->inbox->lock);
  for (size_t i = 0; i < w->inbox->count; i++) free_block(&w->run, &w->inbox->items[i]);
  w->inbox->count = 0;
  pthread_mutex_unlock(&w->inbox->lock);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  run_t *r = &w->run;
  for (size_t round = 0; round < 400; round++) {
    run_ops(r, 1000);
    for (size_t i = round % 64; i < r->nslots; i += 64) {
      slot_t *s = &r->slots[i];
      if (!s->ptr) continue;
      pthread_mutex_lock(&w->outbox->lock);
      if (w->outbox->count < 4096) {
        w->outbox->items[w->outbox->count++] = *s;
        s->ptr = NULL;
      }
      pthread_mutex_unlock(&w->outbox->lock);
    }
    drain(w);
  }
  free_all(r);
  hak_thread_done();
  return NULL;
}

Test(random, two_threads_with_remote_frees) {
  static mailbox_t box[2];
  static worker_t w[2];
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    pthread_mutex_init(&box[i].lock, NULL);
    box[i].count = 0;
  }
  for (int i = 0; i < 2; i++) {
    run_init(&w[i].run, 10 + (uint64_t)i, 1000, NULL);
    w[i].run.threaded = true;
    w[i].inbox = &box[i];
    w[i].outbox = &box[1 - i];
  }
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  /* What the last thread handed over after the other one finished. */
  for (int i = 0; i < 2; i++) {
    for (size_t k = 0; k < box[i].count; k++) free_block(&w[i].run, &box[i].items[k]);
    cr_expect_eq(w[i].run.fails, 0, "thread %d: %zu failed check(s), the first: %s", i,
                 w[i].run.fails, w[i].run.first);
    free(w[i].run.slots);
  }
}
