/*
** test_calloc.c -- hak_calloc and hak_heap_calloc: zeroed blocks, also when
** the memory is reused after a free (a page that hakmem thinks is still
** zero must really be), and overflowing products refused with ENOMEM.
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(calloc, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

struct csize {
  size_t size;
};

ParameterizedTestParameters(calloc, reused_memory_is_zeroed) {
  static struct csize cases[] = {
      {1},      {8},      {40},      {56},      {128},     {1000},
      {1024},   {1100},   {8000},    {32768},   {40000},   {500000},
      {2097152}, {2097153}, {6000000},
  };
  return cr_make_param_array(struct csize, cases, sizeof cases / sizeof cases[0]);
}

/*
** Fill a batch of blocks with 0xAA, free them, then calloc the same size
** again (the same memory, most of it): every byte must read zero.  The batch
** is smaller for big blocks to keep the test quick.
*/
ParameterizedTest(struct csize *c, calloc, reused_memory_is_zeroed) {
  size_t n = c->size;
  size_t count = n <= 1024 ? 2000 : n <= 65536 ? 200 : 8;
  void **blk = hak_malloc(count * sizeof *blk);
  cr_assert_not_null(blk);
  size_t fails = 0;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < count; i++) {
      blk[i] = hak_malloc(n);
      cr_assert_not_null(blk[i]);
      memset(blk[i], 0xAA, hak_usable_size(blk[i]));
    }
    for (size_t i = 0; i < count; i++) hak_free(blk[i]);
    for (size_t i = 0; i < count; i++) {
      blk[i] = (i & 1) ? hak_calloc(1, n) : hak_calloc(n, 1);
      cr_assert_not_null(blk[i], "hak_calloc(%zu) returned NULL", n);
      size_t at = hkt_check_byte(blk[i], n, 0);
      HKT_EXPECT(fails, at == n, "hak_calloc(%zu) = %p: byte %zu is 0x%02x (round %d)", n,
                 blk[i], at, ((unsigned char *)blk[i])[at < n ? at : 0], round);
      memset(blk[i], 0xAA, hak_usable_size(blk[i]));
    }
    for (size_t i = 0; i < count; i++) hak_free(blk[i]);
    if (round == 1) hak_collect(true); /* reuse purged memory in round 2 */
  }
  hak_free(blk);
  HKT_EXPECT_NONE(fails, "calloc zeroes reused memory");
}

Test(calloc, every_small_size_is_zeroed) {
  size_t fails = 0;
  for (size_t n = 0; n <= 4096; n++) {
    void *dirty = hak_malloc(n);
    cr_assert_not_null(dirty);
    memset(dirty, 0xAA, hak_usable_size(dirty));
    hak_free(dirty);
    unsigned char *p = hak_calloc(n, 1);
    cr_assert_not_null(p, "hak_calloc(%zu, 1) returned NULL", n);
    HKT_EXPECT(fails, hkt_check_byte(p, n, 0) == n, "hak_calloc(%zu, 1) not zeroed", n);
    HKT_EXPECT(fails, hkt_aligned(p, 16), "hak_calloc(%zu, 1) = %p: not 16-aligned", n,
               (void *)p);
    hak_free(p);
  }
  HKT_EXPECT_NONE(fails, "small calloc");
}

Test(calloc, count_times_size_is_honoured) {
  const size_t cases[][2] = {{3, 40}, {1000, 8}, {7, 4099}, {1024, 1024}, {3, 1048577}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t total = cases[k][0] * cases[k][1];
    void *p = hak_calloc(cases[k][0], cases[k][1]);
    cr_assert_not_null(p);
    cr_expect_geq(hak_usable_size(p), total, "hak_calloc(%zu, %zu): usable %zu",
                  cases[k][0], cases[k][1], hak_usable_size(p));
    cr_expect_eq(hkt_check_byte(p, total, 0), total);
    hak_free(p);
  }
}

Test(calloc, zero_count_or_size_is_freeable) {
  void *a = hak_calloc(0, 16), *b = hak_calloc(16, 0), *c = hak_calloc(0, 0);
  /* C allows NULL or a unique block; either way hak_free accepts it. */
  if (a) cr_expect(hak_owns(a));
  if (b) cr_expect(hak_owns(b));
  if (c) cr_expect(hak_owns(c));
  hak_free(a);
  hak_free(b);
  hak_free(c);
}

struct overflow {
  size_t count, size;
};

ParameterizedTestParameters(calloc, overflowing_product_gives_enomem) {
  static struct overflow cases[] = {
      {SIZE_MAX, 2},
      {2, SIZE_MAX},
      {SIZE_MAX, SIZE_MAX},
      {(size_t)1 << 32, (size_t)1 << 32},
      {SIZE_MAX / 16 + 1, 16},
      {(SIZE_MAX / 3) + 1, 3},
      {65537, (SIZE_MAX / 65536)},
  };
  return cr_make_param_array(struct overflow, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct overflow *c, calloc, overflowing_product_gives_enomem) {
  errno = 0;
  void *p = hak_calloc(c->count, c->size);
  cr_expect_null(p, "hak_calloc(%zu, %zu) returned %p", c->count, c->size, p);
  cr_expect_eq(errno, ENOMEM, "hak_calloc(%zu, %zu): errno %d, want ENOMEM", c->count,
               c->size, errno);
  hak_heap_t *h = hak_heap_new();
  errno = 0;
  p = hak_heap_calloc(h, c->count, c->size);
  cr_expect_null(p, "hak_heap_calloc(h, %zu, %zu) returned %p", c->count, c->size, p);
  cr_expect_eq(errno, ENOMEM, "hak_heap_calloc: errno %d, want ENOMEM", errno);
  hak_heap_destroy(h);
}

/* A product that fits but is too big to map: ENOMEM too, not a crash. */
Test(calloc, too_big_product_gives_enomem) {
  errno = 0;
  void *p = hak_calloc((size_t)1 << 30, (size_t)1 << 30); /* 1 EiB */
  cr_expect_null(p);
  cr_expect_eq(errno, ENOMEM);
}

Test(calloc, explicit_heap_calloc_zeroes_reused_memory) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  enum { N = 3000 };
  static void *blk[N];
  size_t fails = 0;
  for (size_t n = 8; n <= 3000; n = n * 2 + 8) {
    for (int i = 0; i < N; i++) {
      blk[i] = hak_heap_malloc(h, n);
      cr_assert_not_null(blk[i]);
      memset(blk[i], 0xAA, n);
    }
    for (int i = 0; i < N; i++) hak_free(blk[i]);
    for (int i = 0; i < N; i++) {
      blk[i] = hak_heap_calloc(h, 1, n);
      cr_assert_not_null(blk[i]);
      HKT_EXPECT(fails, hkt_check_byte(blk[i], n, 0) == n, "hak_heap_calloc(h, 1, %zu) dirty",
                 n);
    }
    for (int i = 0; i < N; i++) hak_free(blk[i]);
  }
  hak_heap_destroy(h);
  HKT_EXPECT_NONE(fails, "explicit heap calloc");
}
