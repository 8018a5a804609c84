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
** Every build: blocks of every region size, written to their last byte,
** freed in an order that interleaves classes, reused, resized across
** classes and out of the region; every byte checked before its free, and
** the state's account back to zero (its chunks returned: the fixture
** checks the heap).
*/
Test(corrupt_lua, correct_program_goes_on) {
  enum { N = 3000 };
  static unsigned char *blk[N];
  static size_t len[N];
  size_t damaged = 0;
  hakl_ctx_init(&ctx, NULL, 0);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      len[i] = (size_t)((i * 53 + round * 7) % 1024) + 1;
      blk[i] = lua_new(len[i]);
      cr_assert_not_null(blk[i]);
      hkt_fill(blk[i], len[i], (uint64_t)i * 3 + (uint64_t)round);
    }
    for (int i = 0; i < N; i += 3) { /* resize a third, some past the region */
      size_t n = len[i] * 2 + 900;
      unsigned char *q = hakl_alloc(&ctx, blk[i], len[i], n);
      cr_assert_not_null(q);
      if (hkt_check(q, len[i], (uint64_t)i * 3 + (uint64_t)round) != len[i]) damaged++;
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
}
