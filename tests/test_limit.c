/*
** test_limit.c -- the per-state limit: a script that grows past it gets
** "not enough memory", frees, and goes on; raising the limit (from C or
** from Lua) lets it finish; the state never holds more than the limit.
*/
#include <criterion/criterion.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(limit, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

#define LIMIT (4 * HKT_MiB)

/* Needs about 8 MiB live at its peak; returns a checksum. */
static const char *work =
  "function work()\n"
  "  local t = {}\n"
  "  for i = 1, 60000 do t[i] = string.rep('x', 100) .. i end\n"
  "  local n = 0\n"
  "  for i = 1, #t do n = n + #t[i] end\n"
  "  return n\n"
  "end\n";

static long long expected(void) {
  long long n = 0, i;
  for (i = 1; i <= 60000; i++) {
    char buf[32];
    n += 100 + snprintf(buf, sizeof buf, "%lld", i);
  }
  return n;
}

static lua_State *limited_state(size_t limit) {
  hakl_config cfg = {.limit = limit, .private_heap = false};
  lua_State *L = hakl_newstate(&cfg);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  luaL_requiref(L, "hakmem", luaopen_hakmem, 1);
  lua_pop(L, 1);
  cr_assert_eq(lt_run(L, work, 0), LUA_OK);
  return L;
}

Test(limit, growing_past_it_raises_and_the_state_goes_on) {
  lua_State *L = limited_state(LIMIT);
  hakl_ctx *c = hakl_getctx(L);
  cr_expect_eq(lt_int(L, "local ok, err = pcall(work) "
                         "if ok or err ~= 'not enough memory' then return -1 end "
                         "collectgarbage() "
                         "local t = {} for i = 1, 10000 do t[i] = {i} end "
                         "local s = 0 for i = 1, #t do s = s + t[i][1] end return s"),
               10000LL * 10001 / 2);
  cr_expect_gt(c->acct.nfail, 0);
  cr_expect_leq(c->acct.peak, LIMIT, "peak %zu over the limit %zu", c->acct.peak, (size_t)LIMIT);
  cr_expect_eq(c->acct.in_use, lt_lua_bytes(L));
  /* the same again: the failure is repeatable, nothing was lost */
  cr_expect_eq(lt_int(L, "local ok, err = pcall(work) return (not ok and err == 'not enough memory') and 1 or 0"), 1);
  hakl_close(L, NULL);
}

Test(limit, raising_it_from_c_lets_the_script_finish) {
  lua_State *L = limited_state(LIMIT);
  hakl_ctx *c = hakl_getctx(L);
  cr_expect_eq(lt_run(L, "return work()", 1), LUA_ERRMEM);
  cr_expect_str_eq(lua_tostring(L, -1), "not enough memory");
  lua_pop(L, 1);
  cr_expect_eq(hakl_setlimit(c, 64 * HKT_MiB), LIMIT);
  cr_expect_eq(lt_int(L, "return work()"), expected());
  cr_expect_gt(c->acct.peak, LIMIT);
  hakl_close(L, NULL);
}

Test(limit, raising_it_from_lua_lets_the_script_finish) {
  lua_State *L = limited_state(LIMIT);
  cr_expect_eq(lt_int(L, "local ok, err = pcall(work) "
                         "if ok or err ~= 'not enough memory' then return -1 end "
                         "if hakmem.limit() ~= 4 * 1024 * 1024 then return -2 end "
                         "hakmem.limit(64 * 1024 * 1024) "
                         "return work()"),
               expected());
  cr_expect_eq(lt_int(L, "hakmem.limit(nil) return hakmem.limit()"), 0);
  hakl_close(L, NULL);
}

Test(limit, lowered_below_the_use) {
  lua_State *L = limited_state(0);
  hakl_ctx *c = hakl_getctx(L);
  cr_assert_eq(lt_run(L, "keep = {} for i = 1, 20000 do keep[i] = {i} end", 0), LUA_OK);
  hakl_setlimit(c, c->acct.in_use / 2);
  cr_expect_eq(lt_run(L, "local t = {} for i = 1, 100000 do t[i] = {} end", 0), LUA_ERRMEM);
  lua_pop(L, 1);
  /* freeing below the limit makes room again (compiling a chunk would
  ** allocate: the freeing is done from C) */
  lua_pushnil(L);
  lua_setglobal(L, "keep");
  lua_gc(L, LUA_GCCOLLECT);
  cr_expect_lt(c->acct.in_use, c->acct.limit);
  cr_expect_eq(lt_int(L, "local t = {} for i = 1, 1000 do t[i] = {} end return #t"), 1000);
  cr_expect_leq(c->acct.in_use, c->acct.limit);
  hakl_close(L, NULL);
}

Test(limit, a_state_cannot_start_below_its_base) {
  hakl_config cfg = {.limit = 256, .private_heap = false};
  size_t hak0 = lt_hak_in_use();
  cr_expect_null(hakl_newstate(&cfg), "a state in 256 bytes");
  cr_expect_eq(lt_hak_in_use(), hak0);
  cfg.private_heap = true;
  cr_expect_null(hakl_newstate(&cfg));
  cr_expect_eq(lt_hak_in_use(), hak0);
}
