/*
** test_oom.c -- out of memory: every allocation function returns NULL with
** errno ENOMEM when the address space runs out, nothing crashes, and
** allocation works again once memory is freed; a Lua state raises "not
** enough memory", pcall catches it and the state goes on.
**
** The address space is capped with setrlimit(RLIMIT_AS) a little above what
** the process maps now (every test runs in its own process: Criterion forks
** one per test).  Only the soft limit moves, so the test lifts it again
** before it reports: Criterion's own reporting allocates.  While the cap
** holds, results go into local variables, never into cr_ assertions.
**
** It works under AddressSanitizer too: the sanitizer reserves its shadow
** and its allocator's range at start, before the cap, and no test calls the
** C library's malloc while the cap holds.  (ThreadSanitizer never runs
** Criterion, see configure.py.)
*/
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(oom, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define OOM_HEADROOM (64 * HKT_MiB) /* address space left under the cap */
#define OOM_TiB ((size_t)1 << 40)

/* -------------------------------------------------------------------------
** The cap.
** ---------------------------------------------------------------------- */

/* Bytes of address space the process maps now (/proc/self/statm). */
static size_t oom_mapped(void) {
  unsigned long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  cr_assert_not_null(f, "cannot read /proc/self/statm");
  cr_assert_eq(fscanf(f, "%lu", &pages), 1);
  fclose(f);
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* The stack grows into the address space too: make it grow now, so that no
** call under the cap faults for want of stack. */
static void __attribute__((noinline)) oom_grow_stack(void) {
  volatile char buf[512 * 1024];
  memset((char *)buf, 1, sizeof buf);
}

/* Caps the address space at what is mapped now plus `headroom`. */
static void oom_cap(size_t headroom) {
  struct rlimit rl;
  oom_grow_stack();
  cr_assert_eq(getrlimit(RLIMIT_AS, &rl), 0);
  rl.rlim_cur = oom_mapped() + headroom;
  cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0, "setrlimit: %s", strerror(errno));
}

/* Back to the hard limit (unlimited unless the shell set one). */
static void oom_lift(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_AS, &rl);
}

/* -------------------------------------------------------------------------
** Exhaustion.  The blocks are chained through their first word, so holding
** millions of them needs no memory of its own; each also carries its
** pattern after the link, checked before it is freed.
** ---------------------------------------------------------------------- */

typedef void *(*oom_alloc_fn)(size_t size, void *arg);

typedef struct oom_run {
  size_t count;     /* blocks obtained before the first NULL */
  int err;          /* errno of that NULL */
  size_t corrupt;   /* blocks whose pattern changed */
  size_t misaligned;
  void *chain;      /* the blocks, linked through their first word */
} oom_run;

static void oom_exhaust(oom_run *r, oom_alloc_fn fn, void *arg, size_t size, size_t align) {
  memset(r, 0, sizeof *r);
  for (;;) {
    errno = 0;
    void **p = fn(size, arg);
    if (!p) {
      r->err = errno;
      return;
    }
    if (!hkt_aligned(p, align)) r->misaligned++;
    *p = r->chain;
    r->chain = p;
    hkt_fill(p + 1, size - sizeof(void *), hkt_seed(p, size));
    r->count++;
  }
}

static void oom_free_all(oom_run *r, size_t size) {
  void **p = r->chain;
  while (p) {
    void **next = *p;
    if (hkt_check(p + 1, size - sizeof(void *), hkt_seed(p, size)) != size - sizeof(void *))
      r->corrupt++;
    hak_free(p);
    p = next;
  }
  r->chain = NULL;
}

static void *oom_malloc(size_t size, void *arg) {
  (void)arg;
  return hak_malloc(size);
}

static void *oom_calloc(size_t size, void *arg) {
  (void)arg;
  unsigned char *p = hak_calloc(1, size);
  /* calloc's zeroes: first, last and middle byte (all of them is slow) */
  if (p && (p[0] | p[size / 2] | p[size - 1])) *(int *)arg += 1;
  return p;
}

static void *oom_aligned(size_t size, void *arg) { return hak_aligned_alloc(*(size_t *)arg, size); }

static void *oom_heap_malloc(size_t size, void *arg) { return hak_heap_malloc(arg, size); }

/* After an exhaustion is freed, one block of each kind must come again:
** returns the sizes that failed, as bits of kinds_sizes (0: all worked). */
static const size_t kinds_sizes[] = {16, 100, 1000, 20000, 300 * 1024, 3 * 1024 * 1024};
#define KINDS_FMT "sizes that failed (bits of 16, 100, 1000, 20000, 300 KiB, 3 MiB): 0x%x"

static unsigned oom_kinds_fail(void) {
  unsigned failed = 0;
  for (unsigned i = 0; i < sizeof kinds_sizes / sizeof kinds_sizes[0]; i++) {
    void *p = hak_malloc(kinds_sizes[i]);
    if (!p) {
      failed |= 1u << i;
      continue;
    }
    memset(p, 0x5A, kinds_sizes[i]);
    hak_free(p);
  }
  return failed;
}

/* One size exhausted, freed, then exhausted again: the second round must
** get (nearly) as far as the first, from memory hakmem took back. */
static void oom_round_trip(const char *what, oom_alloc_fn fn, void *arg, size_t size, size_t align) {
  oom_run a, b;
  unsigned kinds;
  oom_cap(OOM_HEADROOM);
  oom_exhaust(&a, fn, arg, size, align);
  oom_free_all(&a, size);
  kinds = oom_kinds_fail();
  oom_exhaust(&b, fn, arg, size, align);
  oom_free_all(&b, size);
  oom_lift();
  cr_log_info("%s of %zu B: %zu blocks, then %zu after freeing them", what, size, a.count, b.count);
  cr_expect_gt(a.count, 0, "%s: not one block of %zu B under the cap", what, size);
  cr_expect_lt((double)a.count * (double)size, 4.0 * OOM_HEADROOM + 64.0 * HKT_MiB,
               "%s: %zu blocks of %zu B: more than the address space holds", what, a.count, size);
  cr_expect_eq(a.err, ENOMEM, "%s: NULL with errno %d (%s)", what, a.err, strerror(a.err));
  cr_expect_eq(b.err, ENOMEM, "%s: NULL with errno %d the second time", what, b.err);
  cr_expect_eq(a.corrupt + b.corrupt, 0, "%s: %zu blocks changed", what, a.corrupt + b.corrupt);
  cr_expect_eq(a.misaligned + b.misaligned, 0, "%s: misaligned blocks", what);
  cr_expect_eq(kinds, 0, "%s: after freeing, " KINDS_FMT, what, kinds);
  cr_expect_geq(b.count, a.count - a.count / 10,
                "%s: %zu blocks after freeing, %zu before: freed memory not reused", what, b.count,
                a.count);
}

/* -------------------------------------------------------------------------
** Requests no machine could back: no cap needed, every mode.
** ---------------------------------------------------------------------- */

#define EXPECT_ENOMEM(call)                                                      \
  do {                                                                           \
    errno = 0;                                                                   \
    void *q_ = (call);                                                           \
    cr_expect_null(q_, #call " returned %p", q_);                                \
    cr_expect_eq(errno, ENOMEM, #call ": errno %d (%s)", errno, strerror(errno)); \
  } while (0)

Test(oom, requests_no_machine_could_back) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  EXPECT_ENOMEM(hak_malloc(SIZE_MAX / 2));
  EXPECT_ENOMEM(hak_malloc(SIZE_MAX / 2 + 1));
  EXPECT_ENOMEM(hak_malloc(SIZE_MAX));
  EXPECT_ENOMEM(hak_malloc(64 * OOM_TiB));
  EXPECT_ENOMEM(hak_calloc(1, 64 * OOM_TiB));
  EXPECT_ENOMEM(hak_calloc(SIZE_MAX / 2, 4)); /* count * size overflows */
  EXPECT_ENOMEM(hak_aligned_alloc(64, 64 * OOM_TiB));
  EXPECT_ENOMEM(hak_aligned_alloc((size_t)1 << 30, 64 * OOM_TiB));
  EXPECT_ENOMEM(hak_aligned_alloc((size_t)1 << 62, 16)); /* no such range */
  EXPECT_ENOMEM(hak_heap_malloc(h, 64 * OOM_TiB));
  EXPECT_ENOMEM(hak_heap_calloc(h, 64 * OOM_TiB, 1));
  EXPECT_ENOMEM(hak_heap_malloc8(h, 64 * OOM_TiB));
  /* a failed realloc leaves the block as it was */
  char *p = hak_malloc(100), *huge = hak_malloc(3 * HKT_MiB);
  cr_assert(p && huge);
  hkt_fill(p, 100, 7);
  hkt_fill(huge, 3 * HKT_MiB, 8);
  EXPECT_ENOMEM(hak_realloc(p, 64 * OOM_TiB));
  EXPECT_ENOMEM(hak_realloc(p, SIZE_MAX));
  EXPECT_ENOMEM(hak_realloc(huge, 64 * OOM_TiB)); /* mremap's path */
  EXPECT_ENOMEM(hak_heap_realloc8(h, p, 100, 64 * OOM_TiB));
  cr_expect_eq(hkt_check(p, 100, 7), 100, "a failed realloc changed the block");
  cr_expect_eq(hkt_check(huge, 3 * HKT_MiB, 8), 3 * HKT_MiB, "a failed realloc changed the huge block");
  hak_free(p);
  hak_free(huge);
  hak_heap_destroy(h);
  cr_expect_eq(oom_kinds_fail(), 0);
}

/* -------------------------------------------------------------------------
** Under the cap: each function until exhaustion.
** ---------------------------------------------------------------------- */

Test(oom, malloc_small_until_exhaustion) {
  oom_round_trip("hak_malloc", oom_malloc, NULL, 48, 16);
}

Test(oom, malloc_small_odd_sizes_until_exhaustion) {
  oom_round_trip("hak_malloc", oom_malloc, NULL, 1000, 16);
}

Test(oom, malloc_medium_until_exhaustion) {
  oom_round_trip("hak_malloc", oom_malloc, NULL, 20000, 16);
}

Test(oom, malloc_large_until_exhaustion) {
  oom_round_trip("hak_malloc", oom_malloc, NULL, 300 * 1024, 16);
}

Test(oom, malloc_huge_until_exhaustion) {
  oom_round_trip("hak_malloc", oom_malloc, NULL, 5 * HKT_MiB, 16);
}

Test(oom, calloc_until_exhaustion) {
  int dirty = 0;
  oom_round_trip("hak_calloc", oom_calloc, &dirty, 256, 16);
  cr_expect_eq(dirty, 0, "%d calloc blocks were not zero", dirty);
}

Test(oom, calloc_large_until_exhaustion) {
  int dirty = 0;
  oom_round_trip("hak_calloc", oom_calloc, &dirty, 1536 * 1024, 16);
  cr_expect_eq(dirty, 0, "%d calloc blocks were not zero", dirty);
}

Test(oom, aligned_alloc_until_exhaustion) {
  size_t align = 256;
  oom_round_trip("hak_aligned_alloc(256)", oom_aligned, &align, 256, align);
  align = 128 * 1024;
  oom_round_trip("hak_aligned_alloc(128 KiB)", oom_aligned, &align, 64, align);
}

Test(oom, heap_malloc_until_exhaustion) {
  hak_heap_t *h = hak_heap_new();
  cr_assert_not_null(h);
  oom_round_trip("hak_heap_malloc", oom_heap_malloc, h, 200, 16);
  hak_heap_destroy(h);
}

/* Single requests over the cap, with memory to spare for smaller ones. */
Test(oom, requests_over_the_cap) {
  int e_huge, e_calloc, e_aligned, e_big_align, e_heap, e_grow, e_grow_huge, e_shrink;
  void *r_huge, *r_calloc, *r_aligned, *r_big_align, *r_heap, *r_grow, *r_grow_huge;
  void *r_shrink;
  size_t intact_small, intact_huge;
  unsigned failed_after;
  hak_heap_t *h = hak_heap_new();
  char *p = hak_malloc(5000), *huge = hak_malloc(8 * HKT_MiB);
  cr_assert(h && p && huge);
  hkt_fill(p, 5000, 1);
  hkt_fill(huge, 8 * HKT_MiB, 2);
  oom_cap(OOM_HEADROOM);
  errno = 0, r_huge = hak_malloc(2 * OOM_HEADROOM), e_huge = errno;
  errno = 0, r_calloc = hak_calloc(2, OOM_HEADROOM), e_calloc = errno;
  errno = 0, r_aligned = hak_aligned_alloc(HKT_MiB, 2 * OOM_HEADROOM), e_aligned = errno;
  errno = 0, r_big_align = hak_aligned_alloc((size_t)1 << 30, 64), e_big_align = errno;
  errno = 0, r_heap = hak_heap_malloc(h, 2 * OOM_HEADROOM), e_heap = errno;
  errno = 0, r_grow = hak_realloc(p, 2 * OOM_HEADROOM), e_grow = errno;
  errno = 0, r_grow_huge = hak_realloc(huge, 2 * OOM_HEADROOM), e_grow_huge = errno;
  /* a huge block shrunk to a small one needs a new block: there is room */
  errno = 0, r_shrink = hak_realloc(huge, 100), e_shrink = errno;
  intact_small = hkt_check(p, 5000, 1);
  intact_huge = r_shrink ? hkt_check(r_shrink, 100, 2) : 0;
  hak_free(p);
  hak_free(r_shrink);
  hak_free(r_big_align);
  failed_after = oom_kinds_fail();
  oom_lift();
  cr_expect_null(r_huge);
  cr_expect_eq(e_huge, ENOMEM);
  cr_expect_null(r_calloc);
  cr_expect_eq(e_calloc, ENOMEM);
  cr_expect_null(r_aligned);
  cr_expect_eq(e_aligned, ENOMEM);
  /* a 1 GiB alignment takes only the block's size when the mapping lands
     aligned at the first try, the size plus 1 GiB otherwise */
  if (r_big_align) cr_expect(hkt_aligned(r_big_align, (size_t)1 << 30));
  else cr_expect_eq(e_big_align, ENOMEM);
  cr_expect_null(r_heap);
  cr_expect_eq(e_heap, ENOMEM);
  cr_expect_null(r_grow);
  cr_expect_eq(e_grow, ENOMEM);
  cr_expect_null(r_grow_huge);
  cr_expect_eq(e_grow_huge, ENOMEM);
  cr_expect_not_null(r_shrink, "shrinking a huge block failed: errno %d", e_shrink);
  cr_expect_eq(intact_small, 5000, "a failed realloc changed the block");
  cr_expect_eq(intact_huge, 100, "the shrunk block lost its prefix");
  cr_expect_eq(failed_after, 0, KINDS_FMT, failed_after);
  hak_heap_destroy(h);
}

/*
** realloc under exhaustion: growing fails with the block intact; shrinking
** a block to a size that needs another class keeps the block (it holds the
** new size already) instead of failing.
*/
Test(oom, realloc_when_exhausted) {
  oom_run r;
  char *small = hak_malloc(64), *big = hak_malloc(100 * 1024);
  cr_assert(small && big);
  hkt_fill(small, 64, 3);
  hkt_fill(big, 100 * 1024, 4);
  oom_cap(OOM_HEADROOM);
  oom_exhaust(&r, oom_malloc, NULL, 16, 16);
  errno = 0;
  void *grown = hak_realloc(small, 100000);
  int e_grow = errno;
  void *shrunk = hak_realloc(big, 100);
  size_t intact_small = hkt_check(small, 64, 3);
  size_t intact_big = shrunk ? hkt_check(shrunk, 100, 4) : 0;
  void *zero = hak_realloc(shrunk, 0); /* a free */
  oom_free_all(&r, 16);
  void *again = hak_realloc(small, 100000);
  oom_lift();
  cr_expect_null(grown);
  cr_expect_eq(e_grow, ENOMEM);
  cr_expect_not_null(shrunk, "a shrinking realloc failed when memory ran out");
  cr_expect_eq(intact_small, 64);
  cr_expect_eq(intact_big, 100);
  cr_expect_null(zero);
  cr_expect_eq(r.corrupt, 0);
  cr_expect_not_null(again, "growing failed after memory was freed");
  cr_expect_eq(hkt_check(again, 64, 3), 64);
  hak_free(again);
}

/* A heap made under exhaustion, and one made when there is room again. */
Test(oom, heaps_when_exhausted) {
  oom_run r;
  oom_cap(OOM_HEADROOM);
  oom_exhaust(&r, oom_malloc, NULL, 32, 16);
  errno = 0;
  hak_heap_t *h = hak_heap_new();
  int e_new = errno;
  void *in_h = h ? hak_heap_malloc(h, 32) : NULL;
  int e_in_h = errno;
  oom_free_all(&r, 32);
  hak_heap_t *h2 = hak_heap_new();
  void *in_h2 = h2 ? hak_heap_malloc(h2, 5000) : NULL;
  if (in_h2) memset(in_h2, 1, 5000);
  hak_heap_destroy(h);
  hak_heap_destroy(h2);
  oom_lift();
  /* the heap structure may come from a chunk mapped before: either works */
  if (!h) cr_expect_eq(e_new, ENOMEM);
  else cr_expect(in_h == NULL && e_in_h == ENOMEM, "a new heap allocated under exhaustion");
  cr_expect_not_null(h2);
  cr_expect_not_null(in_h2);
  cr_expect_eq(r.corrupt, 0);
}

/* -------------------------------------------------------------------------
** A Lua state on an exhausted machine (no limit of its own).
** ---------------------------------------------------------------------- */

static const char *grow_script =
  "local t = {}\n"
  "for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end\n";

Test(oom, lua_state_raises_not_enough_memory_and_goes_on) {
  char err1[64] = "", err2[64] = "";
  int st1, st2, st3;
  long long sum = 0;
  lua_State *L = hakl_newstate(NULL);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  oom_cap(OOM_HEADROOM);
  /* a table grown until the address space is gone */
  st1 = lt_run(L, grow_script, 0);
  if (st1 != LUA_OK) snprintf(err1, sizeof err1, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  /* one string larger than the whole cap */
  st2 = lt_run(L, "return #string.rep('y', 256 * 1024 * 1024)", 1);
  if (st2 != LUA_OK) snprintf(err2, sizeof err2, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  /* the same state, after a collection: work as usual, twice */
  st3 = lt_run(L, "collectgarbage() local t = {} "
                  "for i = 1, 20000 do t[i] = {i, tostring(i)} end "
                  "local s = 0 for i = 1, #t do s = s + t[i][1] end return s", 1);
  if (st3 == LUA_OK) sum = lua_tointeger(L, -1);
  lua_settop(L, 0);
  /* caught by pcall inside Lua this time */
  long long st4 = lt_int(L, "local ok, e = pcall(function() local t = {} "
                            "for i = 1, 1e9 do t[i] = string.rep('w', 100) .. i end end) "
                            "return (not ok and e == 'not enough memory') and 1 or 0");
  oom_lift();
  cr_expect_eq(st1, LUA_ERRMEM, "growing: status %d, '%s'", st1, err1);
  cr_expect_str_eq(err1, "not enough memory");
  cr_expect_eq(st2, LUA_ERRMEM, "one big string: status %d, '%s'", st2, err2);
  cr_expect_str_eq(err2, "not enough memory");
  cr_expect_eq(st3, LUA_OK);
  cr_expect_eq(sum, 20000LL * 20001 / 2);
  cr_expect_eq(st4, 1, "the second exhaustion was not caught by pcall as 'not enough memory'");
  cr_expect_eq(lt_int(L, "collectgarbage() return #string.rep('z', 1000)"), 1000);
  hakl_account final;
  hakl_close(L, &final);
  cr_expect_eq(final.in_use, 0, "%zu bytes left in the account after close", final.in_use);
  cr_expect_gt(final.nfail, 0);
}
