/*
** test_failinject.c -- allocation failure at every point of a script.
**
** A script that builds tables, strings, closures, coroutines and objects
** with finalizers runs once to count its allocation requests (new blocks
** and growths: a shrink cannot fail).  Then, for every k from 1 to that
** total, a fresh state runs it with the k-th request failing, either once
** (Lua's emergency collection and retry must absorb it) or from then on.
** Every run must either finish with the right result or raise "not enough
** memory", caught by the pcall; the state must then still work, and
** closing it must leave nothing behind.
*/
#include <criterion/criterion.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(failinject, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

static const char *script =
  "local t = {}\n"
  "for i = 1, 150 do t[i] = {id = i, name = 'n' .. i} end\n"
  "local parts = {}\n"
  "for i = 1, 80 do parts[#parts + 1] = string.format('%d:%s', i, t[i].name) end\n"
  "local s = table.concat(parts, ',')\n"
  "local fs = {}\n"
  "for i = 1, 60 do local u = i; fs[i] = function(x) u = u + x; return u end end\n"
  "local co = coroutine.wrap(function()\n"
  "  for i = 1, 40 do coroutine.yield(fs[i](i)) end\n"
  "end)\n"
  "local sum = 0\n"
  "for i = 1, 40 do sum = sum + co() end\n"
  "local co2 = coroutine.create(function(a, b) local r = {} for i = a, b do r[#r + 1] = i * 2 end return #r end)\n"
  "local ok, n = coroutine.resume(co2, 1, 30)\n"
  "assert(ok, n)\n"
  "local fin = 0\n"
  "for i = 1, 15 do setmetatable({}, {__gc = function() fin = fin + 1; local x = {} end}) end\n"
  "local str = string.rep('ab', 200) .. (s:gsub('n', 'N'))\n"
  "local h = {}\n"
  "for i = 1, 100 do h['k' .. i] = i end\n"
  "for i = 1, 100, 2 do h['k' .. i] = nil end\n"
  "return #s + sum + #str + #t + n + h.k2\n";

/* hakl_alloc with its k-th allocation request failing. */
typedef struct injector {
  hakl_ctx ctx;
  bool counting;    /* count requests (and maybe fail) */
  bool persistent;  /* after the first failure, fail every request */
  long requests;    /* counted so far */
  long fail_at;     /* the request that fails; 0: none */
  bool failed;
} injector;

static void *inject_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  injector *j = (injector *)ud;
  if (j->counting && nsize > 0 && (ptr == NULL || nsize > osize)) {
    j->requests++;
    if (j->requests == j->fail_at || (j->failed && j->persistent)) {
      j->failed = true;
      return NULL;
    }
  }
  return hakl_alloc(&j->ctx, ptr, osize, nsize);
}

typedef struct outcome {
  int status;
  long long result;
  char msg[200];
} outcome;

/* One run in a fresh state; checks what must hold whatever happened. */
static outcome run_once(injector *j, long fail_at, bool persistent) {
  outcome o;
  lua_State *L;
  size_t hak0 = lt_hak_in_use();
  memset(j, 0, sizeof *j);
  memset(&o, 0, sizeof o);
  hakl_ctx_init(&j->ctx, NULL, 0);
  L = lua_newstate(inject_alloc, j);
  cr_assert_not_null(L);
  luaL_openlibs(L);
  j->fail_at = fail_at;
  j->persistent = persistent;
  j->counting = true;
  o.status = lt_run(L, script, 1);
  j->counting = false;
  if (o.status == LUA_OK) {
    o.result = (long long)lua_tointeger(L, -1);
  } else {
    const char *m = lua_tostring(L, -1);
    snprintf(o.msg, sizeof o.msg, "%s", m != NULL ? m : "(not a string)");
  }
  lua_pop(L, 1);
  /* still usable */
  if (lt_int(L, "local t = {} for i = 1, 100 do t[i] = tostring(i) .. '!' end "
                "collectgarbage() return #t") != 100)
    o.status = -1;
  lua_close(L);
  if (j->ctx.acct.in_use != 0 || lt_hak_in_use() != hak0) o.status = -2;
  return o;
}

static void inject_everywhere(bool persistent) {
  static injector j;
  outcome dry = run_once(&j, 0, false);
  long total = j.requests, k, fails = 0, completed = 0, oom = 0;
  cr_assert_eq(dry.status, LUA_OK, "the script fails by itself: %s", dry.msg);
  cr_assert_gt(total, 500, "only %ld allocation requests", total);
  for (k = 1; k <= total; k++) {
    outcome o = run_once(&j, k, persistent);
    cr_assert(j.failed, "request %ld of %ld was never made", k, total);
    if (o.status == LUA_OK) {
      completed++;
      HKT_EXPECT(fails, o.result == dry.result, "k=%ld: result %lld, expected %lld", k,
                 o.result, dry.result);
    } else if (o.status == -1) {
      HKT_EXPECT(fails, false, "k=%ld: the state is unusable after the failure", k);
    } else if (o.status == -2) {
      HKT_EXPECT(fails, false, "k=%ld: memory left behind after lua_close", k);
    } else {
      oom++;
      HKT_EXPECT(fails, strcmp(o.msg, "not enough memory") == 0,
                 "k=%ld: status %d, error '%s'", k, o.status, o.msg);
    }
  }
  HKT_EXPECT_NONE(fails, "runs with an allocation failure");
  cr_log_info("%s failure: %ld runs, %ld completed, %ld raised not enough memory",
              persistent ? "persistent" : "single", total, completed, oom);
  if (persistent)
    cr_expect_gt(oom, total / 2, "a lasting failure raised the error only %ld times", oom);
  else
    cr_expect_gt(completed, 0, "Lua's emergency collection never absorbed a failure");
}

Test(failinject, single_failure_at_every_request, .timeout = 600) {
  inject_everywhere(false);
}

Test(failinject, lasting_failure_from_every_request, .timeout = 600) {
  inject_everywhere(true);
}
