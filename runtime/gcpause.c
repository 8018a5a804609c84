/*
** gcpause.c -- the wrappers of luaC_step and luaC_fullgc, and the pause
** distribution they record (see gcpause.h for how they are linked in).
**
** One process, one recording: hklua runs one state on one thread, so the
** recorder is plain static data.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>

#include "gcpause.h"

/* Lua's internal entry points (lgc.h); the linker maps these names to the
** real functions when it wraps them. */
void __real_luaC_step(lua_State *L);
void __real_luaC_fullgc(lua_State *L, int isemergency);
void __wrap_luaC_step(lua_State *L);
void __wrap_luaC_fullgc(lua_State *L, int isemergency);

/*
** A growable array of durations in nanoseconds, allocated with the C
** library (never through Lua).  Invariants: n <= cap; total and max cover
** all n entries, and also the ones that could not be stored (lost > 0 when
** the array could not grow), so counts and totals stay exact.
*/
typedef struct series {
  uint64_t *ns;
  size_t n, cap;
  size_t lost;     /* durations counted but not stored (out of memory) */
  uint64_t total;  /* sum of every duration */
  uint64_t max;
} series;

static bool recording;  /* hakrt_gcpause_start was called */
static int depth;       /* timed regions open now: only the outermost counts */
static series steps, fulls;
static uint64_t close_ns;
static bool close_timed;

/* The runtime's per-thread GC clock (hakrt_gcpause_thread_ns): on once
** hakrt_gcpause_thread_clock is called, before any other thread starts. */
static bool thread_clock;
static _Thread_local uint64_t thread_gc_ns;
static _Thread_local int thread_depth;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void series_push(series *s, uint64_t d) {
  s->total += d;
  if (d > s->max) s->max = d;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4096;
    uint64_t *ns = (uint64_t *)realloc(s->ns, cap * sizeof *ns);
    if (ns == NULL) {
      s->lost++;
      return;
    }
    s->ns = ns;
    s->cap = cap;
  }
  s->ns[s->n++] = d;
}

/* ------------------------------------------------------------------------
** The wrappers.
** --------------------------------------------------------------------- */

/*
** A step is timed only when it will do work: lua_gc(LUA_GCISRUNNING) is 1
** when the collector runs (an explicit collectgarbage("step") runs it even
** when stopped), 0 when the user stopped it, -1 inside a finalizer, where
** Lua stops it internally.  Nested calls (a finalizer run by this step
** that triggers an emergency collection) are part of this pause.
*/
/* The runtime's clock: the outermost collector call of this thread. */
static void timed_thread(lua_State *L, int isemergency, bool full) {
  uint64_t t0 = now_ns();
  thread_depth++;
  if (full) __real_luaC_fullgc(L, isemergency);
  else __real_luaC_step(L);
  thread_depth--;
  if (thread_depth == 0) thread_gc_ns += now_ns() - t0;
}

void hakrt_gcpause_thread_clock(void) {
  thread_clock = true;
}

uint64_t hakrt_gcpause_thread_ns(void) {
  return thread_gc_ns;
}

void __wrap_luaC_step(lua_State *L) {
  uint64_t t0;
  if (thread_clock) {
    timed_thread(L, 0, false);
    return;
  }
  if (!recording || depth > 0 || lua_gc(L, LUA_GCISRUNNING) != 1) {
    __real_luaC_step(L);
    return;
  }
  depth++;
  t0 = now_ns();
  __real_luaC_step(L);
  series_push(&steps, now_ns() - t0);
  depth--;
}

void __wrap_luaC_fullgc(lua_State *L, int isemergency) {
  uint64_t t0;
  if (thread_clock) {
    timed_thread(L, isemergency, true);
    return;
  }
  if (!recording || depth > 0) {
    __real_luaC_fullgc(L, isemergency);
    return;
  }
  depth++;
  t0 = now_ns();
  __real_luaC_fullgc(L, isemergency);
  series_push(&fulls, now_ns() - t0);
  depth--;
}

void hakrt_gcpause_start(void) {
  recording = true;
}

static uint64_t close_t0;

void hakrt_gcpause_close_begin(void) {
  depth++;
  close_t0 = now_ns();
}

void hakrt_gcpause_close_end(void) {
  close_ns = now_ns() - close_t0;
  close_timed = true;
  depth--;
}

/* ------------------------------------------------------------------------
** The summary.
** --------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of them at or below. */
static double percentile_us(const uint64_t *sorted, size_t n, double p) {
  size_t rank;
  if (n == 0) return 0.0;
  rank = (size_t)(p * (double)n);
  if ((double)rank < p * (double)n) rank++;
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)sorted[rank - 1] / 1e3;
}

bool hakrt_gcpause_summary(hakrt_pauses *out) {
  bool ok = true;
  memset(out, 0, sizeof *out);
  out->steps = steps.n + steps.lost;
  out->step_max_us = (double)steps.max / 1e3;
  out->step_total_ms = (double)steps.total / 1e6;
  out->fulls = fulls.n + fulls.lost;
  out->full_max_us = (double)fulls.max / 1e3;
  out->full_total_ms = (double)fulls.total / 1e6;
  out->close_ms = close_timed ? (double)close_ns / 1e6 : -1.0;
  if (steps.n > 0) {
    uint64_t *sorted = (uint64_t *)malloc(steps.n * sizeof *sorted);
    if (sorted == NULL) return false;
    memcpy(sorted, steps.ns, steps.n * sizeof *sorted);
    qsort(sorted, steps.n, sizeof *sorted, cmp_u64);
    out->step_p50_us = percentile_us(sorted, steps.n, 0.50);
    out->step_p99_us = percentile_us(sorted, steps.n, 0.99);
    out->step_p999_us = percentile_us(sorted, steps.n, 0.999);
    free(sorted);
  }
  if (steps.lost > 0 || fulls.lost > 0) ok = false;
  return ok;
}

void hakrt_gcpause_print(FILE *f, const hakrt_pauses *p, const char *alloc,
                         const char *gc_mode) {
  fprintf(f, "GC pauses (%s, %s):\n", alloc, gc_mode);
  fprintf(f, "  steps: %zu; p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us; "
             "total %.3f ms\n",
          p->steps, p->step_p50_us, p->step_p99_us, p->step_p999_us, p->step_max_us,
          p->step_total_ms);
  fprintf(f, "  full collections: %zu; total %.3f ms, max %.1f us\n", p->fulls,
          p->full_total_ms, p->full_max_us);
  if (p->close_ms >= 0)
    fprintf(f, "  lua_close: %.3f ms\n", p->close_ms);
  else
    fprintf(f, "  lua_close: not timed (the state was not closed by the host)\n");
}

void hakrt_gcpause_write_json(FILE *f, const hakrt_pauses *p, const char *alloc,
                              const char *gc_mode, bool durations) {
  fprintf(f, "{\"alloc\":\"%s\",\"steps\":{\"count\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,"
             "\"p999_us\":%.3f,\"max_us\":%.3f,\"total_ms\":%.3f},"
             "\"full\":{\"count\":%zu,\"total_ms\":%.3f,\"max_us\":%.3f},",
          alloc, p->steps, p->step_p50_us, p->step_p99_us, p->step_p999_us, p->step_max_us,
          p->step_total_ms, p->fulls, p->full_total_ms, p->full_max_us);
  if (p->close_ms >= 0)
    fprintf(f, "\"close_ms\":%.3f,", p->close_ms);
  else
    fprintf(f, "\"close_ms\":null,");
  fprintf(f, "\"gc_mode\":\"%s\"", gc_mode);
  if (durations) {
    size_t i;
    fprintf(f, ",\"durations_us\":[");
    for (i = 0; i < steps.n; i++) fprintf(f, "%s%.3f", i ? "," : "", (double)steps.ns[i] / 1e3);
    fprintf(f, "]");
  }
  fprintf(f, "}\n");
}
