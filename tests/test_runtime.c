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
#include <unistd.h>

#ifdef HKT_STANDALONE
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include "hakrt.h"
#include "luatest.h"

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
static rt_run run(const char *script, const char *source, hakrt_config *cfg_in) {
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
    cr_assert(hakrt_spawn_file(rt, path, 0, NULL, NULL) > 0, "spawn %s", path);
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
Test(runtime, buffers) { expect_script("buffers.lua", "buffers ok", 2, false); }
Test(runtime, buffers_libc) { expect_script("buffers.lua", "buffers ok", 2, true); }
Test(runtime, channels) { expect_script("channels.lua", "channels ok", 2, false); }
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

/* The host posts strings to a task's inbox from its own thread. */
Test(runtime, host_posts) {
  hakrt_config cfg;
  hakrt *rt;
  uint64_t id;
  int i, sent = 0, tries = 0;
  FILE *out = tmpfile();
  char *text;
  hakrt_config_init(&cfg);
  cfg.workers = 2;
  cfg.host_posts = true;
  cfg.out = out;
  rt = hakrt_new(&cfg);
  cr_assert(rt != NULL, "hakrt_new");
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

Test(runtime, bad_config) {
  hakrt_config cfg;
  hakrt_config_init(&cfg);
  cfg.workers = -1;
  errno = 0;
  cr_expect(hakrt_new(&cfg) == NULL && errno == EINVAL, "workers = -1 accepted");
}
