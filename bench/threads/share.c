/*
** share.c -- random sizes from 8 B to 16 KiB, with a share of the blocks
** handed to another thread, which frees them: the shape of rpmalloc's
** benchmark (rpmalloc-benchmark's cross-thread mode).
**
** T threads run `rounds` rounds together.  In a round, each thread replaces
** a random block of its working set (`slots` blocks) `ops` times: it frees
** the old block and allocates one of a random size, 8 B to 16 KiB, each
** doubling equally likely (most blocks small, some large).  With
** probability share/100 the new block does not join the working set: it
** goes into the thread's outbox, and in the next round the next thread
** (t + 1 mod T) frees it, one block per step between its own.  Outboxes
** alternate between two buffers, so a round needs one barrier.
**
** Each block's first and last bytes are written and checked at free; the
** checksum (the sum of the sizes allocated) is the same under every
** allocator for the same arguments.
**
** Usage: share [--threads=T] [--slots=N] [--ops=N] [--rounds=R]
**              [--share=PERCENT] [--seed=N]
** Output: one JSON line; ops_per_s counts allocations (each with a free)
** of all threads per second of wall time; sys_s is the system time.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM.
*/
#include "../micro/bench_util.h"

#define MIN_SIZE 8
#define MAX_SIZE 16384

typedef struct block_s {
  unsigned char *p;
  size_t size;
} block_t;

/* One thread: its working set, its two outboxes (filled in even and odd
** rounds), and its counters. */
typedef struct worker_s {
  block_t *slot;
  block_t *outbox[2];
  unsigned long long nout[2];
  unsigned long long slots, ops, rounds, share, seed, index, threads;
  unsigned long long checksum;
  struct worker_s *all;
  pthread_barrier_t *round;
  char pad[64];
} worker_t;

/* 8 B .. 16 KiB, each doubling equally likely, uniform within it. */
static size_t draw_size(bench_rng_t *rng) {
  unsigned b = 3 + bench_rng_below(rng, 11); /* 2^3 .. 2^13, and up to 2^14 */
  size_t n = ((size_t)1 << b) + bench_rng_below(rng, (uint32_t)1 << b);
  return n > MAX_SIZE ? MAX_SIZE : n;
}

static void drop(block_t *b) {
  if (!b->p) return;
  if (b->p[0] != (unsigned char)b->size || b->p[b->size - 1] != (unsigned char)(b->size >> 3))
    bench_die("share", "block corrupted", (unsigned long long)b->size, 0);
  BENCH_FREE(b->p);
  b->p = NULL;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  bench_rng_t rng;
  bench_rng_seed(&rng, w->seed);
  worker_t *prev = &w->all[(w->index + w->threads - 1) % w->threads];
  unsigned long long sum = 0;
  pthread_barrier_wait(w->round);
  for (unsigned long long r = 0; r < w->rounds; r++) {
    block_t *out = w->outbox[r & 1];
    unsigned long long nout = 0;
    /* what the previous thread handed on in the last round */
    block_t *in = prev->outbox[(r + 1) & 1];
    unsigned long long nin = r ? prev->nout[(r + 1) & 1] : 0, taken = 0;
    for (unsigned long long i = 0; i < w->ops; i++) {
      if (taken < nin) drop(&in[taken++]);
      size_t size = draw_size(&rng);
      unsigned char *p = BENCH_MALLOC(size);
      if (p == NULL) bench_die("share", "out of memory", size, i);
      p[0] = (unsigned char)size;
      p[size - 1] = (unsigned char)(size >> 3);
      sum += size;
      block_t *dst;
      if (bench_rng_below(&rng, 100) < w->share) {
        dst = &out[nout++];
      } else {
        dst = &w->slot[bench_rng_below(&rng, (uint32_t)w->slots)];
        drop(dst);
      }
      dst->p = p;
      dst->size = size;
    }
    while (taken < nin) drop(&in[taken++]);
    w->nout[r & 1] = nout;
    pthread_barrier_wait(w->round); /* outboxes full; last round's emptied */
  }
  w->checksum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, slots = 2000, ops = 20000, rounds = 50, share = 20, seed = 42;
  const bench_option_t opts[] = {
      {"--threads", "T", &threads}, {"--slots", "N", &slots},         {"--ops", "N", &ops},
      {"--rounds", "R", &rounds},   {"--share", "PERCENT", &share}, {"--seed", "N", &seed},
      {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || slots < 1 || slots > (1ull << 31) || ops < 1 ||
      rounds < 1 || share > 100) {
    fprintf(stderr, "share: bad arguments\n");
    return 2;
  }

  worker_t *w = bench_map(threads * sizeof(worker_t));
  pthread_t *tid = bench_map(threads * sizeof(pthread_t));
  pthread_barrier_t round;
  pthread_barrier_init(&round, NULL, (unsigned)threads + 1);
  for (unsigned long long t = 0; t < threads; t++) {
    w[t].slot = bench_map(slots * sizeof(block_t));
    w[t].outbox[0] = bench_map(ops * sizeof(block_t));
    w[t].outbox[1] = bench_map(ops * sizeof(block_t));
    w[t].slots = slots;
    w[t].ops = ops;
    w[t].rounds = rounds;
    w[t].share = share;
    w[t].seed = seed + t * 7919;
    w[t].index = t;
    w[t].threads = threads;
    w[t].all = w;
    w[t].round = &round;
  }
  bench_threads_start("share", tid, threads, worker, w, sizeof *w);
  pthread_barrier_wait(&round);
  double t0 = bench_now();
  for (unsigned long long r = 0; r < rounds; r++) pthread_barrier_wait(&round);
  unsigned long long checksum = 0;
  for (unsigned long long t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    checksum += w[t].checksum;
  }
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();
  for (unsigned long long t = 0; t < threads; t++) { /* untimed: what is left */
    for (unsigned long long i = 0; i < slots; i++) drop(&w[t].slot[i]);
    for (unsigned long long i = 0; i < w[t].nout[(rounds - 1) & 1]; i++)
      drop(&w[t].outbox[(rounds - 1) & 1][i]);
  }
  unsigned long long total = threads * ops * rounds;
  printf("{\"bench\":\"share\",\"api\":\"%s\",\"threads\":%llu,\"slots\":%llu,\"rounds\":%llu,"
         "\"share\":%llu,\"seed\":%llu,\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,"
         "\"peak_rss_kb\":%ld,\"sys_s\":%.3f,\"checksum\":%llu}\n",
         BENCH_API, threads, slots, rounds, share, seed, total, secs,
         secs > 0 ? (double)total / secs : 0.0, rss, bench_sys_secs(), checksum);
  return 0;
}
