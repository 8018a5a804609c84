/*
** helpers.h -- shared helpers of the core's Criterion tests.
**
** Every test file links tests/helpers.c.  The helpers know hakmem only
** through hakmem.h and Criterion only through its public headers; they
** never override malloc (Criterion's runner allocates with the C library).
*/
#ifndef HAKMEM_TESTS_HELPERS_H
#define HAKMEM_TESTS_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"

#ifndef HAK_DEBUG
#define HAK_DEBUG 0
#endif
#ifndef HAK_SECURE
#define HAK_SECURE 0
#endif

/* -------------------------------------------------------------------------
** Size limits of the core, as the issue and the architecture state them.
** ---------------------------------------------------------------------- */
#define HKT_KiB ((size_t)1024)
#define HKT_MiB ((size_t)1024 * 1024)
#define HKT_SMALL_MAX ((size_t)1024)        /* pages_direct[] covers 0..1024 */
#define HKT_MEDIUM_MAX (32 * HKT_KiB)       /* largest class block */
#define HKT_LARGE_MAX (2 * HKT_MiB)         /* largest span block; above: huge */

/* -------------------------------------------------------------------------
** Deterministic random numbers (splitmix64 seeding a xorshift64*): every
** run of a test draws the same sequence, so a failure can be replayed.
** ---------------------------------------------------------------------- */
typedef struct hkt_rng_s {
  uint64_t state; /* never 0 */
} hkt_rng_t;

void hkt_rng_init(hkt_rng_t *rng, uint64_t seed);
uint64_t hkt_rng_next(hkt_rng_t *rng);
/* Uniform in [lo, hi] (inclusive), hi >= lo. */
size_t hkt_rng_range(hkt_rng_t *rng, size_t lo, size_t hi);
/* Log-uniform in [lo, hi]: as many draws in 1..2 KiB as in 1..2 MiB. */
size_t hkt_rng_log(hkt_rng_t *rng, size_t lo, size_t hi);
/* A size drawn like a general program's: mostly small (<= 1 KiB), some
** medium, rarely large, very rarely huge.  Big blocks are rare enough that
** filling and checking every byte of every block stays cheap. */
size_t hkt_rng_size(hkt_rng_t *rng);

/* -------------------------------------------------------------------------
** Block patterns.  A block's bytes are a function of a seed made from its
** address and size, so a block overwritten by another one (overlap, a
** block handed out twice, a stale free-list pointer) does not match its
** own pattern.  After realloc the new block must still hold the pattern of
** the old seed in its first min(old, new) bytes.
** ---------------------------------------------------------------------- */
uint64_t hkt_seed(const void *p, size_t size);
void hkt_fill(void *p, size_t len, uint64_t seed);
/* Returns the offset of the first byte that differs, or len when all match. */
size_t hkt_check(const void *p, size_t len, uint64_t seed);
/* Returns the offset of the first byte != value, or len when all match. */
size_t hkt_check_byte(const void *p, size_t len, unsigned char value);

/* -------------------------------------------------------------------------
** Small facts.
** ---------------------------------------------------------------------- */
static inline bool hkt_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

/* p as a number the compiler knows nothing of: hak_malloc is declared
** malloc-like, so GCC folds "hak_malloc(n) == p" to false for any p the
** program holds, even one hakmem does hand out (a block freed twice, a
** forged free-list link). */
static inline uintptr_t hkt_launder(const void *p) {
  uintptr_t x = (uintptr_t)p;
  __asm__ volatile("" : "+r"(x));
  return x;
}

/* Round n up to a multiple of m (m > 0). */
static inline size_t hkt_round_up(size_t n, size_t m) {
  return (n + m - 1) / m * m;
}

/* The class a small request of n bytes (n <= HKT_SMALL_MAX) must land in:
** classes every 8 B up to 128 B, then 8 classes per doubling (every 16 B
** to 256, every 32 B to 512, every 64 B to 1024).  `granule` is 8 for the
** 8-byte API (hak_heap_malloc8) and 16 for the malloc API, whose blocks
** keep 16-byte alignment: the smallest class that fits and is a multiple of
** the granule.  A request of 0 bytes gets the smallest class (the 8-byte
** API may also give it 16 B, the malloc API's smallest: test_classes.c). */
size_t hkt_small_class(size_t n, size_t granule);

/* Committed bytes now (hak_stats_get). */
size_t hkt_committed(void);

/* Resident 4 KiB pages in [p, p + n) (mincore), which must be mapped;
** SIZE_MAX if mincore fails. */
size_t hkt_resident_pages(const void *p, size_t n);

/* Runs fn(arg) on a new thread and waits for it. */
void hkt_run_thread(void *(*fn)(void *), void *arg);

/* -------------------------------------------------------------------------
** Programs that must stop: bad(arg) runs in a forked child whose stderr is
** kept in out (NUL-terminated); returns true if the child died of SIGABRT.
** ---------------------------------------------------------------------- */
bool hkt_run_child(void (*bad)(void *), void *arg, char *out, size_t outlen);
/* Does `text` mention the pointer p, in hex (any case)? */
bool hkt_names_pointer(const char *text, const void *p);
/* Does `text` contain `word`, ignoring case? */
bool hkt_mentions(const char *text, const char *word);
/* In a Criterion test: bad(arg) must stop the program with a message that
** mentions `cause` and names the pointer p. */
#define HKT_EXPECT_STOP(bad, arg, cause, p)                                             \
  do {                                                                                  \
    char hkt_out_[4096];                                                                \
    const void *hkt_p_ = (p);                                                           \
    cr_expect(hkt_run_child((bad), (arg), hkt_out_, sizeof hkt_out_), "not stopped: \"%s\"", \
              hkt_out_);                                                                \
    cr_expect(hkt_mentions(hkt_out_, (cause)), "the cause is not named: \"%s\"", hkt_out_); \
    cr_expect(hkt_names_pointer(hkt_out_, hkt_p_), "the message does not name %p: \"%s\"", \
              hkt_p_, hkt_out_);                                                        \
  } while (0)

/* -------------------------------------------------------------------------
** Reporting a long table of cases: the first HKT_REPORT_MAX failures each
** get their own cr_expect line, the rest are only counted, and the test
** ends with one expectation on the count.  A test that breaks on every size
** stays readable.
** ---------------------------------------------------------------------- */
#define HKT_REPORT_MAX 10

/* Inside a loop over cases: `fails` counts failed cases; the first ones
** report with the printf-style message.  Needs criterion/criterion.h. */
#define HKT_EXPECT(fails, cond, ...)                                     \
  do {                                                                   \
    if (!(cond) && (fails)++ < HKT_REPORT_MAX) cr_expect(false, __VA_ARGS__); \
  } while (0)

/* After the loop: one line for the whole table. */
#define HKT_EXPECT_NONE(fails, what)                                     \
  cr_expect((fails) == 0, "%zu case(s) failed: %s", (size_t)(fails), (what))

#endif /* HAKMEM_TESTS_HELPERS_H */
