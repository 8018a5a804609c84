/*
** churn.c -- thread churn: short-lived threads that allocate blocks of
** mixed lifetimes and leave some behind for the threads after them, the
** way thread pools that recycle workers, request-per-thread servers and
** test runners use an allocator.
**
** At most T threads run at a time; the main thread starts a new one each
** time the oldest ends, until N threads have run.  Each thread makes K
** allocations of sizes min..max (log-uniform, first and last bytes
** written).  A block is short-lived (it joins the thread's ring of R
** blocks and is freed when it is the oldest there, or when the thread
** ends) or, with probability share/100, long-lived: it replaces a random
** slot of a table of S slots shared by all threads, and the block it
** replaces, which an earlier thread made (often one that has exited
** since), is checked and freed.  So threads exit while others free their
** blocks, and every new thread finds memory that exited threads left.
** The main thread frees what the table holds at the end.
**
** Usage: churn [--threads=T] [--total=N] [--ops=K] [--ring=R] [--slots=S]
**              [--share=P] [--min=B] [--max=B] [--seed=N]
** Output: one JSON line: ops_per_s counts mallocs and frees per second of
** wall time (thread starts included), peak_rss_kb is VmHWM, user_s and
** sys_s the process's CPU time (getrusage counts the exited threads too).
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "../micro/bench_util.h"

typedef struct churn_s {
  unsigned long long ops, ring, slots, share, min, max, seed;
  unsigned levels;                  /* doublings from min to max, plus one */
  _Atomic(unsigned char *) *table;  /* the shared slots */
} churn_t;

/* One thread's run: its own rng (seeded by its index) and figures. */
typedef struct worker_s {
  const churn_t *c;
  unsigned long long index;
  unsigned long long checksum; /* sum of the sizes it allocated */
  unsigned long long frees;
} worker_t;

static size_t draw_size(const churn_t *c, bench_rng_t *rng) {
  uint64_t r = bench_rng_next(rng);
  unsigned long long lo = c->min << bench_rng_below(rng, c->levels);
  unsigned long long hi = lo * 2 - 1 < c->max ? lo * 2 - 1 : c->max;
  return (size_t)(lo + (((r & 0xffffffffu) * (hi - lo + 1)) >> 32));
}

/* A block carries its size in its first 4 bytes (min >= 8), and a mark of
** it in its last byte, checked before it is freed. */
static unsigned char *block_new(size_t n) {
  unsigned char *q = BENCH_MALLOC(n);
  if (q == NULL) bench_die("churn", "out of memory", n, 0);
  uint32_t n32 = (uint32_t)n;
  memcpy(q, &n32, sizeof n32);
  q[n - 1] = (unsigned char)(n * 7);
  return q;
}

static void block_free(unsigned char *q) {
  uint32_t n;
  memcpy(&n, q, sizeof n);
  if (q[n - 1] != (unsigned char)(n * 7)) bench_die("churn", "block corrupted", n, 0);
  BENCH_FREE(q);
}

static void *worker(void *arg) {
  worker_t *w = arg;
  const churn_t *c = w->c;
  bench_rng_t rng;
  bench_rng_seed(&rng, c->seed * 1000003 + w->index);
  unsigned char **ring = bench_map(c->ring * sizeof *ring); /* zero: empty slots */
  unsigned long long head = 0;
  for (unsigned long long i = 0; i < c->ops; i++) {
    size_t n = draw_size(c, &rng);
    unsigned char *q = block_new(n);
    w->checksum += n;
    unsigned char *old;
    if (bench_rng_below(&rng, 100) < c->share) {
      old = atomic_exchange_explicit(&c->table[bench_rng_below(&rng, (uint32_t)c->slots)], q,
                                     memory_order_acq_rel);
    } else {
      old = ring[head];
      ring[head] = q;
      head = head + 1 == c->ring ? 0 : head + 1;
    }
    if (old) {
      block_free(old);
      w->frees++;
    }
  }
  for (unsigned long long i = 0; i < c->ring; i++)
    if (ring[i]) {
      block_free(ring[i]);
      w->frees++;
    }
  munmap(ring, c->ring * sizeof *ring);
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, total = 100, ops = 100000, ring = 1000, slots = 20000,
                     share = 10, min = 8, max = 1024, seed = 42;
  const bench_option_t opts[] = {
      {"--threads", "T", &threads}, {"--total", "N", &total}, {"--ops", "K", &ops},
      {"--ring", "R", &ring},       {"--slots", "S", &slots}, {"--share", "P", &share},
      {"--min", "B", &min},         {"--max", "B", &max},     {"--seed", "N", &seed},
      {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || total < threads || ring < 1 || slots < 1 ||
      slots > UINT32_MAX || share > 100 || min < 8 || max < min || max > UINT32_MAX) {
    fprintf(stderr, "churn: need 1 <= T <= N, T <= 1024, R >= 1, 1 <= S < 2^32, P <= 100, "
                    "8 <= min <= max\n");
    return 2;
  }
  churn_t c = {ops, ring, slots, share, min, max, seed, 1, NULL};
  while ((min << c.levels) <= max) c.levels++;
  c.table = bench_map(slots * sizeof *c.table);
  worker_t *w = bench_map(total * sizeof *w);
  pthread_t *tid = bench_map(total * sizeof *tid);

  double t0 = bench_now();
  for (unsigned long long i = 0; i < total; i++) {
    /* at most T at a time: the oldest must end before another starts */
    if (i >= threads) pthread_join(tid[i - threads], NULL);
    w[i] = (worker_t){&c, i, 0, 0};
    if (pthread_create(&tid[i], NULL, worker, &w[i]) != 0)
      bench_die("churn", "pthread_create failed", i, 0);
  }
  for (unsigned long long i = total > threads ? total - threads : 0; i < total; i++)
    pthread_join(tid[i], NULL);
  unsigned long long frees = 0;
  for (unsigned long long s = 0; s < slots; s++) {
    unsigned char *q = atomic_load_explicit(&c.table[s], memory_order_relaxed);
    if (q) {
      block_free(q);
      frees++;
    }
  }
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);

  unsigned long long checksum = 0;
  for (unsigned long long i = 0; i < total; i++) {
    checksum += w[i].checksum;
    frees += w[i].frees;
  }
  if (frees != total * ops) bench_die("churn", "frees differ from mallocs", frees, total * ops);
  unsigned long long n_ops = 2 * total * ops; /* mallocs + frees */
  printf("{\"bench\":\"churn\",\"api\":\"%s\",\"threads\":%llu,\"total\":%llu,\"per_thread\":%llu,"
         "\"ring\":%llu,\"slots\":%llu,\"share\":%llu,\"min\":%llu,\"max\":%llu,\"seed\":%llu,"
         "\"ops\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,\"user_s\":%.3f,\"sys_s\":%.3f,"
         "\"checksum\":%llu}\n",
         BENCH_API, threads, total, ops, ring, slots, share, min, max, seed, n_ops, secs,
         secs > 0 ? (double)n_ops / secs : 0.0, rss,
         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, checksum);
  return 0;
}
