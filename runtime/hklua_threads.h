/*
** hklua_threads.h -- hklua's front end to the runtime (--threads=T).
*/
#ifndef HKLUA_THREADS_H
#define HKLUA_THREADS_H

#include <stdbool.h>
#include <stddef.h>

/* The runtime's options besides those hklua.c parses (hakrt_config: the
** run queues and the collector thread's switches): defaults from
** hklua_rt_opts_init; `given` once any was on the command line. */
typedef struct hklua_rt_opts {
  bool per_worker_queues;
  bool collector, idle_gc, batch_frees, spare_states;
  double soft_limit;
  unsigned watchdog_ms, time_limit_ms;
  bool given;
  bool bad;               /* the last option matched but its value was bad */
} hklua_rt_opts;

#define HKLUA_RT_USAGE \
  "  --queues=shared|per-worker  with --threads: one run queue, or one per worker\n" \
  "                         with stealing (default shared)\n" \
  "  --collector=on|off     with --threads: close states and run parked tasks'\n" \
  "                         GC on a collector thread (default on)\n" \
  "  --idle-gc=on|off       with --threads: the collector's GC of parked tasks\n" \
  "  --batch-frees=on|off   with --threads: the collector's remote frees per page\n" \
  "  --spare-states=on|off  with --threads: idle workers make the next task's state\n" \
  "  --soft-limit=F         with --threads: full GC at F of a task's limit (0.9; 0 = off)\n" \
  "  --watchdog=MS          with --threads: report a task running MS without yielding\n" \
  "  --time-limit=MS        with --threads: stop such a task (time limit exceeded)\n"

void hklua_rt_opts_init(hklua_rt_opts *c);
/* 1 when arg is one of the collector's options (c->bad, with why filled,
** when its value is bad), else 0. */
int hklua_rt_option(hklua_rt_opts *c, const char *arg, char *why, size_t whylen);

typedef struct hklua_threads_opts {
  int threads;            /* workers (>= 1) */
  int tasks;              /* copies of the script (>= 1) */
  size_t task_mem_limit;  /* bytes per task; 0 = none */
  long long close_min;    /* --close-min bytes; -1: the runtime's default */
  long slice_ms;          /* -1: the runtime's default */
  bool libc;              /* --alloc=libc */
  bool private_heaps;     /* --private-heaps */
  hklua_rt_opts rt;
  bool generational;
  int stats;              /* 0: none, 1: text, 2: json (both: JSON on stderr) */
} hklua_threads_opts;

/* Runs `script` with argv[0..argc) as `tasks` tasks on `threads` workers;
** returns the exit status: 1 when a task failed and no join saw it, or on
** a deadlock (reported on stderr), else 0. */
int hklua_threads_main(const hklua_threads_opts *o, const char *progname, const char *script,
                       int argc, const char *const *argv);

#endif
