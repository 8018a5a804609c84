/*
** test_collect.c -- memory goes back to the OS (hak_collect, the purge
** delay), and the statistics and options that show and steer it.
*/
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(collect, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* -------------------------------------------------------------------------
** Hundreds of MiB allocated, freed, collected.
** ---------------------------------------------------------------------- */

struct bulk {
  size_t size;  /* block size */
  size_t total; /* bytes to allocate in all */
};

ParameterizedTestParameters(collect, freed_memory_goes_back_to_the_os) {
  static struct bulk cases[] = {
      {48, 128 * 1024 * 1024},     /* small: many pages of one class */
      {1000, 200 * 1024 * 1024},   /* the last direct class sizes */
      {20000, 300 * 1024 * 1024},  /* medium */
      {500000, 300 * 1024 * 1024}, /* large spans */
      {5000000, 300 * 1024 * 1024}, /* huge mappings */
      {0, 300 * 1024 * 1024},      /* mixed sizes */
  };
  return cr_make_param_array(struct bulk, cases, sizeof cases / sizeof cases[0]);
}

/*
** Touch every page of every block (so it is really committed), free them
** all in an order unlike the allocation's, hak_collect(true): committed
** falls to a small fraction of its peak, and the stats say where it went.
*/
ParameterizedTest(struct bulk *c, collect, freed_memory_goes_back_to_the_os) {
  hkt_rng_t rng;
  hkt_rng_init(&rng, c->size + 1);
  hak_collect(true);
  hak_stats_t s0, s1, s2;
  hak_stats_get(&s0);

  size_t cap = c->size ? c->total / c->size + 1 : c->total / 64;
  void **blk = malloc(cap * sizeof *blk); /* the list itself: the C library's */
  cr_assert_not_null(blk);
  size_t count = 0, asked = 0;
  while (asked < c->total && count < cap) {
    size_t n = c->size ? c->size : hkt_rng_size(&rng);
    void *p = hak_malloc(n);
    cr_assert_not_null(p, "hak_malloc(%zu) after %zu B", n, asked);
    for (size_t off = 0; off < n; off += 4096) ((unsigned char *)p)[off] = 1;
    ((unsigned char *)p)[n - 1] = 1;
    blk[count++] = p;
    asked += n;
  }
  hak_stats_get(&s1);
  cr_expect_geq(s1.committed, s0.committed + asked * 9 / 10,
                "committed %zu -> %zu after touching %zu B", s0.committed, s1.committed, asked);
  cr_expect_geq(s1.committed_peak, s1.committed);
  cr_expect_geq(s1.mapped, s1.committed, "mapped %zu < committed %zu", s1.mapped,
                s1.committed);
  cr_expect_geq(s1.in_use, s0.in_use + asked, "in_use %zu -> %zu for %zu B asked", s0.in_use,
                s1.in_use, asked);

  /* Free odd blocks first, then even ones from the end. */
  for (size_t i = 1; i < count; i += 2) hak_free(blk[i]);
  for (size_t i = (count - 1) & ~(size_t)1;; i -= 2) {
    hak_free(blk[i]);
    if (i < 2) break;
  }
  free(blk);
  hak_collect(true);
  hak_stats_get(&s2);

  size_t grown = s1.committed - s0.committed;
  size_t left = s2.committed > s0.committed ? s2.committed - s0.committed : 0;
  cr_expect_leq(left, grown / 20,
                "after free and hak_collect(true), %zu B of %zu B stay committed (%.1f%%)",
                left, grown, 100.0 * (double)left / (double)grown);
  size_t purged = s2.purged - s0.purged;
  size_t unmapped = s1.mapped > s2.mapped ? s1.mapped - s2.mapped : 0;
  cr_expect_geq(purged + unmapped, grown * 9 / 10, "purged %zu and unmapped %zu of %zu B",
                purged, unmapped, grown);
  cr_expect_eq(s2.in_use, s0.in_use, "in_use %zu after freeing all (was %zu)", s2.in_use,
               s0.in_use);
  cr_expect_eq(s2.huge_blocks, s0.huge_blocks);
  cr_expect_geq(s2.committed_peak, s1.committed, "committed_peak %zu < a committed of %zu",
                s2.committed_peak, s1.committed);
}

/* The same memory can be taken again after it went back (no stale state). */
Test(collect, memory_is_usable_after_collect) {
  enum { N = 50000 };
  static void *blk[N];
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = 32 + (size_t)(i % 64) * 32;
      blk[i] = hak_malloc(n);
      cr_assert_not_null(blk[i]);
      hkt_fill(blk[i], n, hkt_seed(blk[i], n));
    }
    size_t fails = 0;
    for (int i = 0; i < N; i++) {
      size_t n = 32 + (size_t)(i % 64) * 32;
      HKT_EXPECT(fails, hkt_check(blk[i], n, hkt_seed(blk[i], n)) == n,
                 "round %d: block %p (%zu B) corrupted", round, blk[i], n);
      hak_free(blk[i]);
    }
    HKT_EXPECT_NONE(fails, "blocks after collect");
    hak_collect(true);
  }
}

/* Live blocks in a page keep it (and their bytes) through a collect. */
Test(collect, live_blocks_survive_collect) {
  enum { N = 40000 };
  static void *blk[N];
  for (int i = 0; i < N; i++) {
    blk[i] = hak_malloc(100);
    cr_assert_not_null(blk[i]);
    hkt_fill(blk[i], 100, (uint64_t)i);
  }
  for (int i = 0; i < N; i++)
    if (i % 97) hak_free(blk[i]); /* one in 97 stays: pages nearly empty */
  hak_collect(true);
  size_t fails = 0;
  for (int i = 0; i < N; i += 97) {
    HKT_EXPECT(fails, hkt_check(blk[i], 100, (uint64_t)i) == 100,
               "live block %p changed by hak_collect", blk[i]);
    hak_free(blk[i]);
  }
  HKT_EXPECT_NONE(fails, "live blocks through collect");
}

/* -------------------------------------------------------------------------
** What exited threads leave.
** ---------------------------------------------------------------------- */

enum { LEFT_N = 60000 };
static void *left_blocks[LEFT_N]; /* the exited thread's blocks */

/* Allocates 60000 blocks of mixed sizes (about 100 MB, 25 segments and
** more) and exits with all of them live: its segments are abandoned. */
static void *allocate_and_exit(void *arg) {
  (void)arg;
  hkt_rng_t rng;
  hkt_rng_init(&rng, 12);
  for (int i = 0; i < LEFT_N; i++) {
    size_t n = i % 100 == 0 ? 200000 : hkt_rng_range(&rng, 16, 3000); /* some large blocks */
    left_blocks[i] = hak_malloc(n);
    if (!left_blocks[i]) abort();
    memset(left_blocks[i], 0x5A, n);
  }
  return NULL;
}

static hak_stats_t collected;

/* A thread that never allocated: it has no heap of its own. */
static void *collect_on_a_fresh_thread(void *arg) {
  (void)arg;
  hak_collect(true);
  hak_stats_get(&collected);
  return NULL;
}

/*
** A thread exits with its blocks live, another frees them all (remote
** frees into abandoned segments, or into the exited thread's heap waiting
** whole for the next thread).  Then in_use says nothing is live, and
** hak_collect(true) on a thread that never allocated unmaps the segments:
** it used to do nothing without a heap of its own, and in_use counted the
** freed blocks as live while nobody took their pages' lists.
*/
static void exited_threads_free_memory_is_collected(long orphan_heaps) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 1000); /* nothing may go back by itself */
  hak_option_set(HAK_OPT_ORPHAN_HEAPS, orphan_heaps);
  hak_stats_t s0, s1, s2;
  hak_stats_get(&s0);
  hkt_run_thread(allocate_and_exit, NULL);
  hak_stats_get(&s1);
  if (orphan_heaps == 0)
    cr_assert_geq(s1.abandoned, s0.abandoned + 20, "only %zu segments abandoned", s1.abandoned);
  else
    cr_assert_eq(s1.abandoned, s0.abandoned, "%zu segments abandoned: the heap should wait whole",
                 s1.abandoned);
  cr_expect_geq(s1.in_use, s0.in_use + 90 * HKT_MiB, "in_use %zu with the blocks live",
                s1.in_use);

  /* The main thread frees them; it allocates nothing, so it gets no heap. */
  for (int i = 0; i < LEFT_N; i++) hak_free(left_blocks[i]);
  hak_stats_get(&s2);
  cr_expect_eq(s2.in_use, s0.in_use, "in_use %zu after every block was freed (was %zu)",
               s2.in_use, s0.in_use);
  FILE *f = tmpfile(); /* the report walks the same pages */
  cr_assert_not_null(f);
  hak_stats_print(f);
  fclose(f);

  hkt_run_thread(collect_on_a_fresh_thread, NULL);
  cr_expect_eq(collected.abandoned, s0.abandoned, "%zu segments still abandoned",
               collected.abandoned);
  cr_expect_leq(collected.segments, s0.segments, "segments %zu -> %zu", s0.segments,
                collected.segments);
  cr_expect_leq(collected.committed, s0.committed + HKT_MiB,
                "committed %zu after the collect (was %zu, %zu with the blocks)",
                collected.committed, s0.committed, s1.committed);
  cr_expect_eq(collected.in_use, s0.in_use);
}

Test(collect, abandoned_free_memory_is_collected_by_any_thread) {
  exited_threads_free_memory_is_collected(0);
}

Test(collect, orphan_heaps_free_memory_is_collected_by_any_thread) {
  exited_threads_free_memory_is_collected(8);
}

/* Partly live abandoned segments: the free pages go back, the live blocks
** stay valid and their segments stay abandoned, for adoption. */
Test(collect, collect_without_a_heap_keeps_live_blocks) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 1000);
  hak_stats_t s0, s1;
  hak_stats_get(&s0);
  hkt_run_thread(allocate_and_exit, NULL);
  for (int i = 0; i < LEFT_N; i++)
    if (i % 1000 != 7) hak_free(left_blocks[i]); /* one small block in 1000 stays */
  hkt_run_thread(collect_on_a_fresh_thread, NULL);
  hak_stats_get(&s1);
  cr_expect_gt(s1.abandoned, s0.abandoned, "segments with live blocks stay abandoned");
  cr_expect_leq(s1.committed, s0.committed + 40 * HKT_MiB, "committed %zu after the collect",
                s1.committed);
  size_t fails = 0;
  for (int i = 7; i < LEFT_N; i += 1000) {
    HKT_EXPECT(fails, hkt_check_byte(left_blocks[i], 16, 0x5A) == 16,
               "live block %p changed by the collect", left_blocks[i]);
    hak_free(left_blocks[i]);
  }
  HKT_EXPECT_NONE(fails, "live blocks through a collect without a heap");
  hkt_run_thread(collect_on_a_fresh_thread, NULL);
  cr_expect_eq(collected.abandoned, s0.abandoned);
  cr_expect_eq(collected.in_use, s0.in_use);
}

/* -------------------------------------------------------------------------
** The purge delay.
** ---------------------------------------------------------------------- */

static size_t churn_64mib(void) {
  enum { N = 64 };
  void *blk[N];
  for (int i = 0; i < N; i++) {
    blk[i] = hak_malloc(HKT_MiB - 4096); /* a large block */
    cr_assert_not_null(blk[i]);
    memset(blk[i], 1, HKT_MiB - 4096);
  }
  size_t c = hkt_committed();
  for (int i = 0; i < N; i++) hak_free(blk[i]);
  return c;
}

/* With a delay of -1 (never), only a forced collect returns memory. */
Test(collect, purge_delay_never_waits_for_force) {
  hak_option_set(HAK_OPT_PURGE_DELAY, -1);
  cr_expect_eq(hak_option_get(HAK_OPT_PURGE_DELAY), -1);
  hak_collect(true);
  size_t c0 = hkt_committed();
  size_t full = churn_64mib();
  usleep(50 * 1000);
  hak_collect(false);
  size_t kept = hkt_committed();
  cr_expect_geq(kept, c0 + (full - c0) / 2,
                "purge delay -1: committed fell from %zu to %zu without force", full, kept);
  hak_collect(true);
  size_t after = hkt_committed();
  cr_expect_leq(after, c0 + (full - c0) / 10, "forced collect left %zu of %zu", after, full);
}

/* With a delay of 0, an ordinary collect returns empty memory at once. */
Test(collect, purge_delay_zero_returns_at_once) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 0);
  cr_expect_eq(hak_option_get(HAK_OPT_PURGE_DELAY), 0);
  hak_collect(true);
  size_t c0 = hkt_committed();
  size_t full = churn_64mib();
  hak_collect(false);
  size_t after = hkt_committed();
  cr_expect_leq(after, c0 + (full - c0) / 10, "purge delay 0: %zu of %zu left after collect",
                after, full);
}

/* -------------------------------------------------------------------------
** Free blocks of more than an OS page in a page that stays (one live block
** keeps it) give back the OS pages past their first.
** ---------------------------------------------------------------------- */

#define BIG 16384 /* a class of 1 MiB pages: 64 blocks, 63 when coloured */
#define NBIG 48

/* blk[from..n) := new blocks of `size` bytes, each filled with its seed. */
static void alloc_filled(void **blk, int from, int n, size_t size) {
  for (int i = from; i < n; i++) {
    blk[i] = hak_malloc(size);
    cr_assert_not_null(blk[i]);
    hkt_fill(blk[i], size, hkt_seed(blk[i], size));
  }
}

/* Checks that blk[0..n) kept their seeds, and frees them. */
static void check_and_free(void **blk, int n, size_t size) {
  for (int i = 0; i < n; i++) {
    cr_expect_eq(hkt_check(blk[i], size, hkt_seed(blk[i], size)), size, "block %d", i);
    hak_free(blk[i]);
  }
}

/* Resident OS pages of blocks 1..NBIG-1, of those wholly inside each
** past its first two words (3 per block: the page is coloured, so a block
** starts anywhere in an OS page). */
static size_t big_interiors(void *blk[NBIG]) {
  size_t n = 0;
  for (int i = 1; i < NBIG; i++) {
    uintptr_t lo = ((uintptr_t)blk[i] + 16 + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)blk[i] + BIG) & ~(uintptr_t)4095;
    n += hkt_resident_pages((void *)lo, hi - lo);
  }
  return n;
}

/* Allocates NBIG blocks, fills them, frees all but the first. */
static void big_page_with_one_live(void *blk[NBIG]) {
  alloc_filled(blk, 0, NBIG, BIG);
  cr_assert_eq(big_interiors(blk), (size_t)(NBIG - 1) * 3, "the filled blocks are resident");
  for (int i = 1; i < NBIG; i++) hak_free(blk[i]);
}

/* Takes the blocks again: usable, and the live one never changed. */
static void big_page_reused(void *blk[NBIG]) {
  cr_expect_eq(hkt_check(blk[0], BIG, hkt_seed(blk[0], BIG)), (size_t)BIG, "the live block kept its bytes");
  alloc_filled(blk, 1, NBIG, BIG);
  check_and_free(blk, NBIG, BIG);
}

/* The timed path: a block goes when two walks found it free (delay 0 makes
** every collect a walk). */
Test(collect, free_blocks_of_a_live_page_give_back_their_pages) {
  hak_option_set(HAK_OPT_PURGE_DELAY, 0);
  void *blk[NBIG];
  big_page_with_one_live(blk);
  hak_collect(false);
  size_t seen = big_interiors(blk);
  hak_collect(false);
  size_t after = big_interiors(blk);
  cr_expect_eq(seen, (size_t)(NBIG - 1) * 3, "the first walk only notes the free blocks: %zu resident", seen);
  cr_expect_eq(after, 0, "the second walk purges them: %zu of %d pages resident", after, (NBIG - 1) * 3);
  big_page_reused(blk);
}

/* A forced collect purges at once; a delay of -1 (never) purges only then. */
Test(collect, free_blocks_of_a_live_page_wait_for_force_with_delay_never) {
  hak_option_set(HAK_OPT_PURGE_DELAY, -1);
  void *blk[NBIG];
  big_page_with_one_live(blk);
  hak_collect(false);
  hak_collect(false);
  size_t kept = big_interiors(blk);
  hak_collect(true);
  size_t after = big_interiors(blk);
  cr_expect_eq(kept, (size_t)(NBIG - 1) * 3, "delay -1: %zu resident after two collects", kept);
  cr_expect_eq(after, 0, "force: %zu of %d pages resident", after, (NBIG - 1) * 3);
  big_page_reused(blk);
}

/* -------------------------------------------------------------------------
** A coloured page (the classes above 8 KiB) starts up to 4032 bytes into
** its span, so its carved blocks reach that far past the slices counted
** committed (page_extend counts from the span).  Four 16 KiB blocks end in
** the second slice; when the page goes, that OS page goes back with it.
** ---------------------------------------------------------------------- */

#define SPILL 16384

Test(collect, a_freed_coloured_page_gives_back_its_spill) {
  static void *held[8 * 64];
  size_t nheld = 0;
  void *b[4];
  void *live = hak_malloc(100); /* keeps the segment mapped */
  cr_assert_not_null(live);
  /* the first block of a fresh page with a colour: a page whose colour is 0
     (1 in 64) is filled and held, and the next one tried */
  for (;;) {
    b[0] = hak_malloc(SPILL);
    cr_assert_not_null(b[0]);
    if ((uintptr_t)b[0] % SPILL != 0) break;
    held[nheld++] = b[0];
    for (int i = 1; i < 64; i++) held[nheld++] = hak_malloc(SPILL);
    cr_assert_lt(nheld, sizeof held / sizeof held[0] - 64, "no coloured page in 7");
  }
  for (int i = 1; i < 4; i++) {
    b[i] = hak_malloc(SPILL);
    cr_assert_eq((char *)b[i], (char *)b[0] + (size_t)i * SPILL, "block %d of the page", i);
  }
  char *last = (char *)b[3] + SPILL - 1;
  uintptr_t second_slice = ((uintptr_t)b[0] & ~(uintptr_t)0xffff) + 0x10000;
  cr_assert_geq((uintptr_t)last, second_slice, "the fourth block ends in the second slice");
  *last = 1;
  void *spill = (void *)((uintptr_t)last & ~(uintptr_t)4095);
  cr_assert_eq(hkt_resident_pages(spill, 1), 1);
  for (int i = 0; i < 4; i++) hak_free(b[i]);
  for (size_t i = 0; i < nheld; i++) hak_free(held[i]);
  hak_collect(true);
  cr_expect_eq(hkt_resident_pages(spill, 1), 0, "the OS page past the counted slices stays resident");
  cr_expect_eq((uintptr_t)live >> 22, (uintptr_t)b[0] >> 22, "one segment");
  hak_free(live);
}

/* -------------------------------------------------------------------------
** The one page a class keeps when its last block goes gives back what it
** carved once two looks a purge delay apart found it empty.
** ---------------------------------------------------------------------- */

#define KEPT 512 /* a class of 64 KiB pages */
#define NKEPT 96 /* 48 KiB: one page, 12 OS pages carved */

/* The lowest of blk[0..n). */
static char *lowest(void **blk, int n) {
  char *p = blk[0];
  for (int i = 1; i < n; i++)
    if ((char *)blk[i] < p) p = blk[i];
  return p;
}

/* The slow path's periodic work runs every 64th call: a 6000-byte block
** taken and freed again goes through it each time (its page carves one
** block, which the free puts on local_free). */
static void tick_slow_path(void) {
  for (int k = 0; k < 64; k++) {
    void *q = hak_malloc(6000);
    cr_assert_not_null(q);
    hak_free(q);
  }
}

#define KEPT_SPAN ((size_t)NKEPT * KEPT)

/* With a purge delay of `delay_ms`: one page of NKEPT blocks of KEPT bytes,
** filled, then every block freed but blk[0] when `keep_first`; returns the
** page's lowest block. */
static char *emptied_page(void **blk, long delay_ms, bool keep_first) {
  hak_option_set(HAK_OPT_PURGE_DELAY, delay_ms);
  alloc_filled(blk, 0, NKEPT, KEPT);
  char *start = lowest(blk, NKEPT);
  for (int i = 0; i < NKEPT; i++)
    cr_assert_eq((uintptr_t)blk[i] >> 16, (uintptr_t)start >> 16, "one 64 KiB page holds them all");
  for (int i = keep_first ? 1 : 0; i < NKEPT; i++) hak_free(blk[i]);
  return start;
}

/* Ticks the slow path every `pause_us` until the page at `start` has no OS
** page resident, or `rounds` went by; returns how many are left. */
static size_t wait_for_reset(char *start, int rounds, unsigned pause_us) {
  size_t left = hkt_resident_pages(start, KEPT_SPAN);
  for (int round = 0; round < rounds && left > 0; round++) {
    usleep(pause_us);
    tick_slow_path();
    left = hkt_resident_pages(start, KEPT_SPAN);
  }
  return left;
}

Test(collect, the_empty_page_a_class_keeps_gives_back_its_blocks) {
  void *blk[NKEPT];
  char *start = emptied_page(blk, 1, false);
  size_t kept = hkt_resident_pages(start, KEPT_SPAN);
  cr_expect_geq(kept, KEPT_SPAN / 4096, "the emptied page keeps its blocks at first: %zu pages resident",
                kept);
  size_t left = wait_for_reset(start, 200, 2000);
  cr_expect_eq(left, 0, "left alone for a delay, the page gives its %zu OS pages back: %zu left", kept,
               left);
  alloc_filled(blk, 0, NKEPT, KEPT); /* and carves them again */
  check_and_free(blk, NKEPT, KEPT);
}

/* A class in use at every look keeps its page whole. */
Test(collect, a_page_in_use_keeps_its_blocks) {
  void *blk[NKEPT];
  char *start = emptied_page(blk, 1, true);
  size_t kept = hkt_resident_pages(start, KEPT_SPAN);
  size_t left = wait_for_reset(start, 20, 2000);
  cr_expect_eq(left, kept, "a live block keeps its page whole: %zu of %zu pages resident", left, kept);
  hak_free(blk[0]);
}

/* A page used between two looks, and empty at each (a request at a time
** takes a block and gives it back: the runtime's tasks), keeps its blocks. */
Test(collect, a_page_used_between_the_looks_keeps_its_blocks) {
  void *blk[NKEPT];
  char *start = emptied_page(blk, 1, false);
  size_t kept = hkt_resident_pages(start, KEPT_SPAN);
  for (int round = 0; round < 40; round++) {
    usleep(2000);
    void *q = hak_malloc(KEPT);
    cr_assert_not_null(q);
    memset(q, 1, KEPT);
    hak_free(q);
    tick_slow_path();
  }
  size_t left = hkt_resident_pages(start, KEPT_SPAN);
  cr_expect_eq(left, kept, "a page used between the looks keeps its blocks: %zu of %zu pages resident",
               left, kept);
}

/* A page reset and carved again soon after gave its memory back for
** nothing: the heap's purge delay doubles, and its looks come half as
** often. */
Test(collect, a_page_carved_soon_after_its_reset_doubles_the_delay) {
  void *blk[NKEPT];
  char *start = emptied_page(blk, 50, false);
  size_t left = wait_for_reset(start, 200, 5000);
  cr_assert_eq(left, 0, "the idle page was reset: %zu pages left", left);
  hak_heap_figures_t before, after;
  hak_heap_figures(NULL, &before);
  alloc_filled(blk, 0, NKEPT, KEPT);
  hak_heap_figures(NULL, &after);
  cr_expect_eq(after.purge_delay, 2 * before.purge_delay, "carved again at once: delay %ld ms, then %ld",
               before.purge_delay, after.purge_delay);
  check_and_free(blk, NKEPT, KEPT);
}

/* -------------------------------------------------------------------------
** Statistics and options.
** ---------------------------------------------------------------------- */

Test(collect, stats_follow_allocations) {
  hak_stats_t a, b, c;
  hak_stats_get(&a);
  void *small = hak_malloc(64);
  void *huge = hak_malloc(9 * HKT_MiB);
  cr_assert(small && huge);
  memset(huge, 1, 9 * HKT_MiB);
  hak_stats_get(&b);
  cr_expect_eq(b.huge_blocks, a.huge_blocks + 1);
  cr_expect_geq(b.in_use, a.in_use + 64 + 9 * HKT_MiB);
  cr_expect_geq(b.committed, a.committed + 9 * HKT_MiB);
  cr_expect_gt(b.segments, 0);
  cr_expect_gt(b.mmap_calls, a.mmap_calls, "a huge block is a mapping of its own");
  cr_expect_geq(b.threads, 1);
  hak_free(huge);
  hak_free(small);
  hak_stats_get(&c);
  cr_expect_eq(c.huge_blocks, a.huge_blocks);
  cr_expect_eq(c.in_use, a.in_use);
  cr_expect_leq(c.committed + 9 * HKT_MiB, b.committed, "a freed huge block is unmapped");
  cr_expect_geq(c.committed_peak, b.committed);
}

/* Frees blocks[1 .. STATS_REMOTE - 2] (another thread's). */
#define STATS_REMOTE 500
static void *free_inner_blocks(void *arg) {
  void **blk = arg;
  for (size_t i = 1; i + 1 < STATS_REMOTE; i++) hak_free(blk[i]);
  return NULL;
}

/*
** Blocks another thread frees leave in_use at once, though their page
** still counts them until its owner takes them back: remote_pending until
** then, free blocks of the owner's page (free_in_pages) after.  The first
** and last blocks stay live, so that the pages (at most two: 500 blocks of
** 64 bytes) stay too.
*/
Test(collect, stats_tell_remote_frees_from_live_blocks) {
  static void *blk[STATS_REMOTE];
  hak_stats_t a, b, c, d;
  hak_stats_get(&a);
  for (size_t i = 0; i < STATS_REMOTE; i++) cr_assert_not_null(blk[i] = hak_malloc(64));
  hak_stats_get(&b);
  cr_expect_eq(b.in_use, a.in_use + STATS_REMOTE * 64);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, free_inner_blocks, blk), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  hak_stats_get(&c);
  const size_t freed = (STATS_REMOTE - 2) * 64;
  cr_expect_eq(c.in_use, b.in_use - freed, "in use %zu, %zu before the remote frees", c.in_use, b.in_use);
  cr_expect_eq(c.remote_pending, b.remote_pending + freed, "remote pending %zu", c.remote_pending);
  hak_collect(false); /* the owner takes its pages' remote frees */
  hak_stats_get(&d);
  cr_expect_eq(d.in_use, c.in_use);
  cr_expect_eq(d.remote_pending, b.remote_pending, "remote pending %zu after collect", d.remote_pending);
  cr_expect_geq(d.free_in_pages, c.free_in_pages + freed, "free in pages %zu, %zu before collect",
                d.free_in_pages, c.free_in_pages);
  hak_free(blk[0]);
  hak_free(blk[STATS_REMOTE - 1]);
}

Test(collect, stats_print_writes_a_report) {
  void *p = hak_malloc(1000);
  FILE *f = tmpfile();
  cr_assert_not_null(f);
  hak_stats_print(f);
  long len = ftell(f);
  fclose(f);
  cr_expect_gt(len, 0, "hak_stats_print wrote nothing");
  hak_free(p);
}

Test(collect, options_set_and_get) {
  hak_option_set(HAK_OPT_VERBOSE, 1);
  cr_expect_eq(hak_option_get(HAK_OPT_VERBOSE), 1);
  hak_option_set(HAK_OPT_VERBOSE, 0);
  cr_expect_eq(hak_option_get(HAK_OPT_VERBOSE), 0);
  hak_option_set(HAK_OPT_PURGE_DELAY, 1234);
  cr_expect_eq(hak_option_get(HAK_OPT_PURGE_DELAY), 1234);
  hak_option_set(HAK_OPT_SHOW_STATS, 0);
  cr_expect_eq(hak_option_get(HAK_OPT_SHOW_STATS), 0);
}

/*
** Options are read from HAKMEM_<NAME>.  hakmem may read them as early as
** its own initialisation, so the variable is set by a constructor that runs
** before any default-priority one (the whole test binary sees it; every
** other test here sets the purge delay it needs through the API or forces
** the collect).  An explicit setting in the environment wins.
*/
__attribute__((constructor(101))) static void set_env(void) {
  setenv("HAKMEM_PURGE_DELAY", "777", 0);
}

Test(collect, options_come_from_the_environment) {
  if (strcmp(getenv("HAKMEM_PURGE_DELAY"), "777") != 0)
    cr_skip_test("HAKMEM_PURGE_DELAY was set outside the test");
  cr_expect_eq(hak_option_get(HAK_OPT_PURGE_DELAY), 777,
               "HAKMEM_PURGE_DELAY=777 read as %ld", hak_option_get(HAK_OPT_PURGE_DELAY));
}
