/*
** test_hklua.c -- hklua against Debian's lua5.4: the same stdout and exit
** status (and the same stderr, program name aside, where it matters) on
** the scripts of tests/lua/compat and on command lines with -e, -l, -E,
** -W, -v, -, --, LUA_INIT, stdin, errors and bad options; then hklua's own
** options: --alloc, --gc, --mem-limit, --stats, and --gc-pauses, whose
** counts must be the real ones.
**
** Runs in the build directory (`ninja test`), with HAK_TEST_BUILDDIR and
** HAK_TEST_SRCDIR set.
*/
#include <criterion/criterion.h>
#include <limits.h>

#include "helpers.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(hklua, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* Absolute paths, fixed before the test moves into the corpus directory. */
static char hklua[PATH_MAX], corpus[PATH_MAX];

static void enter_corpus(void) {
  char *b = realpath(lt_builddir(), NULL), *s = realpath(lt_srcdir(), NULL);
  cr_assert_not_null(b, "build directory %s", lt_builddir());
  cr_assert_not_null(s, "source directory %s", lt_srcdir());
  snprintf(hklua, sizeof hklua, "%s/hklua", b);
  snprintf(corpus, sizeof corpus, "%s/tests/lua/compat", s);
  free(b);
  free(s);
  cr_assert_eq(access(hklua, X_OK), 0, "%s is not built", hklua);
  cr_assert_eq(chdir(corpus), 0, "no corpus at %s", corpus);
}

/* "<prog>: " at a line start becomes "LUA: ", so stderr can be compared. */
static char *normalize(const char *text, const char *prog) {
  size_t plen = strlen(prog), n = 0;
  char *out = (char *)malloc(strlen(text) + 1);
  const char *p = text;
  bool bol = true;
  while (*p) {
    if (bol && strncmp(p, prog, plen) == 0 && p[plen] == ':') {
      memcpy(out + n, "LUA", 3);
      n += 3;
      p += plen;
    }
    bol = (*p == '\n');
    out[n++] = *p++;
  }
  out[n] = '\0';
  return out;
}

/* A command line as given after the program name; NULL-terminated. */
typedef struct compat_case {
  const char *args[8];
  const char *input;   /* stdin; NULL: empty */
  const char *env;     /* one extra "NAME=value"; NULL: none */
  bool same_stderr;    /* compare stderr too, program name aside */
} compat_case;

static const compat_case cases[] = {
  {{"args.lua", "a", "b c", "", NULL}, NULL, NULL, true},
  {{"--", "args.lua", "-x", NULL}, NULL, NULL, true},
  {{"-W", "args.lua", NULL}, NULL, NULL, true},
  {{"error.lua", NULL}, NULL, NULL, true},
  {{"syntax.lua", NULL}, NULL, NULL, true},
  {{"errobj.lua", NULL}, NULL, NULL, true},
  {{"exit.lua", "3", NULL}, NULL, NULL, true},
  {{"exit.lua", "false", NULL}, NULL, NULL, true},
  {{"exit.lua", "true", "close", NULL}, NULL, NULL, true},
  {{"exit.lua", "7", "close", NULL}, NULL, NULL, true},
  {{"finalizers.lua", NULL}, NULL, NULL, true},
  {{"strings.lua", NULL}, NULL, NULL, true},
  {{"tables.lua", NULL}, NULL, NULL, true},
  {{"coroutines.lua", NULL}, NULL, NULL, true},
  {{"memerr.lua", NULL}, NULL, NULL, true},
  {{"stdin.lua", NULL}, "first line\n 42.5 and\nthe rest\n", NULL, true},
  {{"requires.lua", ".", NULL}, NULL, NULL, true},
  {{"-e", "print(1 + 1, _VERSION)", NULL}, NULL, NULL, true},
  {{"-e", "x = 5", "-e", "print(x * 2)", "args.lua", "q", NULL}, NULL, NULL, true},
  {{"-eprint('glued')", NULL}, NULL, NULL, true},
  {{"-e", "error('from -e')", NULL}, NULL, NULL, true},
  {{"-e", "error()", NULL}, NULL, NULL, true},
  {{"-lstring", "-e", "print(string.upper('x'))", NULL}, NULL, NULL, true},
  {{"-l", "s=string", "-e", "print(s.rep('ab', 3))", NULL}, NULL, NULL, true},
  {{"-l", "mod_a", "-e", "print(mod_a.hello('l'), mod_a.loaded_as)", NULL}, NULL,
   "LUA_PATH=./?.lua", true},
  {{"-l", "no_such_mod", NULL}, NULL, NULL, false},
  {{"-v", NULL}, NULL, NULL, true},
  {{"-v", "-e", "print('after v')", NULL}, NULL, NULL, true},
  {{"-", "x", "y", NULL}, "print('stdin script', ...)\n", NULL, true},
  {{"--", "-", NULL}, "print('not read')\n", NULL, false},
  {{NULL}, "print('no arguments: stdin')\nprint(arg[0] ~= nil)\n", NULL, true},
  {{NULL}, "x = = 1\n", NULL, true},
  {{"-e", "print(INIT)", NULL}, NULL, "LUA_INIT=print('init ran') INIT = 3", true},
  {{"-e", "print(INIT)", NULL}, NULL, "LUA_INIT=@init.lua", true},
  {{"-E", "-e", "print(INIT)", NULL}, NULL, "LUA_INIT=print('init ran') INIT = 3", true},
  {{"-e", "print(INIT)", NULL}, NULL, "LUA_INIT_5_4=INIT = 54", true},
  {{"-e", "print(1)", NULL}, NULL, "LUA_INIT=error('bad init')", true},
  {{"-W", "-e", "warn('shown') warn('@off') warn('hidden')", NULL}, NULL, NULL, true},
  {{"-e", "warn('hidden')", "-W", "-e", "warn('a', 'b')", NULL}, NULL, NULL, true},
  {{"nosuch.lua", NULL}, NULL, NULL, false},
  {{"-x", NULL}, NULL, NULL, false},
  {{"-e", NULL}, NULL, NULL, false},
  {{"-l", NULL}, NULL, NULL, false},
  {{"-vx", NULL}, NULL, NULL, false},
  {{"-e", "-v", NULL}, NULL, NULL, false},
};

/* Runs `prog` (plus `extra` options) on a case. */
static void run_case(const char *prog, const char *const *extra, const compat_case *c,
                     lt_result *r) {
  char *argv[24];
  char *env[2] = {(char *)c->env, NULL};
  int n = 0, i;
  argv[n++] = (char *)prog;
  for (i = 0; extra != NULL && extra[i] != NULL; i++) argv[n++] = (char *)extra[i];
  for (i = 0; c->args[i] != NULL; i++) argv[n++] = (char *)c->args[i];
  argv[n] = NULL;
  cr_assert(lt_spawn(argv, c->input, c->env ? env : NULL, r), "cannot run %s", prog);
}

static void describe(const compat_case *c, char *buf, size_t len) {
  int i;
  size_t n = 0;
  buf[0] = '\0';
  for (i = 0; c->args[i] != NULL && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s'%s'", i ? " " : "", c->args[i]);
  if (c->env != NULL && n < len) snprintf(buf + n, len - n, " [%s]", c->env);
}

static void compare_all(const char *const *extra) {
  size_t k, fails = 0;
  enter_corpus();
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    lt_result ref, got;
    char what[512];
    describe(&cases[k], what, sizeof what);
    run_case("lua5.4", NULL, &cases[k], &ref);
    run_case(hklua, extra, &cases[k], &got);
    HKT_EXPECT(fails, got.signal == 0, "%s: hklua killed by signal %d", what, got.signal);
    HKT_EXPECT(fails, got.status == ref.status, "%s: exit status %d, lua5.4 %d", what,
               got.status, ref.status);
    HKT_EXPECT(fails, strcmp(got.out, ref.out) == 0,
               "%s: stdout differs\n--- lua5.4:\n%s\n--- hklua:\n%s", what, ref.out, got.out);
    if (cases[k].same_stderr) {
      char *a = normalize(ref.err, "lua5.4"), *b = normalize(got.err, hklua);
      HKT_EXPECT(fails, strcmp(a, b) == 0, "%s: stderr differs\n--- lua5.4:\n%s\n--- hklua:\n%s",
                 what, a, b);
      free(a);
      free(b);
    } else {
      /* a one-line message first, whatever else follows */
      HKT_EXPECT(fails, strncmp(got.err, hklua, strlen(hklua)) == 0,
                 "%s: stderr does not start with the program name:\n%s", what, got.err);
    }
    lt_result_free(&ref);
    lt_result_free(&got);
  }
  HKT_EXPECT_NONE(fails, "hklua against lua5.4");
}

Test(hklua, same_as_lua54, .timeout = 300) {
  compare_all(NULL);
}

Test(hklua, same_as_lua54_with_libc_allocator, .timeout = 300) {
  static const char *const extra[] = {"--alloc=libc", NULL};
  compare_all(extra);
}

Test(hklua, same_as_lua54_incremental_with_stats, .timeout = 300) {
  static const char *const extra[] = {"--gc=incremental", "--stats", "--gc-pauses", NULL};
  size_t k;
  /* --stats and --gc-pauses write to stderr: compare stdout and status */
  enter_corpus();
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    lt_result ref, got;
    char what[512];
    describe(&cases[k], what, sizeof what);
    run_case("lua5.4", NULL, &cases[k], &ref);
    run_case(hklua, extra, &cases[k], &got);
    cr_expect_eq(got.status, ref.status, "%s: exit status %d, lua5.4 %d", what, got.status,
                 ref.status);
    cr_expect_str_eq(got.out, ref.out, "%s: stdout differs", what);
    lt_result_free(&ref);
    lt_result_free(&got);
  }
}

/* ------------------------------------------------------------------------
** hklua's own options.
** --------------------------------------------------------------------- */

static lt_result hk(const char *a1, const char *a2, const char *a3, const char *a4) {
  char *argv[6] = {hklua, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
  lt_result r;
  cr_assert(lt_spawn(argv, NULL, NULL, &r));
  return r;
}

Test(hklua, bad_options_get_a_message_and_the_usage) {
  static const char *const bad[] = {
    "--alloc=jemalloc", "--alloc", "--mem-limit=12X", "--mem-limit=", "--mem-limit",
    "--mem-limit=-5", "--mem-limit=99999999999999999999", "--mem-limit=5T", "--stats=xml",
    "--gc=fast", "--gc", "--gc-pauses=", "--bogus", NULL};
  size_t i, fails = 0;
  enter_corpus();
  for (i = 0; bad[i] != NULL; i++) {
    lt_result r;
    const char *nl;
    r = hk(bad[i], "-e", "print('ran')", NULL);
    nl = strchr(r.err, '\n');
    HKT_EXPECT(fails, r.status == 1 && r.signal == 0, "%s: status %d signal %d", bad[i],
               r.status, r.signal);
    HKT_EXPECT(fails, r.out[0] == '\0', "%s: the script ran: %s", bad[i], r.out);
    HKT_EXPECT(fails, nl != NULL && strncmp(nl + 1, "usage: ", 7) == 0,
               "%s: not one line then the usage:\n%s", bad[i], r.err);
    lt_result_free(&r);
  }
  HKT_EXPECT_NONE(fails, "bad options");
}

Test(hklua, sizes_with_suffixes) {
  static const struct {
    const char *opt;
    long long bytes;
  } ok[] = {{"--mem-limit=1048576", 1048576}, {"--mem-limit=64M", 64LL << 20},
            {"--mem-limit=64m", 64LL << 20}, {"--mem-limit=512K", 512LL << 10},
            {"--mem-limit=2G", 2LL << 30}, {"--mem-limit=3MiB", 3LL << 20},
            {"--mem-limit=10MB", 10LL << 20}};
  size_t i;
  enter_corpus();
  for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    lt_result r = hk(ok[i].opt, "-e", "print(require('hakmem').limit())", NULL);
    char want[64];
    snprintf(want, sizeof want, "%lld\n", ok[i].bytes);
    cr_expect_eq(r.status, 0, "%s: %s", ok[i].opt, r.err);
    cr_expect_str_eq(r.out, want, "%s", ok[i].opt);
    lt_result_free(&r);
  }
}

Test(hklua, mem_limit_raises_not_enough_memory) {
  static const char *script =
    "local ok, err = pcall(function() local t = {} "
    "for i = 1, 1e7 do t[i] = string.rep('x', 50) .. i end end) "
    "print(ok, err) collectgarbage() "
    "local t = {} for i = 1, 1000 do t[i] = i end print(#t)";
  const char *allocs[] = {"--alloc=hakmem", "--alloc=libc"};
  size_t i;
  enter_corpus();
  for (i = 0; i < 2; i++) {
    lt_result r = hk(allocs[i], "--mem-limit=8M", "-e", script);
    cr_expect_eq(r.status, 0, "%s: %s", allocs[i], r.err);
    cr_expect_str_eq(r.out, "false\tnot enough memory\n1000\n", "%s", allocs[i]);
    lt_result_free(&r);
  }
}

/* The number after "key": in text; -1 when absent. */
static double json_number(const char *text, const char *key) {
  char pat[64];
  const char *p;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  p = strstr(text, pat);
  return p != NULL ? strtod(p + strlen(pat), NULL) : -1;
}

Test(hklua, stats_json) {
  const char *allocs[] = {"--alloc=hakmem", "--alloc=libc"};
  size_t i;
  enter_corpus();
  for (i = 0; i < 2; i++) {
    lt_result r = hk(allocs[i], "--stats=json", "-e",
                     "t = {} for i = 1, 10000 do t[i] = {i} end");
    cr_expect_eq(r.status, 0);
    cr_expect_eq(r.out[0], '\0', "--stats wrote to stdout");
    cr_expect_eq(r.err[0], '{', "%s", r.err);
    cr_expect_geq(json_number(r.err, "in_use"), 10000 * 56, "%s", r.err);
    cr_expect_geq(json_number(r.err, "peak"), json_number(r.err, "in_use"));
    cr_expect_geq(json_number(r.err, "allocs"), 20000);
    {
      const char *tables = strstr(r.err, "\"table\":");
      cr_assert_not_null(tables, "%s", r.err);
      cr_expect_geq(json_number(tables, "count"), 10000);
    }
    lt_result_free(&r);
  }
}

/* --gc-pauses=FILE: runs the script, returns the JSON text (malloc'd). */
static char *pauses(const char *alloc, const char *mode, const char *code) {
  char opt[PATH_MAX + 32], path[] = "/tmp/hakmem-pauses-XXXXXX";
  int fd = mkstemp(path);
  lt_result r;
  char *json;
  cr_assert_geq(fd, 0);
  snprintf(opt, sizeof opt, "--gc-pauses=%s", path);
  {
    char *argv[] = {hklua, (char *)alloc, (char *)mode, opt, "-e", (char *)code, NULL};
    cr_assert(lt_spawn(argv, NULL, NULL, &r));
  }
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect(strstr(r.err, "GC pauses") != NULL, "no summary on stderr: %s", r.err);
  json = lt_read_fd(fd);
  close(fd);
  unlink(path);
  lt_result_free(&r);
  return json;
}

Test(hklua, gc_pause_counts_are_real, .timeout = 120) {
  const char *allocs[] = {"--alloc=hakmem", "--alloc=libc"};
  const char *modes[] = {"--gc=incremental", "--gc=generational"};
  size_t a, m;
  enter_corpus();
  for (a = 0; a < 2; a++)
    for (m = 0; m < 2; m++) {
      /* 7 explicit full collections, nothing else that collects fully */
      char *j = pauses(allocs[a], modes[m],
                       "t = {} for i = 1, 7 do for k = 1, 2000 do t[k] = {k} end "
                       "collectgarbage() end");
      const char *full = strstr(j, "\"full\":");
      char head[64];
      cr_assert_not_null(full, "%s", j);
      cr_expect_eq(json_number(full, "count"), 7, "%s %s: %s", allocs[a], modes[m], j);
      snprintf(head, sizeof head, "{\"alloc\":\"%s\",\"steps\":{\"count\":", allocs[a] + 8);
      cr_expect(strncmp(j, head, strlen(head)) == 0, "JSON starts %s", j);
      cr_expect(strstr(j, modes[m] + 5) != NULL, "gc_mode missing: %s", j);
      cr_expect_geq(json_number(j, "close_ms"), 0, "%s", j);
      free(j);

      /* collector stopped: only the 25 explicit steps run it (on top of
      ** the steps taken before the stop, which the first run counts) */
      {
        static const char *stopped =
          "collectgarbage('stop') local t = {} for i = 1, 100000 do t[i] = {i} end "
          "for i = 1, %d do collectgarbage('step', 0) end";
        char code[256];
        double base;
        snprintf(code, sizeof code, stopped, 0);
        j = pauses(allocs[a], modes[m], code);
        base = json_number(j, "count");
        free(j);
        snprintf(code, sizeof code, stopped, 25);
        j = pauses(allocs[a], modes[m], code);
        cr_expect_eq(json_number(j, "count"), base + 25, "%s %s: %g steps without the explicit ones, then %s",
                     allocs[a], modes[m], base, j);
        free(j);
      }

      /* a script that allocates a lot: natural steps, a sane distribution */
      j = pauses(allocs[a], modes[m],
                 "local t = {} for i = 1, 300000 do t[i % 20000 + 1] = {i, tostring(i)} end");
      {
        double n = json_number(j, "count"), p50 = json_number(j, "p50_us"),
               p99 = json_number(j, "p99_us"), p999 = json_number(j, "p999_us"),
               max = json_number(j, "max_us"), total = json_number(j, "total_ms");
        cr_expect_gt(n, 10, "%s %s: %s", allocs[a], modes[m], j);
        cr_expect(p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max, "%s", j);
        cr_expect_geq(total * 1000 + 1, max, "%s", j);
        cr_expect_leq(p50 * n, total * 1000 + 1, "%s", j);
      }
      free(j);
    }
}

Test(hklua, interactive_without_readline) {
  char *argv[] = {hklua, "-i", NULL};
  lt_result r;
  enter_corpus();
  cr_assert(lt_spawn(argv, "x = 20\n= x + 1\nfor i = 1, 2 do\nprint(i)\nend\n1, nil, 'a'\n", NULL,
                     &r));
  cr_expect_eq(r.status, 0);
  cr_expect(strstr(r.out, "Lua 5.4") == r.out, "no version first: %s", r.out);
  cr_expect(strstr(r.out, "21\n") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "1\n") != NULL && strstr(r.out, "2\n") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "1\tnil\ta\n") != NULL, "%s", r.out);
  lt_result_free(&r);
}

Test(hklua, module_is_builtin) {
  lt_result r;
  enter_corpus();
  r = hk("-e", "local h = require 'hakmem' local c = collectgarbage('count') * 1024 "
               "local s = h.stats() print(s.in_use == c, s.foreign)",
         NULL, NULL);
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_str_eq(r.out, "true\t0\n");
  lt_result_free(&r);
}

/* The module in a libc state with an account (--mem-limit, --stats) keeps
** that account: it used to switch the state to hakmem with a fresh one,
** which dropped the limit (18 MB under a 1 MB one) and the report's count. */
Test(hklua, module_keeps_the_libc_account) {
  static const char *script =
    "local h = require 'hakmem' print(h.limit()) "
    "print(pcall(function() local t = {} for i = 1, 2e5 do t[i] = {i} end end)) "
    "collectgarbage() local c = collectgarbage('count') * 1024 print(h.stats().in_use == c)";
  lt_result r;
  enter_corpus();
  r = hk("--alloc=libc", "--mem-limit=1M", "-e", script);
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_str_eq(r.out, "1048576\nfalse\tnot enough memory\ntrue\n");
  lt_result_free(&r);
}

Test(hklua, gc_durations_list_every_step) {
  char opt[64], path[] = "/tmp/hakmem-durations-XXXXXX";
  int fd, n = 0;
  lt_result r;
  char *json, *list, *p;
  enter_corpus();
  fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  snprintf(opt, sizeof opt, "--gc-pauses=%s", path);
  {
    char *argv[] = {hklua, "--gc=incremental", opt, "--gc-durations", "-e",
                    "local t = {} for i = 1, 200000 do t[i % 5000 + 1] = {i} end", NULL};
    cr_assert(lt_spawn(argv, NULL, NULL, &r));
  }
  cr_expect_eq(r.status, 0, "%s", r.err);
  json = lt_read_fd(fd);
  close(fd);
  unlink(path);
  list = strstr(json, "\"durations_us\":[");
  cr_assert_not_null(list, "%s", json);
  for (p = list + 16; *p != ']' && *p != '\0'; p++)
    if (*p == ',') n++;
  if (p > list + 16) n++; /* a non-empty list has one more item than commas */
  cr_expect_eq(n, json_number(json, "count"), "%d durations listed: %s", n, json);
  cr_expect_gt(n, 0);
  free(json);
  lt_result_free(&r);
}

/* Lines longer than lua.c's 511-character buffer are one line, not several. */
Test(hklua, interactive_reads_long_lines_whole) {
  static const size_t lens[] = {511, 512, 5000, 60000};
  size_t i;
  enter_corpus();
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    size_t n = lens[i], k;
    /* x = 'aaa...' then the length through the '=' form, itself long */
    char *input = (char *)malloc(2 * n + 64), *p = input;
    char want[32];
    char *argv[] = {hklua, "-i", NULL};
    lt_result r;
    p += sprintf(p, "x = '");
    for (k = 0; k < n; k++) *p++ = 'a';
    p += sprintf(p, "'\n=");
    for (k = 0; k < n; k++) *p++ = ' ';
    sprintf(p, "#x\n");
    cr_assert(lt_spawn(argv, input, NULL, &r));
    snprintf(want, sizeof want, "> %zu\n", n);
    cr_expect_eq(r.status, 0, "%zu: %s", n, r.err);
    cr_expect_str_eq(r.err, "", "%zu characters", n);
    cr_expect(strstr(r.out, want) != NULL, "%zu characters: %.300s", n, r.out);
    lt_result_free(&r);
    free(input);
  }
}

/* `sh -c cmd` with hklua's path in $HK: stderr to /dev/full and the like. */
static lt_result sh(const char *cmd) {
  char env[PATH_MAX + 8];
  char *envp[] = {env, NULL};
  char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  lt_result r;
  snprintf(env, sizeof env, "HK=%s", hklua);
  cr_assert(lt_spawn(argv, NULL, envp, &r));
  return r;
}

/* Every report hklua writes: when it cannot be written, the status is 1
** (and a file that cannot be opened stops the run before the script). */
Test(hklua, a_report_that_cannot_be_written_fails_the_run) {
  static const struct {
    const char *cmd;
    const char *out;  /* the script's stdout */
    const char *err;  /* in stderr; NULL: not checked (stderr is /dev/full) */
  } cases[] = {
    {"$HK --gc-pauses=/nonexistent/dir/x -e \"print('ran')\"", "",
     "cannot write /nonexistent/dir/x"},
    {"$HK --gc-pauses=/dev/full -e \"print('ran')\"", "ran\n", "cannot write /dev/full"},
    {"$HK --gc-pauses=/dev/full -e \"print('ran') os.exit(0)\"", "ran\n",
     "cannot write /dev/full"},
    {"$HK --gc-pauses=/dev/full -e \"print('ran') os.exit(0, true)\"", "ran\n",
     "cannot write /dev/full"},
    {"$HK --gc-pauses -e \"print('ran')\" 2>/dev/full", "ran\n", NULL},
    {"$HK --stats -e \"print('ran')\" 2>/dev/full", "ran\n", NULL},
    {"$HK --stats=json --alloc=libc -e \"print('ran')\" 2>/dev/full", "ran\n", NULL},
    {"$HK --stats -e \"print('ran') os.exit(true)\" 2>/dev/full", "ran\n", NULL},
    {"$HK --threads=1 --stats args.lua 2>/dev/full", NULL, NULL},
  };
  size_t i, fails = 0;
  enter_corpus();
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lt_result r = sh(cases[i].cmd);
    HKT_EXPECT(fails, r.status == 1, "%s: status %d\n%s", cases[i].cmd, r.status, r.err);
    HKT_EXPECT(fails, cases[i].out == NULL || strcmp(r.out, cases[i].out) == 0,
               "%s: stdout %s", cases[i].cmd, r.out);
    HKT_EXPECT(fails, cases[i].err == NULL || strstr(r.err, cases[i].err) != NULL,
               "%s: stderr %s", cases[i].cmd, r.err);
    lt_result_free(&r);
  }
  /* the same runs succeed where the reports can be written */
  {
    lt_result r = sh("$HK --gc-pauses=/dev/null --stats -e \"print('ran') os.exit(0)\" "
                     "&& $HK --threads=1 --stats args.lua >/dev/null 2>&1");
    HKT_EXPECT(fails, r.status == 0, "status %d\n%s", r.status, r.err);
    lt_result_free(&r);
  }
  HKT_EXPECT_NONE(fails, "reports that cannot be written");
}
