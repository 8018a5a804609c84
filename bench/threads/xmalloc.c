/*
** xmalloc.c -- producer/consumer in the style of xmalloc-test: half the
** threads allocate batches of blocks, the other half free them.
**
** Threads come in pairs joined by a ring of `depth` batch slots.  The
** producer fills a slot with `batch` new blocks (sizes min..max, drawn
** log-uniformly, first and last bytes written) and publishes it; the
** consumer checks and frees every block of the slot and hands it back.
** Every free is a remote free, and the allocator must give the freed
** memory back to the producer: peak RSS shows whether it does.
**
** Usage: xmalloc [--threads=T] [--batches=N] [--batch=B] [--depth=D]
**                [--min=B] [--max=B] [--seed=N]
** T is even (T/2 pairs); each producer makes N batches.
** Output: one JSON line; ops_per_s counts mallocs and frees per second of
** wall time, peak_rss_kb is the process's VmHWM.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM
** (hak_malloc/hak_free).
*/
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "../micro/bench_util.h"

/*
** A pair's ring: slots [head, tail) are full.  The producer alone writes
** tail (release: the blocks are visible before the slot), the consumer
** alone writes head (release: the slot is empty before it is reused).
*/
typedef struct pair_s {
  _Atomic unsigned long long head;
  char pad1[56];
  _Atomic unsigned long long tail;
  char pad2[56];
  unsigned char **block;  /* depth * batch block pointers */
  uint32_t *size;         /* their sizes */
  unsigned long long batches, batch, depth, min, max;
  unsigned levels; /* doublings from min to max, plus one */
  unsigned long long checksum; /* producer: sum of the sizes */
  bench_rng_t rng;
} pair_t;

/* Roughly log-uniform in [min, max]: a doubling [min<<k, min<<(k+1)) is
** drawn first, then a size in it; as many blocks of 16..31 B as of
** 256..511 B. */
static size_t draw_size(pair_t *p) {
  uint64_t r = bench_rng_next(&p->rng);
  unsigned long long lo = p->min << bench_rng_below(&p->rng, p->levels);
  unsigned long long hi = lo * 2 - 1 < p->max ? lo * 2 - 1 : p->max;
  return (size_t)(lo + (((r & 0xffffffffu) * (hi - lo + 1)) >> 32));
}

static void *producer(void *arg) {
  pair_t *p = arg;
  for (unsigned long long b = 0; b < p->batches; b++) {
    unsigned long long tail = atomic_load_explicit(&p->tail, memory_order_relaxed);
    while (tail - atomic_load_explicit(&p->head, memory_order_acquire) == p->depth) sched_yield();
    unsigned long long base = (tail % p->depth) * p->batch;
    for (unsigned long long i = 0; i < p->batch; i++) {
      size_t n = draw_size(p);
      unsigned char *q = BENCH_MALLOC(n);
      if (q == NULL) bench_die("xmalloc", "out of memory", n, b);
      q[0] = (unsigned char)n;
      q[n - 1] = (unsigned char)(n >> 2);
      p->block[base + i] = q;
      p->size[base + i] = (uint32_t)n;
      p->checksum += n;
    }
    atomic_store_explicit(&p->tail, tail + 1, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  pair_t *p = arg;
  for (unsigned long long b = 0; b < p->batches; b++) {
    unsigned long long head = atomic_load_explicit(&p->head, memory_order_relaxed);
    while (atomic_load_explicit(&p->tail, memory_order_acquire) == head) sched_yield();
    unsigned long long base = (head % p->depth) * p->batch;
    for (unsigned long long i = 0; i < p->batch; i++) {
      unsigned char *q = p->block[base + i];
      size_t n = p->size[base + i];
      if (q[0] != (unsigned char)n || q[n - 1] != (unsigned char)(n >> 2))
        bench_die("xmalloc", "block corrupted", n, b);
      BENCH_FREE(q);
    }
    atomic_store_explicit(&p->head, head + 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, batches = 20000, batch = 128, depth = 8, min = 16, max = 512,
                     seed = 42;
  const bench_option_t opts[] = {
      {"--threads", "T", &threads}, {"--batches", "N", &batches},
      {"--batch", "B", &batch},     {"--depth", "D", &depth},
      {"--min", "B", &min},         {"--max", "B", &max},
      {"--seed", "N", &seed},       {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 2 || threads % 2 || threads > 1024 || batch < 1 || depth < 1 || min < 4 ||
      max < min || max > UINT32_MAX) {
    fprintf(stderr, "xmalloc: --threads must be even and >= 2; sizes 4 <= min <= max\n");
    return 2;
  }
  unsigned long long pairs = threads / 2;
  pair_t *pair = bench_map(pairs * sizeof(pair_t));
  pthread_t *tid = bench_map(threads * sizeof(pthread_t));
  for (unsigned long long k = 0; k < pairs; k++) {
    pair_t *p = &pair[k];
    p->block = bench_map(depth * batch * sizeof(unsigned char *));
    p->size = bench_map(depth * batch * sizeof(uint32_t));
    p->batches = batches;
    p->batch = batch;
    p->depth = depth;
    p->min = min;
    p->max = max;
    for (p->levels = 1; (min << p->levels) <= max; p->levels++) {
    }
    bench_rng_seed(&p->rng, seed + k * 104729);
  }

  double t0 = bench_now();
  for (unsigned long long k = 0; k < pairs; k++) {
    if (pthread_create(&tid[2 * k], NULL, consumer, &pair[k]) != 0 ||
        pthread_create(&tid[2 * k + 1], NULL, producer, &pair[k]) != 0)
      bench_die("xmalloc", "pthread_create failed", k, 0);
  }
  for (unsigned long long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();

  unsigned long long checksum = 0;
  for (unsigned long long k = 0; k < pairs; k++) checksum += pair[k].checksum;
  unsigned long long ops = 2 * pairs * batches * batch; /* mallocs + frees */
  printf("{\"bench\":\"xmalloc\",\"api\":\"%s\",\"threads\":%llu,\"batches\":%llu,"
         "\"batch\":%llu,\"depth\":%llu,\"min\":%llu,\"max\":%llu,\"seed\":%llu,"
         "\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,"
         "\"checksum\":%llu}\n",
         BENCH_API, threads, batches, batch, depth, min, max, seed, ops, secs,
         secs > 0 ? (double)ops / secs : 0.0, rss, checksum);
  return 0;
}
