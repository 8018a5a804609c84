/*
** hklua_threads.c -- hklua --threads=T [--tasks=N] script args: the script
** runs as N independent tasks (one lua_State each) of a hakrt runtime with
** T worker threads; its tasks may spawn more (require "hakrt").
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "hakrt.h"
#include "gcpause.h"
#include "hklua_threads.h"

void hklua_rt_opts_init(hklua_rt_opts *c) {
  hakrt_config d;
  hakrt_config_init(&d);
  memset(c, 0, sizeof *c);
  c->collector = d.collector;
  c->idle_gc = d.idle_gc;
  c->batch_frees = d.batch_frees;
  c->spare_states = d.spare_states;
  c->soft_limit = d.soft_limit;
}

/* "--name=value" of an option called name; NULL when arg is another one. */
static const char *value_of(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0) return NULL;
  if (arg[2 + n] == '=') return arg + 3 + n;
  return arg[2 + n] == '\0' ? "" : NULL;
}

static int bad(hklua_rt_opts *c, char *why, size_t whylen, const char *arg, const char *what) {
  snprintf(why, whylen, "bad value in '%s' (%s)", arg, what);
  c->bad = true;
  return 1;
}

static bool on_off(const char *v, bool *out) {
  if (strcmp(v, "on") == 0) *out = true;
  else if (strcmp(v, "off") == 0) *out = false;
  else return false;
  return true;
}

static bool millis(const char *v, unsigned *out) {
  char *end;
  unsigned long n;
  if (*v < '0' || *v > '9') return false;
  errno = 0;
  n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || n > 86400000ul) return false;
  *out = (unsigned)n;
  return true;
}

int hklua_rt_option(hklua_rt_opts *c, const char *arg, char *why, size_t whylen) {
  const char *v;
  c->bad = false;
  if ((v = value_of(arg, "queues")) != NULL) {
    if (strcmp(v, "shared") == 0) c->per_worker_queues = false;
    else if (strcmp(v, "per-worker") == 0) c->per_worker_queues = true;
    else return bad(c, why, whylen, arg, "shared or per-worker");
  } else if ((v = value_of(arg, "collector")) != NULL) {
    if (!on_off(v, &c->collector)) return bad(c, why, whylen, arg, "on or off");
  } else if ((v = value_of(arg, "idle-gc")) != NULL) {
    if (!on_off(v, &c->idle_gc)) return bad(c, why, whylen, arg, "on or off");
  } else if ((v = value_of(arg, "batch-frees")) != NULL) {
    if (!on_off(v, &c->batch_frees)) return bad(c, why, whylen, arg, "on or off");
  } else if ((v = value_of(arg, "spare-states")) != NULL) {
    if (!on_off(v, &c->spare_states)) return bad(c, why, whylen, arg, "on or off");
  } else if ((v = value_of(arg, "soft-limit")) != NULL) {
    char *end;
    double f = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(f >= 0 && f < 1))
      return bad(c, why, whylen, arg, "a fraction of the limit, 0 to below 1; 0 = off");
    c->soft_limit = f;
  } else if ((v = value_of(arg, "watchdog")) != NULL) {
    if (!millis(v, &c->watchdog_ms)) return bad(c, why, whylen, arg, "milliseconds; 0 = off");
  } else if ((v = value_of(arg, "time-limit")) != NULL) {
    if (!millis(v, &c->time_limit_ms)) return bad(c, why, whylen, arg, "milliseconds; 0 = off");
  } else {
    return 0;
  }
  c->given = true;
  return 1;
}

int hklua_threads_main(const hklua_threads_opts *o, const char *progname, const char *script,
                       int argc, const char *const *argv) {
  hakrt_config cfg;
  hakrt *rt;
  int i, r, status = 0;
  hakrt_config_init(&cfg);
  cfg.workers = o->threads;
  cfg.task_mem_limit = o->task_mem_limit;
  if (o->close_min >= 0) cfg.collector_close_min = (size_t)o->close_min;
  cfg.libc = o->libc;
  cfg.private_heaps = o->private_heaps;
  cfg.generational = o->generational;
  cfg.queues = o->rt.per_worker_queues ? HAKRT_QUEUES_PER_WORKER : HAKRT_QUEUES_SHARED;
  cfg.collector = o->rt.collector;
  cfg.idle_gc = o->rt.idle_gc;
  cfg.batch_frees = o->rt.batch_frees;
  cfg.spare_states = o->rt.spare_states;
  cfg.soft_limit = o->rt.soft_limit;
  cfg.watchdog_ms = o->rt.watchdog_ms;
  cfg.time_limit_ms = o->rt.time_limit_ms;
  hakrt_gcpause_thread_clock();
  cfg.gc_clock = hakrt_gcpause_thread_ns;
  if (o->slice_ms >= 0) cfg.slice_ms = (unsigned)o->slice_ms;
  if ((rt = hakrt_new(&cfg)) == NULL) {
    fprintf(stderr, "%s: cannot start the runtime: %s\n", progname, strerror(errno));
    return 1;
  }
  for (i = 0; i < o->tasks; i++) {
    if (hakrt_spawn_file(rt, script, argc, argv, NULL) == 0) {
      fprintf(stderr, "%s: cannot spawn task %d: %s\n", progname, i + 1, strerror(errno));
      status = 1;
      break;
    }
  }
  r = hakrt_wait(rt);
  if (r == HAKRT_DEADLOCK || r > 0) status = 1;
  if (o->stats != 0) hakrt_write_stats_json(rt, stderr);
  hakrt_free(rt);
  if (o->stats != 0 && !o->libc) {
    hak_stats_t h;
    hak_stats_get(&h);
    fprintf(stderr, "{\"after_close\":{\"hakmem_in_use\":%zu,\"committed\":%zu}}\n", h.in_use,
            h.committed);
  }
  fflush(stdout);
  return status;
}
