/*
** gcpause.h -- timing every pause of Lua's collector from the outside.
**
** Lua 5.4 collects inside the mutator: luaC_step (incremental steps,
** generational minor and major collections, explicit steps) and
** luaC_fullgc (explicit and emergency full collections).  A host linked
** statically against liblua5.4.a with
**   -Wl,--wrap=luaC_step,--wrap=luaC_fullgc
** gets every call routed through gcpause.c, which times it with the
** monotonic clock and lets Lua's own pacing run untouched.  Only hosts
** linked that way may link gcpause.c (it calls __real_luaC_step).
*/
#ifndef HAKRT_GCPAUSE_H
#define HAKRT_GCPAUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The distribution of the pauses recorded so far.  Times of steps are in
** microseconds except the total; a step that found the collector stopped
** (collectgarbage("stop"), or inside a finalizer) did no work and is not
** counted.  A pause inside another one (an emergency collection run by a
** finalizer that a step called) belongs to the outer pause only. */
typedef struct hakrt_pauses {
  size_t steps;          /* luaC_step calls that ran the collector */
  double step_p50_us;    /* nearest-rank percentiles; 0 without steps */
  double step_p99_us;
  double step_p999_us;
  double step_max_us;
  double step_total_ms;  /* all steps together */
  size_t fulls;          /* luaC_fullgc calls */
  double full_total_ms;
  double full_max_us;
  double close_ms;       /* lua_close as timed by the host; < 0: not timed */
} hakrt_pauses;

/* Starts recording (nothing is recorded before). */
void hakrt_gcpause_start(void);
/* Around lua_close: its time, with every pause inside it, is the close
** time, not steps. */
void hakrt_gcpause_close_begin(void);
void hakrt_gcpause_close_end(void);

/* The runtime's clock instead of the recording: from now on each thread
** counts the time of its own collector calls (call it before starting any
** thread; the recording above stays off). */
void hakrt_gcpause_thread_clock(void);
/* Nanoseconds the calling thread has spent in Lua's collector so far. */
uint64_t hakrt_gcpause_thread_ns(void);

/* Fills *out from what was recorded; returns false when out of memory for
** sorting (then only counts, totals and maxima are filled). */
bool hakrt_gcpause_summary(hakrt_pauses *out);
/* Human-readable, a few lines; `alloc` and `gc_mode` name the run. */
void hakrt_gcpause_print(FILE *f, const hakrt_pauses *p, const char *alloc,
                         const char *gc_mode);
/* One JSON object:
** {"alloc":..,"steps":{"count":..,"p50_us":..,"p99_us":..,"p999_us":..,
**  "max_us":..,"total_ms":..},"full":{"count":..,"total_ms":..,"max_us":..},
**  "close_ms":..,"gc_mode":..}   close_ms is null when not timed. */
void hakrt_gcpause_write_json(FILE *f, const hakrt_pauses *p, const char *alloc,
                              const char *gc_mode, bool durations);
/* durations: the object also carries "durations_us":[...], every step
** kept, in the order they ran (for a CDF across runs). */

#endif /* HAKRT_GCPAUSE_H */
