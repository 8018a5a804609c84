/*
** scaling.c -- random_mixed (bench/micro/random_mixed.c) on T threads at
** once, one independent instance per thread: how throughput scales when
** nothing is shared but the allocator.
**
** Each thread owns `slots` slots and runs `ops` operations: a random slot
** gets a new block of 16..1039 bytes when empty, or is freed when full
** (first and last bytes written, checked at free).  The threads start
** together (a barrier) and the time runs until the last one finishes;
** bench/threads/run.py divides by the T = 1 figure for the speedup.
**
** Usage: scaling [--threads=T] [--slots=N] [--ops=N] [--seed=N]
** Output: one JSON line; ops_per_s is the total over all threads.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM
** (hak_malloc/hak_free).
*/
#include <pthread.h>

#include "../micro/bench_util.h"

#define MIN_SIZE 16
#define SIZE_SPAN 1024

typedef struct slot_s {
  unsigned char *p;
  size_t size;
} slot_t;

typedef struct worker_s {
  slot_t *slot;
  unsigned long long slots, ops, seed;
  unsigned long long checksum;
  double t0, t1; /* this thread's start (after the barrier) and end */
  pthread_barrier_t *start;
  char pad[64]; /* workers' counters on separate cache lines */
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  bench_rng_t rng;
  bench_rng_seed(&rng, w->seed);
  unsigned long long checksum = 0;
  pthread_barrier_wait(w->start);
  w->t0 = bench_now();
  for (unsigned long long i = 0; i < w->ops; i++) {
    uint64_t r = bench_rng_next(&rng);
    slot_t *s = &w->slot[((r >> 32) * w->slots) >> 32];
    if (s->p == NULL) {
      size_t size = MIN_SIZE + (size_t)(r & (SIZE_SPAN - 1));
      unsigned char *p = BENCH_MALLOC(size);
      if (p == NULL) bench_die("scaling", "out of memory", size, i);
      p[0] = (unsigned char)i;
      p[size - 1] = (unsigned char)size;
      s->p = p;
      s->size = size;
    } else {
      if (s->p[s->size - 1] != (unsigned char)s->size)
        bench_die("scaling", "block corrupted", s->size, i);
      checksum += s->p[0];
      BENCH_FREE(s->p);
      s->p = NULL;
    }
  }
  /* the last few hundred frees, timed like the rest */
  for (unsigned long long i = 0; i < w->slots; i++)
    if (w->slot[i].p != NULL) BENCH_FREE(w->slot[i].p);
  w->t1 = bench_now();
  w->checksum = checksum;
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 1, slots = 400, ops = 20000000, seed = 42;
  const bench_option_t opts[] = {{"--threads", "T", &threads}, {"--slots", "N", &slots},
                                 {"--ops", "N", &ops},         {"--seed", "N", &seed},
                                 {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || slots < 1 || slots > (1ull << 31)) {
    fprintf(stderr, "scaling: --threads must be 1..1024, --slots 1..2^31\n");
    return 2;
  }
  worker_t *w = bench_map(threads * sizeof(worker_t));
  pthread_t *tid = bench_map(threads * sizeof(pthread_t));
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
  for (unsigned long long t = 0; t < threads; t++) {
    w[t].slot = bench_map(slots * sizeof(slot_t));
    w[t].slots = slots;
    w[t].ops = ops;
    w[t].seed = seed + t;
    w[t].start = &start;
    if (pthread_create(&tid[t], NULL, worker, &w[t]) != 0)
      bench_die("scaling", "pthread_create failed", t, 0);
  }
  pthread_barrier_wait(&start);
  for (unsigned long long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  double secs = bench_span(w, threads, sizeof *w, offsetof(worker_t, t0), offsetof(worker_t, t1));
  long rss = bench_peak_rss_kb();
  pthread_barrier_destroy(&start);

  unsigned long long checksum = 0;
  for (unsigned long long t = 0; t < threads; t++) checksum += w[t].checksum;
  unsigned long long total = threads * ops;
  printf("{\"bench\":\"scaling\",\"api\":\"%s\",\"threads\":%llu,\"slots\":%llu,"
         "\"seed\":%llu,\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,"
         "\"peak_rss_kb\":%ld,\"checksum\":%llu}\n",
         BENCH_API, threads, slots, seed, total, secs, secs > 0 ? (double)total / secs : 0.0,
         rss, checksum);
  return 0;
}
