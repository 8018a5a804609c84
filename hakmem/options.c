/*
** options.c -- runtime options (one table, each read lazily from its
** HAKMEM_* environment variable) and the error reports.
*/
#include <stdarg.h>
#include <unistd.h>

#include "internal.h"

/*
** Each option is read from its environment variable on first use.  The
** value is atomic because any thread may read it while another sets it;
** the first readers may race, and all of them write the same value.
*/
typedef struct option_desc_s {
  const char *env;    /* environment variable */
  long dflt;          /* the value without the variable or a set */
  hak_atomic_t value; /* current value (a long) */
  hak_atomic_t ready; /* value was read from the environment or set */
} option_desc_t;

static option_desc_t options[HAK_OPT__COUNT] = {
    [HAK_OPT_SHOW_STATS] = {"HAKMEM_SHOW_STATS", 0, 0, 0},
    [HAK_OPT_PURGE_DELAY] = {"HAKMEM_PURGE_DELAY", 10, 10, 0}, /* ms */
    [HAK_OPT_VERBOSE] = {"HAKMEM_VERBOSE", 0, 0, 0},
    [HAK_OPT_ORPHAN_HEAPS] = {"HAKMEM_ORPHAN_HEAPS", 8, 8, 0},
    [HAK_OPT_ORPHAN_GRACE] = {"HAKMEM_ORPHAN_GRACE", 250, 250, 0}, /* ms */
};

/* getenv, not secure_getenv: a setuid program linked with hakmem is rare,
** and none of these options can do harm.  The value changes only from the
** default: a hak_option_set that came first wins. */
static void option_read_env(option_desc_t *o) {
  const char *s = getenv(o->env);
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == '\0') atomic_cas_full(&o->value, (uintptr_t)o->dflt, (uintptr_t)v);
    else hak_warn("ignoring %s=%s: not a number", o->env, s);
  }
}

long hak_option_get(hak_option_t opt) {
  if ((unsigned)opt >= HAK_OPT__COUNT) return 0;
  option_desc_t *o = &options[opt];
  if (!atomic_load_acquire(&o->ready)) {
    option_read_env(o);
    atomic_store_release(&o->ready, 1);
  }
  return (long)atomic_load_relaxed(&o->value);
}

void hak_option_set(hak_option_t opt, long value) {
  if ((unsigned)opt >= HAK_OPT__COUNT) return;
  atomic_store_relaxed(&options[opt].value, (uintptr_t)value);
  atomic_store_release(&options[opt].ready, 1);
}

/* Messages go straight to fd 2: stdio may allocate. */
static void report(const char *kind, const char *fmt, va_list ap) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "hakmem: %s: ", kind);
  if (n < 0) return;
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  if (m < 0) m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  ssize_t w = write(2, buf, len);
  (void)w;
}

void hak_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("error", fmt, ap);
  va_end(ap);
  abort();
}

void hak_warn(const char *fmt, ...) {
  if (!hak_option_get(HAK_OPT_VERBOSE)) return;
  va_list ap;
  va_start(ap, fmt);
  report("warning", fmt, ap);
  va_end(ap);
}
