/*
** bignum.c -- a single-threaded bignum arithmetic kernel with realistic
** lifetimes, in the spirit of cfrac (mimalloc-bench's continued-fraction
** factoring): small numbers, a new block for every result, temporaries.
**
** A pool of `pool` numbers (1 to 16 limbs of 64 bits, arithmetic modulo
** 2^1024) is worked on `ops` times: two random numbers are added,
** multiplied (schoolbook, into a temporary of the full product that is
** copied and freed at once) or divided by a random word, and the result
** replaces a random number of the pool, which is freed.  So a result lives
** as long as the pool keeps it (a few thousand steps on average), a
** temporary for one step, and a few numbers, the `keep` long-lived ones,
** are replaced only once every 64 steps.  Blocks are 16 B to 136 B
** (temporaries up to 264 B), most of them small.
**
** The checksum (a hash of the final numbers) is the same under every
** allocator.
**
** Usage: bignum [--ops=N] [--pool=N] [--keep=N] [--seed=N]
** Output: one JSON line; ops_per_s counts arithmetic steps per second (each
** allocates one result and, for a product, one temporary, and frees as
** many); sys_s is the system time.
** Build: plain (malloc/free; peers via LD_PRELOAD) or -DBENCH_HAKMEM.
*/
#include "../micro/bench_util.h"

#define LIMBS 16 /* numbers are taken modulo 2^(64 * LIMBS) */

/* A number: n limbs, least significant first, the top one not zero (a zero
** has n = 1). */
typedef struct num_s {
  uint64_t n;
  uint64_t limb[];
} num_t;

static unsigned long long allocations;

static num_t *num_new(size_t n) {
  num_t *x = BENCH_MALLOC(sizeof(num_t) + n * sizeof(uint64_t));
  if (x == NULL) bench_die("bignum", "out of memory", n, 0);
  x->n = n;
  allocations++;
  return x;
}

/* Drops leading zero limbs, and anything past LIMBS (the modulus). */
static num_t *num_trim(num_t *x) {
  if (x->n > LIMBS) x->n = LIMBS;
  while (x->n > 1 && x->limb[x->n - 1] == 0) x->n--;
  return x;
}

static num_t *num_random(bench_rng_t *rng) {
  size_t n = 1 + bench_rng_below(rng, 4);
  num_t *x = num_new(n);
  for (size_t i = 0; i < n; i++) x->limb[i] = bench_rng_next(rng);
  return num_trim(x);
}

static num_t *num_add(const num_t *a, const num_t *b) {
  if (a->n < b->n) {
    const num_t *t = a;
    a = b, b = t;
  }
  size_t n = a->n + 1 > LIMBS ? LIMBS : a->n + 1;
  num_t *r = num_new(n);
  unsigned __int128 carry = 0;
  for (size_t i = 0; i < n; i++) {
    carry += (i < a->n ? a->limb[i] : 0);
    carry += (i < b->n ? b->limb[i] : 0);
    r->limb[i] = (uint64_t)carry;
    carry >>= 64;
  }
  return num_trim(r);
}

/* The full product in a temporary, then a result of its low LIMBS limbs. */
static num_t *num_mul(const num_t *a, const num_t *b) {
  size_t n = a->n + b->n;
  num_t *t = num_new(n);
  memset(t->limb, 0, n * sizeof(uint64_t));
  for (size_t i = 0; i < a->n; i++) {
    unsigned __int128 carry = 0;
    for (size_t j = 0; j < b->n; j++) {
      carry += (unsigned __int128)a->limb[i] * b->limb[j] + t->limb[i + j];
      t->limb[i + j] = (uint64_t)carry;
      carry >>= 64;
    }
    t->limb[i + b->n] = (uint64_t)carry;
  }
  num_trim(t);
  num_t *r = num_new(t->n);
  memcpy(r->limb, t->limb, t->n * sizeof(uint64_t));
  BENCH_FREE(t);
  return r;
}

static num_t *num_divword(const num_t *a, uint64_t d) {
  num_t *r = num_new(a->n);
  unsigned __int128 rem = 0;
  for (size_t i = a->n; i-- > 0;) {
    rem = (rem << 64) | a->limb[i];
    r->limb[i] = (uint64_t)(rem / d);
    rem %= d;
  }
  return num_trim(r);
}

int main(int argc, char **argv) {
  unsigned long long ops = 3000000, pool = 4000, keep = 64, seed = 42;
  const bench_option_t opts[] = {{"--ops", "N", &ops},   {"--pool", "N", &pool},
                                 {"--keep", "N", &keep}, {"--seed", "N", &seed},
                                 {NULL, NULL, NULL}};
  bench_parse_options(argc, argv, opts);
  if (pool < 2 || pool > (1u << 30) || keep < 1 || keep > (1u << 30)) {
    fprintf(stderr, "bignum: bad arguments\n");
    return 2;
  }
  bench_rng_t rng;
  bench_rng_seed(&rng, seed);
  num_t **x = bench_map(pool * sizeof(num_t *));
  num_t **kept = bench_map(keep * sizeof(num_t *));
  for (unsigned long long i = 0; i < pool; i++) x[i] = num_random(&rng);
  for (unsigned long long i = 0; i < keep; i++) kept[i] = num_random(&rng);

  double t0 = bench_now();
  for (unsigned long long s = 0; s < ops; s++) {
    const num_t *a = x[bench_rng_below(&rng, (uint32_t)pool)];
    const num_t *b = (s & 7) ? x[bench_rng_below(&rng, (uint32_t)pool)]
                             : kept[bench_rng_below(&rng, (uint32_t)keep)];
    num_t *r;
    uint32_t op = bench_rng_below(&rng, 100);
    if (op < 45) r = num_add(a, b);
    else if (op < 80) r = num_mul(a, b);
    else if (op < 95) r = num_divword(a, (bench_rng_next(&rng) >> 1) | 1);
    else r = num_random(&rng); /* a fresh small number: sizes stay mixed */
    if ((s & 63) == 0) {
      unsigned long long k = bench_rng_below(&rng, (uint32_t)keep);
      BENCH_FREE(kept[k]);
      kept[k] = r;
    } else {
      unsigned long long k = bench_rng_below(&rng, (uint32_t)pool);
      BENCH_FREE(x[k]);
      x[k] = r;
    }
  }
  double secs = bench_now() - t0;
  long rss = bench_peak_rss_kb();

  uint64_t h = 1469598103934665603ull; /* FNV-1a over the limbs */
  for (unsigned long long i = 0; i < pool + keep; i++) {
    num_t *v = i < pool ? x[i] : kept[i - pool];
    for (size_t j = 0; j < v->n; j++) h = (h ^ v->limb[j]) * 1099511628211ull;
    BENCH_FREE(v);
  }
  printf("{\"bench\":\"bignum\",\"api\":\"%s\",\"threads\":1,\"pool\":%llu,\"keep\":%llu,"
         "\"seed\":%llu,\"ops\":%llu,\"allocations\":%llu,\"secs\":%.6f,\"ops_per_s\":%.0f,"
         "\"peak_rss_kb\":%ld,\"sys_s\":%.3f,\"checksum\":%llu}\n",
         BENCH_API, pool, keep, seed, ops, allocations, secs, secs > 0 ? (double)ops / secs : 0.0,
         rss, bench_sys_secs(), (unsigned long long)h);
  return 0;
}
