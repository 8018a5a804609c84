/*
** mstress.c -- objects of mixed lifetimes, some passed between threads, in
** rounds of fresh threads: the shape of mimalloc-bench's mstress.
**
** `rounds` times, T new threads start and run to their end (so T x rounds
** threads over the run: thread churn).  A thread makes `allocs` objects
** (more for some threads than others) of 8 B to 1 KiB, now and then 100 to
** 10000 times larger; at each step, more or less at random, it
** - allocates a short-lived object into its `data` array, or a retained
**   one, kept until the thread ends;
** - frees a random short-lived object (2 steps in 3);
** - swaps a random short-lived object with a random slot of a global
**   transfer array (1 step in 4, an atomic exchange): the objects there
**   outlive their thread, and another thread, of this round or a later
**   one, frees them.
** Between rounds the main thread frees half of the transfer array.
**
** Each object's first and last words are written and checked at free; the
** checksum (the sum of the sizes allocated) is the same under every
** allocator for the same arguments.
**
** Usage: mstress [--threads=T] [--rounds=R] [--allocs=N] [--seed=N]
** Output: one JSON line; ops_per_s counts allocations of all threads per
** second of wall time (thread starts included); sys_s is the system time.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM.
*/
#include <stdatomic.h>

#include "../micro/bench_util.h"

#define TRANSFERS 1000
#define COOKIE 0x9e3779b97f4a7c15ull

static _Atomic(uint64_t *) transfer[TRANSFERS];
static atomic_ullong allocated; /* bytes, the checksum */
static atomic_ullong objects;   /* allocations */

typedef struct worker_s {
  unsigned long long allocs, seed;
  uint64_t **data, **retained; /* harness memory, sized for the worst case */
} worker_t;

/* An object of `words` 8-byte words: its size first, a check word last. */
static uint64_t *object_new(size_t words) {
  uint64_t *p = BENCH_MALLOC(words * 8);
  if (p == NULL) bench_die("mstress", "out of memory", words * 8, 0);
  p[0] = words;
  p[words - 1] = words == 1 ? words : (words ^ COOKIE);
  return p;
}

static void object_free(uint64_t *p) {
  if (!p) return;
  size_t words = p[0];
  if (words == 0 || p[words - 1] != (words == 1 ? words : (words ^ COOKIE)))
    bench_die("mstress", "object corrupted", words, 0);
  BENCH_FREE(p);
}

/* Mostly 1..128 words (8 B..1 KiB), each doubling equally likely; 1 in
** 100 is 100x that, 1 in 1000 1000x, 1 in 10000 10000x (large ones). */
static size_t object_words(bench_rng_t *rng, unsigned shift, unsigned long long *bytes) {
  size_t words = (size_t)1 << bench_rng_below(rng, shift);
  if (bench_rng_chance(rng, 1, 100)) {
    if (bench_rng_chance(rng, 1, 100)) words *= 10000;
    else if (bench_rng_chance(rng, 1, 10)) words *= 1000;
    else words *= 100;
  }
  *bytes += words * 8;
  return words;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  bench_rng_t rng;
  bench_rng_seed(&rng, w->seed);
  unsigned long long allocs = w->allocs, retain = w->allocs / 2, bytes = 0, count = 0;
  size_t top = 0, rtop = 0;
  while (allocs > 0 || retain > 0) {
    if (retain == 0 || (allocs > 0 && bench_rng_chance(&rng, 1, 2))) {
      w->data[top++] = object_new(object_words(&rng, 8, &bytes)); /* short-lived */
      allocs--;
    } else {
      w->retained[rtop++] = object_new(object_words(&rng, 10, &bytes)); /* to the end */
      retain--;
    }
    count++;
    if (top > 0 && bench_rng_chance(&rng, 2, 3)) {
      size_t i = bench_rng_below(&rng, (uint32_t)top);
      object_free(w->data[i]);
      w->data[i] = NULL;
    }
    if (top > 0 && bench_rng_chance(&rng, 1, 4)) {
      size_t i = bench_rng_below(&rng, (uint32_t)top);
      size_t k = bench_rng_below(&rng, TRANSFERS);
      w->data[i] = atomic_exchange(&transfer[k], w->data[i]);
    }
  }
  for (size_t i = 0; i < rtop; i++) object_free(w->retained[i]);
  for (size_t i = 0; i < top; i++) object_free(w->data[i]);
  atomic_fetch_add(&allocated, bytes);
  atomic_fetch_add(&objects, count);
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, rounds = 20, allocs = 20000, seed = 42;
  const bench_option_t opts[] = {{"--threads", "T", &threads}, {"--rounds", "R", &rounds},
                                 {"--allocs", "N", &allocs},   {"--seed", "N", &seed},
                                 {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || rounds < 1 || allocs < 1 || allocs > (1ull << 28)) {
    fprintf(stderr, "mstress: bad arguments\n");
    return 2;
  }

  worker_t *w = bench_map(threads * sizeof(worker_t));
  pthread_t *tid = bench_map(threads * sizeof(pthread_t));
  for (unsigned long long t = 0; t < threads; t++) {
    /* some threads do more than others, as mstress's do (1x to 8x) */
    w[t].allocs = allocs * (t % 8 + 1) / 4 + 1;
    w[t].data = bench_map(w[t].allocs * sizeof(uint64_t *));
    w[t].retained = bench_map((w[t].allocs / 2 + 1) * sizeof(uint64_t *));
  }
  bench_rng_t rng;
  bench_rng_seed(&rng, seed);
  double t0 = bench_now();
  for (unsigned long long r = 0; r < rounds; r++) {
    for (unsigned long long t = 0; t < threads; t++) w[t].seed = seed + r * 1000003 + t * 7919;
    bench_threads_start("mstress", tid, threads, worker, w, sizeof *w);
    for (unsigned long long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    for (size_t k = 0; k < TRANSFERS; k++) /* half the transfer array, at random */
      if (bench_rng_chance(&rng, 1, 2) || r + 1 == rounds)
        object_free(atomic_exchange(&transfer[k], NULL));
  }
  double secs = bench_now() - t0;
  unsigned long long total = atomic_load(&objects);
  printf("{\"bench\":\"mstress\",\"api\":\"%s\",\"threads\":%llu,\"rounds\":%llu,\"allocs\":%llu,"
         "\"seed\":%llu,\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,"
         "\"sys_s\":%.3f,\"checksum\":%llu}\n",
         BENCH_API, threads, rounds, allocs, seed, total, secs,
         secs > 0 ? (double)total / secs : 0.0, bench_peak_rss_kb(), bench_sys_secs(),
         (unsigned long long)atomic_load(&allocated));
  return 0;
}
