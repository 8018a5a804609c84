/*
** hakl_region.c -- the chunks of a state's region (hakl_region.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hakl_region.h"

/* Chunks double from the first to the last size: a small state (the
** runtime makes thousands) holds one small chunk, a large heap bumps
** through large ones. */
#define CHUNK_FIRST (16 * 1024)
#define CHUNK_LAST (256 * 1024)
#define CHUNK_HEADER 16 /* link and size */
/* Secure builds put a guard page after every large block of the core:
** chunks one OS page short of their size keep it inside the same span. */
#define CHUNK_SHORT (HAKL_REGION_SECURE ? 4096 : 0)

/* The unused rest of the old chunk (a multiple of 8 bytes) to the lists,
** in blocks of the largest classes that fit. */
static void region_give_rest(hakl_region *r, char *p, size_t rest) {
  while (rest >= 8) {
    size_t c = rest <= HAKL_REGION_MAX ? rest >> 3
               : rest >= HAKL_REGION_TOP ? HAKL_REGION_CLASSES - 1
               : HAKL_REGION_MAX / 8 + ((rest - HAKL_REGION_MAX) >> 7);
    hakl_region_give(r, p, c);
    p += hakl_region_size(c);
    rest -= hakl_region_size(c);
  }
}

void *hakl_region_refill(hakl_region *r, size_t c) {
  size_t step = r->next_chunk ? r->next_chunk : CHUNK_FIRST;
  size_t size = step - CHUNK_SHORT;
  char *chunk = hak_heap_malloc8(NULL, size);
  if (chunk == NULL) return NULL;
  if (r->hi == 0) r->lo = (uintptr_t)chunk, r->hi = (uintptr_t)chunk + size;
  if ((uintptr_t)chunk < r->lo) r->lo = (uintptr_t)chunk;
  if ((uintptr_t)chunk + size > r->hi) r->hi = (uintptr_t)chunk + size;
  region_give_rest(r, r->bump, (size_t)(r->end - r->bump)); /* less than class c's size */
  ((void **)chunk)[0] = r->chunks;
  ((size_t *)chunk)[1] = size;
  r->chunks = chunk;
  r->next_chunk = step < CHUNK_LAST ? 2 * step : CHUNK_LAST;
  r->bump = chunk + CHUNK_HEADER + hakl_region_size(c);
  r->end = chunk + size;
  return chunk + CHUNK_HEADER;
}

void hakl_region_release(hakl_region *r) {
  void *chunk = r->chunks;
  while (chunk != NULL) {
    void *next = ((void **)chunk)[0];
    hak_free_sized(chunk, ((size_t *)chunk)[1]);
    chunk = next;
  }
  uintptr_t k0 = r->key[0], k1 = r->key[1]; /* the keys and the top stay: the state may go on */
  size_t top = r->top;
  memset(r, 0, sizeof *r);
  r->key[0] = k0;
  r->key[1] = k1;
  r->top = top;
}

/* ---- secure builds (hakl_region.h) -------------------------------------- */

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t region_mix(uint64_t x) {
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

/* Keys from the kernel, else from the clock and addresses (ASLR). */
void hakl_region_secure_init(hakl_region *r) {
  uint64_t seed[2];
  if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed[0] = region_mix((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)r);
    seed[1] = region_mix(seed[0] ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts);
  }
  r->key[0] = (uintptr_t)region_mix(seed[0] ^ (uint64_t)(uintptr_t)r);
  r->key[1] = (uintptr_t)region_mix(seed[1] + r->key[0]) | 1;
}

void hakl_region_bad_link(const hakl_region *r, const void *p, uintptr_t next) {
  fprintf(stderr,
          "hakmem: error: heap corruption: a Lua state's free block %p links %p, outside its "
          "chunks [%p, %p) (a write past a block's end or after its free)\n",
          p, (void *)next, (void *)r->lo, (void *)r->hi);
  abort();
}

/*
** p's first word decodes like a link: p may be on its list already.  Walk
** the list (its links checked, at most as many steps as the chunks hold
** blocks); stop the program if p is there.
*/
void hakl_region_confirm_free(const hakl_region *r, const void *p, size_t c) {
  size_t steps = (r->hi - r->lo) / 8;
  for (void *b = r->free[c]; b != NULL && steps-- > 0;) {
    if (b == p) {
      fprintf(stderr, "hakmem: error: free(%p): double free (a block of %zu bytes of a Lua state)\n",
              p, hakl_region_size(c));
      abort();
    }
    uintptr_t next = hakl_region_decode(r, *(const uintptr_t *)b);
    if (!hakl_region_plausible(r, next)) hakl_region_bad_link(r, b, next);
    b = (void *)next;
  }
}
