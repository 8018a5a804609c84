/*
** standalone.c -- the runner of tests built without Criterion (see
** standalone.h): each registered test runs in a child process, so a crash
** or an abort fails that test and the others still run.
**
** Usage: <program> [suite::name ...]   (no argument: every test)
** HKT_NO_FORK=1 runs the tests in the runner's own process (for gdb).
*/
#include "standalone.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 64

#ifdef __SANITIZE_THREAD__
/* A TSan report fails the test at once, whatever TSAN_OPTIONS says
** (options given there still apply on top of these). */
const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *__tsan_default_options(void) {
  return "halt_on_error=1 exitcode=66";
}
#endif

typedef struct test_s {
  const char *suite;
  const char *name;
  hkt_test_fn fn;
} test_t;

static test_t tests[MAX_TESTS];
static int test_count;

#define MAX_SUITES 8
static struct {
  const char *suite;
  const hkt_suite_t *fixture;
} suites[MAX_SUITES];
static int suite_count;
static bool test_failed; /* in the process running the test */

void hkt_register_test(const char *suite, const char *name, hkt_test_fn fn) {
  if (test_count == MAX_TESTS) {
    fprintf(stderr, "standalone: more than %d tests\n", MAX_TESTS);
    exit(2);
  }
  tests[test_count++] = (test_t){suite, name, fn};
}

void hkt_register_suite(const char *suite, const hkt_suite_t *fixture) {
  if (suite_count == MAX_SUITES) {
    fprintf(stderr, "standalone: more than %d suites\n", MAX_SUITES);
    exit(2);
  }
  suites[suite_count].suite = suite;
  suites[suite_count++].fixture = fixture;
}

/* The test with its suite's fixture around it, as Criterion runs it. */
static void run_body(const test_t *t) {
  const hkt_suite_t *f = NULL;
  for (int i = 0; i < suite_count; i++)
    if (strcmp(suites[i].suite, t->suite) == 0) f = suites[i].fixture;
  if (f && f->init) f->init();
  t->fn();
  if (f && f->fini) f->fini();
}

void hkt_fail(bool fatal, const char *file, int line, const char *expr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: %s failed: %s\n  ", file, line, fatal ? "assertion" : "expectation",
          expr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  test_failed = true;
  if (fatal) exit(1);
}

void hkt_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("[----] ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static bool selected(const test_t *t, int argc, char **argv) {
  if (argc < 2) return true;
  char full[256];
  snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], full) == 0) return true;
  return false;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one test; returns true if it passed. */
static bool run_test(const test_t *t, bool use_fork) {
  if (!use_fork) {
    test_failed = false;
    run_body(t);
    return !test_failed;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("standalone: fork");
    return false;
  }
  if (pid == 0) {
    run_body(t);
    /* exit, not _exit: the sanitizers report at exit */
    exit(test_failed ? 1 : 0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    /* EINTR: wait again */
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "[FAIL] %s::%s: killed by signal %d\n", t->suite, t->name, WTERMSIG(status));
    return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv) {
  const char *nf = getenv("HKT_NO_FORK");
  bool use_fork = !(nf && *nf && strcmp(nf, "0") != 0);
  int ran = 0, failed = 0;
  for (int i = 0; i < test_count; i++) {
    const test_t *t = &tests[i];
    if (!selected(t, argc, argv)) continue;
    double t0 = now_s();
    bool ok = run_test(t, use_fork);
    fprintf(stderr, "[%s] %s::%s (%.2fs)\n", ok ? "PASS" : "FAIL", t->suite, t->name,
            now_s() - t0);
    ran++;
    failed += !ok;
  }
  fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", ran, ran - failed,
          failed);
  if (ran == 0) {
    fprintf(stderr, "standalone: no test matched\n");
    return 2;
  }
  return failed ? 1 : 0;
}
