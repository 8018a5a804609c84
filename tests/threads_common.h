/*
** threads_common.h -- what the thread tests (test_threads.c,
** test_prodcons.c, test_churn.c) share: blocks that carry their own size
** and a pattern, so that any thread can check and free a block it knows
** nothing about, and the size settings of a run (default or soak).
*/
#ifndef HAKMEM_TESTS_THREADS_COMMON_H
#define HAKMEM_TESTS_THREADS_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* -------------------------------------------------------------------------
** A checked block: word 0 is its size, the rest the pattern of
** hkt_seed(p, size) (helpers.h).  A block handed out twice, a stale
** free-list link written into it, or a block moved by realloc without its
** contents all break the pattern.  Blocks are at least 16 bytes.
** ---------------------------------------------------------------------- */
#define HKT_BLOCK_MIN 16

static inline void hkt_block_fill(void *p, size_t size) {
  memcpy(p, &size, sizeof size);
  hkt_fill((char *)p + sizeof size, size - sizeof size, hkt_seed(p, size));
}

/* The block's size if its header and pattern are intact, else 0.  `limit`
** bounds a plausible size (a corrupt header must not send the check off
** the end of the block). */
static inline size_t hkt_block_check(const void *p, size_t limit) {
  size_t size;
  memcpy(&size, p, sizeof size);
  if (size < HKT_BLOCK_MIN || size > limit) return 0;
  size_t n = size - sizeof size;
  if (hkt_check((const char *)p + sizeof size, n, hkt_seed(p, size)) != n) return 0;
  return size;
}

/* -------------------------------------------------------------------------
** The invariant checker, run by a thread on its own default heap every
** `every` steps of a loop (step i), while other threads free into it.
** ---------------------------------------------------------------------- */
static inline void hkt_check_every(size_t i, size_t every) {
  if (i % every == 0) hak_heap_check(NULL);
}

/* -------------------------------------------------------------------------
** Run sizes.  The defaults keep all of `ninja test` short, in every build.
** HAK_SOAK=1 in the environment multiplies the work of every thread test
** by 20 (HAK_SOAK=N by N, for N >= 2).  Sanitizers and -O0 (debug) make
** each operation 5 to 20 times slower: there the default work is cut, the
** soak factor still applies.
** ---------------------------------------------------------------------- */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || HAK_DEBUG
#define HKT_SLOW_BUILD 1
#else
#define HKT_SLOW_BUILD 0
#endif

static inline size_t hkt_soak_factor(void) {
  const char *s = getenv("HAK_SOAK");
  if (!s || !*s) return 1;
  long v = strtol(s, NULL, 10);
  if (v <= 0) return 1;
  return v == 1 ? 20 : (size_t)v;
}

/* `fast` units of work in a release build, `slow` in a slow one, times the
** soak factor. */
static inline size_t hkt_work(size_t fast, size_t slow) {
  return (HKT_SLOW_BUILD ? slow : fast) * hkt_soak_factor();
}

#endif /* HAKMEM_TESTS_THREADS_COMMON_H */
