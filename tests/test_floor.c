/*
** test_floor.c -- the Lua suite's floors (lua_glue/hakl_floor.h) run Lua
** correctly: blocks of every class and across the libc boundary, resized
** both ways, freed and reused, with the contents kept.
*/
#include <criterion/criterion.h>

#include "hakl_floor.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(floor, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* Strings of every length to 3000 (blocks 25 .. 3025 bytes), tables grown
** by realloc through the classes into libc and shrunk again, several
** rounds with collections between, every value checked. */
static const char *workout =
  "local sum = 0\n"
  "for round = 1, 3 do\n"
  "  local keep = {}\n"
  "  for n = 1, 3000 do keep[n] = string.rep(string.char(65 + n % 26), n) end\n"
  "  local t = {}\n"
  "  for i = 1, 600 do t[i] = i; t['k' .. i] = i end\n"
  "  for i = 600, 1, -1 do t[i] = nil; t['k' .. i] = nil end\n"
  "  collectgarbage(); collectgarbage()\n"
  "  for i = 1, 200 do t[i] = {i} end\n"
  "  for n = 1, 3000, 7 do\n"
  "    local s = keep[n]\n"
  "    assert(#s == n and s:byte(n) == 65 + n % 26)\n"
  "    sum = sum + #s\n"
  "  end\n"
  "  for i = 1, 200 do assert(t[i][1] == i) end\n"
  "end\n"
  "return sum\n";

static void run_floor(bool segregated) {
  hakl_floor *f = hakl_floor_new(segregated);
  lua_State *L;
  long long expect = 0;
  int n;
  cr_assert_not_null(f);
  L = hakl_openstate(segregated ? hakl_floor_segregated : hakl_floor_mixed, f);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  for (n = 1; n <= 3000; n += 7) expect += n;
  cr_assert_eq(lt_int(L, workout), 3 * expect);
  lua_close(L);
  hakl_floor_destroy(f);
}

Test(floor, mixed_runs_lua) { run_floor(false); }

Test(floor, segregated_runs_lua) { run_floor(true); }
