/*
** test_corrupt.c -- a program that breaks the rules, on purpose: a write
** past a block's end into the next free block, a double free, the free of
** an interior or a foreign pointer, a write into a block after its free, a
** write into a guard page.  Built in every mode; what each must do:
**
** - secure (HAK_SECURE=1): every fault stops the program, SIGABRT with a
**   message naming the pointer and the cause (SIGSEGV at a guard page);
** - debug (HAK_DEBUG=1): the frees are checked (double, interior,
**   foreign: SIGABRT, test_debug_abort.c checks the messages); a link
**   overwritten in a free block is followed like in release;
** - release: nothing is checked.  Where this file's scenario has one
**   outcome by construction, the test asserts it (the forged link is handed
**   out, the block freed twice comes back twice); where the outcome
**   depends on what else is mapped, the test is skipped with the reason.
**
** Each fault is a setup, run in the test's process, and a bad act; the
** `.signal` test does both in the test's process, the `_message` test the
** act in a forked child whose stderr it reads (secure builds only).
*/
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* The signal each build dies of, or 0 where it goes on. */
#define IN_SECURE(sig) (HAK_SECURE ? (sig) : 0)
#define CHECKED_FREE (HAK_SECURE || HAK_DEBUG ? SIGABRT : 0)

static void secure_only(void) {
  if (!HAK_SECURE) cr_skip_test("only the secure build checks free-list links and has guard pages");
}

static void checked_frees_only(const char *release_reason) {
  if (!HAK_SECURE && !HAK_DEBUG) cr_skip_test("release: %s", release_reason);
}

/* Allocates blocks of n bytes until `want` comes back (true) or `tries`
** allocations have not returned it; blocks are never freed. */
static bool handed_out(size_t n, const void *want, int tries) {
  for (int i = 0; i < tries; i++)
    if (hkt_launder(hak_malloc(n)) == (uintptr_t)want) return true;
  return false;
}

/* Where a forged link points: memory the program owns, zeroed (a NULL link
** after it, so a plain allocator stops following there). */
static _Alignas(64) char forged_target[256];

/* ---------------------------------------------------------------------------
** A write past a block's end into the next block, which is free: its link
** is overwritten with an address of the writer's choice.
** ------------------------------------------------------------------------ */

static char *victim; /* the free block whose link is overwritten */

static void overflow_setup(void) {
  enum { N = 256 };
  static char *blk[N];
  for (int i = 0; i < N; i++) blk[i] = hak_malloc(64);
  /* a block and its neighbour in memory (secure builds carve in a random
  ** order, so not necessarily the next one handed out) */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      if (blk[j] == blk[i] + 64) {
        victim = blk[j];
        hak_free(victim);
        void *forged = forged_target;
        memset(blk[i], 'x', 64);
        memcpy(blk[i] + 64, &forged, sizeof forged); /* 8 bytes too many */
        return;
      }
  cr_assert_fail("no two neighbouring 64-byte blocks among %d", N);
}

static void overflow_act(void *arg) {
  bool *forged_out = arg;
  *forged_out = handed_out(64, forged_target, 100000);
}

Test(corrupt, overflow_into_free_block, .signal = IN_SECURE(SIGABRT)) {
  bool forged_out = false;
  overflow_setup();
  overflow_act(&forged_out);
  /* release and debug follow the link: malloc returns the forged address */
  cr_expect(forged_out, "the forged link was not handed out");
}

Test(corrupt, overflow_into_free_block_message) {
  secure_only();
  overflow_setup();
  bool dummy;
  HKT_EXPECT_STOP(overflow_act, &dummy, "heap corruption", victim);
}

/* ---------------------------------------------------------------------------
** A write into a block after its free: its link, again.
** ------------------------------------------------------------------------ */

static void use_after_free_setup(void) {
  victim = hak_malloc(48);
  void *keep = hak_malloc(48); /* the page stays in use */
  cr_assert(victim && keep);
  hak_free(victim);
  void *forged = forged_target;
  memcpy(victim, &forged, sizeof forged);
}

static void use_after_free_act(void *arg) {
  bool *forged_out = arg;
  *forged_out = handed_out(48, forged_target, 100000);
}

Test(corrupt, use_after_free_write, .signal = IN_SECURE(SIGABRT)) {
  bool forged_out = false;
  use_after_free_setup();
  use_after_free_act(&forged_out);
  cr_expect(forged_out, "the forged link was not handed out");
}

Test(corrupt, use_after_free_write_message) {
  secure_only();
  use_after_free_setup();
  bool dummy;
  HKT_EXPECT_STOP(use_after_free_act, &dummy, "heap corruption", victim);
}

/* ---------------------------------------------------------------------------
** A double free.  Release: the block's link points at itself, so the class
** hands the same block out again and again once its other blocks are gone.
** ------------------------------------------------------------------------ */

static void double_free_act(void *arg) {
  hak_free(arg);
  hak_free(arg);
}

Test(corrupt, double_free, .signal = CHECKED_FREE) {
  void *p = hak_malloc(72), *keep = hak_malloc(72);
  cr_assert(p && keep);
  double_free_act(p);
  int seen = 0;
  for (int i = 0; i < 5000 && seen < 2; i++) {
    if (hkt_launder(hak_malloc(72)) == (uintptr_t)p) seen++;
  }
  cr_expect_eq(seen, 2, "release: the block freed twice came back %d times, not twice", seen);
}

Test(corrupt, double_free_message) {
  secure_only();
  void *p = hak_malloc(72), *keep = hak_malloc(72);
  cr_assert(p && keep);
  HKT_EXPECT_STOP(double_free_act, p, "double free", p);
}

/* A block freed twice by a thread that does not own it: the second push
** makes thread_free a loop.  Secure and debug builds walk the list when
** the owner takes it and stop; release builds take it whole, unwalked
** (page_collect_thread_free), and hand the block out again, as they do
** after a local double free. */
static void *remote_twice(void *arg) {
  hak_free(arg);
  hak_free(arg);
  return NULL;
}

static void remote_double_free_act(void *arg) {
  hkt_run_thread(remote_twice, arg);
  for (int i = 0; i < 100000; i++) (void)hkt_launder(hak_malloc(72));
}

Test(corrupt, remote_double_free, .signal = CHECKED_FREE) {
  void *p = hak_malloc(72), *keep = hak_malloc(72);
  cr_assert(p && keep);
  hkt_run_thread(remote_twice, p);
  int seen = 0;
  for (int i = 0; i < 100000 && seen < 2; i++) {
    if (hkt_launder(hak_malloc(72)) == (uintptr_t)p) seen++;
  }
  cr_expect_eq(seen, 2, "release: the block freed twice came back %d times, not twice", seen);
}

Test(corrupt, remote_double_free_message) {
  checked_frees_only("a loop in a list taken whole is not walked");
  void *p = hak_malloc(72), *keep = hak_malloc(72);
  cr_assert(p && keep);
  HKT_EXPECT_STOP(remote_double_free_act, p, "double free from another thread", p);
}

/* A double free behind other frees, and one in a huge block. */
Test(corrupt, double_free_behind_others, .signal = IN_SECURE(SIGABRT)) {
  secure_only();
  void *blk[10];
  for (int i = 0; i < 10; i++) blk[i] = hak_malloc(200);
  for (int i = 0; i < 10; i++) hak_free(blk[i]);
  hak_free(blk[4]);
}

Test(corrupt, double_free_huge, .signal = IN_SECURE(SIGABRT)) {
  secure_only();
  void *p = hak_malloc(5 * HKT_MiB);
  hak_free(p);
  hak_free(p); /* its segment is unmapped: "not allocated by hakmem (or freed already)" */
}

/* ---------------------------------------------------------------------------
** The free of an interior pointer.  Release: it goes on the free list as
** if it were a block, and a later allocation hands it out inside the live
** block.
** ------------------------------------------------------------------------ */

static void interior_act(void *arg) { hak_free(arg); }

Test(corrupt, interior_free, .signal = CHECKED_FREE) {
  char *p = hak_malloc(256);
  cr_assert_not_null(p);
  interior_act(p + 64);
  cr_expect(handed_out(256, p + 64, 5000), "release: the interior pointer was not handed out");
}

Test(corrupt, interior_free_message) {
  secure_only();
  char *p = hak_malloc(256);
  HKT_EXPECT_STOP(interior_act, p + 64, "not the start", p + 64);
}

/* ---------------------------------------------------------------------------
** Foreign pointers.  Release reads the segment header at p & ~(4 MiB - 1):
** SIGSEGV where nothing is mapped there (a glibc block, here), a silent
** write into whatever is (a stack address, here): no outcome to assert.
** ------------------------------------------------------------------------ */

static void foreign_act(void *arg) {
  hak_free(hak_malloc(16)); /* hakmem is initialised */
  hak_free(arg);
}

Test(corrupt, foreign_libc_block, .signal = CHECKED_FREE) {
  checked_frees_only("the free reads p & ~(4 MiB - 1): SIGSEGV or a write into whatever is mapped there");
  foreign_act(malloc(64));
}

Test(corrupt, foreign_stack_pointer, .signal = CHECKED_FREE) {
  checked_frees_only("the free reads p & ~(4 MiB - 1): SIGSEGV or a write into whatever is mapped there");
  char on_stack[64];
  foreign_act(on_stack);
}

Test(corrupt, foreign_message) {
  secure_only();
  void *p = malloc(48);
  HKT_EXPECT_STOP(foreign_act, p, "foreign", p);
  free(p);
}

/* ---------------------------------------------------------------------------
** Guard pages.  Release and debug have none: a byte past a large block
** lands in its span's untouched tail (a 100000-byte request is a
** 106496-byte block in a 128 KiB span), asserted below; past a huge block
** or a segment, it lands in whatever mapping follows (skipped).
** ------------------------------------------------------------------------ */

static volatile char *guard_probe;

Test(corrupt, write_past_large_block, .signal = IN_SECURE(SIGSEGV)) {
  char *p = hak_malloc(100000);
  cr_assert_not_null(p);
  size_t n = hak_usable_size(p);
  guard_probe = p + n;
  *guard_probe = 1;
  cr_expect_eq(*guard_probe, 1);
  hak_free(p);
}

Test(corrupt, write_past_huge_block, .signal = IN_SECURE(SIGSEGV)) {
  secure_only();
  char *p = hak_malloc(5 * HKT_MiB + 100);
  cr_assert_not_null(p);
  guard_probe = p + hak_usable_size(p);
  *guard_probe = 1;
}

Test(corrupt, write_past_segment_end, .signal = IN_SECURE(SIGSEGV)) {
  secure_only();
  char *p = hak_malloc(64);
  cr_assert_not_null(p);
  uintptr_t seg = (uintptr_t)p & ~(uintptr_t)(4 * HKT_MiB - 1);
  guard_probe = (char *)(seg + 4 * HKT_MiB - 1); /* its last byte */
  *guard_probe = 1;
}

/* The checks do not fire on a correct program that looks like the faults:
** neighbours written to their last byte, blocks freed and reused, large
** and huge blocks written to their last byte. */
Test(corrupt, correct_program_goes_on) {
  enum { N = 4000 };
  static char *blk[N];
  size_t damaged = 0;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = (size_t)(i * 37 % 3000) + 1;
      blk[i] = hak_malloc(n);
      cr_assert_not_null(blk[i]);
      hkt_fill(blk[i], hak_usable_size(blk[i]), (unsigned)(i + round));
    }
    /* every block whole to its last byte: no neighbour's link or check
    ** wrote into it */
    for (int i = 0; i < N; i++) {
      size_t n = hak_usable_size(blk[i]);
      if (hkt_check(blk[i], n, (unsigned)(i + round)) != n) damaged++;
    }
    for (int i = 0; i < N; i += 2) hak_free(blk[i]);
    for (int i = 1; i < N; i += 2) hak_free(blk[i]);
  }
  cr_expect_eq(damaged, 0, "%zu blocks damaged", damaged);
  char *large = hak_malloc(300000), *huge = hak_malloc(3 * HKT_MiB);
  cr_assert(large && huge);
  size_t large_end = hak_usable_size(large) - 1, huge_end = hak_usable_size(huge) - 1;
  large[large_end] = 1;
  huge[huge_end] = 2;
  large = hak_realloc(large, 900000);
  huge = hak_realloc(huge, 9 * HKT_MiB);
  cr_assert(large && huge);
  /* the old last bytes moved with the blocks, and the new last bytes
  ** (guard pages follow them in secure builds) are writable */
  cr_expect_eq(large[large_end], 1);
  cr_expect_eq(huge[huge_end], 2);
  large[hak_usable_size(large) - 1] = 3;
  huge[hak_usable_size(huge) - 1] = 4;
  cr_expect_eq(large[hak_usable_size(large) - 1], 3);
  cr_expect_eq(huge[hak_usable_size(huge) - 1], 4);
  hak_free(large);
  hak_free(huge);
}
