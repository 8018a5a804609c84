/*
** test_module.c -- the `hakmem` module loaded into Debian's own lua5.4:
** `require "hakmem"` in the middle of a script that already holds tables
** and strings switches the running state to hakmem; the script keeps
** using, growing and freeing its old objects and checks every result
** (tests/lua/module_switch.lua).  The same script under hklua, where the
** state runs on hakmem from the start (or on libc, and the module
** switches it).
*/
#include <criterion/criterion.h>
#include <limits.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(module, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

static char builddir[PATH_MAX], script[PATH_MAX];

static void paths(void) {
  char *b = realpath(lt_builddir(), NULL), *s = realpath(lt_srcdir(), NULL);
  cr_assert(b != NULL && s != NULL);
  snprintf(builddir, sizeof builddir, "%s", b);
  snprintf(script, sizeof script, "%s/tests/lua/module_switch.lua", s);
  free(b);
  free(s);
}

static void expect_ok(lt_result *r, const char *who) {
  cr_expect_eq(r->signal, 0, "%s: killed by signal %d\n%s", who, r->signal, r->err);
  cr_expect_eq(r->status, 0, "%s: exit status %d\n%s", who, r->status, r->err);
  cr_expect(strstr(r->out, "module ok\n") != NULL, "%s: stdout\n%s\nstderr\n%s", who, r->out,
            r->err);
  cr_expect(strstr(r->out, "203099094\t100010000\t20000\n") != NULL, "%s: results\n%s", who,
            r->out);
}

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
void __asan_init(void);
/* A module built with ASan needs the ASan runtime first in lua5.4. */
static char *asan_preload(void) {
  static char env[PATH_MAX + 16];
  Dl_info info;
  if (!dladdr((void *)&__asan_init, &info) || info.dli_fname == NULL) return NULL;
  snprintf(env, sizeof env, "LD_PRELOAD=%s", info.dli_fname);
  return env;
}
#else
static char *asan_preload(void) {
  return NULL;
}
#endif

Test(module, switches_debians_lua54_mid_script) {
  char cpath[PATH_MAX + 32];
  char *env[] = {cpath, asan_preload(), NULL};
  char *argv[] = {"lua5.4", script, NULL};
  lt_result r;
  paths();
  snprintf(cpath, sizeof cpath, "LUA_CPATH=%s/lua/?.so", builddir);
  cr_assert_eq(access(lt_path(0, builddir, "lua/hakmem.so"), R_OK), 0, "lua/hakmem.so not built");
  cr_assert(lt_spawn(argv, NULL, env, &r), "cannot run lua5.4");
  expect_ok(&r, "lua5.4");
  lt_result_free(&r);
}

Test(module, same_script_in_hklua) {
  const char *allocs[] = {"--alloc=hakmem", "--alloc=libc"};
  size_t i;
  paths();
  for (i = 0; i < 2; i++) {
    char hk[PATH_MAX + 8];
    char *argv[] = {hk, (char *)allocs[i], script, NULL};
    lt_result r;
    snprintf(hk, sizeof hk, "%s/hklua", builddir);
    cr_assert(lt_spawn(argv, NULL, NULL, &r));
    expect_ok(&r, allocs[i]);
    lt_result_free(&r);
  }
}
