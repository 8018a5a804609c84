/*
** hklua_threads.h -- hklua's front end to the runtime (--threads=T).
*/
#ifndef HKLUA_THREADS_H
#define HKLUA_THREADS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hklua_threads_opts {
  int threads;            /* workers (>= 1) */
  int tasks;              /* copies of the script (>= 1) */
  size_t task_mem_limit;  /* bytes per task; 0 = none */
  long slice_ms;          /* -1: the runtime's default */
  bool libc;              /* --alloc=libc */
  bool private_heaps;     /* --private-heaps */
  bool generational;
  int stats;              /* 0: none, 1: text, 2: json (both: JSON on stderr) */
} hklua_threads_opts;

/* Runs `script` with argv[0..argc) as `tasks` tasks on `threads` workers;
** returns the exit status: 1 when a task failed and no join saw it, or on
** a deadlock (reported on stderr), else 0. */
int hklua_threads_main(const hklua_threads_opts *o, const char *progname, const char *script,
                       int argc, const char *const *argv);

#endif
