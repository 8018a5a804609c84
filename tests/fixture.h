/*
** fixture.h -- the fixture every test suite that uses the core declares:
**
**   TestSuite(name, .init = hkt_fixture_init, .fini = hkt_fixture_fini);
**
** Before each test it notes what the test thread's default heap holds;
** after it, the invariant checker walks that heap (hak_heap_check aborts on
** a broken invariant, which fails the test), the heap takes back what other
** threads freed into it (hak_collect(false)) and is walked again, and it
** must hold what it held before: a test frees what it allocates.
**
** Header only, included by the Criterion tests and by the plain programs
** for TSan (standalone.h runs a suite's .init and .fini the same way).
*/
#ifndef HAKMEM_TESTS_FIXTURE_H
#define HAKMEM_TESTS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "hakmem.h"

/* The figures at the start of the current test (each test runs in a
** process of its own). */
static struct {
  hak_heap_figures_t heap;
  size_t huge_blocks;
} hkt_fixture_start;

static size_t hkt_fixture_huge_blocks(void) {
  hak_stats_t st;
  hak_stats_counters(&st);
  return st.huge_blocks;
}

static void hkt_fixture_init(void) {
  hak_heap_figures(NULL, &hkt_fixture_start.heap);
  hkt_fixture_start.huge_blocks = hkt_fixture_huge_blocks();
}

/*
** Criterion has already sent the test's result when .fini runs: a failed
** cr_expect there is printed but fails nothing.  So a broken figure stops
** the test's process, like a broken invariant (hak_heap_check): the test
** is reported as crashed, after this message.
*/
static void hkt_fixture_fail(const char *what, size_t after, size_t before) {
  fprintf(stderr, "fixture: %s: %zu after the test, %zu before\n", what, after, before);
  fflush(stderr);
  abort();
}

static void hkt_fixture_fini(void) {
  hak_heap_check(NULL); /* as the test left it, remote frees pending */
  hak_collect(false);
  hak_heap_check(NULL);
  hak_heap_figures_t now;
  hak_heap_figures(NULL, &now);
  if (now.in_use != hkt_fixture_start.heap.in_use)
    hkt_fixture_fail("bytes in blocks of the test thread's heap", now.in_use,
                     hkt_fixture_start.heap.in_use);
  size_t huge = hkt_fixture_huge_blocks();
  if (huge != hkt_fixture_start.huge_blocks)
    hkt_fixture_fail("huge blocks live", huge, hkt_fixture_start.huge_blocks);
}

#endif /* HAKMEM_TESTS_FIXTURE_H */
