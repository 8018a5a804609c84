/*
** hakl_floor.c -- the mixed and segregated floors (hakl_floor.h).
**
** Each path is as short as a lua_Alloc can be: a free is one store and one
** push, a new block one pop or one bump.  Only memory from the kernel
** (4 MiB chunks, lazily committed) and blocks above HAKL_FLOOR_MAX (libc)
** leave these lines.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hakl_floor.h"

#define NCLASSES (HAKL_FLOOR_MAX / 8 + 1) /* class c holds blocks of c * 8 bytes */
#define CHUNK ((size_t)4 << 20)

/*
** Invariants: free[c] is a LIFO list of blocks of c * 8 bytes linked
** through their first word; bump[r] <= end[r], and [bump[r], end[r]) is
** carved from nothing yet.  The mixed floor uses r = 0 only (class 0
** holds no blocks: Lua never asks for 0 bytes), the segregated one r = c.
** chunks lists every mapped chunk through its first word.
*/
struct hakl_floor {
  void *free[NCLASSES];
  char *bump[NCLASSES];
  char *end[NCLASSES];
  bool segregated;
  void *chunks;
  char *carve, *carve_end; /* segregated: the rest of the newest chunk */
};

static void *map_chunk(hakl_floor *f) {
  void *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  *(void **)p = f->chunks;
  f->chunks = p;
  return p;
}

hakl_floor *hakl_floor_new(bool segregated) {
  hakl_floor *f = calloc(1, sizeof *f);
  if (f != NULL) f->segregated = segregated;
  return f;
}

void hakl_floor_destroy(hakl_floor *f) {
  void *c = f->chunks;
  while (c != NULL) {
    void *next = *(void **)c;
    munmap(c, CHUNK);
    c = next;
  }
  free(f);
}

/* The bump run r is too short for n bytes: a fresh chunk (mixed) or a fresh
** region of the newest chunk (segregated); the rest of the old run is
** left unused. */
static void *refill(hakl_floor *f, size_t r, size_t n) {
  char *start;
  size_t len;
  if (!f->segregated) {
    if ((start = map_chunk(f)) == NULL) return NULL;
    start += 16;
    len = CHUNK - 16;
  } else {
    if ((size_t)(f->carve_end - f->carve) < HAKL_FLOOR_REGION) {
      if ((f->carve = map_chunk(f)) == NULL) return NULL;
      f->carve_end = f->carve + CHUNK;
      f->carve += HAKL_FLOOR_REGION; /* the first region keeps the link word */
      start = f->carve_end - CHUNK + 16;
      len = HAKL_FLOOR_REGION - 16;
    } else {
      start = f->carve;
      f->carve += HAKL_FLOOR_REGION;
      len = HAKL_FLOOR_REGION;
    }
  }
  f->bump[r] = start + n;
  f->end[r] = start + len;
  return start;
}

static inline void *new_block(hakl_floor *f, size_t r, size_t c) {
  void *p = f->free[c];
  char *b;
  if (p != NULL) {
    f->free[c] = *(void **)p;
    return p;
  }
  b = f->bump[r];
  if ((size_t)(f->end[r] - b) < c * 8) return refill(f, r, c * 8);
  f->bump[r] = b + c * 8;
  return b;
}

static inline void free_block(hakl_floor *f, void *ptr, size_t osize) {
  size_t c = (osize + 7) >> 3;
  if (osize > HAKL_FLOOR_MAX) {
    free(ptr);
    return;
  }
  *(void **)ptr = f->free[c];
  f->free[c] = ptr;
}

/* Lua's cases (see hakl_alloc).  A resize within one class keeps the block;
** one between two libc sizes is realloc; any other moves the block.  A
** shrink that finds no memory keeps the block (Lua then frees it with its
** smaller size, into a smaller class: wasted, still correct). */
static void *resize_block(hakl_floor *f, bool seg, void *ptr, size_t osize, size_t nsize) {
  size_t oc = (osize + 7) >> 3, nc = (nsize + 7) >> 3;
  void *p;
  if (osize > HAKL_FLOOR_MAX && nsize > HAKL_FLOOR_MAX) {
    p = realloc(ptr, nsize);
    return (p == NULL && nsize <= osize) ? ptr : p;
  }
  if (oc == nc) return ptr;
  p = nsize > HAKL_FLOOR_MAX ? malloc(nsize) : new_block(f, seg ? nc : 0, nc);
  if (p == NULL) return nsize <= osize ? ptr : NULL;
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  free_block(f, ptr, osize);
  return p;
}

/* One body for both floors; `seg` is a constant in each. */
static inline void *floor_alloc(hakl_floor *f, bool seg, void *ptr, size_t osize,
                                size_t nsize) {
  size_t c;
  if (nsize == 0) {
    if (ptr != NULL) free_block(f, ptr, osize);
    return NULL;
  }
  if (ptr != NULL) return resize_block(f, seg, ptr, osize, nsize);
  if (nsize > HAKL_FLOOR_MAX) return malloc(nsize);
  c = (nsize + 7) >> 3;
  return new_block(f, seg ? c : 0, c);
}

void *hakl_floor_mixed(void *ud, void *ptr, size_t osize, size_t nsize) {
  return floor_alloc((hakl_floor *)ud, false, ptr, osize, nsize);
}

void *hakl_floor_segregated(void *ud, void *ptr, size_t osize, size_t nsize) {
  return floor_alloc((hakl_floor *)ud, true, ptr, osize, nsize);
}
