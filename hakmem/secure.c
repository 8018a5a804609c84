/*
** secure.c -- what secure builds (HAK_SECURE=1) add: page keys for the
** encoded free-list links (internal.h, block_next), fresh blocks carved in
** a random order, and the check of every free.  Compiled in every build;
** release and debug builds use only the block-index constants.
**
** The threat: a program that writes past a block's end, or into a block it
** freed, overwrites the link at the start of a free block; a plain
** allocator follows it and hands out whatever address was written (a
** forged pointer becomes a block).  Here the link is
**   stored = rotl(next ^ key0, key0 & 63) + key1
** with two keys per page, drawn from a random process seed mixed with the
** page's address each time the page is initialised: a written value
** decodes to an address that almost never is a block of the page, and the
** pop that reads it stops the program (secure_bad_link).  Freeing a block
** twice is caught the way mimalloc does it: a block whose first word
** decodes to NULL or to a block of its page may be free already, and only
** then are the page's lists walked to confirm.
*/
#include <sys/random.h>
#include <time.h>

#include "internal.h"

static hak_atomic_t secure_seed; /* 0 until the first page is initialised */

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t secure_mix(uint64_t x) {
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

/* The process seed: from the kernel, else (a kernel without getrandom)
** from the clock and an address, which ASLR randomises. */
static uint64_t secure_get_seed(void) {
  uint64_t s = atomic_load_relaxed(&secure_seed);
  if (likely(s != 0)) return s;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = secure_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&s);
  }
  s |= 1;
  if (!atomic_cas_full(&secure_seed, 0, s)) s = atomic_load_relaxed(&secure_seed);
  return s;
}

/*
** block_size = odd << shift; div_inv = odd^-1 mod 2^64 (Newton's iteration,
** each step doubling the correct low bits).  For an offset that is a
** multiple of block_size, (off * div_inv) rotated right by shift is the
** quotient; for any other offset the low bits rotate into the top (or the
** odd part does not divide, and the product is above 2^64 / block_size),
** so the result is far above any page's block count.
*/
void secure_page_init(hak_page_t *page) {
  uint64_t d = page->block_size;
  unsigned shift = (unsigned)__builtin_ctzll(d);
  uint64_t odd = d >> shift, inv = odd; /* correct to 3 bits */
  for (int i = 0; i < 5; i++) inv *= 2 - odd * inv;
  page->div_shift = (uint8_t)shift;
  page->div_inv = inv;
#if HAK_SECURE
  uint64_t seed = secure_get_seed();
  page->key[0] = secure_mix(seed ^ (uint64_t)(uintptr_t)page);
  page->key[1] = secure_mix(page->key[0] + seed) | 1;
#endif
}

/* A per-thread generator for carving orders (xorshift64*). */
static __thread uint64_t secure_rng_state;

static uint64_t secure_random(void) {
  uint64_t x = secure_rng_state;
  if (x == 0) x = secure_mix(secure_get_seed() ^ (uint64_t)(uintptr_t)&secure_rng_state);
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  secure_rng_state = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint32_t secure_gcd(uint32_t a, uint32_t b) {
  while (b) {
    uint32_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/*
** The blocks in a random order, one OS page at a time: within each 4 KiB
** window (or single block, when blocks are bigger) the order at, at + step,
** at + 2 step, ... (mod n), with a random start and a random step prime to
** n: every block once, and neighbours in memory are rarely neighbours in
** the list, so that an overflow does not reliably reach the next block
** handed out.  The windows stay in address order, as release hands blocks
** out: consecutive allocations share an OS page, where a permutation of
** a carve of several OS pages would scatter them over all of them.
*/
static hak_block_t *secure_carve_window(hak_page_t *page, uint8_t *first, uint32_t n,
                                        hak_block_t *tail) {
  size_t bsize = page->block_size;
  uint64_t r = secure_random();
  uint32_t at = (uint32_t)(r % n), step = n > 1 ? 1 + (uint32_t)((r >> 32) % (n - 1)) : 1;
  while (secure_gcd(step, n) != 1) step++;
  for (uint32_t i = 0; i < n; i++) {
    hak_block_t *b = (hak_block_t *)(first + (size_t)at * bsize);
    block_set_next(page, tail, b);
    tail = b;
    at += step;
    if (at >= n) at -= n;
  }
  return tail;
}

hak_block_t *secure_carve(hak_page_t *page, uint8_t *first, uint32_t n) {
  size_t bsize = page->block_size;
  uint32_t w = bsize >= HAK_OS_PAGE ? 1 : (uint32_t)(HAK_OS_PAGE / bsize);
  hak_block_t head, *tail = &head; /* head.next: the first block, encoded */
  for (uint32_t done = 0; done < n; done += w) {
    uint32_t k = n - done < w ? n - done : w;
    tail = secure_carve_window(page, first + (size_t)done * bsize, k, tail);
  }
  block_set_next(page, tail, NULL);
  return block_peek(page, &head);
}

void secure_bad_link(const hak_page_t *page, const hak_block_t *b, const void *next) {
  hak_fatal("heap corruption: free list of page %p: free block %p links %p, outside the page "
            "(a write past a block's end or after a free?)", (const void *)page->start, (const void *)b, next);
}

/*
** The checks of a pointer to free that need no list (debug and secure
** builds): it is hakmem's (the segment map, which reads nothing at p), not
** in a header, and the start of a block of a page in use.  Returns its
** page, or NULL for a huge block (nothing more to check).
*/
hak_page_t *secure_check_pointer(const void *p) {
  if (!segment_is_mapped(p)) hak_fatal("free(%p): foreign pointer, not allocated by hakmem (or freed already)", p);
  if (segment_is_boundary(p) && !segment_is_aligned_huge(p))
    hak_fatal("free(%p): pointer into a segment header", p);
  if (!segment_is_boundary(p) && !segment_has_header(p))
    hak_fatal("free(%p): not the start of a hakmem block (inside an aligned huge block)", p);
  hak_segment_t *seg = segment_of_block(p);
  if (seg->kind == SEGMENT_HUGE) {
    if ((const uint8_t *)p != (const uint8_t *)seg + seg->huge_offset)
      hak_fatal("free(%p): not the start of a hakmem block (interior pointer)", p);
    return NULL;
  }
  if ((uintptr_t)p - (uintptr_t)seg < HAK_SLICE_SIZE) hak_fatal("free(%p): pointer into a segment header", p);
  hak_page_t *page = page_of(seg, p);
  if (page->slice_count == 0 || page->block_size == 0)
    hak_fatal("free(%p): double free (its page is free already) or invalid pointer", p);
  if (secure_block_index(page, p) >= page->reserved)
    hak_fatal("free(%p): not the start of a hakmem block (interior pointer)", p);
  return page;
}

/* The unusual frees: a huge block (fine), or a bad pointer (the messages). */
void secure_free_odd(const void *p) {
  hak_page_t *page = secure_check_pointer(p);
  if (page != NULL && atomic_load_relaxed(&segment_of(p)->tid) == thread_id() && page->used == 0)
    hak_fatal("free(%p): double free (its page has no block in use)", p);
}

/* A block that looks free: is it? */
void secure_free_confirm(hak_page_t *page, const void *p) {
  if (page_contains_free(page, (hak_block_t *)p)) hak_fatal("free(%p): double free", p);
}
