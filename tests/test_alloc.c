/*
** test_alloc.c -- hak_malloc, hak_free, hak_free_sized, hak_aligned_alloc
** and hak_owns: alignment, distinct blocks, bad input and ownership.
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(alloc, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* -------------------------------------------------------------------------
** Alignment and distinct blocks.
** ---------------------------------------------------------------------- */

Test(alloc, every_block_is_16_byte_aligned) {
  size_t fails = 0;
  /* Every size to 8 KiB, twice at once (a fresh page, then a used one). */
  for (size_t n = 0; n <= 8 * HKT_KiB; n++) {
    void *a = hak_malloc(n), *b = hak_malloc(n);
    cr_assert(a && b, "hak_malloc(%zu) returned NULL", n);
    HKT_EXPECT(fails, hkt_aligned(a, 16) && hkt_aligned(b, 16),
               "hak_malloc(%zu) = %p, %p: not 16-byte aligned", n, a, b);
    HKT_EXPECT(fails, a != b, "hak_malloc(%zu) returned %p twice", n, a);
    hak_free(b);
    hak_free(a);
  }
  /* Medium, large and huge sizes. */
  for (size_t n = 8 * HKT_KiB; n <= 16 * HKT_MiB; n = n * 5 / 4 + 3) {
    void *p = hak_malloc(n);
    cr_assert_not_null(p, "hak_malloc(%zu) returned NULL", n);
    HKT_EXPECT(fails, hkt_aligned(p, 16), "hak_malloc(%zu) = %p: not 16-byte aligned", n, p);
    hak_free(p);
  }
  HKT_EXPECT_NONE(fails, "16-byte alignment");
}

/*
** Many live blocks of mixed sizes, each filled with its own pattern: none
** overlaps another (a block handed out twice or a wrong class stride would
** overwrite a neighbour's pattern).
*/
Test(alloc, live_blocks_do_not_overlap) {
  enum { N = 20000 };
  static void *blk[N];
  static size_t len[N];
  hkt_rng_t rng;
  hkt_rng_init(&rng, 7);
  for (int i = 0; i < N; i++) {
    len[i] = hkt_rng_size(&rng);
    blk[i] = hak_malloc(len[i]);
    cr_assert_not_null(blk[i], "hak_malloc(%zu) returned NULL", len[i]);
    hkt_fill(blk[i], len[i], hkt_seed(blk[i], len[i]));
  }
  size_t fails = 0;
  for (int i = 0; i < N; i++) {
    size_t at = hkt_check(blk[i], len[i], hkt_seed(blk[i], len[i]));
    HKT_EXPECT(fails, at == len[i], "block %p of %zu B overwritten at offset %zu", blk[i],
               len[i], at);
  }
  HKT_EXPECT_NONE(fails, "live blocks keep their patterns");
  for (int i = 0; i < N; i++) hak_free_sized(blk[i], len[i]);
}

Test(alloc, the_whole_usable_size_is_writable) {
  size_t fails = 0;
  void *prev = NULL;
  for (size_t n = 1; n <= 4 * HKT_MiB; n = n * 3 / 2 + 1) {
    void *p = hak_malloc(n);
    cr_assert_not_null(p);
    size_t u = hak_usable_size(p);
    hkt_fill(p, u, hkt_seed(p, u));
    if (prev) {
      size_t pu = hak_usable_size(prev);
      size_t at = hkt_check(prev, pu, hkt_seed(prev, pu));
      HKT_EXPECT(fails, at == pu, "block %p (usable %zu) overwritten at %zu", prev, pu, at);
      hak_free(prev);
    }
    prev = p;
  }
  hak_free(prev);
  HKT_EXPECT_NONE(fails, "usable bytes");
}

/* A freed block is handed out again: the memory is reused, not leaked. */
Test(alloc, freed_small_blocks_are_reused) {
  enum { N = 1000, ROUNDS = 200 };
  static void *blk[N];
  for (int i = 0; i < N; i++) blk[i] = hak_malloc(48);
  for (int i = 0; i < N; i++) hak_free(blk[i]);
  hak_stats_t before, after;
  hak_stats_get(&before);
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < N; i++) {
      blk[i] = hak_malloc(48);
      cr_assert_not_null(blk[i]);
    }
    for (int i = 0; i < N; i++) hak_free(blk[i]);
  }
  hak_stats_get(&after);
  cr_expect_leq(after.pages, before.pages + 1,
                "malloc/free of the same 1000 blocks made pages grow from %zu to %zu",
                before.pages, after.pages);
}

/* -------------------------------------------------------------------------
** Bad input and limits.
** ---------------------------------------------------------------------- */

Test(alloc, free_null_does_nothing) {
  hak_free(NULL);
  hak_free_sized(NULL, 0);
  hak_free_sized(NULL, 64);
  cr_expect(true, "hak_free(NULL) returned");
}

Test(alloc, malloc_zero_gives_a_freeable_block) {
  void *p = hak_malloc(0), *q = hak_malloc(0);
  cr_assert(p && q, "hak_malloc(0) returned NULL");
  cr_expect_neq(p, q, "two hak_malloc(0) returned the same block");
  cr_expect(hak_owns(p));
  hak_free(p);
  hak_free(q);
}

struct too_big {
  size_t size;
};

ParameterizedTestParameters(alloc, impossible_sizes_give_enomem) {
  static struct too_big cases[] = {
      {SIZE_MAX},           {SIZE_MAX - 15},        {SIZE_MAX / 2 + 1},
      {(size_t)PTRDIFF_MAX}, {(size_t)1 << 48},
      {(size_t)64 << 40}, /* fits the address space, never the machine */
  };
  return cr_make_param_array(struct too_big, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct too_big *c, alloc, impossible_sizes_give_enomem) {
  errno = 0;
  void *p = hak_malloc(c->size);
  cr_expect_null(p, "hak_malloc(%zu) returned %p", c->size, p);
  cr_expect_eq(errno, ENOMEM, "hak_malloc(%zu): errno %d, want ENOMEM", c->size, errno);
  errno = 0;
  p = hak_heap_malloc8(NULL, c->size);
  cr_expect_null(p, "hak_heap_malloc8(%zu) returned %p", c->size, p);
  cr_expect_eq(errno, ENOMEM, "hak_heap_malloc8(%zu): errno %d", c->size, errno);
  errno = 0;
  p = hak_aligned_alloc(64, c->size);
  cr_expect_null(p, "hak_aligned_alloc(64, %zu) returned %p", c->size, p);
  cr_expect_eq(errno, ENOMEM, "hak_aligned_alloc(64, %zu): errno %d", c->size, errno);
  /* Nothing was reserved for them. */
  hak_stats_t s;
  hak_stats_counters(&s);
  cr_expect_lt(s.mapped, (size_t)1 << 40, "%zu bytes mapped after impossible requests", s.mapped);
  /* The allocator still works afterwards. */
  void *q = hak_malloc(100);
  cr_expect_not_null(q);
  hak_free(q);
}

/* -------------------------------------------------------------------------
** hak_aligned_alloc.
** ---------------------------------------------------------------------- */

/*
** For every power of two from 1 to 1 MiB, sizes below, at and above the
** alignment (and a few fixed ones), two blocks at once: each aligned,
** usable, and filled without touching the other.
*/
Test(alloc, aligned_alloc_every_power_of_two) {
  size_t fails = 0;
  for (size_t a = 1; a <= HKT_MiB; a *= 2) {
    const size_t sizes[] = {0, 1, 8, 24, 56, 100, a / 2, a - 1, a, a + 1, 3 * a, 40000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      size_t n = sizes[k];
      void *p = hak_aligned_alloc(a, n), *q = hak_aligned_alloc(a, n);
      if (!p || !q) {
        HKT_EXPECT(fails, false, "hak_aligned_alloc(%zu, %zu) returned NULL", a, n);
        hak_free(p);
        hak_free(q);
        continue;
      }
      size_t want = a < 16 ? 16 : a;
      HKT_EXPECT(fails, hkt_aligned(p, want) && hkt_aligned(q, want),
                 "hak_aligned_alloc(%zu, %zu) = %p, %p: not %zu-aligned", a, n, p, q, want);
      HKT_EXPECT(fails, hak_usable_size(p) >= n, "hak_aligned_alloc(%zu, %zu): usable %zu",
                 a, n, hak_usable_size(p));
      HKT_EXPECT(fails, hak_owns(p), "hak_aligned_alloc(%zu, %zu) = %p: not owned", a, n, p);
      hkt_fill(p, n, hkt_seed(p, n));
      hkt_fill(q, n, hkt_seed(q, n));
      HKT_EXPECT(fails, hkt_check(p, n, hkt_seed(p, n)) == n,
                 "hak_aligned_alloc(%zu, %zu): blocks %p and %p overlap", a, n, p, q);
      hak_free(q);
      hak_free(p);
    }
  }
  HKT_EXPECT_NONE(fails, "aligned allocation");
}

Test(alloc, aligned_alloc_on_an_explicit_heap) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  for (size_t a = 1; a <= HKT_MiB; a *= 4) {
    void *p = hak_heap_aligned_alloc(h, a, 3 * a + 5);
    cr_assert_not_null(p);
    cr_expect(hkt_aligned(p, a < 16 ? 16 : a), "hak_heap_aligned_alloc(h, %zu) = %p", a, p);
    memset(p, 0x5C, 3 * a + 5);
    hak_free(p);
  }
  hak_heap_destroy(h);
}

/*
** The sizes where the block kind changes: the top of every class (seen as
** the usable size of hak_malloc) and every large size up to the huge
** boundary, then the huge boundary, where the block's mapping grows past
** a segment, and 3 MiB.  Each test size is a boundary or one byte past it.
*/
static size_t boundary_sizes(size_t *out, size_t cap) {
  size_t count = 0;
  for (size_t n = 1; n <= HKT_LARGE_MAX && count + 2 <= cap;) {
    void *p = hak_malloc(n);
    cr_assert_not_null(p, "hak_malloc(%zu)", n);
    size_t top = hak_usable_size(p);
    hak_free(p);
    if (top > HKT_LARGE_MAX) top = HKT_LARGE_MAX;
    out[count++] = top;
    out[count++] = top + 1;
    n = top + 1;
  }
  const size_t more[] = {1, 4 * HKT_MiB - 64 * HKT_KiB, 4 * HKT_MiB - 1, 4 * HKT_MiB,
                         4 * HKT_MiB + 1, 3 * HKT_MiB};
  for (size_t k = 0; k < sizeof more / sizeof more[0] && count < cap; k++) out[count++] = more[k];
  return count;
}

/* Sixteen bytes at each end of a block: a test of thousands of blocks of
** megabytes writes only those, yet sees any overlap of two blocks' ends. */
static void mark_ends(void *p, size_t n, unsigned char v) {
  size_t k = n < 16 ? n : 16;
  memset(p, v, k);
  memset((unsigned char *)p + n - k, v, k);
}

static bool ends_marked(const void *p, size_t n, unsigned char v) {
  size_t k = n < 16 ? n : 16;
  return hkt_check_byte(p, k, v) == k && hkt_check_byte((const unsigned char *)p + n - k, k, v) == k;
}

/*
** Every power-of-two alignment from 1 B to 1 GiB, at sizes on both sides of
** every class, large and huge boundary: two blocks at once, each aligned,
** usable, owned and apart.  Huge blocks used to start at max(header,
** alignment), aligned to 4 KiB only: hak_aligned_alloc(8192, 3 MiB).
*/
Test(alloc, aligned_alloc_every_alignment_at_every_boundary) {
  static size_t sizes[512];
  size_t count = boundary_sizes(sizes, sizeof sizes / sizeof sizes[0]);
  size_t fails = 0;
  for (size_t a = 1; a <= ((size_t)1 << 30); a *= 2) {
    for (size_t k = 0; k < count; k++) {
      size_t n = sizes[k];
      void *p = hak_aligned_alloc(a, n), *q = hak_aligned_alloc(a, n);
      if (!p || !q) {
        HKT_EXPECT(fails, false, "hak_aligned_alloc(%zu, %zu) returned NULL (errno %d)", a, n,
                   errno);
        hak_free(p);
        hak_free(q);
        continue;
      }
      size_t want = a < 16 ? 16 : a;
      HKT_EXPECT(fails, hkt_aligned(p, want) && hkt_aligned(q, want),
                 "hak_aligned_alloc(%zu, %zu) = %p, %p: not %zu-aligned", a, n, p, q, want);
      HKT_EXPECT(fails, hak_usable_size(p) >= n && hak_usable_size(q) >= n,
                 "hak_aligned_alloc(%zu, %zu): usable %zu, %zu", a, n, hak_usable_size(p),
                 hak_usable_size(q));
      HKT_EXPECT(fails, hak_owns(p) && hak_owns(q),
                 "hak_aligned_alloc(%zu, %zu) = %p, %p: not owned", a, n, p, q);
      mark_ends(p, n, 0x11);
      mark_ends(q, n, 0x22);
      HKT_EXPECT(fails, ends_marked(p, n, 0x11),
                 "hak_aligned_alloc(%zu, %zu): blocks %p and %p overlap", a, n, p, q);
      hak_free(q);
      hak_free_sized(p, n);
    }
  }
  HKT_EXPECT_NONE(fails, "aligned allocation at every boundary");
}

/*
** Alignments above 2 MiB (to 1 GiB, as glibc and mimalloc give them): the
** block is a segment boundary, its header one segment below.  Everything
** that takes a block works on it: usable size, realloc, sized free, owns,
** explicit heaps and their destroy, and the stats see it come and go.
*/
Test(alloc, alignments_above_2_mib_are_given) {
  hak_stats_t s0, s1, s2;
  hak_free(hak_malloc(1)); /* the thread's heap exists before the baseline */
  hak_stats_get(&s0);
  for (size_t a = 4 * HKT_MiB; a <= ((size_t)1 << 30); a *= 2) {
    const size_t sizes[] = {10, 4096, 3 * HKT_MiB, a + 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      size_t n = sizes[k];
      hak_stats_t before;
      hak_stats_get(&before);
      errno = 0;
      unsigned char *p = hak_aligned_alloc(a, n);
      cr_assert_not_null(p, "hak_aligned_alloc(%zu MiB, %zu): errno %d", a >> 20, n, errno);
      cr_expect(hkt_aligned(p, a), "hak_aligned_alloc(%zu MiB, %zu) = %p", a >> 20, n, (void *)p);
      cr_expect_geq(hak_usable_size(p), n);
      cr_expect(hak_owns(p), "hak_owns(%p), aligned to %zu MiB", (void *)p, a >> 20);
      cr_expect_not(hak_owns(p + 16), "hak_owns(%p + 16)", (void *)p);
      cr_expect_not(hak_owns(p - 4 * HKT_MiB), "hak_owns(the header below %p)", (void *)p);
      mark_ends(p, n, 0x33);
      hak_stats_get(&s1);
      cr_expect_eq(s1.huge_blocks, before.huge_blocks + 1);
      cr_expect_geq(s1.in_use, before.in_use + n);
      cr_expect_leq(s1.committed, before.committed + n + 64 * HKT_KiB,
                    "an aligned block of %zu B counts %zu B committed", n,
                    s1.committed - before.committed);
      if (k == 0) {
        unsigned char *q = hak_realloc(p, 100000);
        cr_assert_not_null(q, "hak_realloc of a %zu MiB-aligned block", a >> 20);
        cr_expect_eq(hkt_check_byte(q, 10, 0x33), 10, "realloc lost the contents");
        hak_free(q);
      } else {
        hak_free_sized(p, n);
      }
      hak_stats_get(&s2);
      cr_expect_eq(s2.huge_blocks, before.huge_blocks, "aligned to %zu MiB, %zu B: not freed",
                   a >> 20, n);
      cr_expect_eq(s2.in_use, before.in_use);
    }
  }
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  for (size_t a = 4 * HKT_MiB; a <= 64 * HKT_MiB; a *= 2) {
    void *p = hak_heap_aligned_alloc(h, a, 1000);
    cr_assert_not_null(p, "hak_heap_aligned_alloc(h, %zu MiB, 1000)", a >> 20);
    cr_expect(hkt_aligned(p, a));
    memset(p, 1, 1000);
  }
  hak_heap_destroy(h); /* unmaps them */
  hak_stats_get(&s2);
  cr_expect_eq(s2.huge_blocks, s0.huge_blocks, "hak_heap_destroy left aligned blocks");
  cr_expect_eq(s2.mapped, s0.mapped, "mapped %zu, was %zu", s2.mapped, s0.mapped);
}

/* A power of two too big for the address space is not EINVAL: ENOMEM. */
Test(alloc, alignment_beyond_the_address_space_is_enomem) {
  const size_t aligns[] = {(size_t)1 << 47, (size_t)1 << 62, (size_t)1 << 63};
  for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
    errno = 0;
    void *p = hak_aligned_alloc(aligns[k], 64);
    cr_expect_null(p, "hak_aligned_alloc(2^%d, 64) = %p", __builtin_ctzll(aligns[k]), p);
    cr_expect_eq(errno, ENOMEM, "hak_aligned_alloc(2^%d, 64): errno %d",
                 __builtin_ctzll(aligns[k]), errno);
  }
}

struct bad_align {
  size_t align;
};

ParameterizedTestParameters(alloc, alignment_not_a_power_of_two_is_refused) {
  static struct bad_align cases[] = {
      {0}, {3}, {12}, {24}, {48}, {1000}, {4096 + 16}, {SIZE_MAX}, {((size_t)1 << 20) - 1},
  };
  return cr_make_param_array(struct bad_align, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad_align *c, alloc, alignment_not_a_power_of_two_is_refused) {
  errno = 0;
  void *p = hak_aligned_alloc(c->align, 64);
  cr_expect_null(p, "hak_aligned_alloc(%zu, 64) returned %p", c->align, p);
  cr_expect_eq(errno, EINVAL, "hak_aligned_alloc(%zu, 64): errno %d, want EINVAL", c->align,
               errno);
  hak_heap_t *h = hak_heap_new();
  errno = 0;
  p = hak_heap_aligned_alloc(h, c->align, 64);
  cr_expect_null(p, "hak_heap_aligned_alloc(h, %zu, 64) returned %p", c->align, p);
  cr_expect_eq(errno, EINVAL, "hak_heap_aligned_alloc(h, %zu, 64): errno %d", c->align,
               errno);
  hak_heap_destroy(h);
}

/* -------------------------------------------------------------------------
** hak_owns.
** ---------------------------------------------------------------------- */

static int a_static_int;
static char a_static_buffer[256];

Test(alloc, owns_every_kind_of_hakmem_block) {
  const size_t sizes[] = {0,      1,          8,          40,          56,
                          128,    1024,       1025,       4000,        HKT_MEDIUM_MAX,
                          HKT_MEDIUM_MAX + 1, 200000,     HKT_LARGE_MAX, HKT_LARGE_MAX + 1,
                          12 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    void *p = hak_malloc(n);
    void *q = hak_heap_malloc8(NULL, n);
    void *r = hak_aligned_alloc(4096, n);
    cr_assert(p && q && r, "allocation of %zu returned NULL", n);
    cr_expect(hak_owns(p), "hak_owns(hak_malloc(%zu) = %p) is false", n, p);
    cr_expect(hak_owns(q), "hak_owns(hak_heap_malloc8(%zu) = %p) is false", n, q);
    cr_expect(hak_owns(r), "hak_owns(hak_aligned_alloc(4096, %zu) = %p) is false", n, r);
    hak_free(p);
    hak_free_sized(q, n);
    hak_free(r);
  }
  hak_heap_t *h = hak_heap_new();
  void *hp = hak_heap_malloc(h, 77);
  cr_expect(hak_owns(hp), "hak_owns(block of an explicit heap) is false");
  hak_heap_destroy(h);
}

Test(alloc, does_not_own_foreign_pointers) {
  int on_stack = 0;
  void *libc = malloc(64);
  void *libc_big = malloc(4 * HKT_MiB);
  cr_expect_not(hak_owns(NULL), "hak_owns(NULL)");
  cr_expect_not(hak_owns(&on_stack), "hak_owns(stack %p)", (void *)&on_stack);
  cr_expect_not(hak_owns(&a_static_int), "hak_owns(static %p)", (void *)&a_static_int);
  cr_expect_not(hak_owns(a_static_buffer + 16), "hak_owns(static buffer)");
  cr_expect_not(hak_owns(libc), "hak_owns(libc malloc %p)", libc);
  cr_expect_not(hak_owns(libc_big), "hak_owns(libc malloc 4 MiB %p)", libc_big);
  cr_expect_not(hak_owns((void *)hak_owns), "hak_owns(a function)");
  cr_expect_not(hak_owns((void *)(uintptr_t)16), "hak_owns(0x10)");
  free(libc);
  free(libc_big);
}

/* Inside a hakmem block is not a block start (hakmem.h: "a block start"). */
Test(alloc, does_not_own_interior_pointers) {
  const size_t sizes[] = {64, 1000, 20000, 300000, 5 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    unsigned char *p = hak_malloc(sizes[k]);
    cr_assert_not_null(p);
    cr_expect_not(hak_owns(p + 16), "hak_owns(%p + 16) of a %zu B block", (void *)p,
                  sizes[k]);
    cr_expect_not(hak_owns(p + 1), "hak_owns(%p + 1) of a %zu B block", (void *)p,
                  sizes[k]);
    hak_free(p);
  }
}

/* -------------------------------------------------------------------------
** hak_free_sized with the size last asked.
** ---------------------------------------------------------------------- */

Test(alloc, free_sized_releases_blocks) {
  hkt_rng_t rng;
  hkt_rng_init(&rng, 99);
  hak_stats_t st0, st1;
  hak_stats_get(&st0);
  for (int round = 0; round < 50; round++) {
    enum { N = 2000 };
    static void *blk[N];
    static size_t len[N];
    for (int i = 0; i < N; i++) {
      len[i] = hkt_rng_range(&rng, 0, 2 * HKT_KiB);
      blk[i] = (i & 1) ? hak_malloc(len[i]) : hak_heap_malloc8(NULL, len[i]);
      cr_assert_not_null(blk[i]);
    }
    for (int i = 0; i < N; i++) hak_free_sized(blk[i], len[i]);
  }
  hak_stats_get(&st1);
  /* 50 rounds over the same working set: pages do not pile up. */
  cr_expect_leq(st1.committed, st0.committed + 16 * HKT_MiB,
                "committed grew from %zu to %zu over 50 identical rounds", st0.committed,
                st1.committed);
}
