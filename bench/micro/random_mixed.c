/*
** random_mixed.c -- one thread, a working set of slots, random sizes.
**
** Each operation picks a slot at random: an empty slot gets a new block of
** 16..1039 bytes, a full one is freed.  Occupancy settles near one half, so
** about half the operations are allocations and half are frees, and the
** live set is about slots/2 blocks of ~530 B (400 slots fit in L2, 8192 do
** not).  Each block has its first and last bytes written, like a real
** program's first touch, and its first word is read back at free: a
** checksum that the allocator cannot have corrupted.
**
** Usage: random_mixed [--slots=N] [--ops=N] [--seed=N] [--sized=0|1]
** Output: one JSON line with the figures.
** Build: plain, the calls are malloc/free (peers via LD_PRELOAD); with
** -DBENCH_HAKMEM they are hak_malloc/hak_free, or hak_free_sized with
** --sized=1.
*/
#include "bench_util.h"

/* --sized=1 frees with the block's size; malloc has no sized free */
#ifdef BENCH_HAKMEM
#define B_FREE(p, n) (sized ? BENCH_FREE_SIZED(p, n) : BENCH_FREE(p))
#else
#define B_FREE(p, n) BENCH_FREE_SIZED(p, n)
#endif

#define MIN_SIZE 16
#define SIZE_SPAN 1024 /* sizes are MIN_SIZE .. MIN_SIZE + SIZE_SPAN - 1 */

/* A slot: the block (NULL when empty) and the size it was asked with. */
typedef struct slot_s {
  unsigned char *p;
  size_t size;
} slot_t;

typedef struct counts_s {
  unsigned long long allocs, frees, checksum;
} counts_t;

/*
** The measured loop, in a function of its own that is never inlined: the
** runner's --callgrind mode counts the instructions inside it only.
*/
__attribute__((noinline)) static void bench_measured(
    slot_t *slot, unsigned long long slots, unsigned long long ops,
    bench_rng_t *rng, int sized, counts_t *c) {
  (void)sized; /* only the hakmem build has a sized free */
  for (unsigned long long i = 0; i < ops; i++) {
    uint64_t r = bench_rng_next(rng);
    slot_t *s = &slot[((r >> 32) * slots) >> 32];
    if (s->p == NULL) {
      size_t size = MIN_SIZE + (size_t)(r & (SIZE_SPAN - 1));
      unsigned char *p = BENCH_MALLOC(size);
      if (p == NULL) bench_die("random_mixed", "out of memory", size, i);
      uint64_t tag = i;
      memcpy(p, &tag, sizeof tag);
      p[size - 1] = (unsigned char)size;
      s->p = p;
      s->size = size;
      c->allocs++;
    } else {
      uint64_t tag;
      memcpy(&tag, s->p, sizeof tag);
      if (s->p[s->size - 1] != (unsigned char)s->size)
        bench_die("random_mixed", "block corrupted", tag, s->size);
      c->checksum += tag;
      B_FREE(s->p, s->size);
      s->p = NULL;
      c->frees++;
    }
  }
}

int main(int argc, char **argv) {
  unsigned long long slots = 400, ops = 20000000, seed = 42, sized = 0;
  const bench_option_t opts[] = {{"--slots", "N", &slots},
                                 {"--ops", "N", &ops},
                                 {"--seed", "N", &seed},
                                 {"--sized", "0|1", &sized},
                                 {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (slots == 0 || slots > (1ull << 31)) {
    fprintf(stderr, "random_mixed: --slots must be 1..2^31\n");
    return 2;
  }

  slot_t *slot = bench_map(slots * sizeof(slot_t));
  bench_rng_t rng;
  bench_rng_seed(&rng, seed);

  counts_t c = {0, 0, 0};
  double t0 = bench_now();
  bench_measured(slot, slots, ops, &rng, (int)sized, &c);
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();

  /* Untimed: give everything back. */
  for (unsigned long long i = 0; i < slots; i++)
    if (slot[i].p != NULL) B_FREE(slot[i].p, slot[i].size);

  printf("{\"bench\":\"random_mixed\",\"api\":\"%s\",\"slots\":%llu,"
         "\"seed\":%llu,\"ops\":%llu,\"allocs\":%llu,\"frees\":%llu,"
         "\"secs\":%.6f,\"ops_per_s\":%.0f,\"peak_rss_kb\":%ld,"
         "\"checksum\":%llu}\n",
         BENCH_API, slots, seed, ops, c.allocs, c.frees, secs,
         secs > 0 ? (double)ops / secs : 0.0, rss, c.checksum);
  return 0;
}
