/*
** test_classes.c -- size classes, seen through hak_usable_size.
**
** Small sizes (0..1024 B) must land in the smallest class that fits: the
** malloc API rounds to the 16-byte classes, the 8-byte API (malloc8) uses
** every class (8-byte steps up to 128 B, then 8 classes per doubling).
** Above 1024 B the log-linear classes waste at most 12.5% of a block.
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(classes, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* -------------------------------------------------------------------------
** Small classes, every size.
** ---------------------------------------------------------------------- */

Test(classes, malloc_small_sizes_get_smallest_16b_class) {
  size_t fails = 0;
  for (size_t n = 0; n <= HKT_SMALL_MAX; n++) {
    void *p = hak_malloc(n);
    cr_assert_not_null(p, "hak_malloc(%zu) returned NULL", n);
    size_t want = hkt_small_class(n, 16);
    size_t got = hak_usable_size(p);
    HKT_EXPECT(fails, got == want, "hak_malloc(%zu): usable %zu, want class %zu", n, got,
               want);
    hak_free(p);
  }
  HKT_EXPECT_NONE(fails, "hak_malloc small sizes to 16-byte classes");
}

Test(classes, malloc8_small_sizes_get_smallest_8b_class) {
  size_t fails = 0;
  for (size_t n = 0; n <= HKT_SMALL_MAX; n++) {
    void *p = hak_heap_malloc8(NULL, n);
    cr_assert_not_null(p, "hak_heap_malloc8(NULL, %zu) returned NULL", n);
    size_t want = hkt_small_class(n, 8);
    size_t got = hak_usable_size(p);
    /* Size 0 may get the 16-byte class, as malloc(0) does: either is minimal. */
    if (n == 0 && got == 16) want = 16;
    HKT_EXPECT(fails, got == want, "hak_heap_malloc8(%zu): usable %zu, want class %zu", n,
               got, want);
    HKT_EXPECT(fails, hkt_aligned(p, 8), "hak_heap_malloc8(%zu) = %p is not 8-byte aligned",
               n, p);
    hak_free_sized(p, n);
  }
  HKT_EXPECT_NONE(fails, "hak_heap_malloc8 small sizes to 8-byte classes");
}

/* The same on an explicit heap: classes do not depend on the heap. */
Test(classes, explicit_heap_uses_the_same_classes) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  size_t fails = 0;
  for (size_t n = 0; n <= HKT_SMALL_MAX; n++) {
    void *p = hak_heap_malloc(h, n);
    void *q = hak_heap_malloc8(h, n);
    cr_assert(p && q, "explicit heap: allocation of %zu returned NULL", n);
    HKT_EXPECT(fails, hak_usable_size(p) == hkt_small_class(n, 16),
               "hak_heap_malloc(h, %zu): usable %zu", n, hak_usable_size(p));
    size_t uq = hak_usable_size(q);
    HKT_EXPECT(fails, uq == hkt_small_class(n, 8) || (n == 0 && uq == 16),
               "hak_heap_malloc8(h, %zu): usable %zu", n, uq);
    hak_free(p);
    hak_free_sized(q, n);
  }
  HKT_EXPECT_NONE(fails, "explicit heap classes");
  hak_heap_destroy(h);
}

/* -------------------------------------------------------------------------
** Lua's hottest sizes, a table of cases (lua-allocation-profile.md).
** ---------------------------------------------------------------------- */

struct lua_size {
  size_t size;    /* what Lua asks */
  size_t class8;  /* usable size through hak_heap_malloc8 */
  size_t class16; /* usable size through hak_malloc */
};

ParameterizedTestParameters(classes, lua_hot_sizes) {
  static struct lua_size cases[] = {
      {16, 16, 16},    /* table parts, CallInfo */
      {26, 32, 32},    /* short string */
      {40, 40, 48},    /* closure with one upvalue, UpVal */
      {45, 48, 48},    /* short string */
      {48, 48, 48},    /* closure, Udata */
      {56, 56, 64},    /* Table header */
      {96, 96, 96},    /* table parts */
      {128, 128, 128}, /* Proto */
      {208, 208, 208}, /* coroutine lua_State */
      {720, 768, 768}, /* coroutine stack */
  };
  return cr_make_param_array(struct lua_size, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct lua_size *c, classes, lua_hot_sizes) {
  void *p8 = hak_heap_malloc8(NULL, c->size);
  void *p16 = hak_malloc(c->size);
  cr_assert(p8 && p16);
  cr_expect_eq(hak_usable_size(p8), c->class8, "malloc8(%zu): usable %zu, want %zu",
               c->size, hak_usable_size(p8), c->class8);
  cr_expect_eq(hak_usable_size(p16), c->class16, "malloc(%zu): usable %zu, want %zu",
               c->size, hak_usable_size(p16), c->class16);
  hak_free_sized(p8, c->size);
  hak_free_sized(p16, c->size);
}

/* -------------------------------------------------------------------------
** Above the small sizes: log-linear classes, then spans and mappings.
** ---------------------------------------------------------------------- */

/* usable >= n, waste <= usable / 8, and the whole usable area writable. */
static void check_bounded_waste(size_t n, size_t *fails) {
  void *p = hak_malloc(n);
  if (!p) {
    HKT_EXPECT(*fails, false, "hak_malloc(%zu) returned NULL", n);
    return;
  }
  size_t u = hak_usable_size(p);
  HKT_EXPECT(*fails, u >= n, "hak_malloc(%zu): usable %zu is smaller", n, u);
  HKT_EXPECT(*fails, u - n <= u / 8, "hak_malloc(%zu): usable %zu wastes %.1f%% (> 12.5%%)",
             n, u, 100.0 * (double)(u - n) / (double)u);
  HKT_EXPECT(*fails, hkt_aligned(p, 16), "hak_malloc(%zu) = %p is not 16-byte aligned", n,
             p);
  ((unsigned char *)p)[0] = 1;
  ((unsigned char *)p)[u - 1] = 1;
  hak_free(p);
}

Test(classes, every_size_to_64k_wastes_at_most_an_eighth) {
  size_t fails = 0;
  for (size_t n = HKT_SMALL_MAX + 1; n <= 64 * HKT_KiB; n++)
    check_bounded_waste(n, &fails);
  HKT_EXPECT_NONE(fails, "sizes 1025..64 KiB");
}

/* The smallest class holding n, 1024 < n <= 32 KiB: 8 classes per doubling. */
static size_t medium_class(size_t n) {
  size_t top = 2048;
  while (top < n) top *= 2;
  size_t step = top / 16; /* classes (top/2, top] are top/2 + k * top/16 */
  return (n + step - 1) / step * step;
}

/*
** Medium sizes are popped by alloc_slow's table lookup (class_of_medium)
** when their class's first page has a block, and by the general slow path
** otherwise: both must give the smallest class.  One block of every medium
** class is held first, so that every class has a page and each size below
** is served by the lookup (a wrong entry would pop another class's block);
** sizes asked for with no page of their class go the general way.
*/
Test(classes, medium_sizes_get_smallest_class_on_both_paths) {
  size_t fails = 0;
  void *hold[64];
  size_t nhold = 0;
  for (size_t c = medium_class(HKT_SMALL_MAX + 1); c <= 32 * HKT_KiB; c = medium_class(c + 1)) {
    cr_assert(nhold < 64);
    hold[nhold] = hak_malloc(c);
    cr_assert_not_null(hold[nhold]);
    cr_assert_eq(hak_usable_size(hold[nhold]), c, "the general path: malloc(%zu) in class %zu", c,
                 hak_usable_size(hold[nhold]));
    nhold++;
  }
  for (size_t n = HKT_SMALL_MAX + 1; n <= 32 * HKT_KiB; n++) {
    void *p = hak_malloc(n), *r = hak_heap_malloc8(NULL, n);
    cr_assert(p && r, "hak_malloc(%zu) returned NULL", n);
    size_t want = medium_class(n);
    HKT_EXPECT(fails, hak_usable_size(p) == want, "hak_malloc(%zu): usable %zu, want class %zu", n,
               hak_usable_size(p), want);
    HKT_EXPECT(fails, hak_usable_size(r) == want, "hak_heap_malloc8(NULL, %zu): usable %zu, want %zu",
               n, hak_usable_size(r), want);
    hak_free(p);
    hak_free_sized(r, n);
  }
  for (size_t i = 0; i < nhold; i++) hak_free(hold[i]);
  HKT_EXPECT_NONE(fails, "medium sizes to their smallest class");
}

Test(classes, sampled_sizes_to_64m_waste_at_most_an_eighth) {
  hkt_rng_t rng;
  hkt_rng_init(&rng, 42);
  size_t fails = 0;
  /* Around every power of two (where classes change) and random sizes. */
  for (size_t b = 64 * HKT_KiB; b <= 64 * HKT_MiB; b *= 2) {
    for (size_t d = 0; d < 3; d++) {
      check_bounded_waste(b - 1 + d, &fails);
      check_bounded_waste(b + b / 8 + d, &fails);
      check_bounded_waste(b + b / 2 + d, &fails);
    }
  }
  for (int i = 0; i < 2000; i++)
    check_bounded_waste(hkt_rng_log(&rng, 64 * HKT_KiB, 64 * HKT_MiB), &fails);
  HKT_EXPECT_NONE(fails, "sampled sizes 64 KiB..64 MiB");
}

/* Classes are monotonic: a bigger request never gets a smaller block. */
Test(classes, usable_size_grows_with_the_request) {
  size_t fails = 0, last = 0;
  for (size_t n = 0; n <= 256 * HKT_KiB; n += (n < 4096 ? 1 : 61)) {
    void *p = hak_malloc(n);
    cr_assert_not_null(p);
    size_t u = hak_usable_size(p);
    HKT_EXPECT(fails, u >= last, "hak_malloc(%zu): usable %zu < %zu of a smaller request",
               n, u, last);
    last = u;
    hak_free(p);
  }
  HKT_EXPECT_NONE(fails, "monotonic classes");
}

Test(classes, usable_size_of_null_is_zero) {
  cr_expect_eq(hak_usable_size(NULL), 0);
}

/* -------------------------------------------------------------------------
** The pages of the classes above 8 KiB are coloured (page.c, page_colour):
** each starts 0 to 63 cache lines into its 64 KiB-aligned span, so that the
** blocks of different pages do not all share their cache sets.  A 16 KiB
** block's address mod 16 KiB is its page's colour; eight pages' worth of
** blocks show more than one colour, each a multiple of 64.
** ---------------------------------------------------------------------- */

#define COLOURED 16384
#define COLOURED_N (8 * 64)

Test(classes, pages_above_8k_are_coloured) {
  static void *blk[COLOURED_N];
  uint64_t seen = 0; /* bit k: colour k * 64 */
  size_t fails = 0;
  for (int i = 0; i < COLOURED_N; i++) {
    blk[i] = hak_malloc(COLOURED);
    cr_assert_not_null(blk[i]);
    size_t colour = (uintptr_t)blk[i] % COLOURED;
    HKT_EXPECT(fails, colour % 64 == 0 && colour < 64 * 64, "block %p: colour %zu", blk[i], colour);
    seen |= (uint64_t)1 << (colour / 64 % 64);
  }
  HKT_EXPECT_NONE(fails, "colours are cache lines, below 64 of them");
  cr_expect_gt(__builtin_popcountll(seen), 1, "8 pages of 16 KiB blocks, one colour: %#llx",
               (unsigned long long)seen);
  for (int i = 0; i < COLOURED_N; i++) hak_free(blk[i]);
}

/* Alignments above a cache line skip the coloured pages: up to 4 KiB the
** uncoloured twins of the 4 KiB-multiple classes serve them, in class
** pages (a block of at most 32 KiB, not a large block's 64 KiB span). */
Test(classes, aligned_blocks_above_8k_avoid_coloured_pages) {
  size_t fails = 0;
  for (size_t align = 128; align <= 65536; align *= 2) {
    for (size_t n = 8193; n <= 32768; n += 1531) {
      void *p = hak_aligned_alloc(align, n);
      cr_assert_not_null(p);
      size_t usable = hak_usable_size(p);
      HKT_EXPECT(fails, (uintptr_t)p % align == 0, "hak_aligned_alloc(%zu, %zu) = %p", align, n, p);
      HKT_EXPECT(fails, usable >= n, "hak_aligned_alloc(%zu, %zu): usable %zu", align, n, usable);
      HKT_EXPECT(fails, align > 4096 || usable <= 32768,
                 "hak_aligned_alloc(%zu, %zu): usable %zu, not a class block", align, n, usable);
      hak_free(p);
    }
  }
  HKT_EXPECT_NONE(fails, "aligned blocks of 8-32 KiB");
}
