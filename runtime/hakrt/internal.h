/*
** internal.h -- the runtime's types and the declarations shared between
** its files, grouped under the file that defines them.
**
** Locks, and their order (never take an earlier one while holding a
** later one):  channel lock  ->  rt->lock (the scheduler's)  ->  rt->out_lock.
** Tasks, channels and messages are reference counted; what a field is
** guarded by is written beside it.
*/
#ifndef HAKRT_INTERNAL_H
#define HAKRT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic_ops.h>
#include <lua.h>

#include "hakl.h"
#include "hakmem.h"
#include "hakrt.h"

#if defined(__GNUC__)
#define hakrt_unlikely(x) __builtin_expect(!!(x), 0)
#else
#define hakrt_unlikely(x) (x)
#endif

typedef struct hakrt_task hakrt_task;
typedef struct hakrt_chan hakrt_chan;
typedef struct hakrt_msg hakrt_msg;
typedef struct hakrt_worker hakrt_worker;

/* -------------------------------------------------------------------------
** Messages (message.c): Lua values copied out of one state, into another.
** ---------------------------------------------------------------------- */

/* What a message holds besides its bytes: a channel (one reference of it)
** or a buffer's block.  A buffer block is `owned` by the message once the
** send is committed (the sender's handle is then empty); before that the
** sender's buffer still owns it and freeing the message leaves it alone. */
typedef struct hakrt_ref {
  int kind;          /* HAKRT_REF_CHAN or HAKRT_REF_BUF */
  bool owned;        /* buffer: the message frees it unless taken */
  AO_t ptr;          /* hakrt_chan *, or the block (0 once taken) */
  size_t len;        /* buffer bytes */
  void *sender_buf;  /* the sender's buffer object, until committed */
} hakrt_ref;

enum { HAKRT_REF_CHAN = 1, HAKRT_REF_BUF = 2, HAKRT_REF_TASK = 3 };

/*
** A message: `nvalues` encoded values in data[0..len), and refs[0..nrefs).
** Invariant: every channel in refs holds one reference, released by
** hakrt_msg_free; a buffer block is freed there if owned and not taken.
*/
struct hakrt_msg {
  hakrt_msg *next;        /* in a channel's queue (channel lock) */
  hakrt *rt;              /* whose memory functions made it */
  int nvalues;
  size_t len, cap;
  unsigned char *data;
  hakrt_ref *refs;
  unsigned nrefs, refcap;
};

/* Encodes the values at L[first..first+n) (n >= 0) into a new message;
** raises a Lua error naming the position of a value that cannot travel
** (function, userdata, thread, a table nested too deeply).  The message
** is anchored on L's stack in a box (hakrt_msg_box) while it is built, so
** an error frees it.  Returns the message, its box on top of the stack. */
hakrt_msg *hakrt_msg_pack(lua_State *L, int first, int n, const char *what);
/* The box on top of L's stack lets go of its message (the caller owns it now). */
void hakrt_msg_unbox(lua_State *L, int idx);
/* The sender's buffers in m become empty: the message owns their blocks. */
/* Whether each buffer the message took still holds the block it took: a
** send that blocked after packing can find it sent elsewhere meanwhile. */
bool hakrt_msg_bufs_intact(const hakrt_msg *m);
void hakrt_msg_commit(hakrt_msg *m, lua_State *sender);
/* Pushes the message's values onto L; returns how many.  Raises a Lua error
** when L runs out of memory (m is untouched then).  Buffers are taken from
** the message (a second unpack of the same message gets empty ones). */
int hakrt_msg_unpack(lua_State *L, hakrt_msg *m);
void hakrt_msg_free(hakrt_msg *m);
/* A message of n string values, built without a Lua state (the host's
** spawns and posts); len may be NULL for NUL-terminated strings. */
hakrt_msg *hakrt_msg_strings(hakrt *rt, int n, const char *const *s, const size_t *len);

/* -------------------------------------------------------------------------
** Channels (channel.c).
** ---------------------------------------------------------------------- */

/* Tasks waiting on a channel: a doubly linked list through task->wprev and
** task->wnext (channel lock). */
typedef struct hakrt_waitq {
  hakrt_task *head, *tail;
} hakrt_waitq;

/*
** A bounded FIFO of messages.  Invariants (lock): count <= cap except for
** a message put back at the head by a receive that ran out of memory;
** recvq is empty while count > 0 unless a woken receiver has not run yet;
** a closed channel takes no message, and hands out what it holds.
*/
struct hakrt_chan {
  pthread_mutex_t lock;
  uint64_t id;
  AO_t refs;              /* handles in states, messages, an inbox owner */
  AO_t owner_gone;        /* an inbox whose task's state has closed: once
                             only the task's reference is left, nobody can
                             receive, and what is queued is dropped */
  AO_t owner_released;    /* the task record let its reference go: the
                             references left are handles and messages */
  size_t cap, count;
  hakrt_msg *head, *tail;
  bool closed;
  hakrt_waitq recvq, sendq;
  hakrt *rt;
  hakrt_chan *all_next, *all_prev; /* rt->chans (rt->chans_lock) */
};

hakrt_chan *hakrt_chan_new(hakrt *rt, size_t cap);
void hakrt_chan_retain(hakrt_chan *c);
void hakrt_chan_release(hakrt_chan *c);
void hakrt_chan_close(hakrt_chan *c);
/* Host post: queue m without blocking; 0, or an errno value. */
int hakrt_chan_offer(hakrt_chan *c, hakrt_msg *m);
/* Pushes a Lua handle of c (taking one more reference). */
void hakrt_chan_push(lua_State *L, hakrt_chan *c);
/* The channel of the handle at idx, or NULL when it is not one. */
hakrt_chan *hakrt_chan_test(lua_State *L, int idx);
/* The task that owns inbox c has closed its state: its queued messages
** go as soon as the task's is the only reference left (now, or at the
** release of the last other one). */
void hakrt_chan_owner_gone(hakrt_chan *c);
/* The task record that owns inbox c lets its reference go. */
void hakrt_chan_owner_release(hakrt_chan *c);
/* At hakrt_free, with no state left: the channels still alive are held
** only by messages queued in channels (a channel sent into itself, two
** channels holding each other); drops those messages, and so the
** channels. */
void hakrt_chan_free_cycles(hakrt *rt);
/* Takes task t out of whatever channel queue it waits in. */
void hakrt_chan_unwait(hakrt_task *t);
void hakrt_chan_open_lib(lua_State *L);  /* the handles' metatable */

/* -------------------------------------------------------------------------
** Buffers (buffer.c).
** ---------------------------------------------------------------------- */

/* A buffer handle's payload: block == NULL once it was sent. */
typedef struct hakrt_buf {
  unsigned char *block;
  size_t len;
} hakrt_buf;

hakrt_buf *hakrt_buf_test(lua_State *L, int idx);
/* Raises "the task has ended: cannot make a <what> now" in a finalizer run
** at the state's close, where a new handle would never be finalized (lib.c). */
void hakrt_lib_check_running(lua_State *L, const char *what);
/* The task's code has ended: only the finalizers lua_close runs still
** call in (lib.c).  Takes rt->lock: callers may hold a channel's lock,
** which comes first (as for hakrt_sched_wake). */
bool hakrt_task_has_ended(hakrt_task *t);
/* A new handle that will own block (charged to L's account by the caller). */
hakrt_buf *hakrt_buf_push(lua_State *L, unsigned char *block, size_t len);
void hakrt_buf_open_lib(lua_State *L);
int hakrt_buf_new(lua_State *L);  /* rt.buffer(n_or_string) */

/* -------------------------------------------------------------------------
** Spawned code (lib.c): a function's binary chunk, made once and shared.
** ---------------------------------------------------------------------- */

/*
** The binary chunk of a spawned function (lua_dump with its debug
** information), shared by every task spawned from that function: the
** spawning state keeps the one of the function it spawned last (a loop
** that spawns one function dumps it once), and each task holds a
** reference until its state has loaded it.  Immutable once made, so any
** thread may read it.  Invariant: refs counts the tasks and the spawning
** state's cache that hold it; the last release frees it.
*/
typedef struct hakrt_code {
  AO_t refs;
  hakrt *rt;         /* whose memory functions made it */
  size_t len;
  char data[];
} hakrt_code;

void hakrt_code_retain(hakrt_code *c);
void hakrt_code_release(hakrt_code *c);

/* -------------------------------------------------------------------------
** Tasks (task.c).
** ---------------------------------------------------------------------- */

enum hakrt_task_state {
  HAKRT_NEW,       /* spawned, no state yet; in the run queue */
  HAKRT_RUNNABLE,  /* in the run queue */
  HAKRT_RUNNING,   /* a worker runs it */
  HAKRT_PARKED,    /* blocked; a wake makes it RUNNABLE */
  HAKRT_COLLECTING, /* parked, and the collector runs its GC: a wake sets
                      `woken` and the collector requeues it after the
                      current step */
  HAKRT_DONE
};

/* Why the task's coroutine yielded to its worker (task->yield). */
enum hakrt_yield {
  HAKRT_Y_NONE,     /* a plain coroutine.yield at the top: like rt.yield */
  HAKRT_Y_YIELD,    /* rt.yield */
  HAKRT_Y_PREEMPT,  /* its slice ran out */
  HAKRT_Y_BLOCK     /* it waits: park it */
};

/* What a parked task waits on (for the deadlock report). */
enum hakrt_wait {
  HAKRT_W_NONE, HAKRT_W_RECV, HAKRT_W_SEND, HAKRT_W_JOIN, HAKRT_W_SLEEP
};

/* What the collector's work and Lua's GC cost, per task and in total. */
/* What the figures (figures.c) show of a task's account: a copy made at
** each yield, and after the close (a quarter of a whole hakl_account,
** which every queued task would carry twice). */
typedef struct hakrt_acct_fig {
  size_t in_use, peak, limit;
  uint64_t nfail;
} hakrt_acct_fig;

typedef struct hakrt_gc_figures {
  uint64_t worker_gc_ns;     /* in Lua's collector on workers (cfg.gc_clock) */
  uint64_t collector_gc_ns;  /* idle and soft collections on the collector */
  uint64_t idle_gcs;         /* collections the collector ran for it */
  uint64_t soft_gcs;         /* full collections its soft limit asked for */
  uint64_t close_ns;         /* closing its state */
} hakrt_gc_figures;

/*
** A task.  Fields under "sched" are guarded by rt->lock; "own" fields are
** touched only by the worker running the task (or, before it first runs
** and after it is done, by whoever holds the last reference); "chan"
** fields by the lock of the channel in `wq_chan`.
** Invariants: state == RUNNING exactly while one worker runs it; a task
** is in at most one of: the run queue, a channel's wait queue, a task's
** joiner list; refs counts the runtime's (while not DONE), every join
** handle (in a state or in a message), every timer entry and the
** collector's queues.  refs is atomic, and the last reference frees the
** task without taking any lock (task_free takes none): a message freed
** with a lock held (a task's result, under rt->lock) may hold handles.
*/
struct hakrt_task {
  uint64_t id;
  hakrt *rt;
  AO_t refs;
  /* sched (each group's small fields last, so that no padding is left
  ** between them: a queued task is this struct and its arguments) */
  hakrt_task *qnext;       /* run queue */
  hakrt_task *lprev, *lnext; /* live list */
  hakrt_task *joiners;     /* tasks waiting in join on this one */
  hakrt_task *jnext;       /* next joiner of the task this one joins */
  size_t timer_slot;       /* its entry in rt->timers: index + 1; 0 = none */
  uint64_t wait_id;        /* the channel or task waited on */
  uint64_t deadline;       /* ns, CLOCK_MONOTONIC; 0 = none */
  hakrt_msg *result;       /* what join returns, once DONE */
  char *error;             /* message and traceback of a failed task */
  hakrt_acct_fig snap;     /* the account as of its last yield */
  uint64_t run_ns, cpu_ns, sent, received, resumes; /* as of its last yield */
  hakrt_task *gnext;       /* collector's GC queue */
  uint64_t parked_ns;      /* when it last parked (sched) */
  uint64_t gc_due_ns;      /* in gcq_later: when the collector may take it */
  hakrt_task *cnext;       /* collector's close queue (DONE, one reference) */
  hakrt_gc_figures gc;     /* as of its last yield, GC or close */
  hakrt_chan *inbox;       /* NULL until first asked for (hakrt_task_inbox:
                              most tasks never receive), then one reference */
  int state;
  int wait;                /* HAKRT_W_*, set before parking */
  int last_worker;         /* -1 before it first ran */
  bool woken;              /* woken while RUNNING: requeue when it parks */
  bool failed;
  bool failure_seen;       /* a join returned its error */
  bool gc_queued;          /* in the collector's GC queue (one reference) */
  bool want_gc;            /* set at its last slice's end: it asks the
                              collector for a collection when it parks */
  bool gc_full;            /* what it asks the collector for: a full collection */
  bool gc_due;             /* ... soon, as Lua would collect it (else only
                              once it has stayed parked: collector.c) */
  bool soft_req;           /* ... because of its soft limit */
  bool closed_by_collector;
  bool inbox_done;         /* the task's code ended; no new inbox */
  /* chan */
  hakrt_task *wprev, *wnext;
  AO_t wq_chan;            /* the hakrt_chan whose queue holds it, or 0:
                              written under that channel's lock, read by
                              the thread running the task without it */
  /* own */
  lua_State *L, *co;       /* the state; the coroutine that runs the task */
  hakl_ctx *ctx;
  uint64_t slice_end;      /* hook preemption: ns */
  uint64_t resume_ns;      /* when the current slice began */
  hakrt_worker *worker;    /* running it now */
  uint64_t o_run_ns, o_cpu_ns, o_sent, o_received, o_resumes; /* published to the sched copies */
  hakrt_gc_figures o_gc;   /* own while it runs; the collector's while it
                              holds it (COLLECTING, or closing) */
  uint64_t gc_mark;        /* allocated bytes when its state was last
                              collected (its GC clock, collector.c) */
  size_t gc_base;          /* in_use after its last full collection (incremental:
                              at its last cycle's end) */
  uint64_t streak_ns;      /* run time since it last blocked or yielded */
  AO_t collect_stop;       /* a wake arrived while COLLECTING: stop soon */
  bool no_block;           /* its finalizers run while its code does not:
                              the collector's GC or the soft limit's (its
                              wait, if parked, is its code's), or the close */
  hakrt_acct_fig o_final;  /* the account after the close (ctx is gone then) */
  hakrt_msg *start;        /* the arguments (a file's: after its path), until it starts */
  hakrt_code *code;        /* HAKRT_START_FUNCTION: the function, until it starts */
  char *name;              /* path or chunk name (a function's: HAKRT_FUNCTION_NAME,
                              not a copy) */
  size_t limit;
  char *obuf;              /* output not yet written: a partial line */
  size_t olen, ocap;
  int yield;               /* HAKRT_Y_* of the last yield to the worker */
  int watch;               /* HAKRT_WATCH_* asked of the hook */
  int kind;                /* HAKRT_START_* */
  bool preempt_req;        /* the slice ran out: yield at a safe point */
  bool watch_reported;     /* this streak was reported */
  bool closed;
  bool private_heap;
};

enum { HAKRT_START_FILE, HAKRT_START_SOURCE, HAKRT_START_FUNCTION };
#define HAKRT_FUNCTION_NAME "=spawned function" /* every spawned function's chunk name */
enum { HAKRT_WATCH_NONE, HAKRT_WATCH_REPORT, HAKRT_WATCH_STOP };

/* The task running on this thread's L (any coroutine of a task's state);
** raises a Lua error outside a task. */
hakrt_task *hakrt_task_of(lua_State *L);
/* NULL when L is not a task's. */
hakrt_task *hakrt_task_test(lua_State *L);
/* A new task with one reference (the runtime's), not yet scheduled. */
hakrt_task *hakrt_task_new(hakrt *rt, int kind, const char *name, hakrt_msg *start,
                           const hakrt_spawn_opts *opts);
/* Runs t for one slice on worker w (t is RUNNING). */
void hakrt_task_run(hakrt_task *t, hakrt_worker *w);
/* Idle worker w makes the state its next task will start on (w->spare;
** cfg.spare_states), or closes it (at its exit).  Not with the sched lock. */
void hakrt_task_make_spare(hakrt_worker *w);
void hakrt_task_drop_spare(hakrt_worker *w);
/* The task's inbox, made on first use: 0 and *out set (the task holds the
** reference), EPIPE when the task's code has ended without one, ENOMEM.
** Takes the sched lock: not with it held. */
int hakrt_task_inbox(hakrt_task *t, hakrt_chan **out);
/* A task handle (lib.c) at idx, or NULL; a new handle of t in L (it
** takes a reference of its own). */
hakrt_task *hakrt_handle_test(lua_State *L, int idx);
void hakrt_handle_push(lua_State *L, hakrt_task *t);
/* Takes and drops a reference (any thread, any lock held or not). */
void hakrt_task_ref(hakrt_task *t);
void hakrt_task_unref(hakrt_task *t);
/* Raises an error unless the running code can yield to the worker (it is
** not inside a C call that cannot yield): blocking calls check it first. */
void hakrt_task_check_yieldable(lua_State *L);
/* Yields the running task to its worker for reason y (HAKRT_Y_*), with
** continuation k. */
int hakrt_task_yield(lua_State *L, int y, lua_KContext ctx, lua_KFunction k);
/* Takes t out of any wait queue or joiner list (its wait was abandoned). */
void hakrt_task_cancel_wait(hakrt_task *t);
/* Copies the task's own counters and account to its sched fields. */
void hakrt_task_publish_locked(hakrt_task *t);
/* At hakrt_free: closes the state of a task that never finished. */
void hakrt_task_discard(hakrt_task *t);
/* Closes a finished task's state (finalizers, every block) on the calling
** thread, which owns its private heap if it has one. */
void hakrt_task_close_state(hakrt_task *t);
/* Allocated bytes of the task's account so far (cumulative). */
uint64_t hakrt_task_allocated(const hakrt_task *t);
/* Takes n bytes into / out of the account of the task of L (buffers). */
bool hakrt_task_charge(hakrt_task *t, size_t n, bool enforce_limit);
void hakrt_task_uncharge(hakrt_task *t, size_t n);

/* -------------------------------------------------------------------------
** The scheduler (sched.c).
** ---------------------------------------------------------------------- */

/* A timer: wake `task` at `when`.  Invariant: an entry exists exactly
** while its task is PARKED or COLLECTING with a deadline (a wake or the
** expiry takes it out), so a task has at most one, at index
** task->timer_slot - 1. */
typedef struct hakrt_timer {
  uint64_t when;
  hakrt_task *task;   /* one reference */
} hakrt_timer;

/* A FIFO of runnable tasks through task->qnext (rt->lock). */
typedef struct hakrt_fifo {
  hakrt_task *head, *tail;
} hakrt_fifo;

/*
** A worker thread.  cur_co and slice_start are read by the monitor thread
** and by the preemption signal handler (which runs on this thread).
*/
struct hakrt_worker {
  hakrt *rt;
  int index;
  pthread_t thread;
  bool started;
  AO_t cur_co;          /* lua_State * executing now, or 0 */
  AO_t slice_start;     /* ns when the running task was resumed; 0 = none */
  AO_t kicked;          /* slice_start value already signalled */
  AO_t kick_preempt;    /* the signal asks for a preemption */
  AO_t kick_watch;      /* ... for HAKRT_WATCH_REPORT or _STOP */
  AO_t kick_slice;      /* ... of the slice that began then (slice_start) */
  AO_t watch_sent;      /* the streak (by its start) already reported */
  hakrt_task *task;     /* running now (own) */
  /* sched */
  uint64_t resumes, migrations, finished, busy_ns, steals;
  hakrt_fifo q;                   /* its run queue (cfg.queues PER_WORKER) */
  uint64_t closed, close_ns;      /* states it closed (collector off) */
  uint64_t close_cpu_ns;          /* ... its CPU time in them (the wall time
                                     counts time other threads had the CPU) */
  uint64_t maintenance, maint_ns; /* times it returned memory when asked */
  hak_thread_counters_t remote;   /* its hakmem counters, as of its last maintenance */
  hak_heap_figures_t heap;        /* its heap, as of its last maintenance */
  AO_t maint_req;       /* the collector asks it to return memory */
  uint64_t maint_resumes; /* resumes at the collector's last round (sched) */
  AO_t streak_base;     /* the running task's streak_ns at its resume */
  lua_State *spare;     /* a state made while idle, for its next task (own) */
  bool spare_tried;     /* it tried to make one since its last task: after
                           a failure (no memory), it waits for a task */
  AO_t spares;          /* tasks that started on a spare state (written by
                           the worker alone, read by the figures) */
};

/*
** The collector thread (collector.c).  Its queues and figures are "sched"
** (rt->lock).  Invariants: every task in closeq is DONE and holds one
** reference for it; pending counts closeq plus the close in progress;
** every task in gcq or gcq_later has gc_queued set and holds one
** reference; gcq_later is in the order of gc_due, give or take a requeue.
*/
typedef struct hakrt_collector {
  pthread_t thread;
  bool started;
  pthread_cond_t wake;      /* work queued, or stop */
  hakrt_task *closeq, *closeq_tail;
  hakrt_task *gcq, *gcq_tail;
  hakrt_task *gcq_later, *gcq_later_tail; /* small heaps: after IDLE_DELAY parked */
  size_t pending;
  AO_t queued;              /* closeq's length, read by workers unlocked */
  bool stop;
  uint64_t closed, close_ns, idle_gcs, soft_gcs, gc_ns, gc_interrupted;
  uint64_t close_cpu_ns, gc_cpu_ns; /* its CPU time in closes and collections */
  uint64_t maintenance;     /* rounds of asking the workers */
  hak_thread_counters_t remote; /* the collector thread's hakmem counters */
  uint64_t activity;        /* closes and collections since the last round */
  uint64_t quiet_rounds;    /* rounds since the last activity */
} hakrt_collector;

/*
** The runtime.  "sched" fields are guarded by lock.  Invariants:
** nlive == tasks in the live list; nrunning == tasks RUNNING; the run
** queues (q, or every worker's q) hold exactly the NEW and RUNNABLE
** tasks (qlen of them).
*/
struct hakrt {
  hakrt_config cfg;
  hakrt_preempt preempt;    /* resolved: SIGNAL, HOOK or OFF */
  pthread_mutex_t lock;
  pthread_cond_t work;      /* workers: a task is runnable, or stop */
  pthread_cond_t changed;   /* hakrt_wait: it may end (hakrt_sched_changed_locked) */
  /* sched */
  hakrt_fifo q;              /* the shared run queue (cfg.queues SHARED) */
  unsigned next_rr;          /* PER_WORKER: where a new task goes */
  AO_t qlen;
  hakrt_timer *timers;      /* a binary min-heap on `when`, live entries only */
  size_t ntimers, timercap;
  hakrt_task *live;
  size_t nlive, nrunning, nidle;
  uint64_t next_id;
  size_t spawned, finished, failed;
  size_t failures_seen;     /* failed tasks whose error a join returned */
  bool stop;
  uint64_t next_chan_id;    /* sched */
  hakrt_worker *workers;
  int nworkers;
  AO_t next_timer;          /* `when` of the earliest timer, 0 = none */
  pthread_t monitor;
  bool monitor_started;
  AO_t monitor_stop;
  pthread_mutex_t out_lock;
  pthread_mutex_t chans_lock; /* a leaf: nothing is taken while it is held */
  hakrt_chan *chans;          /* every live channel (chans_lock) */
  uint64_t started_ns;
  hakrt_collector col;
  hakrt_gc_figures done_gc; /* the figures of finished tasks (sched) */
  uint64_t watchdog_reports, time_limit_stops; /* sched */
};

uint64_t hakrt_now_ns(void);
/* CPU time of the calling thread, ns. */
uint64_t hakrt_thread_cpu_ns(void);
/* Queues a new task (NEW) for its first run; false once stopping. */
bool hakrt_sched_spawn(hakrt *rt, hakrt_task *t);
/* Makes a parked task runnable; marks a running one woken (it then runs
** again as soon as it parks).  Takes rt->lock. */
void hakrt_sched_wake(hakrt_task *t);
void hakrt_sched_wake_locked(hakrt_task *t);
/* After the task's coroutine yielded with HAKRT_Y_BLOCK: parks it (with
** its deadline as a timer) unless it was woken meanwhile. */
void hakrt_sched_park(hakrt_task *t);
/* Makes t RUNNABLE and puts it in the run queue (lock held). */
void hakrt_sched_push_locked(hakrt_task *t);
/* Requeues a task that yielded or was preempted. */
void hakrt_sched_requeue(hakrt_task *t);
/* A task finished: DONE, joiners woken, counts updated; with the
** collector on, its state is handed to the collector for closing. */
void hakrt_sched_done(hakrt_task *t, bool to_collector);
int hakrt_sched_start(hakrt *rt);
void hakrt_sched_stop(hakrt *rt);
/* Writes what every parked task waits on (sched lock held). */
void hakrt_sched_report_locked(hakrt *rt, FILE *f);
void hakrt_sched_changed_locked(hakrt *rt); /* wakes hakrt_wait if it may end */

/* -------------------------------------------------------------------------
** The collector thread (collector.c).
** ---------------------------------------------------------------------- */

int hakrt_collector_start(hakrt *rt);
/* Closes what is queued, then stops (after the workers have stopped). */
void hakrt_collector_stop(hakrt *rt);
/* rt->lock held: queue a DONE task's state for closing. */
void hakrt_collector_close_locked(hakrt_task *t);
/* rt->lock held, t just PARKED: queue its GC if it asked (t->gc_*). */
void hakrt_collector_offer_locked(hakrt_task *t);
/* On a worker, after a slice: decides what GC the task asks for, and runs
** a soft-limit collection there when the collector cannot. */
void hakrt_collector_after_slice(hakrt_task *t, bool parking);
/* A worker between tasks: returns memory if the collector asked. */
void hakrt_collector_worker_maintain(hakrt_worker *w, bool idle);
/* Every task state's GC clock (state setup, protected: it allocates). */
void hakrt_collector_start_clock(lua_State *L);

/* Adds t's figures to *sum. */
void hakrt_gc_figures_add(hakrt_gc_figures *sum, const hakrt_gc_figures *t);

/* -------------------------------------------------------------------------
** Preemption and coroutines (preempt.c).
** ---------------------------------------------------------------------- */

/* A monitor thread is needed: signal preemption, or a watchdog without
** an always-armed hook. */
bool hakrt_preempt_monitor_needed(const hakrt *rt);
/* Installs the signal handler once per process; 0 or errno. */
int hakrt_preempt_init(hakrt *rt);
/* Around each resume of a task by worker w. */
void hakrt_preempt_begin(hakrt_task *t, hakrt_worker *w, lua_State *co);
void hakrt_preempt_end(hakrt_task *t, hakrt_worker *w);
/* The monitor thread: signals workers whose task overran its slice. */
void *hakrt_preempt_monitor(void *arg);
/* coroutine.resume and coroutine.wrap that pass the runtime's yields
** through to the worker. */
void hakrt_preempt_open_coroutines(lua_State *L);

/* -------------------------------------------------------------------------
** Output (output.c): print and io.write of tasks, whole lines at a time.
** ---------------------------------------------------------------------- */

void hakrt_output_open(lua_State *L);
void hakrt_output_flush(hakrt_task *t);  /* the partial line, at the end */
/* Writes a whole text to cfg.err under the output lock. */
void hakrt_output_error(hakrt *rt, const char *text);

/* -------------------------------------------------------------------------
** The module (lib.c) and the runtime's memory (runtime.c).
** ---------------------------------------------------------------------- */

void hakrt_lib_preload(lua_State *L);
/* Pushes rt.stats()'s table (figures.c). */
int hakrt_figures_push(lua_State *L, hakrt *rt);
/* The runtime's own blocks: hakmem's heap of the calling thread, or libc. */
void *hakrt_mem_alloc(hakrt *rt, size_t n);
void *hakrt_mem_realloc(hakrt *rt, void *p, size_t n);
void hakrt_mem_free(hakrt *rt, void *p);

#endif /* HAKRT_INTERNAL_H */
