/*
** larson.c -- a larson-style server: threads replace random slots with new
** blocks, and hand their slots on to successor threads.
**
** After Larson and Krishnan's benchmark (as in Hoard's and mimalloc-bench's
** larson): T chains of threads each own an array of slots filled with
** blocks of min..max bytes.  A thread replaces the block of a random slot
** with a new one `ops` times, then starts its successor, which inherits the
** array and so frees blocks that its predecessors allocated; a chain runs
** `generations` threads one after the other.  The slots are first filled by
** the main thread (untimed), so the first frees are remote too.
**
** Each block has its first and last bytes written and checked at free; the
** checksum (the sum of the sizes allocated) is the same under every
** allocator for the same arguments.
**
** Usage: larson [--threads=T] [--slots=N] [--ops=N] [--generations=G]
**               [--min=B] [--max=B] [--seed=N]
** Output: one JSON line; ops_per_s counts replacements (a free and a
** malloc each) per second of wall time, thread starts included.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM
** (hak_malloc/hak_free).
*/
#include <pthread.h>

#include "../micro/bench_util.h"

/* A slot: the block and the size it was asked with. */
typedef struct slot_s {
  unsigned char *p;
  size_t size;
} slot_t;

/* One chain: the slot array its threads pass on, and the chain's state. */
typedef struct chain_s {
  slot_t *slot;
  unsigned long long nslots, ops, generations, min, span;
  unsigned long long generation; /* of the thread running now */
  unsigned long long checksum;   /* sum of the sizes allocated */
  bench_rng_t rng;
  pthread_t prev; /* the predecessor, joined by its successor; at the end
                     the final thread, joined by main */
  int has_prev;
} chain_t;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned chains_done;

static unsigned char *new_block(chain_t *c, size_t size) {
  unsigned char *p = BENCH_MALLOC(size);
  if (p == NULL) bench_die("larson", "out of memory", size, c->generation);
  p[0] = (unsigned char)size;
  p[size - 1] = (unsigned char)(size >> 3);
  c->checksum += size;
  return p;
}

static void drop_block(slot_t *s) {
  if (s->p[0] != (unsigned char)s->size || s->p[s->size - 1] != (unsigned char)(s->size >> 3))
    bench_die("larson", "block corrupted", (unsigned long long)s->size, 0);
  BENCH_FREE(s->p);
}

static void *chain_thread(void *arg) {
  chain_t *c = arg;
  if (c->has_prev) pthread_join(c->prev, NULL);
  for (unsigned long long i = 0; i < c->ops; i++) {
    uint64_t r = bench_rng_next(&c->rng);
    slot_t *s = &c->slot[((r >> 32) * c->nslots) >> 32];
    size_t size = (size_t)(c->min + ((r & 0xffffffffu) * c->span >> 32));
    drop_block(s);
    s->p = new_block(c, size);
    s->size = size;
  }
  if (++c->generation < c->generations) {
    /* the successor inherits the slots, and joins this thread */
    c->prev = pthread_self();
    c->has_prev = 1;
    pthread_t next;
    if (pthread_create(&next, NULL, chain_thread, c) != 0)
      bench_die("larson", "pthread_create failed", c->generation, 0);
    return NULL;
  }
  pthread_mutex_lock(&done_lock);
  c->prev = pthread_self();
  chains_done++;
  pthread_cond_signal(&done_cond);
  pthread_mutex_unlock(&done_lock);
  return NULL;
}

int main(int argc, char **argv) {
  unsigned long long threads = 2, slots = 1000, ops = 200000, generations = 20, min = 8,
                     max = 1000, seed = 42;
  const bench_option_t opts[] = {
      {"--threads", "T", &threads}, {"--slots", "N", &slots},
      {"--ops", "N", &ops},         {"--generations", "G", &generations},
      {"--min", "B", &min},         {"--max", "B", &max},
      {"--seed", "N", &seed},       {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (threads < 1 || threads > 1024 || slots < 1 || slots > (1ull << 31) || generations < 1 ||
      min < 2 || max < min) {
    fprintf(stderr, "larson: bad arguments\n");
    return 2;
  }

  chain_t *chain = bench_map(threads * sizeof(chain_t));
  for (unsigned long long t = 0; t < threads; t++) {
    chain_t *c = &chain[t];
    c->slot = bench_map(slots * sizeof(slot_t));
    c->nslots = slots;
    c->ops = ops;
    c->generations = generations;
    c->min = min;
    c->span = max - min + 1;
    bench_rng_seed(&c->rng, seed + t * 7919);
    for (unsigned long long i = 0; i < slots; i++) { /* untimed */
      size_t size = (size_t)(min + ((bench_rng_next(&c->rng) & 0xffffffffu) * c->span >> 32));
      c->slot[i].p = new_block(c, size);
      c->slot[i].size = size;
    }
  }

  double t0 = bench_now();
  for (unsigned long long t = 0; t < threads; t++) {
    pthread_t tid;
    if (pthread_create(&tid, NULL, chain_thread, &chain[t]) != 0)
      bench_die("larson", "pthread_create failed", t, 0);
  }
  pthread_mutex_lock(&done_lock);
  while (chains_done < threads) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  for (unsigned long long t = 0; t < threads; t++) pthread_join(chain[t].prev, NULL);
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();

  unsigned long long checksum = 0;
  for (unsigned long long t = 0; t < threads; t++) {
    checksum += chain[t].checksum;
    for (unsigned long long i = 0; i < slots; i++) drop_block(&chain[t].slot[i]);
  }
  unsigned long long total = threads * ops * generations;
  printf("{\"bench\":\"larson\",\"api\":\"%s\",\"threads\":%llu,\"slots\":%llu,"
         "\"generations\":%llu,\"min\":%llu,\"max\":%llu,\"seed\":%llu,\"ops\":%llu,"
         "\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,\"checksum\":%llu}\n",
         BENCH_API, threads, slots, generations, min, max, seed, total, secs,
         secs > 0 ? (double)total / secs : 0.0, rss, checksum);
  return 0;
}
