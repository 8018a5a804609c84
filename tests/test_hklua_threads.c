/*
** test_hklua_threads.c -- hklua --threads: the runtime's front end, run as
** a program: its options, exit status, output and error reports.
*/
#include <criterion/criterion.h>
#include <limits.h>

#include "luatest.h"
#include "fixture.h"

TestSuite(hklua_threads, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

static char hklua[PATH_MAX], scripts[PATH_MAX];

static void setup(void) {
  char *b = realpath(lt_builddir(), NULL), *s = realpath(lt_srcdir(), NULL);
  cr_assert(b != NULL && s != NULL, "build or source directory missing");
  snprintf(hklua, sizeof hklua, "%s/hklua", b);
  snprintf(scripts, sizeof scripts, "%s/tests/runtime", s);
  free(b);
  free(s);
  cr_assert_eq(access(hklua, X_OK), 0, "%s is not built", hklua);
}

/* hklua with up to 6 arguments (NULL-terminated). */
static lt_result hk(const char *a1, const char *a2, const char *a3, const char *a4,
                    const char *a5, const char *a6) {
  char *argv[8] = {hklua, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
                   (char *)a6, NULL};
  lt_result r;
  cr_assert(lt_spawn(argv, NULL, NULL, &r), "cannot run %s", hklua);
  return r;
}

static const char *script(const char *name) {
  return lt_path(1, scripts, name);
}

static int count_lines(const char *s, const char *with) {
  int n = 0;
  const char *p = s;
  while ((p = strstr(p, with)) != NULL) {
    n++;
    p += strlen(with);
  }
  return n;
}

Test(hklua_threads, bad_options_get_a_message_and_the_usage, .init = setup) {
  static const char *const bad[][3] = {
    {"--threads=0", NULL, NULL},     {"--threads=x", NULL, NULL},
    {"--threads", NULL, NULL},       {"--threads=2000", NULL, NULL},
    {"--tasks=3", NULL, NULL},       {"--threads=2", "--tasks=0", NULL},
    {"--slice=-1", NULL, NULL},      {"--task-mem-limit=9Q", NULL, NULL},
    {"--private-heaps", NULL, NULL}, {"--threads=2", "--mem-limit=1M", NULL},
    {"--threads=2", "--gc-pauses", NULL}, {"--collector=off", NULL, NULL},
    {"--threads=2", "--collector=maybe", NULL}, {"--threads=2", "--idle-gc=", NULL},
    {"--threads=2", "--soft-limit=1.5", NULL}, {"--threads=2", "--soft-limit=x", NULL},
    {"--threads=2", "--watchdog=-3", NULL},    {"--threads=2", "--queues=mine", NULL},
    {"--threads=2", "--time-limit=9e99", NULL}, {"--threads=2", "--close-min=1x", NULL},
    {"--close-min=1M", NULL, NULL}};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *args[4] = {NULL, NULL, NULL, NULL};
    lt_result r;
    const char *nl;
    int k = 0;
    while (k < 3 && bad[i][k] != NULL) {
      args[k] = bad[i][k];
      k++;
    }
    args[k] = script("cli_args.lua");
    r = hk(args[0], args[1], args[2], args[3], NULL, NULL);
    nl = strchr(r.err, '\n');
    cr_expect(r.status == 1, "%s %s: status %d", bad[i][0], bad[i][1] ? bad[i][1] : "", r.status);
    cr_expect(r.out[0] == '\0', "%s: the script ran: %s", bad[i][0], r.out);
    cr_expect(nl != NULL && strncmp(nl + 1, "usage: ", 7) == 0, "%s: not one line then the usage:\n%s",
              bad[i][0], r.err);
    lt_result_free(&r);
  }
}

Test(hklua_threads, needs_a_script_file, .init = setup) {
  lt_result r = hk("--threads=2", "-e", "print(1)", NULL, NULL, NULL);
  cr_expect(r.status == 1 && strstr(r.err, "-e and -i") != NULL && r.out[0] == '\0', "%s", r.err);
  lt_result_free(&r);
  r = hk("--threads=2", NULL, NULL, NULL, NULL, NULL);
  cr_expect(r.status == 1 && strstr(r.err, "needs a script file") != NULL, "%s", r.err);
  lt_result_free(&r);
}

Test(hklua_threads, runs_the_script_with_its_arguments, .init = setup) {
  lt_result r = hk("--threads=2", script("cli_args.lua"), "one", "two", NULL, NULL);
  cr_expect(r.status == 0, "status %d: %s", r.status, r.err);
  cr_expect_str_eq(r.out, "task\t1\tof\t2\tworkers\tcli_args.lua\tone\t2\tone\ttwo\n");
  lt_result_free(&r);
}

Test(hklua_threads, many_copies, .init = setup) {
  lt_result r = hk("--threads=2", "--tasks=50", script("cli_args.lua"), "x", NULL, NULL);
  cr_expect(r.status == 0, "status %d: %s", r.status, r.err);
  cr_expect(count_lines(r.out, "workers\tcli_args.lua\tx\t1\tx\n") == 50, "output:\n%s", r.out);
  lt_result_free(&r);
  r = hk("--threads=1", "--alloc=libc", "--tasks=5", script("cli_args.lua"), NULL, NULL);
  cr_expect(r.status == 0 && count_lines(r.out, "\tof\t1\tworkers") == 5, "libc: %s%s", r.out, r.err);
  lt_result_free(&r);
}

Test(hklua_threads, a_failed_copy_fails_the_run, .init = setup) {
  lt_result r = hk("--threads=2", "--tasks=6", script("cli_fail_even.lua"), NULL, NULL, NULL);
  cr_expect(r.status == 1, "status %d", r.status);
  cr_expect(count_lines(r.out, "odd task ok\n") == 3, "the others did not go on:\n%s", r.out);
  cr_expect(strstr(r.err, "task 2: ") != NULL && strstr(r.err, "even task 2") != NULL &&
                strstr(r.err, "stack traceback") != NULL,
            "stderr:\n%s", r.err);
  lt_result_free(&r);
}

Test(hklua_threads, deadlock_exits_1, .init = setup) {
  lt_result r = hk("--threads=2", script("cli_deadlock.lua"), NULL, NULL, NULL, NULL);
  cr_expect(r.status == 1 && strstr(r.err, "deadlock") != NULL &&
                strstr(r.err, "task 1 waits to receive from channel") != NULL,
            "status %d: %s", r.status, r.err);
  lt_result_free(&r);
}

Test(hklua_threads, task_mem_limit, .init = setup) {
  lt_result r = hk("--threads=2", "--task-mem-limit=4M", script("cli_limit.lua"), NULL, NULL, NULL);
  cr_expect(r.status == 0 && strcmp(r.out, "limited\t4194304\n") == 0, "status %d: %s%s",
            r.status, r.out, r.err);
  lt_result_free(&r);
}

Test(hklua_threads, stats_json, .init = setup) {
  lt_result r = hk("--threads=2", "--tasks=3", "--stats=json", script("cli_args.lua"), NULL, NULL);
  cr_expect(r.status == 0, "%s", r.err);
  cr_expect(strstr(r.err, "{\"workers\":2,\"alloc\":\"hakmem\",\"queues\":\"shared\","
                          "\"spawned\":3,\"finished\":3,\"failed\":0,\"live\":0,") != NULL,
            "stderr:\n%s", r.err);
  lt_result_free(&r);
}

/* The figure `key` (a number) after the first `from` in s, or -1. */
static double json_after(const char *s, const char *from, const char *key) {
  char k[64];
  double v;
  if ((s = strstr(s, from)) == NULL) return -1;
  snprintf(k, sizeof k, "\"%s\":", key);
  if ((s = strstr(s, k)) == NULL || sscanf(s + strlen(k), "%lf", &v) != 1) return -1;
  return v;
}

/*
** A close's CPU time is the closing thread's: more than nothing for a
** state closed, and not above its wall time, which the CPU interval nests
** in.  Within 10%: in a virtual machine the thread CPU clock and the
** monotonic one can run at rates a few percent apart (measured here: CPU
** 0.455 ms against wall 0.436).  `from` is where the closer's figures begin.
*/
static void expect_close_times(const char *err, const char *from, const char *mode) {
  double closed = json_after(err, from, "closed"), wall = json_after(err, from, "close_ms"),
         cpu = json_after(err, from, "close_cpu_ms");
  cr_expect(closed >= 0 && wall >= 0 && cpu >= 0, "%s: no close figures after %s: %s", mode, from, err);
  if (closed > 0) cr_expect(cpu > 0, "%s: %g states closed in no CPU time: %s", mode, closed, err);
  cr_expect(cpu <= wall * 1.1 + 0.002, "%s: close CPU %g ms above its wall time %g ms", mode, cpu, wall);
}

/* The collector's switches and figures from the command line (every
** state closed on the collector: collector.lua's states are small). */
Test(hklua_threads, collector_options_and_figures, .init = setup) {
  static const char *const modes[] = {"--collector=on", "--collector=off", "--idle-gc=off",
                                      "--batch-frees=off"};
  size_t i;
  for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    lt_result r = hk("--threads=2", "--stats=json", "--close-min=0", modes[i],
                     script("collector.lua"), NULL);
    bool on = i != 1;
    cr_expect(r.status == 0 && strstr(r.out, "collector ok") != NULL, "%s: status %d\n%s%s",
              modes[i], r.status, r.out, r.err);
    cr_expect(strstr(r.err, on ? "\"collector\":{\"state\":\"on\"" : "\"collector\":{\"state\":\"off\"") != NULL,
              "%s: %s", modes[i], r.err);
    cr_expect(strstr(r.err, "\"worker_gc_time\":\"measured\"") != NULL, "%s", r.err);
    expect_close_times(r.err, "\"collector\":{", modes[i]);
    expect_close_times(r.err, "\"per_worker\":[", modes[i]);
    if (on) cr_expect(json_after(r.err, "\"collector\":{", "closed") > 0, "%s: %s", modes[i], r.err);
    lt_result_free(&r);
  }
}

/* The sum of every figure `key` (a number) in s. */
static double json_sum(const char *s, const char *key) {
  char k[64];
  double v, sum = 0;
  snprintf(k, sizeof k, "\"%s\":", key);
  while ((s = strstr(s, k)) != NULL) {
    s += strlen(k);
    if (sscanf(s, "%lf", &v) == 1) sum += v;
  }
  return sum;
}

/* Spare states: the same output on and off; on, the tasks of the runtime's
** limit started on states their idle workers made (spares.lua spawns 20 of
** them one at a time, and two of another limit or heap, which must not). */
Test(hklua_threads, spare_states, .init = setup) {
  static const char *const modes[] = {"--spare-states=on", "--spare-states=off"};
  size_t i;
  for (i = 0; i < 2; i++) {
    lt_result r = hk("--threads=2", "--stats=json", "--task-mem-limit=2M", modes[i],
                     script("spares.lua"), NULL);
    cr_expect(r.status == 0 && strstr(r.out, "spares ok\t2284") != NULL, "%s: status %d\n%s%s",
              modes[i], r.status, r.out, r.err);
    double spares = json_sum(r.err, "spare_states");
    if (i == 0) cr_expect(spares >= 10 && spares <= 21, "%s: %g tasks started on spare states", modes[i], spares);
    else cr_expect(spares == 0, "%s: %g tasks started on spare states", modes[i], spares);
    lt_result_free(&r);
  }
}

Test(hklua_threads, watchdog_and_time_limit, .init = setup) {
  lt_result r = hk("--threads=2", "--watchdog=50", "--time-limit=300", script("watchdog.lua"), NULL,
                   NULL);
  cr_expect(r.status == 0 && strstr(r.out, "watchdog ok") != NULL, "status %d\n%s%s", r.status,
            r.out, r.err);
  cr_expect(strstr(r.err, "hakrt: watchdog: task 2 has run") != NULL, "%s", r.err);
  cr_expect(strstr(r.err, "task 2: time limit exceeded") != NULL, "%s", r.err);
  lt_result_free(&r);
}

/* A task limit that leaves room for a bare state but not for the task's
** own setup: the task fails with a message and hklua exits 1, where the
** whole process used to abort (PANIC: unprotected error). */
Test(hklua_threads, tiny_task_mem_limit, .init = setup) {
  static const char *const limits[] = {"--task-mem-limit=21000", "--task-mem-limit=24000"};
  size_t i;
  for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    lt_result r = hk("--threads=1", limits[i], script("tiny_limits.lua"), NULL, NULL, NULL);
    cr_expect(r.status == 1 && strstr(r.err, "PANIC") == NULL, "%s: status %d (signal %d)\n%s",
              limits[i], r.status, r.signal, r.err);
    cr_expect(strstr(r.err, "task 1: cannot create the task's state: not enough memory") != NULL,
              "%s:\n%s", limits[i], r.err);
    lt_result_free(&r);
  }
}

/* --time-limit reaches a task that spins in coroutines catching errors. */
Test(hklua_threads, time_limit_through_coroutines, .init = setup) {
  lt_result r = hk("--threads=2", "--time-limit=200", script("time_limit_coroutines.lua"), NULL,
                   NULL, NULL);
  cr_expect(r.status == 0 && strstr(r.out, "time_limit_coroutines ok") != NULL,
            "status %d\n%s%s", r.status, r.out, r.err);
  lt_result_free(&r);
}
