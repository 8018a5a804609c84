/*
** test_corrupt_lua.c -- the faults of test_corrupt.c in a Lua state's
** region (lua_glue/hakl_region.h): a write into a free block's link (past
** the previous block's end, or after its free) and a double free, made
** through hakl_alloc as Lua makes its calls.
**
** Secure builds encode the region's links with the state's keys: each
** fault stops the program with SIGABRT and a message naming the pointer
** and the cause.  Other builds do not check the region's lists (the fault
** table, docs/faults.md): the fault tests are skipped there, and a correct
** program that looks like the faults must go on in every build.
*/
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "fixture.h"
#include "hakl.h"
#include "helpers.h"

TestSuite(corrupt_lua, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* Criterion counts a skipped test that expected a signal as failed. */
#define IN_SECURE(sig) (HAK_SECURE ? (sig) : 0)

static void secure_only(void) {
  if (!HAK_SECURE) cr_skip_test("only the secure build checks the region's free lists");
}

static hakl_ctx ctx;
static void *victim;
static void *live[2];     /* the setup's blocks still in use */
static char saved[8];     /* the victim's link before the forged write */
static _Alignas(64) char forged_target[256];

static void *lua_new(size_t n) { return hakl_alloc(&ctx, NULL, 0, n); }
static void lua_free(void *p, size_t n) { hakl_alloc(&ctx, p, n, 0); }

/* A free block of 40 bytes whose link now points at forged_target. */
static void forged_link_setup(void) {
  hakl_ctx_init(&ctx, NULL, 0);
  live[0] = lua_new(40);
  victim = lua_new(40);
  live[1] = lua_new(40);
  cr_assert(live[0] && victim && live[1]);
  lua_free(victim, 40);
  void *forged = forged_target;
  memcpy(saved, victim, sizeof saved);
  memcpy(victim, &forged, sizeof forged); /* a write after its free */
}

static void forged_link_act(void *arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) (void)hkt_launder(lua_new(40));
}

Test(corrupt_lua, forged_link, .signal = IN_SECURE(SIGABRT)) {
  secure_only();
  forged_link_setup();
  forged_link_act(NULL);
}

Test(corrupt_lua, forged_link_message) {
  secure_only();
  forged_link_setup();
  HKT_EXPECT_STOP(forged_link_act, NULL, "heap corruption", victim);
  /* this process's state repaired and emptied: its chunks go back */
  memcpy(victim, saved, sizeof saved);
  lua_free(live[0], 40);
  lua_free(live[1], 40);
}

/* A block freed twice, behind other frees of its class. */
static void double_free_act(void *arg) {
  (void)arg;
  lua_free(victim, 72);
}

static void double_free_setup(void) {
  hakl_ctx_init(&ctx, NULL, 0);
  void *blk[8];
  for (int i = 0; i < 8; i++) cr_assert_not_null(blk[i] = lua_new(72));
  victim = blk[3];
  live[0] = blk[6];
  live[1] = blk[7];
  for (int i = 0; i < 6; i++) lua_free(blk[i], 72);
}

Test(corrupt_lua, double_free, .signal = IN_SECURE(SIGABRT)) {
  secure_only();
  double_free_setup();
  double_free_act(NULL);
}

Test(corrupt_lua, double_free_message) {
  secure_only();
  double_free_setup();
  HKT_EXPECT_STOP(double_free_act, NULL, "double free", victim);
  lua_free(live[0], 72); /* this process's state emptied: its chunks go back */
  lua_free(live[1], 72);
}

/*
** Every build: blocks of every region size (its 8-byte classes up to
** HAKL_REGION_MAX, its 128-byte ones up to HAKL_REGION_TOP) and larger,
** written to their last byte, freed in an order that interleaves classes,
** reused, grown and shrunk within a class, across classes, into and out of
** the region; every byte checked before its free, and
** the state's account back to zero (its chunks returned: the fixture
** checks the heap).
*/
Test(corrupt_lua, correct_program_goes_on) {
  enum { N = 3000 };
  static unsigned char *blk[N];
  static size_t len[N];
  size_t damaged = 0;
  hak_heap_t *heap = hak_heap_new(); /* a private heap's region: the 128-byte classes too */
  cr_assert_not_null(heap);
  for (int round = 0; round < 4; round++) {
    if (round % 2 == 0) hakl_ctx_init(&ctx, round == 0 ? heap : NULL, 0);
    for (int i = 0; i < N; i++) {
      len[i] = (size_t)((i * 53 + round * 7) % (HAKL_REGION_TOP + 1024)) + 1;
      blk[i] = lua_new(len[i]);
      cr_assert_not_null(blk[i]);
      hkt_fill(blk[i], len[i], (uint64_t)i * 3 + (uint64_t)round);
    }
    for (int i = 0; i < 2 * N / 3; i++) { /* grow a third, shrink a third */
      size_t n = i % 2 == 0 ? len[i] * 2 + 900 : len[i] / 3 + 1;
      unsigned char *q = hakl_alloc(&ctx, blk[i], len[i], n);
      cr_assert_not_null(q);
      size_t kept = len[i] < n ? len[i] : n;
      if (hkt_check(q, kept, (uint64_t)i * 3 + (uint64_t)round) != kept) damaged++;
      blk[i] = q;
      len[i] = n;
      hkt_fill(blk[i], len[i], (uint64_t)i * 3 + (uint64_t)round);
    }
    for (int step = 0; step < 2; step++)
      for (int i = step; i < N; i += 2) {
        if (hkt_check(blk[i], len[i], (uint64_t)i * 3 + (uint64_t)round) != len[i]) damaged++;
        lua_free(blk[i], len[i]);
      }
  }
  cr_expect_eq(damaged, 0, "%zu blocks damaged", damaged);
  cr_expect_eq(ctx.acct.in_use, 0, "the account is %zu, not 0", (size_t)ctx.acct.in_use);
  hak_heap_destroy(heap); /* empty: the last free of each round returned the chunks */
}

/*
** The newest block of the chunk grows in place (a buffer Lua grows while
** it makes nothing else): same address, bytes kept, and the next block
** comes after its new end.
*/
Test(corrupt_lua, newest_block_grows_in_place) {
  hak_heap_t *heap = hak_heap_new();
  cr_assert_not_null(heap);
  hakl_ctx_init(&ctx, heap, 0);
  unsigned char *keep = lua_new(64); /* the account never reaches zero midway */
  unsigned char *a = lua_new(200);
  hkt_fill(a, 200, 7);
  unsigned char *g = hakl_alloc(&ctx, a, 200, 3000);
  cr_expect_eq(g, a, "the newest block moved from %p to %p", (void *)a, (void *)g);
  cr_expect_eq(hkt_check(g, 200, 7), 200);
  hkt_fill(g, 3000, 8);
  unsigned char *b = lua_new(500);
  cr_expect(b >= g + 3000 || b + 500 <= g, "the next block %p overlaps the grown one %p", (void *)b,
            (void *)g);
  hkt_fill(b, 500, 9);
  cr_expect_eq(hkt_check(g, 3000, 8), 3000);
  lua_free(b, 500);
  lua_free(g, 3000);
  lua_free(keep, 64);
  cr_expect_eq(ctx.acct.in_use, 0);
  hak_heap_destroy(heap);
}
