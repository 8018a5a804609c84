/*
** hakl_region.c -- the chunks of a state's region (hakl_region.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hakl_account.h" /* hakl_unlikely */
#include "hakl_region.h"

/* A new chunk is at most a quarter of the region's bytes (a power of two
** from the first to the last size): a small state (the runtime makes
** thousands) holds one small chunk, a large heap bumps through large
** ones, and no region grows by more than a quarter at once.  Bumping
** touches a chunk to its end before recycling can run again, so a chunk
** larger than the region needs is resident memory for nothing: chunks
** that doubled held twice the live bytes (json: 496 KiB of chunks, all
** resident, for 180 KiB of live blocks). */
#define CHUNK_FIRST (16 * 1024)
#define CHUNK_LAST (256 * 1024)
#define CHUNK_HEADER 16 /* link and size */
/* Secure builds put a guard page after every large block of the core:
** chunks one OS page short of their size keep it inside the same span. */
#define CHUNK_SHORT (HAKL_REGION_SECURE ? 4096 : 0)

/* Recycling (region_recycle) runs only in regions of at most this many
** bytes: its pause grows with the region, and a small state is where a
** region grown by fragmentation costs the most against its live bytes. */
#define RECYCLE_MAX (4 * 1024 * 1024)
#define RECYCLE_CHUNKS 64  /* at most this many chunks (16 KiB chunks and up) */
/* A free run of at least this many bytes becomes a span, bumped through
** by every size; shorter runs keep their blocks as they were. */
#define SPAN_MIN 512

/* Bytes p .. p + rest (a multiple of 8) to the lists, in blocks of the
** largest classes that fit. */
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

/* ---- strays ---------------------------------------------------------------
**
** Lua's manual: the allocator never fails a shrink.  A block above the
** region that shrinks to a region size when the region has no memory for
** it (no chunk to be had) stays where it is, a block of the core.  Lua
** then frees it with its small size, onto its class's list, from where it
** may be handed out again.  It is in no chunk, so recycling would take it
** for a corrupt link: the region keeps such blocks in a list of their own,
** through a tail in each block past its class's bytes (which no user of
** the block writes), gives one back to the core when recycling finds it on
** a list, and frees those left with the chunks.
*/
typedef struct stray_tail {
  struct stray_tail *next;
  void *block;
  size_t osize; /* the size the core block was asked with */
} stray_tail;

_Static_assert(sizeof(stray_tail) == HAKL_STRAY_TAIL, "HAKL_STRAY_TAIL");

void hakl_region_stray(hakl_region *r, void *p, size_t c, size_t bytes, size_t osize) {
  stray_tail *t = (stray_tail *)((char *)p + hakl_region_size(c));
  (void)bytes; /* the caller checked that the tail fits */
  t->next = (stray_tail *)r->strays;
  t->block = p;
  t->osize = osize;
  r->strays = t;
  if (r->hi == 0) r->lo = (uintptr_t)p, r->hi = (uintptr_t)p + bytes;
  if ((uintptr_t)p < r->lo) r->lo = (uintptr_t)p;
  if ((uintptr_t)p + bytes > r->hi) r->hi = (uintptr_t)p + bytes;
}

/* Block b, found on a list, back to the core if it is a stray. */
static bool region_stray_free(hakl_region *r, void *b) {
  for (stray_tail **pp = (stray_tail **)&r->strays; *pp != NULL; pp = &(*pp)->next) {
    stray_tail *t = *pp;
    if (t->block != b) continue;
    *pp = t->next;
    hak_free_sized(b, t->osize); /* t is in b: read first */
    return true;
  }
  return false;
}

/* ---- recycling -----------------------------------------------------------
**
** Why: the lists are exact classes, and Lua's sizes drift (a script's
** strings grow, a buffer doubles), so a region can fill with free blocks
** of classes nobody asks for any more: strings_gsub's grew to 8 chunks
** (1.3 MB, 0.94 MB of it on the lists) for 157 KB of Lua data at its peak.
** What Lua made together dies together, so most of those blocks lie next
** to each other.  Before a new chunk, a pass finds the runs of adjacent
** free blocks: runs of SPAN_MIN bytes or more become spans, bumped through
** by every size like a new chunk; shorter ones keep their blocks.
**
** How: the pass takes the blocks off their lists, writes each one's size
** into its second word and sets its bit in a map of a bit per 8 bytes of
** the chunks (the bit of its first 8 bytes).  In address order, the bits
** then give the free blocks, and a block that starts where the one before
** it ends extends that one's run.  8-byte blocks have no second word and
** stay on their list.  The map stays with the region (a 64th of its
** chunks), all zero between passes: the scan clears each word it reads,
** so a pass neither allocates nor zeroes it unless the chunks grew.  The
** cost is a few instructions per free block and per 64 bytes of chunk;
** still, the pass runs only in small regions (at most RECYCLE_MAX bytes),
** mostly free ones, and after a pass that found little, not again until
** the region has grown.
*/

typedef struct region_map {
  char *start[RECYCLE_CHUNKS]; /* each chunk's first block, in address order */
  size_t len[RECYCLE_CHUNKS];  /* its bytes from there */
  size_t base[RECYCLE_CHUNKS]; /* its first bit, a multiple of 64 */
  size_t n;
  size_t last;    /* the chunk of the last block mapped */
  uint64_t *bits; /* the region's map: a bit per 8 bytes, a free block starts here */
} region_map;

/* The bit of a free block of n bytes at p: in the chunk of the block
** before it (a list's blocks are mostly neighbours), else the chunk found
** by binary search.  A block not inside a chunk is a list overwritten in
** a way the links' checks (secure builds) cannot see, or that no check saw
** (other builds): stop rather than write outside the map. */
static size_t region_map_bit(const hakl_region *r, region_map *m, const char *p, size_t n) {
  size_t i = m->last;
  size_t off = (size_t)(p - m->start[i]); /* huge when p is below the chunk */
  if (hakl_unlikely(off > m->len[i] - n || (off & 7) != 0)) { /* n <= len: chunks hold the top */
    size_t lo = 0, hi = m->n;
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (p >= m->start[mid]) lo = mid;
      else hi = mid;
    }
    m->last = i = lo;
    off = (size_t)(p - m->start[i]);
    if (off > m->len[i] - n || (off & 7) != 0) hakl_region_bad_link(r, p, (uintptr_t)p);
  }
  return m->base[i] + off / 8;
}

/* Takes every free block of 16 bytes and more off the lists into the map,
** its size in its second word. */
static void region_map_blocks(hakl_region *r, region_map *m) {
  for (size_t c = 2; c < HAKL_REGION_CLASSES; c++) {
    size_t size = hakl_region_size(c);
    void *b = r->free[c];
    r->free[c] = NULL;
    while (b != NULL) {
      void *next = hakl_region_next(r, b);
      if (hakl_unlikely(r->strays != NULL) && region_stray_free(r, b)) {
        b = next;
        continue;
      }
      size_t bit = region_map_bit(r, m, b, size);
      m->bits[bit / 64] |= UINT64_C(1) << (bit % 64);
      ((size_t *)b)[1] = size;
      b = next;
    }
  }
}

/* A span's link (encoded as the lists' in secure builds). */
static void region_span_link(hakl_region *r, char *span, char *next) {
#if HAKL_REGION_SECURE
  *(uintptr_t *)span = hakl_region_encode(r, (uintptr_t)next);
#else
  (void)r;
  *(char **)span = next;
#endif
}

/* The free blocks of p .. end (adjacent, each with its size in its second
** word) back: one span after *last when they make SPAN_MIN bytes, else
** each block to its list.  The span's bytes. */
static size_t region_run_back(hakl_region *r, char *p, char *end, char **last) {
  size_t bytes = (size_t)(end - p);
  if (bytes < SPAN_MIN) {
    while (p < end) {
      size_t size = ((size_t *)p)[1];
      hakl_region_give(r, p, hakl_region_class_any(size));
      p += size;
    }
    return 0;
  }
  if (HAKL_REGION_SECURE) memset(p, 0, bytes); /* no stale link looks free */
  region_span_link(r, p, NULL);
  ((size_t *)p)[1] = bytes;
  if (*last == NULL) r->spans = p;
  else region_span_link(r, *last, p);
  *last = p;
  return bytes;
}

/* The runs of the map's blocks back (region_run_back), chunk by chunk in
** address order; the spans' bytes. */
static size_t region_map_runs(hakl_region *r, const region_map *m) {
  char *last = NULL;
  size_t span_bytes = 0;
  for (size_t i = 0; i < m->n; i++) {
    size_t w = m->base[i] / 64;
    size_t wend = w + (m->len[i] / 8 + 63) / 64;
    char *run = NULL, *end = NULL;
    for (; w < wend; w++) {
      uint64_t x = m->bits[w];
      if (x == 0) continue;
      m->bits[w] = 0; /* all zero for the next pass */
      for (; x != 0; x &= x - 1) {
        size_t bit = w * 64 + (size_t)__builtin_ctzll(x);
        char *p = m->start[i] + (bit - m->base[i]) * 8;
        if (p == end) { /* the run goes on */
          end += ((size_t *)p)[1];
          continue;
        }
        if (p < end) hakl_region_bad_link(r, p, (uintptr_t)p); /* blocks overlap: a list was written */
        if (run != NULL) span_bytes += region_run_back(r, run, end, &last);
        run = p;
        end = p + ((size_t *)p)[1];
      }
    }
    if (run != NULL) span_bytes += region_run_back(r, run, end, &last);
  }
  return span_bytes;
}

/* One pass (above); true when it made spans.  `live` bounds the bytes of
** the region's live blocks.  A pass runs only while at least a quarter of
** the chunks is free: with fewer free bytes, it would take blocks of sizes
** still in use off their lists for little, and cost a walk at every new
** chunk of a growing heap.  (With half, the rule before, a region stayed
** at twice its live bytes: strings_build's region grew to 752 KiB for 350
** KiB, and its process's heap to 1.15x glibc's.)
** After a pass that found little (less than an eighth of the chunks in
** runs), the next waits until the free bytes (chunks less live) have grown
** by an eighth of the chunks since: Lua's collector freed that much, in
** the runs a sweep leaves.  Waiting for the region to grow instead, the
** rule before, took a new chunk at the first refill after each sweep that
** followed such a pass (bench/runtime's strings_build, 8 states: 296 KB
** of a state's 393 KB of chunks free at such a refill, and each state
** ended at 512 KiB; peak RSS 7.6 -> 7.0 MiB at T = 1); a growing heap's
** free bytes do not grow, so it still walks nothing at its new chunks. */
static bool region_recycle(hakl_region *r, size_t live) {
  region_map m;
  size_t words = 0;
  size_t idle = r->chunk_bytes > live ? r->chunk_bytes - live : 0;
  if (r->chunk_bytes > RECYCLE_MAX || idle < r->recycle_after + r->chunk_bytes / 8 ||
      4 * live > 3 * r->chunk_bytes)
    return false;
  r->recycle_after = idle; /* unless this pass finds enough (below) */
  m.n = m.last = 0;
  for (char *c = r->chunks; c != NULL; c = ((char **)c)[0]) {
    size_t i;
    if (m.n == RECYCLE_CHUNKS) return false;
    for (i = m.n++; i > 0 && m.start[i - 1] > c; i--) { /* insertion by address */
      m.start[i] = m.start[i - 1];
      m.len[i] = m.len[i - 1];
    }
    m.start[i] = c + CHUNK_HEADER;
    m.len[i] = ((size_t *)c)[1] - CHUNK_HEADER;
  }
  for (size_t i = 0; i < m.n; i++) {
    m.base[i] = words * 64;
    words += (m.len[i] / 8 + 63) / 64;
  }
  if (words > r->map_words) { /* the chunks grew: a larger map */
    uint64_t *map = hak_heap_malloc8(NULL, words * sizeof(uint64_t));
    if (map == NULL) return false;
    memset(map, 0, words * sizeof(uint64_t));
    if (r->map != NULL) hak_free_sized(r->map, r->map_words * sizeof(uint64_t));
    r->map = map;
    r->map_words = words;
  }
  m.bits = r->map;
  region_map_blocks(r, &m);
  size_t span_bytes = region_map_runs(r, &m);
  if (span_bytes >= r->chunk_bytes / 8) r->recycle_after = 0;
  return span_bytes != 0;
}

/* A new chunk, and a block of class c from it; NULL without memory. */
static void *region_new_chunk(hakl_region *r, size_t c) {
  size_t step = CHUNK_FIRST, size;
  while (step < CHUNK_LAST && 8 * step <= r->chunk_bytes) step *= 2;
  size = step - CHUNK_SHORT;
  /* OS-page aligned: a coloured 16 or 32 KiB class block starts inside an
  ** OS page and a partly used chunk touched one more (a private state 0.9
  ** KiB more on bench/state_rss); aligned ones come from uncoloured pages */
  char *chunk = hak_aligned_alloc(4096, size);
  if (chunk == NULL) return NULL;
  if (r->hi == 0) r->lo = (uintptr_t)chunk, r->hi = (uintptr_t)chunk + size;
  if ((uintptr_t)chunk < r->lo) r->lo = (uintptr_t)chunk;
  if ((uintptr_t)chunk + size > r->hi) r->hi = (uintptr_t)chunk + size;
  ((void **)chunk)[0] = r->chunks;
  ((size_t *)chunk)[1] = size;
  r->chunks = chunk;
  r->chunk_bytes += size;
  r->bump = chunk + CHUNK_HEADER + hakl_region_size(c);
  r->end = chunk + size;
  return chunk + CHUNK_HEADER;
}

/* The next span that holds `bytes` as the bump space, less `bytes`;
** spans too short for them go to the lists.  NULL when none is left. */
static void *region_next_span(hakl_region *r, size_t bytes) {
  while (r->spans != NULL) {
    char *span = r->spans;
    size_t size = ((size_t *)span)[1];
    r->spans = hakl_region_next(r, span);
    if (HAKL_REGION_SECURE && (size % 8 != 0 || size > r->hi - (uintptr_t)span))
      hakl_region_bad_link(r, span, (uintptr_t)span + size);
    if (size < bytes) {
      region_give_rest(r, span, size);
      continue;
    }
    r->bump = span + bytes;
    r->end = span + size;
    return span;
  }
  return NULL;
}

void *hakl_region_refill(hakl_region *r, size_t c, size_t live) {
  size_t bytes = hakl_region_size(c);
  void *p;
  region_give_rest(r, r->bump, (size_t)(r->end - r->bump)); /* less than class c's size */
  r->bump = r->end = NULL;
  if ((p = region_next_span(r, bytes)) != NULL) return p;
  if (region_recycle(r, live) && (p = region_next_span(r, bytes)) != NULL) return p;
  return region_new_chunk(r, c);
}

void hakl_region_release(hakl_region *r) {
  void *chunk = r->chunks;
  if (r->map != NULL) hak_free_sized(r->map, r->map_words * sizeof(uint64_t));
  for (stray_tail *t = (stray_tail *)r->strays, *next; t != NULL; t = next) {
    next = t->next;
    hak_free_sized(t->block, t->osize);
  }
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
