/*
** test_region.c -- a state's region recycling its free blocks
** (lua_glue/hakl_region.c): runs of adjacent free blocks of classes
** nobody asks for any more become space for every size, so a state whose
** sizes drift does not grow its region round after round; and no block is
** ever handed out twice, whatever the mix of sizes and frees.
*/
#include <criterion/criterion.h>

#include "helpers.h"
#include "fixture.h"
#include "hakl.h"

TestSuite(region, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* The region's chunks come from hak_aligned_alloc, wrapped at link time
** (configure.py) so that a test can make them fail. */
static bool chunks_fail;
void *__real_hak_aligned_alloc(size_t align, size_t n);
void *__wrap_hak_aligned_alloc(size_t align, size_t n) {
  return chunks_fail ? NULL : __real_hak_aligned_alloc(align, n);
}

#define ROUNDS 100
#define PER_ROUND 400

/*
** Round r allocates PER_ROUND blocks of a size no earlier round used
** (16 + 8r bytes: a new class each round), keeps every 16th and frees the
** rest, so the free blocks of each round sit in runs between the few kept
** ones, in a class that the next rounds never ask for.  Over the rounds
** 100 x 400 blocks of 16 to 808 bytes pass through (16.5 MB); the live
** bytes grow to 1.0 MB.  Exact class lists alone grow the region by each
** round's bytes (with recycling disabled the region ends at 16.5 MB; with
** it, 2.3 MB); recycling must keep it a small multiple of the live bytes.
*/
Test(region, drifting_sizes_do_not_grow_the_region) {
  static void *kept[ROUNDS * PER_ROUND / 16 + 1];
  static size_t kept_size[ROUNDS * PER_ROUND / 16 + 1];
  void *round[PER_ROUND];
  size_t nkept = 0, passed = 0, fails = 0, i, r;
  hakl_ctx c;
  hakl_ctx_init(&c, NULL, 0);
  for (r = 0; r < ROUNDS; r++) {
    size_t s = 16 + 8 * r;
    for (i = 0; i < PER_ROUND; i++) {
      round[i] = hakl_alloc(&c, NULL, 0, s);
      cr_assert_not_null(round[i], "round %zu: block %zu of %zu B", r, i, s);
      hkt_fill(round[i], s, hkt_seed(round[i], s));
      passed += s;
    }
    for (i = 0; i < PER_ROUND; i++) {
      HKT_EXPECT(fails, hkt_check(round[i], s, hkt_seed(round[i], s)) == s,
                 "round %zu: block %p of %zu B overwritten", r, round[i], s);
      if (i % 16 == 0) {
        kept[nkept] = round[i];
        kept_size[nkept++] = s;
      } else {
        hakl_alloc(&c, round[i], s, 0);
      }
    }
  }
  size_t live = c.acct.in_use;
  for (i = 0; i < nkept; i++)
    HKT_EXPECT(fails, hkt_check(kept[i], kept_size[i], hkt_seed(kept[i], kept_size[i])) == kept_size[i],
               "kept block %p of %zu B overwritten", kept[i], kept_size[i]);
  HKT_EXPECT_NONE(fails, "every block keeps its bytes");
  cr_log_info("region of %zu B for %zu B live", c.region.chunk_bytes, live);
  cr_expect(c.region.chunk_bytes <= 4 * live + 512 * HKT_KiB,
            "region of %zu B for %zu B live (%zu B passed through)", c.region.chunk_bytes, live,
            passed);
  for (i = 0; i < nkept; i++) hakl_alloc(&c, kept[i], kept_size[i], 0);
  cr_expect_eq(c.acct.in_use, 0, "in_use %zu after every free", c.acct.in_use);
  cr_expect_null(c.region.chunks, "the last free gives the region back");
}

/*
** Random sizes over the region's whole range (1 byte to its top), random
** frees and reallocations, many recyclings: every live block keeps its
** pattern (a block handed out twice, or a span laid over a live block,
** overwrites another's), and the account ends at zero.  A private heap's
** region too, whose 128-byte classes reach 4 KiB.
*/
static void random_churn(hak_heap_t *heap) {
  enum { SLOTS = 4096, STEPS = 400000 };
  static void *blk[SLOTS];
  static size_t len[SLOTS];
  size_t fails = 0, i;
  hkt_rng_t rng;
  hakl_ctx c;
  hakl_ctx_init(&c, heap, 0);
  hkt_rng_init(&rng, 7);
  for (i = 0; i < STEPS; i++) {
    size_t k = hkt_rng_range(&rng, 0, SLOTS - 1);
    /* the size range drifts through the run, so classes go out of use */
    size_t phase = i / (STEPS / 8);
    size_t top = c.region.top;
    size_t lo = 1 + phase * (top / 16), hi = lo + top / 4;
    if (hi > top) hi = top;
    if (blk[k] != NULL) {
      HKT_EXPECT(fails, hkt_check(blk[k], len[k], hkt_seed(blk[k], len[k])) == len[k],
                 "step %zu: block %p of %zu B overwritten", i, blk[k], len[k]);
      if (hkt_rng_range(&rng, 0, 3) == 0) {
        size_t n = hkt_rng_range(&rng, lo, hi), keep = n < len[k] ? n : len[k];
        void *q = hakl_alloc(&c, blk[k], len[k], n);
        cr_assert_not_null(q, "step %zu: realloc %zu -> %zu B", i, len[k], n);
        HKT_EXPECT(fails, hkt_check(q, keep, hkt_seed(blk[k], len[k])) == keep,
                   "step %zu: realloc %zu -> %zu B lost bytes", i, len[k], n);
        blk[k] = q;
        len[k] = n;
        hkt_fill(q, n, hkt_seed(q, n));
        continue;
      }
      hakl_alloc(&c, blk[k], len[k], 0);
      blk[k] = NULL;
      continue;
    }
    len[k] = hkt_rng_range(&rng, lo, hi);
    blk[k] = hakl_alloc(&c, NULL, 0, len[k]);
    cr_assert_not_null(blk[k], "step %zu: block of %zu B", i, len[k]);
    hkt_fill(blk[k], len[k], hkt_seed(blk[k], len[k]));
  }
  for (i = 0; i < SLOTS; i++) {
    if (blk[i] == NULL) continue;
    HKT_EXPECT(fails, hkt_check(blk[i], len[i], hkt_seed(blk[i], len[i])) == len[i],
               "block %p of %zu B overwritten", blk[i], len[i]);
    hakl_alloc(&c, blk[i], len[i], 0);
    blk[i] = NULL;
  }
  HKT_EXPECT_NONE(fails, "every block keeps its bytes");
  cr_expect_eq(c.acct.in_use, 0, "in_use %zu after every free", c.acct.in_use);
  cr_expect_null(c.region.chunks, "the last free gives the region back");
}

Test(region, random_churn_hands_no_block_out_twice) {
  random_churn(NULL);
}

Test(region, random_churn_with_a_private_heap) {
  hak_heap_t *heap = hak_heap_new();
  cr_assert_not_null(heap);
  random_churn(heap);
  hak_heap_destroy(heap);
}

/*
** A shrink must not fail (Lua's manual).  A core block (above the region)
** that shrinks to a region size while the region can get no chunk stays
** where it is, and Lua frees it later with its small size, onto a region
** list.  Recycling used to find it there, outside every chunk, and stop
** the program ("heap corruption"); the region now keeps such a block as a
** stray, hands it back to the core when recycling meets it, and frees the
** rest with its chunks.  Both ways are taken here, and hakmem must hold
** nothing more after the last free.
*/
Test(region, a_shrink_without_region_memory_keeps_the_block) {
  enum { N = 2000 };
  static void *b[N];
  hakl_ctx c;
  hak_stats_t st;
  size_t n = 0, i, before;
  hak_collect(true);
  hak_stats_get(&st);
  before = st.in_use;
  hakl_ctx_init(&c, NULL, 0); /* the thread's heap: region blocks up to 1 KiB */
  void *keep = hakl_alloc(&c, NULL, 0, 24); /* the account stays above 0 */
  void *big = hakl_alloc(&c, NULL, 0, 2000), *big2 = hakl_alloc(&c, NULL, 0, 3000);
  cr_assert(keep && big && big2);
  hkt_fill(big, 16, 1);
  hkt_fill(big2, 40, 2);
  while (n < N) { /* 16-byte blocks until the chunk is full */
    cr_assert((b[n++] = hakl_alloc(&c, NULL, 0, 16)) != NULL);
    if ((size_t)(c.region.end - c.region.bump) < 16) break;
  }
  chunks_fail = true;
  void *p = hakl_alloc(&c, big, 2000, 16), *p2 = hakl_alloc(&c, big2, 3000, 40);
  void *q = hakl_alloc(&c, NULL, 0, 16); /* and no new block either */
  chunks_fail = false;
  cr_assert(p == big && p2 == big2, "a shrink failed or moved");
  cr_expect_null(q, "a region block without a chunk");
  cr_expect(hkt_check(p, 16, 1) == 16 && hkt_check(p2, 40, 2) == 40, "a shrink lost bytes");
  cr_expect_not_null(c.region.strays, "the core blocks kept are not strays");
  hakl_alloc(&c, p, 16, 0); /* onto the 16-byte list: recycling meets it */
  for (i = 0; i < n; i++)
    if (i % 64 != 0) hakl_alloc(&c, b[i], 16, 0);
  void *r = hakl_alloc(&c, NULL, 0, 200); /* a refill: a recycling pass */
  cr_assert_not_null(r);
  hakl_alloc(&c, r, 200, 0);
  hakl_alloc(&c, p2, 40, 0); /* still a stray: the release frees it */
  for (i = 0; i < n; i++)
    if (i % 64 == 0) hakl_alloc(&c, b[i], 16, 0);
  hakl_alloc(&c, keep, 24, 0); /* the account's zero: the region goes back */
  cr_expect_eq(c.acct.in_use, 0);
  cr_expect_null(c.region.strays);
  hak_collect(true);
  hak_stats_get(&st);
  cr_expect_eq(st.in_use, before, "%zu bytes left in hakmem (%zu before)", st.in_use, before);
}

/*
** The drifting sizes above while the state also holds 3 MiB of blocks
** above the region (core blocks, 2000 bytes each): those are in the
** state's account but not in the region, and must not count as the
** region's live bytes.  Counted (the rule before), the region looked
** full, never recycled, and grew by each round's bytes.
*/
Test(region, core_blocks_do_not_hold_back_recycling) {
  enum { BIG = 2000, NBIG = 3 * 1024 * 1024 / BIG, DRIFT = 60 };
  static void *big[NBIG];
  static void *kept[DRIFT * PER_ROUND / 16 + 1];
  static size_t kept_size[DRIFT * PER_ROUND / 16 + 1];
  void *round[PER_ROUND];
  size_t nkept = 0, i, r;
  hakl_ctx c;
  hakl_ctx_init(&c, NULL, 0);
  cr_assert_lt(c.region.top, (size_t)BIG, "2000-byte blocks are above the region");
  for (i = 0; i < NBIG; i++) cr_assert_not_null(big[i] = hakl_alloc(&c, NULL, 0, BIG));
  for (r = 0; r < DRIFT; r++) {
    size_t s = 16 + 8 * r;
    for (i = 0; i < PER_ROUND; i++) cr_assert_not_null(round[i] = hakl_alloc(&c, NULL, 0, s));
    for (i = 0; i < PER_ROUND; i++) {
      if (i % 16 == 0) {
        kept[nkept] = round[i];
        kept_size[nkept++] = s;
      } else {
        hakl_alloc(&c, round[i], s, 0);
      }
    }
  }
  size_t live = c.acct.in_use - (size_t)NBIG * BIG;
  cr_log_info("region of %zu B for %zu B live in it", c.region.chunk_bytes, live);
  cr_expect(c.region.chunk_bytes <= 4 * live + 512 * HKT_KiB,
            "region of %zu B for %zu B live in it (and %zu B above it)", c.region.chunk_bytes,
            live, (size_t)NBIG * BIG);
  for (i = 0; i < nkept; i++) hakl_alloc(&c, kept[i], kept_size[i], 0);
  for (i = 0; i < NBIG; i++) hakl_alloc(&c, big[i], BIG, 0);
  cr_expect_eq(c.acct.in_use, 0, "in_use %zu after every free", c.acct.in_use);
  cr_expect_null(c.region.chunks, "the last free gives the region back");
}

/*
** Blocks that stay live (no frees, so nothing to recycle): the region is
** what they need plus less than a quarter, since no chunk is larger than
** a quarter of the region before it.  Doubling chunks ended up to twice
** the live bytes, resident to the end of the newest chunk once bumped.
*/
Test(region, grows_by_a_quarter_at_most) {
  enum { N = 40000, SIZE = 48 };
  static void *blk[N];
  size_t i, worst = 0;
  hakl_ctx c;
  hakl_ctx_init(&c, NULL, 0);
  for (i = 0; i < N; i++) {
    cr_assert_not_null(blk[i] = hakl_alloc(&c, NULL, 0, SIZE));
    /* every chunk but the newest is full: the bytes before the newest one
    ** are at most the live ones */
    size_t newest = ((size_t *)c.region.chunks)[1];
    size_t before = c.region.chunk_bytes - newest;
    if (before > 0 && newest * 4 > before && newest > 16 * HKT_KiB)
      worst = newest;
  }
  cr_expect_eq(worst, 0, "a chunk of %zu B is more than a quarter of the region before it", worst);
  cr_expect(c.region.chunk_bytes <= (size_t)N * SIZE * 5 / 4 + 32 * HKT_KiB,
            "region of %zu B for %zu B live", c.region.chunk_bytes, (size_t)N * SIZE);
  for (i = 0; i < N; i++) hakl_alloc(&c, blk[i], SIZE, 0);
  cr_expect_null(c.region.chunks, "the last free gives the region back");
}

/*
** A pass that finds little (free blocks, but few of them side by side)
** must not hold back the pass after Lua's collector frees much: a sweep
** frees what was made together, in runs.  The rule before waited for the
** region to grow after such a pass, so the refill after the sweep took a
** new chunk while most of the region was free (bench/runtime's
** strings_build: 8 states at 512 KiB of chunks each, 393 KiB of it free
** at that refill; 7.6 -> 7.0 MiB peak RSS).
*/
Test(region, a_sweep_after_a_pass_that_found_little_is_recycled) {
  enum { N = 4096, SMALL = 64, OTHER = 200, RUN = 10 };
  static void *blk[N];
  static void *other[N];
  size_t i, n = 0;
  hakl_ctx c;
  hakl_ctx_init(&c, NULL, 0);
  for (i = 0; i < N; i++) cr_assert_not_null(blk[i] = hakl_alloc(&c, NULL, 0, SMALL));
  /* a third of the region free in single blocks, and one short run */
  for (i = 0; i < 3 * N / 4; i += 2) {
    hakl_alloc(&c, blk[i], SMALL, 0);
    blk[i] = NULL;
  }
  for (i = 3 * N / 4; i < 3 * N / 4 + RUN; i++) {
    hakl_alloc(&c, blk[i], SMALL, 0);
    blk[i] = NULL;
  }
  /* another size: the bump space runs out, a pass finds the short run,
  ** little (recycle_after records that), and serves the refill from it */
  size_t before = c.region.chunk_bytes;
  while (c.region.recycle_after == 0 && n < N)
    cr_assert_not_null(other[n++] = hakl_alloc(&c, NULL, 0, OTHER));
  cr_assert_eq(c.region.chunk_bytes, before, "a pass, not a new chunk, served the refill");
  size_t after_pass = c.region.chunk_bytes;
  /* the sweep: the last quarter goes, side by side */
  for (i = 3 * N / 4 + RUN; i < N; i++) {
    hakl_alloc(&c, blk[i], SMALL, 0);
    blk[i] = NULL;
  }
  /* a third of the freed bytes in the other size must fit in the region */
  size_t want = n + (N / 4) * SMALL / 3 / OTHER;
  for (; n < want; n++) cr_assert_not_null(other[n] = hakl_alloc(&c, NULL, 0, OTHER));
  cr_expect_eq(c.region.chunk_bytes, after_pass,
               "the region grew from %zu to %zu B with %zu B of it free", after_pass,
               c.region.chunk_bytes, after_pass - (c.acct.in_use - c.core_bytes));
  for (i = 0; i < N; i++)
    if (blk[i] != NULL) hakl_alloc(&c, blk[i], SMALL, 0);
  for (i = 0; i < n; i++) hakl_alloc(&c, other[i], OTHER, 0);
  cr_expect_eq(c.acct.in_use, 0, "in_use %zu after every free", c.acct.in_use);
  cr_expect_null(c.region.chunks, "the last free gives the region back");
}
