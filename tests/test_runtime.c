/*
** test_runtime.c -- the multi-thread runtime (runtime/hakrt.h): the Lua
** scripts of tests/runtime/ as tasks, and the C API's own cases (deadlock,
** host posts, shutdown with nothing left).  Built with Criterion, and as a
** plain program for ThreadSanitizer (tests/plain/runtime.c).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include "hakrt.h"
#include "luatest.h"
#include "fixture.h"

TestSuite(runtime, .init = hkt_fixture_init, .fini = hkt_fixture_fini);

/* The collector's scripts take a scale: sanitizer and debug builds run
** them smaller (the scripts of tests/runtime read it as their first
** argument). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || HAK_DEBUG
#define SCRIPT_SCALE "4"
#else
#define SCRIPT_SCALE "1"
#endif

/* What one run of the runtime left: hakrt_wait's result and the output. */
typedef struct rt_run {
  int waited;
  char *out, *err;
} rt_run;

static char *slurp(FILE *f) {
  long n;
  char *s;
  fflush(f);
  n = ftell(f);
  s = (char *)malloc((size_t)n + 1);
  rewind(f);
  n = (long)fread(s, 1, (size_t)n, f);
  s[n] = '\0';
  fclose(f);
  return s;
}

static void script_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/tests/runtime/%s", lt_srcdir(), name);
}

/* Runs tests/runtime/<script> as one task (or a source chunk) on `workers`
** workers and checks that nothing stays allocated once the runtime is
** freed. */
static rt_run run_args(const char *script, const char *source, hakrt_config *cfg_in, int argc,
                       const char *const *argv) {
  hakrt_config cfg;
  hakrt *rt;
  rt_run r;
  char path[1024];
  size_t before;
  if (cfg_in != NULL) cfg = *cfg_in;
  else hakrt_config_init(&cfg), cfg.workers = 2;
  cfg.out = tmpfile();
  cfg.err = tmpfile();
  cr_assert(cfg.out != NULL && cfg.err != NULL, "tmpfile");
  hak_collect(true);
  before = lt_hak_in_use();
  rt = hakrt_new(&cfg);
  cr_assert(rt != NULL, "hakrt_new: %s", strerror(errno));
  if (script != NULL) {
    script_path(path, sizeof path, script);
    cr_assert(hakrt_spawn_file(rt, path, argc, argv, NULL) > 0, "spawn %s", path);
  } else {
    cr_assert(hakrt_spawn_source(rt, source, "=test", 0, NULL, NULL) > 0, "spawn source");
  }
  r.waited = hakrt_wait(rt);
  hakrt_free(rt);
  hak_collect(true);
  if (!cfg.libc)
    cr_expect(lt_hak_in_use() == before, "%zu bytes left in hakmem after hakrt_free (%zu before)",
              lt_hak_in_use(), before);
  r.out = slurp(cfg.out);
  r.err = slurp(cfg.err);
  return r;
}

static rt_run run(const char *script, const char *source, hakrt_config *cfg_in) {
  return run_args(script, source, cfg_in, 0, NULL);
}

static void expect_script_heaps(const char *script, const char *ok_line, int workers, bool libc,
                               bool private_heaps) {
  hakrt_config cfg;
  rt_run r;
  hakrt_config_init(&cfg);
  cfg.workers = workers;
  cfg.libc = libc;
  cfg.private_heaps = private_heaps;
  r = run(script, NULL, &cfg);
  cr_expect(r.waited == 0, "%s: %d failed tasks; stderr:\n%s", script, r.waited, r.err);
  cr_expect(strstr(r.out, ok_line) != NULL, "%s: no '%s' in stdout:\n%s\nstderr:\n%s", script,
            ok_line, r.out, r.err);
  free(r.out);
  free(r.err);
}

static void expect_script(const char *script, const char *ok_line, int workers, bool libc) {
  expect_script_heaps(script, ok_line, workers, libc, false);
}

/* A heap per task: released and claimed at every migration, dropped at close. */
Test(runtime, private_heaps) {
  expect_script_heaps("migrate.lua", "migrate ok", 2, false, true);
  expect_script_heaps("buffers.lua", "buffers ok", 2, false, true);
  expect_script_heaps("messages.lua", "messages ok", 2, false, true);
}

Test(runtime, messages) { expect_script("messages.lua", "messages ok", 2, false); }
Test(runtime, messages_one_worker) { expect_script("messages.lua", "messages ok", 1, false); }
Test(runtime, messages_libc) { expect_script("messages.lua", "messages ok", 2, true); }
Test(runtime, deepcopy) { expect_script("deepcopy.lua", "deepcopy ok", 2, false); }
Test(runtime, spawn_code) { expect_script("spawn_code.lua", "spawn_code ok", 2, false); }
Test(runtime, spawn_code_one_worker) { expect_script("spawn_code.lua", "spawn_code ok", 1, false); }
Test(runtime, buffers) { expect_script("buffers.lua", "buffers ok", 2, false); }
/* Spare states (spares.lua under a 2 MiB task limit, as hklua_threads'
** test runs it): tasks of another limit or heap start on states of their
** own while their worker's spare waits, and hakrt_free closes every spare
** (run checks that hakmem holds nothing after it). */
Test(runtime, spare_states_leave_nothing) {
  hakrt_config cfg;
  rt_run r;
  hakrt_config_init(&cfg);
  cfg.workers = 2;
  cfg.task_mem_limit = 2u << 20;
  r = run("spares.lua", NULL, &cfg);
  cr_expect(r.waited == 0, "%d failed tasks; stderr:\n%s", r.waited, r.err);
  cr_expect(strstr(r.out, "spares ok\t2284") != NULL, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
  free(r.out);
  free(r.err);
}

Test(runtime, handles) { expect_script("handles.lua", "handles ok", 2, false); }
Test(runtime, handles_one_worker) { expect_script("handles.lua", "handles ok", 1, false); }
Test(runtime, handles_private_heaps) { expect_script_heaps("handles.lua", "handles ok", 2, false, true); }
Test(runtime, buffers_libc) { expect_script("buffers.lua", "buffers ok", 2, true); }
/* b:sub as string.sub at every edge, b:set's range, spawn_with's field
** errors, rt.inbox() in a finalizer at close. */
Test(runtime, api_edges) { expect_script("api_edges.lua", "api_edges ok", 2, false); }
Test(runtime, api_edges_one_worker) { expect_script("api_edges.lua", "api_edges ok", 1, false); }
Test(runtime, channels) { expect_script("channels.lua", "channels ok", 2, false); }
Test(runtime, pending_send_after_its_buffer_left) {
  expect_script("pending_send.lua", "pending_send ok", 2, false);
}
Test(runtime, inbox_readable_after_its_owner) {
  expect_script("inbox_after_owner.lua", "inbox_after_owner ok", 2, false);
}
Test(runtime, channel_cycles_freed_with_the_runtime) {
  expect_script("chan_cycles.lua", "chan_cycles ok", 2, false);
}
Test(runtime, a_receive_at_close_leaks_nothing) {
  expect_script("close_recv.lua", "close_recv ok", 2, false);
}
Test(runtime, a_refused_receive_at_close_leaves_the_message_in_place) {
  expect_script("close_recv_waiters.lua", "close_recv_waiters ok", 2, false);
}
Test(runtime, migrate) { expect_script("migrate.lua", "migrate ok", 2, false); }
Test(runtime, preempt_one_worker) { expect_script("preempt.lua", "preempt ok", 1, false); }
Test(runtime, preempt_two_workers) { expect_script("preempt.lua", "preempt ok", 2, false); }

Test(runtime, preempt_by_hook) {
  hakrt_config cfg;
  rt_run r;
  hakrt_config_init(&cfg);
  cfg.workers = 1;
  cfg.preempt = HAKRT_PREEMPT_HOOK;
  r = run("preempt.lua", NULL, &cfg);
  cr_expect(r.waited == 0 && strstr(r.out, "preempt ok") != NULL, "hook mode:\n%s%s", r.out, r.err);
  free(r.out);
  free(r.err);
}

/* Errors are reported ("task N: ..." with a traceback) and stay in their
** task: the script joins them, so none counts as unhandled. */
Test(runtime, errors) {
  rt_run r = run("errors.lua", NULL, NULL);
  cr_expect(r.waited == 0, "unhandled failures: %d\n%s", r.waited, r.err);
  cr_expect(strstr(r.out, "errors ok") != NULL, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
  cr_expect(strstr(r.err, "attempt to index") != NULL && strstr(r.err, "stack traceback") != NULL,
            "stderr:\n%s", r.err);
  free(r.out);
  free(r.err);
}

Test(runtime, unjoined_failure_counts) {
  rt_run r = run(NULL, "local rt = require 'hakrt'\n"
                       "rt.spawn(function() error('lost') end)\n"
                       "error('main too')\n", NULL);
  cr_expect(r.waited == 2, "hakrt_wait said %d", r.waited);
  cr_expect(strstr(r.err, "task 1: test:3: main too") != NULL, "stderr:\n%s", r.err);
  cr_expect(strstr(r.err, "task 2: ") != NULL && strstr(r.err, "lost") != NULL, "stderr:\n%s", r.err);
  free(r.out);
  free(r.err);
}

Test(runtime, deadlock_is_reported) {
  rt_run r = run(NULL, "local rt = require 'hakrt'\n"
                       "local a, b = rt.channel(), rt.channel()\n"
                       "local t = rt.spawn(function(a, b) a:recv() b:send(1) end, a, b)\n"
                       "local j = rt.spawn(function(t) t:join() end, 1)\n"
                       "b:recv()\n", NULL);
  cr_expect(r.waited == HAKRT_DEADLOCK, "hakrt_wait said %d", r.waited);
  cr_expect(strstr(r.err, "deadlock") != NULL, "stderr:\n%s", r.err);
  cr_expect(strstr(r.err, "task 1 waits to receive from channel") != NULL, "stderr:\n%s", r.err);
  cr_expect(strstr(r.err, "task 2 waits to receive from channel") != NULL, "stderr:\n%s", r.err);
  free(r.out);
  free(r.err);
}

/* A join waits on a task; a sleep is not a deadlock. */
Test(runtime, join_and_sleep_are_not_deadlocks) {
  rt_run r = run(NULL, "local rt = require 'hakrt'\n"
                       "local t = rt.spawn(function() local rt = require 'hakrt' rt.sleep(30) return 5 end)\n"
                       "local ok, v = t:join() assert(ok and v == 5)\n"
                       "print('joined', v)\n", NULL);
  cr_expect(r.waited == 0 && strstr(r.out, "joined\t5") != NULL, "%s%s", r.out, r.err);
  free(r.out);
  free(r.err);
}

/* Many tasks printing: every line whole. */
Test(runtime, output_lines_whole) {
  hakrt_config cfg;
  rt_run r;
  char *line, *save = NULL;
  int lines = 0;
  hakrt_config_init(&cfg);
  cfg.workers = 2;
  cfg.slice_ms = 1;
  r = run(NULL, "local rt = require 'hakrt'\n"
                "local hs = {}\n"
                "for i = 1, 8 do hs[i] = rt.spawn(function(i)\n"
                "  for j = 1, 200 do io.write('task ', i, ' line ', j, ' ', string.rep('=', 60)) print(' end') end\n"
                "end, i) end\n"
                "for i = 1, 8 do assert(hs[i]:join()) end\n", &cfg);
  cr_expect(r.waited == 0, "%s", r.err);
  for (line = strtok_r(r.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    int i, j, n = 0;
    cr_expect(sscanf(line, "task %d line %d %n", &i, &j, &n) == 2 && n > 0 &&
                  strlen(line) == (size_t)n + 60 + 4,
              "a broken line: '%s'", line);
    lines++;
  }
  cr_expect(lines == 8 * 200, "%d lines", lines);
  free(r.out);
  free(r.err);
}

/* A runtime of `workers` that the host may post to, printing into out. */
static hakrt *posting_runtime(int workers, FILE *out) {
  hakrt_config cfg;
  hakrt *rt;
  hakrt_config_init(&cfg);
  cfg.workers = workers;
  cfg.host_posts = true;
  cfg.out = out;
  rt = hakrt_new(&cfg);
  cr_assert(rt != NULL, "hakrt_new");
  return rt;
}

/* The host posts strings to a task's inbox from its own thread. */
Test(runtime, host_posts) {
  hakrt *rt;
  uint64_t id;
  int i, sent = 0, tries = 0;
  FILE *out = tmpfile();
  char *text;
  rt = posting_runtime(2, out);
  id = hakrt_spawn_source(rt, "local rt = require 'hakrt'\n"
                              "local inbox, sum = rt.inbox(), 0\n"
                              "while true do local m = inbox:recv() if m == 'end' then break end\n"
                              "  sum = sum + tonumber(m) end\n"
                              "print('sum', sum)\n", "=posts", 0, NULL, NULL);
  cr_assert(id > 0, "spawn");
  for (i = 1; i <= 500; i++) {
    char msg[16];
    int len = snprintf(msg, sizeof msg, "%d", i);
    while (hakrt_post(rt, id, msg, (size_t)len) != 0) {
      cr_assert(errno == EAGAIN, "post: %s", strerror(errno));
      tries++;
      usleep(100);
    }
    sent++;
  }
  while (hakrt_post(rt, id, "end", 3) != 0) usleep(100);
  cr_expect(hakrt_wait(rt) == 0, "the task failed");
  cr_expect(hakrt_post(rt, id, "late", 4) == -1 && errno == ESRCH, "post to a finished task");
  hakrt_free(rt);
  text = slurp(out);
  cr_expect(strstr(text, "sum\t125250") != NULL, "output: %s (%d sent, %d full)", text, sent, tries);
  free(text);
}

/* A post before the task asked for its inbox makes it: the task finds the
** message there when it asks. */
Test(runtime, host_posts_first) {
  hakrt *rt;
  uint64_t id;
  int tries = 0;
  FILE *out = tmpfile();
  char *text;
  rt = posting_runtime(1, out);
  id = hakrt_spawn_source(rt, "local rt = require 'hakrt'\n"
                              "rt.sleep(50)\n"
                              "print('got', rt.inbox():recv())\n", "=late_inbox", 0, NULL, NULL);
  cr_assert(id > 0, "spawn");
  while (hakrt_post(rt, id, "early", 5) != 0) {
    cr_assert(errno == EAGAIN, "post: %s", strerror(errno));
    tries++;
    usleep(100);
  }
  cr_expect(hakrt_wait(rt) == 0, "the task failed");
  hakrt_free(rt);
  text = slurp(out);
  cr_expect(strstr(text, "got\tearly") != NULL, "output: %s (%d full)", text, tries);
  free(text);
}

/* Tasks still blocked at hakrt_free are closed: finalizers run, nothing left. */
Test(runtime, free_closes_blocked_tasks) {
  rt_run r = run(NULL, "local rt = require 'hakrt'\n"
                       "local c = rt.channel()\n"
                       "for i = 1, 20 do rt.spawn(function(c) local keep = setmetatable({}, {__gc = function() end})\n"
                       "  local big = {} for j = 1, 1000 do big[j] = {j} end c:recv() end, c) end\n"
                       "c:recv()\n", NULL);
  cr_expect(r.waited == HAKRT_DEADLOCK, "hakrt_wait said %d", r.waited);
  free(r.out);
  free(r.err);
}

/* The other queue design: a run queue per worker, with stealing (a task
** need not migrate there: migrate.lua's check is for the shared queue). */
Test(runtime, per_worker_queues) {
  static const char *const scripts[][2] = {
    {"messages.lua", "messages ok"}, {"deepcopy.lua", "deepcopy ok"}, {"preempt.lua", "preempt ok"},
    {"channels.lua", "channels ok"}, {"buffers.lua", "buffers ok"}};
  size_t i;
  for (i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
    hakrt_config cfg;
    rt_run r;
    hakrt_config_init(&cfg);
    cfg.workers = 2;
    cfg.queues = HAKRT_QUEUES_PER_WORKER;
    r = run(scripts[i][0], NULL, &cfg);
    cr_expect(r.waited == 0 && strstr(r.out, scripts[i][1]) != NULL, "%s:\n%s%s", scripts[i][0],
              r.out, r.err);
    free(r.out);
    free(r.err);
  }
}

/* ------------------------------------------------------------------------
** The collector thread.
** --------------------------------------------------------------------- */

typedef struct col_cfg {
  int workers;
  bool collector, idle_gc, batch_frees, generational, private_heaps;
  size_t limit;
  double soft;
  unsigned watchdog_ms, time_limit_ms;
  size_t close_min;
} col_cfg;

/* Every state closed on the collector (close_min 0), so that these tests
** exercise its close whatever their states' sizes. */
static col_cfg col_default(void) {
  col_cfg c = {2, true, true, true, true, false, 0, 0.9, 0, 0, 0};
  return c;
}

static rt_run run_col(const char *script, col_cfg c) {
  hakrt_config cfg;
  hakrt_config_init(&cfg);
  cfg.workers = c.workers;
  cfg.collector = c.collector;
  cfg.idle_gc = c.idle_gc;
  cfg.batch_frees = c.batch_frees;
  cfg.generational = c.generational;
  cfg.private_heaps = c.private_heaps;
  cfg.task_mem_limit = c.limit;
  cfg.soft_limit = c.soft;
  cfg.watchdog_ms = c.watchdog_ms;
  cfg.time_limit_ms = c.time_limit_ms;
  cfg.collector_close_min = c.close_min;
  {
    static const char *const scale[] = {SCRIPT_SCALE};
    return run_args(script, NULL, &cfg, 1, scale);
  }
}

/* A figure "name=N" in the output, or -1. */
static long figure(const char *out, const char *name) {
  const char *p = strstr(out, name);
  long v;
  if (p == NULL || sscanf(p + strlen(name), "=%ld", &v) != 1) return -1;
  return v;
}

static void free_run(rt_run *r) {
  free(r->out);
  free(r->err);
}

/* Runs `script` with the collector on, off, and on with private heaps;
** each run must print `ok`. */
static void run_collector_on_off(const char *script, const char *ok) {
  col_cfg c = col_default();
  int i;
  for (i = 0; i < 3; i++) {
    rt_run r;
    c.collector = i != 1;
    c.private_heaps = i == 2;
    r = run_col(script, c);
    cr_expect(r.waited == 0 && strstr(r.out, ok) != NULL, "%s, collector %s%s:\n%s%s", script,
              c.collector ? "on" : "off", c.private_heaps ? ", private heaps" : "", r.out, r.err);
    free_run(&r);
  }
}

/* States closed on the collector while the workers allocate and free into
** the same pages; the script checks who closed them. */
Test(runtime, collector_closes_states) {
  run_collector_on_off("collector.lua", "collector ok");
}

/* Where states are closed: from collector_close_min up on the collector,
** below it by their workers (the script checks the counts). */
Test(runtime, small_states_closed_by_workers) {
  col_cfg c = col_default();
  rt_run r;
  c.close_min = (size_t)256 << 10;
  r = run_col("close_min.lua", c);
  cr_expect(r.waited == 0 && strstr(r.out, "close_min ok") != NULL, "%s%s", r.out, r.err);
  free_run(&r);
}

/* Accounts exact to the byte after the collector ran the tasks' GC. */
Test(runtime, accounts_exact_after_idle_gc) {
  col_cfg c = col_default();
  int i;
  for (i = 0; i < 4; i++) {
    rt_run r;
    long idle;
    c.idle_gc = i != 1;
    c.generational = i != 2;
    c.private_heaps = i == 3;
    r = run_col("accounts.lua", c);
    idle = figure(r.out, "idle_gcs");
    cr_expect(r.waited == 0 && strstr(r.out, "accounts ok") != NULL, "run %d:\n%s%s", i, r.out, r.err);
    if (c.idle_gc) cr_expect(idle > 0, "run %d: the collector never collected a parked task", i);
    else cr_expect(idle == 0, "idle GC off, yet %ld idle collections", idle);
    free_run(&r);
  }
}

/* The collector takes a parked task when its garbage since its state's
** last collection, Lua's own included, is due (tests/runtime/gc_clock.lua;
** generational mode, with every heap big enough to go at once). */
Test(runtime, idle_gc_counts_from_the_last_collection) {
  col_cfg c = col_default();
  rt_run r = run_col("gc_clock.lua", c);
  cr_expect(r.waited == 0 && strstr(r.out, "gc_clock ok") != NULL, "%s%s", r.out, r.err);
  free_run(&r);
}

/* With collector_close_min above a task's heap, the collector takes its
** GC only once it has stayed parked 50 ms (both GC modes). */
Test(runtime, small_heaps_collected_only_when_idle) {
  for (int gen = 0; gen < 2; gen++) {
    col_cfg c = col_default();
    rt_run r;
    c.generational = gen != 0;
    c.close_min = (size_t)1 << 20;
    r = run_col("idle_delay.lua", c);
    cr_expect(r.waited == 0 && strstr(r.out, "idle_delay ok") != NULL, "gen %d: %s%s", gen, r.out, r.err);
    free_run(&r);
  }
}

/* A worker resuming a task while the collector runs its GC (incremental
** steps, so a wake cuts the cycle short). */
Test(runtime, resume_while_collecting) {
  col_cfg c = col_default();
  rt_run r;
  c.generational = false;
  r = run_col("resume_collecting.lua", c);
  cr_expect(r.waited == 0 && strstr(r.out, "resume ok") != NULL, "%s%s", r.out, r.err);
  cr_expect(figure(r.out, "idle_gcs") >= 1, "the collector never took the parked task: %s", r.out);
  cr_log_info("%s", r.out);
  free_run(&r);
}

/* The soft limit fires before the hard one, on the worker (at a yield) and
** on the collector (at a park); without it allocations fail. */
Test(runtime, soft_limit_before_hard) {
  col_cfg c = col_default();
  int i;
  c.limit = 8u << 20;
  for (i = 0; i < 3; i++) {
    rt_run r;
    c.collector = i != 1;
    c.soft = i == 2 ? 0 : 0.9;
    r = run_col("softlimit.lua", c);
    cr_expect(r.waited == 0 && strstr(r.out, "softlimit ok") != NULL, "run %d:\n%s%s", i, r.out, r.err);
    if (c.soft > 0)
      cr_expect(figure(r.out, "soft_gcs") > 0 && figure(r.out, "failed_allocs") == 0,
                "run %d: the soft limit did not prevent failures: %s", i, r.out);
    else
      cr_expect(figure(r.out, "soft_gcs") == 0 && figure(r.out, "failed_allocs") > 0,
                "without a soft limit no allocation failed: %s", r.out);
    free_run(&r);
  }
}

/* A collector script that must succeed and print `ok_line`. */
static void expect_col(const char *script, const char *ok_line, col_cfg c) {
  rt_run r = run_col(script, c);
  cr_expect(r.waited == 0 && strstr(r.out, ok_line) != NULL, "%s:\n%s%s", script, r.out, r.err);
  free_run(&r);
}

/* Finalizers run while the task's code does not (the collector's GC of
** the parked task, the soft limit's as it parks) leave its wait alone. */
Test(runtime, finalizers_leave_the_tasks_wait) {
  col_cfg c = col_default();
  int i;
  for (i = 0; i < 2; i++) {
    c.collector = i == 0;
    c.limit = i == 0 ? 0 : 8u << 20; /* off: the soft limit's collection */
    expect_col("finalizer_waits.lua", "finalizer_waits ok", c);
  }
}

/* collectgarbage("stop") holds for the idle GC. */
Test(runtime, idle_gc_leaves_a_stopped_state) {
  expect_col("gc_stopped.lua", "gc_stopped ok", col_default());
}

/* rt.stats()'s GC totals never go down while the collector closes states
** (col_default closes every state there). */
Test(runtime, gc_totals_never_go_down) {
  expect_col("stats_totals.lua", "stats_totals ok", col_default());
}

/* The watchdog reports a spinning task, the time limit stops it. */
Test(runtime, watchdog_and_time_limit) {
  col_cfg c = col_default();
  int workers;
  c.watchdog_ms = 50;
  c.time_limit_ms = 300;
  for (workers = 1; workers <= 2; workers++) {
    rt_run r;
    c.workers = workers;
    r = run_col("watchdog.lua", c);
    cr_expect(r.waited == 0 && strstr(r.out, "watchdog ok") != NULL, "%d workers:\n%s%s", workers,
              r.out, r.err);
    cr_expect(strstr(r.err, "hakrt: watchdog: task 2 has run") != NULL &&
                  strstr(r.err, "stack traceback") != NULL,
              "no watchdog report:\n%s", r.err);
    cr_expect(strstr(r.err, "task 2: time limit exceeded") != NULL, "stderr:\n%s", r.err);
    free_run(&r);
  }
}

/* A task's memory limit just above a bare state's: the task fails with
** "cannot create the task's state" (or, a little higher, runs out in its
** code), the runtime goes on, and no state is left (run checks hakmem).
** Every limit from 15000 to 40000 bytes, for the first task (on a spare
** state or its own) and for tasks spawned with a limit of their own. */
Test(runtime, tiny_memory_limits) {
  size_t limit;
  int spares, refused = 0, ran = 0;
  for (spares = 0; spares < 2; spares++)
    for (limit = 15000; limit <= 40000; limit += 500) {
      hakrt_config cfg;
      rt_run r;
      hakrt_config_init(&cfg);
      cfg.workers = 1;
      cfg.spare_states = spares != 0;
      cfg.task_mem_limit = limit;
      r = run(NULL, "local x = 1\n", &cfg);
      if (r.waited == 0) {
        ran++;
      } else {
        cr_expect(r.waited == 1 && strstr(r.err, "task 1: ") != NULL &&
                      strstr(r.err, "not enough memory") != NULL,
                  "limit %zu: hakrt_wait said %d\n%s", limit, r.waited, r.err);
        if (strstr(r.err, "task 1: cannot create the task's state: not enough memory") != NULL)
          refused++;
      }
      free_run(&r);
    }
  cr_expect(ran > 0 && refused > 0, "%d ran, %d refused: the range misses the boundary", ran,
            refused);
  expect_script("tiny_limits.lua", "tiny_limits ok", 2, false);
  expect_script_heaps("tiny_limits.lua", "tiny_limits ok", 2, false, true);
}

/* An error object whose __tostring fails is reported as such. */
Test(runtime, error_object_tostring) {
  expect_script("error_objects.lua", "error_objects ok", 2, false);
}

/* The time limit unwinds the whole task, inside coroutines that catch it
** too, in every preemption mode (signals cannot reach uninstrumented code
** under ThreadSanitizer: hook mode only there). */
Test(runtime, time_limit_through_coroutines) {
  static const hakrt_preempt modes[] = {HAKRT_PREEMPT_HOOK,
#if !defined(__SANITIZE_THREAD__)
                                        HAKRT_PREEMPT_SIGNAL, HAKRT_PREEMPT_OFF
#endif
  };
  size_t i;
  for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    hakrt_config cfg;
    rt_run r;
    hakrt_config_init(&cfg);
    cfg.workers = 2;
    cfg.preempt = modes[i];
    cfg.time_limit_ms = 200;
    r = run("time_limit_coroutines.lua", NULL, &cfg);
    cr_expect(r.waited == 0 && strstr(r.out, "time_limit_coroutines ok") != NULL,
              "preempt mode %d:\n%s%s", (int)modes[i], r.out, r.err);
    free_run(&r);
  }
}

static uint64_t test_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Receives whose long timeouts messages ended early leave no timer
** (stale_timers.lua counts them in rt.stats()), and a deadlock after one
** is reported at once, not when its deadline (30 s) would have come. */
Test(runtime, ended_timeouts_leave_no_timer) {
  static const char *const scale[] = {SCRIPT_SCALE};
  rt_run r = run_args("stale_timers.lua", NULL, NULL, 1, scale);
  uint64_t t0;
  cr_expect(r.waited == 0 && strstr(r.out, "stale_timers ok") != NULL, "%s%s", r.out, r.err);
  free_run(&r);
  t0 = test_now_ns();
  r = run(NULL, "local rt = require 'hakrt'\n"
                "local ch = rt.channel(1)\n"
                "rt.spawn(function(ch) local rt = require 'hakrt' rt.sleep(20) ch:send('hi') end, ch)\n"
                "assert(ch:recv(30000) == 'hi')\n"
                "rt.channel(1):recv()\n", NULL);
  t0 = test_now_ns() - t0;
  cr_expect(r.waited == HAKRT_DEADLOCK, "hakrt_wait said %d\n%s", r.waited, r.err);
  cr_expect(strstr(r.err, "task 1 waits to receive from channel") != NULL, "stderr:\n%s", r.err);
  cr_expect(t0 < 10000000000ull, "the deadlock was reported after %.1f s", (double)t0 / 1e9);
  free_run(&r);
}

/* Shutdown while the collector still has states to close: nothing left
** (run() checks hakmem's bytes). */
Test(runtime, shutdown_with_collector_busy) {
  col_cfg c = col_default();
  int i;
  for (i = 0; i < 2; i++) {
    rt_run r;
    c.private_heaps = i == 1;
    r = run_col("burst.lua", c);
    cr_expect(r.waited == 0 && strstr(r.out, "burst ok") != NULL, "%s%s", r.out, r.err);
    free_run(&r);
  }
}

/* Every switch off and on gives the same output. */
Test(runtime, switches_same_output) {
  static const char *const scripts[] = {"collector.lua", "channels.lua", "deepcopy.lua", "burst.lua"};
  size_t s;
  for (s = 0; s < sizeof scripts / sizeof scripts[0]; s++) {
    char *first = NULL;
    int mask;
    for (mask = 0; mask < 8; mask++) {
      col_cfg c = col_default();
      rt_run r;
      c.collector = mask & 1;
      c.idle_gc = (mask & 2) != 0;
      c.batch_frees = (mask & 4) != 0;
      r = run_col(scripts[s], c);
      cr_expect(r.waited == 0, "%s, switches %d: %s", scripts[s], mask, r.err);
      if (first == NULL) {
        first = r.out;
        r.out = NULL;
      } else {
        cr_expect(strcmp(first, r.out) == 0, "%s: switches %d print\n%s\ninstead of\n%s",
                  scripts[s], mask, r.out, first);
      }
      free_run(&r);
    }
    free(first);
  }
}

Test(runtime, bad_config) {
  hakrt_config cfg;
  hakrt_config_init(&cfg);
  cfg.workers = -1;
  errno = 0;
  cr_expect(hakrt_new(&cfg) == NULL && errno == EINVAL, "workers = -1 accepted");
  hakrt_config_init(&cfg);
  cfg.queues = (hakrt_queues)7;
  errno = 0;
  cr_expect(hakrt_new(&cfg) == NULL && errno == EINVAL, "queues = 7 accepted");
  hakrt_config_init(&cfg);
  cfg.soft_limit = 1.5;
  errno = 0;
  cr_expect(hakrt_new(&cfg) == NULL && errno == EINVAL, "soft_limit = 1.5 accepted");
}
