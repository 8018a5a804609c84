/*
** hakrt.h -- the multi-thread Lua runtime on hakmem.
**
** A runtime is T worker threads that run many tasks M:N.  A task is one
** lua_State (with the coroutines it makes), allocating through the Lua glue
** (hakl.h) from the heap of whichever worker runs it, so its account is
** exact wherever its blocks live.  A task runs until it blocks (receiving
** on an empty channel, sending to a full one, joining, sleeping) or until
** its time slice ends, and then resumes on whichever worker is free: one
** state's blocks come from several heaps and many of its frees are remote.
**
** Uses Lua's official API, hakl.h and hakmem.h.  Inside a task,
** `require "hakrt"` gives spawn, channels, buffers, sleep, yield, stats
** (docs/runtime.md).
**
**   hakrt_config cfg;  hakrt_config_init(&cfg);  cfg.workers = 4;
**   hakrt *rt = hakrt_new(&cfg);
**   hakrt_spawn_file(rt, "main.lua", argc, argv, NULL);
**   int failed = hakrt_wait(rt);      (every task has finished)
**   hakrt_free(rt);
*/
#ifndef HAKRT_H
#define HAKRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HAKRT_API __attribute__((visibility("default")))
#else
#define HAKRT_API
#endif

typedef struct hakrt hakrt;

/* How a running task is made to give up its worker when its slice ends. */
typedef enum hakrt_preempt {
  HAKRT_PREEMPT_AUTO,    /* SIGNAL, or HOOK under ThreadSanitizer */
  HAKRT_PREEMPT_SIGNAL,  /* a monitor thread signals the worker (SIGURG),
                            whose handler arms a count hook: the VM runs
                            without a hook until then */
  HAKRT_PREEMPT_HOOK,    /* a count hook always armed (about 1.6x the
                            VM's instructions; for tools that cannot
                            deliver signals into uninstrumented code) */
  HAKRT_PREEMPT_OFF      /* tasks run until they block or yield */
} hakrt_preempt;

/* The run queues. */
typedef enum hakrt_queues {
  HAKRT_QUEUES_SHARED,     /* one FIFO: a task resumes on any free worker */
  HAKRT_QUEUES_PER_WORKER  /* a FIFO per worker: a task goes back to the
                              worker that ran it last; idle workers steal */
} hakrt_queues;

typedef struct hakrt_config {
  int workers;            /* worker threads; 0 = one per online CPU */
  unsigned slice_ms;      /* time slice of a task (default 10) */
  hakrt_preempt preempt;  /* default HAKRT_PREEMPT_AUTO */
  hakrt_queues queues;    /* default HAKRT_QUEUES_SHARED */
  size_t task_mem_limit;  /* bytes per task; 0 = none */
  bool libc;              /* tasks allocate with realloc/free instead of
                             hakmem (to compare allocators by LD_PRELOAD) */
  bool private_heaps;     /* every task gets a hakmem heap of its own */
  bool generational;      /* Lua's collector mode in tasks (default true,
                             as lua5.4) */
  bool host_posts;        /* the host may hakrt_post while in hakrt_wait:
                             a task waiting on its inbox is not a deadlock */
  bool collector;         /* a collector thread closes finished tasks'
                             states, runs parked tasks' GC and asks the
                             workers to return memory (default true) */
  bool idle_gc;           /* the collector collects parked tasks with GC
                             work pending (default true; needs collector) */
  bool batch_frees;       /* the collector's remote frees go back one CAS
                             per page, not per block (default true) */
  bool spare_states;      /* a worker with nothing to run makes the state
                             of its next task ahead, so that a task starts
                             without waiting for Lua's libraries to load
                             (default true) */
  size_t collector_close_min; /* with the collector: a finished state whose
                             account holds at least this many bytes is
                             closed there, a smaller one (likely still in
                             its worker's cache) by its worker; a parked
                             one that size or more is collected there at
                             once, a smaller one only once it has stayed
                             parked 50 ms (default: the L2 cache size,
                             else 1 MiB; 0: every state at once) */
  double soft_limit;      /* a task whose account reaches this fraction of
                             its limit gets a full collection at its next
                             park or yield (default 0.9; 0 = off) */
  unsigned watchdog_ms;   /* report (id, traceback) a task that runs this
                             long without blocking or yielding; 0 = off */
  unsigned time_limit_ms; /* stop such a task with the error "time limit
                             exceeded"; 0 = off */
  uint64_t (*gc_clock)(void); /* nanoseconds the calling thread has spent
                             in Lua's collector so far, or NULL: then the
                             GC time on workers is not reported (hklua
                             passes its luaC_step wrappers' clock) */
  FILE *out;              /* print and io.write of tasks (default stdout) */
  FILE *err;              /* task errors and reports (default stderr) */
} hakrt_config;

/* Fills *cfg with the defaults. */
HAKRT_API void hakrt_config_init(hakrt_config *cfg);

/* Starts the workers.  NULL with errno set when the threads or memory
** cannot be had, or EINVAL for a bad config (workers < 0, > 1024). */
HAKRT_API hakrt *hakrt_new(const hakrt_config *cfg);

/* Per-spawn options; NULL means the runtime's. */
typedef struct hakrt_spawn_opts {
  size_t mem_limit;   /* bytes; 0 = the runtime's task_mem_limit */
  bool private_heap;  /* or cfg.private_heaps */
} hakrt_spawn_opts;

/*
** New tasks.  A file task runs the script `path` with `...` = argv[0..argc)
** and a global `arg` table as lua5.4 makes it (arg[0] = path).  A source
** task runs `source` (its chunk name is `name`) with `...` = argv.  The
** state is created by the worker that first runs the task.  Returns the
** task's id (> 0), or 0 with errno = ENOMEM (or ECANCELED once the runtime
** is shutting down).  Any thread may call these.  (With cfg.spare_states,
** a worker makes a state while it has nothing to run, and gives it to the
** next task it starts whose memory limit and heap are the runtime's.)
*/
HAKRT_API uint64_t hakrt_spawn_file(hakrt *rt, const char *path, int argc,
                                    const char *const *argv, const hakrt_spawn_opts *opts);
HAKRT_API uint64_t hakrt_spawn_source(hakrt *rt, const char *source, const char *name,
                                      int argc, const char *const *argv,
                                      const hakrt_spawn_opts *opts);

/*
** Posts the string data[0..len) to the inbox of task `id` (the channel
** `rt.inbox()` returns inside it) from any thread, worker or not.  Never
** blocks: 0 on success, else -1 with errno = ESRCH (no such live task),
** EAGAIN (its inbox is full: try again later), EPIPE (closed) or ENOMEM.
*/
HAKRT_API int hakrt_post(hakrt *rt, uint64_t id, const void *data, size_t len);

/* Outcome of hakrt_wait beside the number of failed tasks. */
#define HAKRT_DEADLOCK (-1)

/*
** Waits until every task has finished.  Returns the number of tasks that
** failed (raised an error) without a join that returned their error (a
** failure some task handled does not count), or HAKRT_DEADLOCK when every live task is
** blocked with nothing left to wake it: the tasks and what each waits on
** are then written to cfg.err, and the blocked tasks stay as they are
** (hakrt_free closes them).  Call it from one thread at a time.
*/
HAKRT_API int hakrt_wait(hakrt *rt);

/* Stops the workers, closes every state (finalizers run), frees it all.
** Call it after hakrt_wait, from a thread that is not a worker. */
HAKRT_API void hakrt_free(hakrt *rt);

/* The runtime's figures (those rt.stats() returns inside a task: totals,
** per worker, per live task, hakmem's) as one line of JSON. */
HAKRT_API void hakrt_write_stats_json(hakrt *rt, FILE *f);

/* The Lua module `hakrt`; preloaded in every task.  Outside a task it
** raises an error. */
HAKRT_API int luaopen_hakrt(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif /* HAKRT_H */
