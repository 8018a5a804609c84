/*
** standalone.h -- the few Criterion macros the thread tests use, for
** building them as plain programs.
**
** Criterion cannot start under ThreadSanitizer (configure.py says why), yet
** the thread tests are the ones TSan must see.  A test file that includes
** this header instead of <criterion/criterion.h> (tests/plain/<name>.c
** defines HKT_STANDALONE and includes the test file) becomes a program:
** tests/standalone.c runs each Test in a child process of its own, like
** Criterion, and exits 0 only if every test passed.
**
** Only this subset exists: Test(suite, name) (options after the name are
** ignored), TestSuite(suite, .init = f, .fini = g) (run around each test of
** the suite, in its child), cr_assert and cr_expect with a mandatory
** printf-style message, and cr_log_info.
*/
#ifndef HAKMEM_TESTS_STANDALONE_H
#define HAKMEM_TESTS_STANDALONE_H

#include <stdbool.h>

typedef void (*hkt_test_fn)(void);

/* Called by the constructors Test() defines; main() runs them in order. */
void hkt_register_test(const char *suite, const char *name, hkt_test_fn fn);
/* A failed expectation: reports it; `fatal` ends the test (exit status 1). */
void hkt_fail(bool fatal, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void hkt_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A suite's fixture (either may be NULL). */
typedef struct hkt_suite_s {
  void (*init)(void);
  void (*fini)(void);
} hkt_suite_t;
void hkt_register_suite(const char *suite, const hkt_suite_t *fixture);

#define TestSuite(suite, ...)                                                 \
  static const hkt_suite_t hkt_suite_##suite = {__VA_ARGS__};                 \
  __attribute__((constructor)) static void hkt_register_suite_##suite(void) { \
    hkt_register_suite(#suite, &hkt_suite_##suite);                           \
  }

#define Test(suite, name, ...)                                                   \
  static void hkt_test_##suite##_##name(void);                                   \
  __attribute__((constructor)) static void hkt_register_##suite##_##name(void) { \
    hkt_register_test(#suite, #name, hkt_test_##suite##_##name);                 \
  }                                                                              \
  static void hkt_test_##suite##_##name(void)

#define cr_expect(cond, ...)                                             \
  do {                                                                   \
    if (!(cond)) hkt_fail(false, __FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)
#define cr_assert(cond, ...)                                            \
  do {                                                                  \
    if (!(cond)) hkt_fail(true, __FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)
#define cr_log_info(...) hkt_log(__VA_ARGS__)

#endif /* HAKMEM_TESTS_STANDALONE_H */
