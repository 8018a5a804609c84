/*
** tight.c -- T threads, each in a tight loop of malloc and free of random
** small sizes: the shape of glibc's own thread benchmark
** (benchtests/bench-malloc-thread.c).
**
** Each thread owns a working set of `slots` blocks (1024, as glibc's) and
** replaces a random one `ops` times: free the old block, malloc a new one.
** The sizes come from a table of 4096 drawn once per thread, between 4 B
** and `max` (32 KiB, as glibc's) with a density falling about as 1/size, so most
** requests are small and a few are large: every free goes back to the
** thread that allocated it.  The threads start together (a barrier); the
** time runs until the last one finishes.
**
** Each block's first and last bytes are written and checked at free; the
** checksum (the sum of the sizes allocated) is the same under every
** allocator for the same arguments.
**
** Usage: tight [--threads=T] [--slots=N] [--ops=N] [--max=B] [--seed=N]
** Output: one JSON line; ops_per_s counts replacements (a free and a malloc)
** of all threads per second of wall time; sys_s is the process's system
** time.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM.
*/
#include "../micro/bench_util.h"

#define MIN_SIZE 4
#define SIZES 4096 /* glibc's table of random sizes has as many */

typedef struct worker_s {
  unsigned char **slot;
  size_t *sizes;
  unsigned long long slots, ops, seed, max;
  unsigned long long checksum;
  double t0, t1; /* this thread's start (after the barrier) and end */
  pthread_barrier_t *start;
  char pad[64]; /* workers' counters on separate cache lines */
} worker_t;

/*
** A size in [MIN_SIZE, max] with a density falling about as 1/size: a
** power of two chosen uniformly (each doubling equally likely), then a
** uniform size within it.
*/
static size_t draw_size(bench_rng_t *rng, size_t max) {
  unsigned lo = 2, hi = 63 - (unsigned)__builtin_clzll(max); /* 4 B .. the top doubling */
  unsigned b = lo + bench_rng_below(rng, hi - lo + 1);
  size_t n = ((size_t)1 << b) + bench_rng_below(rng, (uint32_t)1 << b);
  return n > max ? max : n;
}

static void check_block(const unsigned char *p, size_t size) {
  if (p[0] != (unsigned char)size || p[size - 1] != (unsigned char)(size >> 2))
    bench_die("tight", "block corrupted", (unsigned long long)size, 0);
}

static void *worker(void *arg) {
  worker_t *w = arg;
  bench_rng_t rng;
  bench_rng_seed(&rng, w->seed);
  for (unsigned i = 0; i < SIZES; i++) w->sizes[i] = draw_size(&rng, w->max);
  size_t *old = bench_map(w->slots * sizeof(size_t)); /* the size of each slot's block */
  pthread_barrier_wait(w->start);
  w->t0 = bench_now();
  unsigned long long sum = 0;
  for (unsigned long long i = 0; i < w->ops; i++) {
    uint64_t r = bench_rng_next(&rng);
    unsigned long long k = ((r >> 32) * w->slots) >> 32;
    size_t size = w->sizes[r & (SIZES - 1)];
    if (w->slot[k]) {
      check_block(w->slot[k], old[k]);
      BENCH_FREE(w->slot[k]);
    }
    unsigned char *p = BENCH_MALLOC(size);
    if (p == NULL) bench_die("tight", "out of memory", size, i);
    p[0] = (unsigned char)size;
    p[size - 1] = (unsigned char)(size >> 2);
    w->slot[k] = p;
    old[k] = size;
    sum += size;
  }
  for (unsigned long long k = 0; k < w->slots; k++) {
    if (!w->slot[k]) continue;
    check_block(w->slot[k], old[k]);
    BENCH_FREE(w->slot[k]);
  }
  w->t1 = bench_now();
  w->checksum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, slots = 1024, ops = 5000000, max = 32768, seed = 42;
  const bench_option_t opts[] = {
      {"--threads", "T", &threads}, {"--slots", "N", &slots}, {"--ops", "N", &ops},
      {"--max", "B", &max},         {"--seed", "N", &seed},   {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || slots < 1 || slots > (1ull << 31) || max < MIN_SIZE ||
      max > (1ull << 31)) {
    fprintf(stderr, "tight: bad arguments\n");
    return 2;
  }

  worker_t *w = bench_map(threads * sizeof(worker_t));
  pthread_t *tid = bench_map(threads * sizeof(pthread_t));
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
  for (unsigned long long t = 0; t < threads; t++) {
    w[t].slot = bench_map(slots * sizeof(unsigned char *));
    w[t].sizes = bench_map(SIZES * sizeof(size_t));
    w[t].slots = slots;
    w[t].ops = ops;
    w[t].max = max;
    w[t].seed = seed + t * 7919;
    w[t].start = &start;
  }
  bench_threads_start("tight", tid, threads, worker, w, sizeof *w);
  pthread_barrier_wait(&start);
  unsigned long long checksum = 0;
  for (unsigned long long t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    checksum += w[t].checksum;
  }
  double secs = bench_span(w, threads, sizeof *w, offsetof(worker_t, t0), offsetof(worker_t, t1));
  unsigned long long total = threads * ops;
  printf("{\"bench\":\"tight\",\"api\":\"%s\",\"threads\":%llu,\"slots\":%llu,\"max\":%llu,"
         "\"seed\":%llu,\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,"
         "\"sys_s\":%.3f,\"checksum\":%llu}\n",
         BENCH_API, threads, slots, max, seed, total, secs, secs > 0 ? (double)total / secs : 0.0,
         bench_peak_rss_kb(), bench_sys_secs(), checksum);
  return 0;
}
