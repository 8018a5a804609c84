/*
** threaded.c -- a threaded program that knows nothing of hakmem: it calls
** the C library's allocation functions, and tests/override/run.py runs it
** with LD_PRELOAD=libhakmem-override.so.
**
** Rounds of threads allocate with every function of the malloc family,
** swap blocks through a shared array (so that other threads free them),
** and exit with live blocks that the main thread frees later.  Every block
** holds its size and a pattern made from its address; every free checks
** it.  When hakmem's API is visible (the override library exports it),
** every block must be one hakmem owns: the calls really went through it.
**
** Output: "threaded: ok hakmem=yes|no threads=N blocks=N" and exit status
** 0, or a line per failure on stderr and exit status 1.
** Usage: threaded [rounds] [threads]
*/
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 32
#define TRANSFER 512
#define KEEP 128
#define OPS 20000

static _Atomic(void *) transfer[TRANSFER];
static atomic_size_t failures, blocks_made;
static bool (*owns)(const void *); /* hak_owns, when hakmem is preloaded */

static void fail(const char *what, const void *p, size_t n) {
  if (atomic_fetch_add(&failures, 1) < 20) fprintf(stderr, "threaded: %s (%p, %zu)\n", what, p, n);
}

/* ---- blocks that carry their size and a pattern ----------------------- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/*
** The pattern covers the first 256 bytes, the last 64 and one byte of
** every 4 KiB: enough to see a block handed out twice or a free-list link
** written into it, cheap enough for blocks of megabytes.
*/
static unsigned char pattern(uint64_t seed, size_t i) {
  return (unsigned char)(seed >> ((i & 7) * 8)) ^ (unsigned char)(i >> 3);
}

#define FOR_PATTERN(i, n, body)                                   \
  for (size_t i = 8; i < (n); i = i < 256 || i + 64 >= (n) ? i + 1 \
                                 : (i + 4096 < (n) - 64 ? i + 4096 : (n) - 64)) body

static void fill(void *p, size_t n) {
  memcpy(p, &n, sizeof n);
  uint64_t seed = mix((uintptr_t)p ^ n);
  unsigned char *b = p;
  FOR_PATTERN(i, n, { b[i] = pattern(seed, i); })
}

/* The block's size if intact, else 0. */
static size_t check(const void *p) {
  size_t n;
  memcpy(&n, p, sizeof n);
  if (n < 16 || n > (64u << 20)) return 0;
  uint64_t seed = mix((uintptr_t)p ^ n);
  const unsigned char *b = p;
  FOR_PATTERN(i, n, {
    if (b[i] != pattern(seed, i)) return 0;
  })
  return n;
}

static uint64_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return mix(*s);
}

static size_t draw_size(uint64_t *s) {
  uint64_t r = rng_next(s) % 1000;
  if (r < 900) return 16 + rng_next(s) % 1009;          /* small */
  if (r < 998) return 1024 + rng_next(s) % (63 * 1024); /* medium */
  return (64 << 10) + rng_next(s) % (4u << 20);         /* large and huge */
}

/* One of the allocation functions, chosen at random. */
static void *alloc_any(uint64_t *s, size_t n) {
  void *p = NULL;
  size_t align = 16;
  switch (rng_next(s) % 8) {
  case 0: p = calloc(1, n);
    if (p)
      for (size_t i = 0; i < n; i++)
        if (((unsigned char *)p)[i]) {
          fail("calloc block not zeroed", p, n);
          break;
        }
    break;
  case 1: align = (size_t)16 << (rng_next(s) % 8);
    if (posix_memalign(&p, align, n) != 0) p = NULL;
    break;
  case 2: align = (size_t)16 << (rng_next(s) % 8);
    p = aligned_alloc(align, (n + align - 1) / align * align);
    break;
  case 3: align = 64;
    p = memalign(64, n);
    break;
  case 4: p = reallocarray(NULL, 1, n); break;
  default: p = malloc(n); break;
  }
  if (!p) {
    fail("allocation failed", NULL, n);
    return NULL;
  }
  if ((uintptr_t)p % align) fail("block not aligned", p, align);
  if (malloc_usable_size(p) < n) fail("malloc_usable_size below the size asked", p, n);
  if (owns && !owns(p)) fail("block not from hakmem", p, n);
  atomic_fetch_add(&blocks_made, 1);
  fill(p, n);
  return p;
}

static void free_any(void *p) {
  if (!p) return;
  if (!check(p)) fail("block changed while live", p, 0);
  free(p);
}

static void *resize(uint64_t *s, void *p) {
  size_t old = check(p);
  if (!old) {
    fail("block changed before realloc", p, 0);
    return p;
  }
  unsigned char head[256];
  size_t n = draw_size(s), keep = (old < n ? old : n);
  if (keep > sizeof head) keep = sizeof head;
  memcpy(head, p, keep);
  void *q = realloc(p, n);
  if (!q) {
    fail("realloc failed", p, n);
    return p;
  }
  if (memcmp(head, q, keep) != 0) fail("realloc lost the contents", q, n);
  if (owns && !owns(q)) fail("realloc'ed block not from hakmem", q, n);
  fill(q, n);
  return q;
}

/* ---- the threads ----------------------------------------------------------- */

typedef struct worker_s {
  unsigned index, round;
  void *keep[KEEP]; /* left live at exit */
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  uint64_t s = (uint64_t)w->round * 1000003u + w->index + 1;
  void *recent[16] = {0};
  for (int i = 0; i < OPS; i++) {
    uint64_t r = rng_next(&s);
    switch (r % 6) {
    case 0:
    case 1: {
      void **slot = &recent[(r >> 8) % 16];
      free_any(*slot);
      *slot = alloc_any(&s, draw_size(&s));
      break;
    }
    case 2: {
      void **slot = &recent[(r >> 8) % 16];
      if (*slot) *slot = resize(&s, *slot);
      break;
    }
    case 3: /* swap with another thread's block */
      free_any(atomic_exchange(&transfer[(r >> 8) % TRANSFER], alloc_any(&s, draw_size(&s))));
      break;
    default: {
      void **slot = &w->keep[(r >> 8) % KEEP];
      free_any(*slot);
      *slot = alloc_any(&s, draw_size(&s));
      break;
    }
    }
  }
  for (int i = 0; i < 16; i++) free_any(recent[i]);
  return NULL;
}

int main(int argc, char **argv) {
  unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 6;
  unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
  if (threads < 1 || threads > MAX_THREADS) threads = 4;
  *(void **)&owns = dlsym(RTLD_DEFAULT, "hak_owns"); /* POSIX's way to a function */

  static worker_t w[MAX_THREADS];
  pthread_t tid[MAX_THREADS];
  for (unsigned round = 0; round < rounds; round++) {
    for (unsigned i = 0; i < threads; i++) {
      /* the blocks the thread of this slot left in the last round go now */
      for (int k = 0; k < KEEP; k++) free_any(w[i].keep[k]);
      memset(&w[i], 0, sizeof w[i]);
      w[i].index = i;
      w[i].round = round;
      if (pthread_create(&tid[i], NULL, worker, &w[i]) != 0) {
        fprintf(stderr, "threaded: pthread_create failed\n");
        return 1;
      }
    }
    for (unsigned i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  }
  for (unsigned i = 0; i < threads; i++)
    for (int k = 0; k < KEEP; k++) free_any(w[i].keep[k]);
  for (int t = 0; t < TRANSFER; t++) free_any(atomic_exchange(&transfer[t], NULL));

  size_t nfail = atomic_load(&failures);
  if (nfail) {
    fprintf(stderr, "threaded: %zu failure(s)\n", nfail);
    return 1;
  }
  printf("threaded: ok hakmem=%s threads=%u rounds=%u blocks=%zu\n", owns ? "yes" : "no",
         threads, rounds, atomic_load(&blocks_made));
  return 0;
}
