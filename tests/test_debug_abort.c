/*
** test_debug_abort.c -- the debug build stops a bad free: a double free, or
** a free of a pointer hakmem does not own, aborts with a message naming
** the pointer and the cause.  Only the debug build checks (HAK_DEBUG=1);
** in the release build these tests are skipped.
**
** Criterion runs each test in a process of its own, so an abort fails or
** passes one test only.  The message tests fork a child of their own
** (hkt_run_child) to read what it wrote to stderr before it died.
*/
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>

#include "helpers.h"
#include "fixture.h"

TestSuite(debug_abort, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/*
** In the debug build these tests must die of SIGABRT.  In the release build
** they are skipped before the bad free; Criterion would count a skipped
** test that expected a signal as failed, so the signal is expected only
** where the check exists.
*/
#define ABORTS (HAK_DEBUG ? SIGABRT : 0)

static void debug_only(void) {
  if (!HAK_DEBUG) cr_skip_test("only the debug build checks frees (HAK_DEBUG=0)");
}

/* -------------------------------------------------------------------------
** Double frees, in every size range and API.
** ---------------------------------------------------------------------- */

static void double_free(size_t n) {
  void *p = hak_malloc(n);
  cr_assert_not_null(p);
  void *keep = hak_malloc(n); /* the page stays in use: not a fresh page's first free */
  hak_free(p);
  hak_free(p);
  hak_free(keep);
}

Test(debug_abort, double_free_small, .signal = ABORTS) {
  debug_only();
  double_free(40);
}

Test(debug_abort, double_free_last_direct_class, .signal = ABORTS) {
  debug_only();
  double_free(1024);
}

Test(debug_abort, double_free_medium, .signal = ABORTS) {
  debug_only();
  double_free(20000);
}

Test(debug_abort, double_free_large, .signal = ABORTS) {
  debug_only();
  double_free(500000);
}

Test(debug_abort, double_free_huge, .signal = ABORTS) {
  debug_only();
  double_free(5 * HKT_MiB);
}

Test(debug_abort, double_free_sized, .signal = ABORTS) {
  debug_only();
  void *p = hak_heap_malloc8(NULL, 56);
  void *keep = hak_heap_malloc8(NULL, 56);
  cr_assert(p && keep);
  hak_free_sized(p, 56);
  hak_free_sized(p, 56);
  hak_free_sized(keep, 56);
}

/* The freed block sits behind others in the free list, not at its head. */
Test(debug_abort, double_free_behind_other_frees, .signal = ABORTS) {
  debug_only();
  void *blk[10];
  for (int i = 0; i < 10; i++) blk[i] = hak_malloc(64);
  for (int i = 0; i < 10; i++) hak_free(blk[i]);
  hak_free(blk[3]);
}

/* hakmem's realloc(p, 0) frees p: a later free of p is a double free. */
Test(debug_abort, free_after_realloc_to_zero, .signal = ABORTS) {
  debug_only();
  void *p = hak_malloc(100);
  void *keep = hak_malloc(100);
  cr_assert_null(hak_realloc(p, 0));
  hak_free(p);
  hak_free(keep);
}

Test(debug_abort, double_free_in_an_explicit_heap, .signal = ABORTS) {
  debug_only();
  hak_heap_t *h = hak_heap_new();
  void *p = hak_heap_malloc(h, 300);
  void *keep = hak_heap_malloc(h, 300);
  hak_free(p);
  hak_free(p);
  hak_free(keep);
}

/* -------------------------------------------------------------------------
** Pointers hakmem does not own.
** ---------------------------------------------------------------------- */

static char a_static_buffer[128];

Test(debug_abort, free_of_a_stack_pointer, .signal = ABORTS) {
  debug_only();
  char on_stack[64];
  void *init = hak_malloc(16); /* hakmem is initialised */
  cr_assert_not_null(init);
  hak_free(on_stack);
}

Test(debug_abort, free_of_a_static_pointer, .signal = ABORTS) {
  debug_only();
  void *init = hak_malloc(16);
  cr_assert_not_null(init);
  hak_free(a_static_buffer);
}

Test(debug_abort, free_of_a_libc_block, .signal = ABORTS) {
  debug_only();
  void *p = malloc(64);
  void *init = hak_malloc(16);
  cr_assert_not_null(init);
  hak_free(p);
}

Test(debug_abort, free_of_a_big_libc_block, .signal = ABORTS) {
  debug_only();
  void *p = malloc(4 * HKT_MiB); /* a mapping of the C library's own */
  void *init = hak_malloc(16);
  cr_assert_not_null(init);
  hak_free(p);
}

Test(debug_abort, free_of_an_interior_pointer, .signal = ABORTS) {
  debug_only();
  char *p = hak_malloc(256);
  hak_free(p + 64);
}

Test(debug_abort, sized_free_of_a_libc_block, .signal = ABORTS) {
  debug_only();
  void *p = malloc(40);
  void *init = hak_malloc(16);
  cr_assert_not_null(init);
  hak_free_sized(p, 40);
}

/* A sized free that states more than the block holds (a C extension
** passing Lua a wrong osize): the size is only read by the debug check. */
Test(debug_abort, sized_free_larger_than_the_block, .signal = ABORTS) {
  debug_only();
  void *p = hak_malloc(40);
  void *keep = hak_malloc(40);
  cr_assert(p && keep);
  hak_free_sized(p, 4096);
}

/* -------------------------------------------------------------------------
** The message names the pointer and the cause.
** ---------------------------------------------------------------------- */

static void *the_pointer; /* set by the child before the bad free */

static void double_free_child(void *arg) {
  (void)arg;
  void *keep = hak_malloc(72);
  hak_free(the_pointer);
  hak_free(the_pointer);
  hak_free(keep);
}

Test(debug_abort, double_free_message_names_pointer_and_cause) {
  debug_only();
  the_pointer = hak_malloc(72); /* made before the fork: the same in the child */
  char out[4096];
  bool aborted = hkt_run_child(double_free_child, NULL, out, sizeof out);
  cr_expect(aborted, "a double free did not abort; stderr: \"%s\"", out);
  cr_expect(hkt_names_pointer(out, the_pointer), "the message does not name %p: \"%s\"",
            the_pointer, out);
  cr_expect(hkt_mentions(out, "double"), "the message does not say \"double free\": \"%s\"", out);
  hak_free(the_pointer); /* freed twice in the child only */
}

static void foreign_free_child(void *arg) {
  (void)arg;
  hak_free(the_pointer);
}

Test(debug_abort, foreign_free_message_names_pointer_and_cause) {
  debug_only();
  hak_free(hak_malloc(16));
  the_pointer = malloc(48);
  char out[4096];
  bool aborted = hkt_run_child(foreign_free_child, NULL, out, sizeof out);
  cr_expect(aborted, "a foreign free did not abort; stderr: \"%s\"", out);
  cr_expect(hkt_names_pointer(out, the_pointer), "the message does not name %p: \"%s\"",
            the_pointer, out);
  cr_expect(hkt_mentions(out, "not owned") || hkt_mentions(out, "foreign") || hkt_mentions(out, "invalid") ||
                hkt_mentions(out, "not a hakmem") || hkt_mentions(out, "unknown"),
            "the message does not say the pointer is not hakmem's: \"%s\"", out);
  free(the_pointer);
}

/* -------------------------------------------------------------------------
** The checks do not fire on correct programs.
** ---------------------------------------------------------------------- */

Test(debug_abort, correct_frees_do_not_abort) {
  enum { N = 10000 };
  static void *blk[N];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) blk[i] = hak_malloc((size_t)(i % 3000));
    for (int i = N - 1; i >= 0; i--) hak_free(blk[i]);
  }
  void *p = hak_heap_malloc8(NULL, 40);
  hak_free_sized(p, 40);
  p = hak_malloc(3 * HKT_MiB);
  hak_free(p);
  hak_free(NULL);
  cr_expect(true, "no abort");
}
