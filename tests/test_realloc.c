/*
** test_realloc.c -- hak_realloc and hak_heap_realloc8: contents kept across
** every boundary (small classes, medium, large spans, huge mappings),
** growing and shrinking, and the C cases (NULL, 0, failure).
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(realloc, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/*
** Sizes on both sides of every boundary: 8-byte and 16-byte classes, the
** end of the direct table (1024), medium (32 KiB), large (2 MiB), huge.
*/
static const size_t boundary_sizes[] = {
    1,           8,          24,          40,     56,          100,
    128,         129,        500,         1024,   1025,        4000,
    16 * 1024,   32 * 1024,  32 * 1024 + 1, 100000, 1024 * 1024, 2 * 1024 * 1024,
    2 * 1024 * 1024 + 1, 3 * 1024 * 1024, 10 * 1024 * 1024, 33 * 1024 * 1024,
};
#define NSIZES (sizeof boundary_sizes / sizeof boundary_sizes[0])

struct from_size {
  size_t from;
};

ParameterizedTestParameters(realloc, keeps_contents_from_each_size) {
  static struct from_size cases[NSIZES];
  for (size_t i = 0; i < NSIZES; i++) cases[i].from = boundary_sizes[i];
  return cr_make_param_array(struct from_size, cases, NSIZES);
}

/* From one size to every other: the first min(old, new) bytes survive. */
ParameterizedTest(struct from_size *c, realloc, keeps_contents_from_each_size) {
  size_t fails = 0;
  for (size_t k = 0; k < NSIZES; k++) {
    size_t to = boundary_sizes[k];
    if (to == c->from) continue;
    void *p = hak_malloc(c->from);
    cr_assert_not_null(p, "hak_malloc(%zu)", c->from);
    uint64_t seed = hkt_seed(p, c->from);
    hkt_fill(p, c->from, seed);
    void *q = hak_realloc(p, to);
    cr_assert_not_null(q, "hak_realloc(%zu -> %zu) returned NULL", c->from, to);
    size_t keep = c->from < to ? c->from : to;
    size_t at = hkt_check(q, keep, seed);
    HKT_EXPECT(fails, at == keep, "hak_realloc(%zu -> %zu): byte %zu of %zu changed",
               c->from, to, at, keep);
    HKT_EXPECT(fails, hak_usable_size(q) >= to, "hak_realloc(%zu -> %zu): usable %zu",
               c->from, to, hak_usable_size(q));
    HKT_EXPECT(fails, hkt_aligned(q, 16), "hak_realloc(%zu -> %zu) = %p: not 16-aligned",
               c->from, to, q);
    /* The new block is entirely writable. */
    hkt_fill(q, to, hkt_seed(q, to));
    HKT_EXPECT(fails, hkt_check(q, to, hkt_seed(q, to)) == to,
               "hak_realloc(%zu -> %zu): block does not hold its bytes", c->from, to);
    hak_free(q);
  }
  HKT_EXPECT_NONE(fails, "realloc from this size");
}

/* A Lua table array: grows by about 1.5x to 64 MiB, then shrinks back. */
Test(realloc, grow_then_shrink_step_by_step) {
  size_t fails = 0, n = 8;
  unsigned char *p = hak_malloc(n);
  cr_assert_not_null(p);
  uint64_t seed = 0x1234;
  hkt_fill(p, n, seed);
  while (n < 64 * HKT_MiB) {
    size_t m = n + n / 2 + 8;
    p = hak_realloc(p, m);
    cr_assert_not_null(p, "hak_realloc(-> %zu) returned NULL", m);
    size_t at = hkt_check(p, n, seed);
    HKT_EXPECT(fails, at == n, "growing %zu -> %zu: byte %zu changed", n, m, at);
    hkt_fill(p, m, seed); /* the same pattern, longer: a prefix of it */
    n = m;
  }
  while (n > 8) {
    size_t m = n / 2;
    p = hak_realloc(p, m);
    cr_assert_not_null(p, "hak_realloc(-> %zu) returned NULL", m);
    size_t at = hkt_check(p, m, seed);
    HKT_EXPECT(fails, at == m, "shrinking %zu -> %zu: byte %zu changed", n, m, at);
    n = m;
  }
  hak_free(p);
  HKT_EXPECT_NONE(fails, "grow and shrink");
}

/* Growing within the usable size keeps the block where it is. */
Test(realloc, growth_within_usable_size_stays_in_place) {
  const size_t sizes[] = {1, 40, 100, 1000, 5000, 100000, 3 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *p = hak_malloc(sizes[k]);
    cr_assert_not_null(p);
    size_t u = hak_usable_size(p);
    void *q = hak_realloc(p, u);
    cr_expect_eq(q, p, "hak_realloc(%zu -> usable %zu) moved the block", sizes[k], u);
    hak_free(q);
  }
}

/*
** A large block doubling in a fresh heap (a Lua array or string buffer)
** takes the free slices after its span: it never moves, and the bytes
** written at each size are still there at the next.
*/
Test(realloc, large_block_grows_in_place_into_free_slices) {
  hak_heap_t *heap = hak_heap_new();
  cr_assert_not_null(heap);
  size_t n = 40000;
  unsigned char *p = hak_heap_malloc(heap, n);
  cr_assert_not_null(p);
  memset(p, 0x5a, n);
  for (size_t s = 2 * n; s <= 2 * HKT_MiB; s *= 2) {
    unsigned char *q = hak_heap_realloc(heap, p, s);
    cr_assert_not_null(q);
    cr_expect_eq(q, p, "growing %zu -> %zu moved the block", n, s);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += q[i] != 0x5a;
    cr_expect_eq(bad, 0, "%zu bytes changed growing %zu -> %zu", bad, n, s);
    cr_expect_geq(hak_usable_size(q), s);
    memset(q, 0x5a, s);
    p = q;
    n = s;
  }
  hak_heap_destroy(heap);
}

/* -------------------------------------------------------------------------
** The C cases.
** ---------------------------------------------------------------------- */

Test(realloc, null_pointer_is_malloc) {
  const size_t sizes[] = {0, 1, 56, 1024, 40000, 3 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *p = hak_realloc(NULL, sizes[k]);
    cr_assert_not_null(p, "hak_realloc(NULL, %zu) returned NULL", sizes[k]);
    cr_expect(hak_owns(p), "hak_realloc(NULL, %zu) = %p: not owned", sizes[k], p);
    cr_expect_geq(hak_usable_size(p), sizes[k]);
    if (sizes[k] <= HKT_SMALL_MAX)
      cr_expect_eq(hak_usable_size(p), hkt_small_class(sizes[k], 16),
                   "hak_realloc(NULL, %zu) is not in the class hak_malloc would use",
                   sizes[k]);
    memset(p, 0x11, sizes[k]);
    hak_free(p);
  }
}

/*
** hakmem's choice for realloc(p, 0) (C17: implementation-defined) is to
** free p and return NULL.  A huge block shows the free exactly: the count
** of live huge blocks falls.  (The debug build also aborts on a later free
** of p: test_debug_abort.c.)
*/
Test(realloc, to_zero_frees_and_returns_null) {
  hak_stats_t before, during, after;
  hak_stats_get(&before);
  void *p = hak_malloc(5 * HKT_MiB);
  cr_assert_not_null(p);
  hak_stats_get(&during);
  cr_expect_eq(during.huge_blocks, before.huge_blocks + 1, "a 5 MiB block is huge");
  void *q = hak_realloc(p, 0);
  cr_expect_null(q, "hak_realloc(p, 0) returned %p, want NULL", q);
  hak_stats_get(&after);
  cr_expect_eq(after.huge_blocks, before.huge_blocks, "hak_realloc(p, 0) did not free p");

  /* Small blocks too: many of them freed by realloc(p, 0) are reused. */
  enum { N = 5000 };
  static void *blk[N];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) blk[i] = hak_malloc(64);
    for (int i = 0; i < N; i++) cr_assert_null(hak_realloc(blk[i], 0));
  }
  hak_stats_get(&after);
  cr_expect_leq(after.pages, before.pages + N * 64 / 4096 + 8,
                "realloc(p, 0) of 100000 small blocks left %zu pages (was %zu)", after.pages,
                before.pages);
}

Test(realloc, failure_keeps_the_old_block) {
  const size_t sizes[] = {40, 3000, 200000, 4 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    void *p = hak_malloc(n);
    cr_assert_not_null(p);
    uint64_t seed = hkt_seed(p, n);
    hkt_fill(p, n, seed);
    /* too big for the address space; and for any machine (64 TiB), which
    ** mremap with MAP_NORESERVE would have reserved */
    const size_t too_big[] = {SIZE_MAX - 64, (size_t)64 << 40};
    for (size_t t = 0; t < 2; t++) {
      hak_stats_t before, after;
      hak_stats_counters(&before);
      errno = 0;
      void *q = hak_realloc(p, too_big[t]);
      hak_stats_counters(&after);
      cr_expect_null(q, "hak_realloc(%zu B block, %zu) returned %p", n, too_big[t], q);
      cr_expect_eq(errno, ENOMEM, "failed hak_realloc: errno %d, want ENOMEM", errno);
      cr_expect_leq(after.mapped, before.mapped + 8 * HKT_MiB,
                    "a failed hak_realloc to %zu left %zu bytes mapped (was %zu)", too_big[t],
                    after.mapped, before.mapped);
    }
    cr_expect_eq(hkt_check(p, n, seed), n, "a failed hak_realloc changed the %zu B block", n);
    cr_expect(hak_owns(p), "a failed hak_realloc freed the block");
    hak_free(p);
  }
}

/* -------------------------------------------------------------------------
** Explicit heaps and the 8-byte API.
** ---------------------------------------------------------------------- */

Test(realloc, explicit_heap_realloc_keeps_contents) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  size_t fails = 0;
  for (size_t i = 0; i < NSIZES; i++) {
    for (size_t k = 0; k < NSIZES; k += 3) {
      size_t from = boundary_sizes[i], to = boundary_sizes[k];
      void *p = hak_heap_malloc(h, from);
      cr_assert_not_null(p);
      uint64_t seed = hkt_seed(p, from);
      hkt_fill(p, from, seed);
      void *q = hak_heap_realloc(h, p, to);
      cr_assert_not_null(q, "hak_heap_realloc(%zu -> %zu)", from, to);
      size_t keep = from < to ? from : to;
      HKT_EXPECT(fails, hkt_check(q, keep, seed) == keep,
                 "hak_heap_realloc(%zu -> %zu) lost contents", from, to);
      hak_free(q);
    }
  }
  hak_heap_destroy(h);
  HKT_EXPECT_NONE(fails, "explicit heap realloc");
}

/* Lua's pattern: sized realloc of 8-byte blocks, exact sizes passed. */
Test(realloc, realloc8_keeps_contents_and_8_byte_alignment) {
  size_t fails = 0;
  for (size_t i = 0; i < NSIZES; i++) {
    for (size_t k = 0; k < NSIZES; k++) {
      size_t from = boundary_sizes[i], to = boundary_sizes[k];
      if (from > 3 * HKT_MiB && to > 3 * HKT_MiB) continue; /* time */
      void *p = hak_heap_malloc8(NULL, from);
      cr_assert_not_null(p);
      uint64_t seed = hkt_seed(p, from);
      hkt_fill(p, from, seed);
      void *q = hak_heap_realloc8(NULL, p, from, to);
      cr_assert_not_null(q, "hak_heap_realloc8(%zu -> %zu) returned NULL", from, to);
      size_t keep = from < to ? from : to;
      HKT_EXPECT(fails, hkt_check(q, keep, seed) == keep,
                 "hak_heap_realloc8(%zu -> %zu) lost contents", from, to);
      HKT_EXPECT(fails, hkt_aligned(q, 8), "hak_heap_realloc8(%zu -> %zu) = %p", from, to,
                 q);
      HKT_EXPECT(fails, hak_usable_size(q) >= to, "hak_heap_realloc8(%zu -> %zu): usable %zu",
                 from, to, hak_usable_size(q));
      hak_free_sized(q, to);
    }
  }
  HKT_EXPECT_NONE(fails, "realloc8");
}

/*
** A VM's vector doubling through realloc8 from a medium class block: it
** moves once, into a span of its own, when it reaches half the largest
** class size (16 KiB), and its later doublings up to 2 MiB in a fresh heap
** stay where it is, its contents kept.
*/
Test(realloc, realloc8_vector_moves_once_then_grows_in_place) {
  hak_heap_t *heap = hak_heap_new();
  cr_assert_not_null(heap);
  size_t n = 8 * 1024;
  void *p = hak_heap_malloc8(heap, n), *span = NULL;
  cr_assert_not_null(p);
  hkt_fill(p, n, 61);
  for (size_t s = 2 * n; s <= 2 * HKT_MiB; s *= 2) {
    void *q = hak_heap_realloc8(heap, p, n, s);
    cr_assert_not_null(q, "hak_heap_realloc8(%zu -> %zu) returned NULL", n, s);
    if (span == NULL) span = q;
    cr_expect_eq(q, span, "growing %zu -> %zu moved the block out of its span", n, s);
    cr_expect_eq(hkt_check(q, n, 61), n, "growing %zu -> %zu lost contents", n, s);
    cr_expect_geq(hak_usable_size(q), s);
    hkt_fill(q, s, 61);
    p = q;
    n = s;
  }
  hak_free_sized(p, n);
  hak_heap_destroy(heap);
}

/* hakmem.h: a shrink through realloc8 never fails. */
Test(realloc, realloc8_shrink_never_fails) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  const size_t sizes[] = {16, 40, 56, 1000, 40000, 3 * HKT_MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    unsigned char *p = hak_heap_malloc8(h, n);
    cr_assert_not_null(p);
    hkt_fill(p, n, 77);
    for (size_t m = n; m > 0; m = m * 2 / 3) {
      p = hak_heap_realloc8(h, p, n, m);
      cr_assert_not_null(p, "hak_heap_realloc8 shrink %zu -> %zu returned NULL", n, m);
      cr_expect_eq(hkt_check(p, m, 77), m, "shrink %zu -> %zu lost contents", n, m);
      n = m;
    }
    hak_free_sized(p, n);
  }
  hak_heap_destroy(h);
}
