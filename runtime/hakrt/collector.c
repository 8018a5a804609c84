/*
** collector.c -- the collector thread: closing finished tasks' states,
** collecting parked tasks' garbage, and asking the workers to give memory
** back, all off the workers' paths.
**
** Close.  A finished task's state goes on closeq; the collector claims it
** (a private heap moves to its thread) and closes it with a remote batch
** open (hakmem.h): every block of the state that a worker's page holds is
** a remote free, and each page's blocks go back with one CAS.
**
** Idle GC.  A task that parks after allocating enough since its state's
** last collection (its GC clock, below: whoever ran it) goes on gcq.  The
** collector marks it COLLECTING (under rt->lock, so no worker can resume
** it meanwhile), runs Lua's collector on it (a generational minor
** collection, incremental steps to the end of a cycle, or a full
** collection when the heap has doubled or its soft limit asks), and hands
** it back: PARKED, or RUNNABLE when a wake came meanwhile (then it stops
** after the current step).  Lua's collector then frees the state's
** garbage on this thread, as remote frees, and its debt is paid before
** the task runs again.
**
** Maintenance.  After closes or collections, the collector asks every
** worker that ran no task since its previous round (50 ms) to return
** memory (maint_req): the worker does it between tasks, or at once if it
** is idle, on its own heap (hak_collect: it takes the remote frees, frees
** empty pages and purges).  A worker that is serving tasks is left alone:
** what it would purge it is about to fault back in, and the request that
** waited for its purge paid for both (latency.lua at 800 requests/s, T =
** 1: p99 0.52 ms asking every worker each round, 0.33 ms asking none,
** 0.33 ms with the collector off).  The rounds go on for a while after the
** last activity so that purges past their delay happen with the workers
** idle.
*/
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "internal.h"

#define ROUND_MS 50          /* between maintenance rounds */
#define QUIET_ROUNDS 20      /* rounds after the last activity (1 s) */
#define IDLE_MIN_BYTES (64u << 10)  /* allocation since the last GC worth one */
#define INC_MAX_STEPS 4096   /* incremental steps per visit at most */
#define IDLE_DELAY_MS 50     /* a small heap parked this long is idle */
#define IDLE_DELAY_NS ((uint64_t)IDLE_DELAY_MS * 1000000u)

void hakrt_gc_figures_add(hakrt_gc_figures *sum, const hakrt_gc_figures *t) {
  sum->worker_gc_ns += t->worker_gc_ns;
  sum->collector_gc_ns += t->collector_gc_ns;
  sum->idle_gcs += t->idle_gcs;
  sum->soft_gcs += t->soft_gcs;
  sum->close_ns += t->close_ns;
}

/* ------------------------------------------------------------------------
** On the workers.
** --------------------------------------------------------------------- */

/*
** The GC clock of a task's state: an unreachable table whose finalizer
** runs at the end of each collection of the state, Lua's own on its worker
** included (each minor collection in generational mode, where the table
** is young; each cycle's end in incremental mode), and makes the next
** table.  It sets the task's gc_mark, so the idle GC's trigger counts
** from the state's last collection.  Before it, the trigger counted from
** the collector's last visit only, and a sixteenth of the heap took the
** rooms of bench/runtime/rooms.lua to the collector three times as often
** as Lua's own pacing collects them, each minor collection traversing a
** room's 40000-entry table that every message touches: total GC time
** twice that without idle GC (1128 against 577 ms), throughput 7% lower.
*/
#define GC_CLOCK_KEY "hakrt.gcclock" /* registry: the clock tables' metatable */

static int gc_clock_make(lua_State *L) {
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, GC_CLOCK_KEY);
  lua_setmetatable(L, -2);
  return 0;
}

static int gc_clock_tick(lua_State *L) {
  hakrt_task *t = *(hakrt_task **)lua_getextraspace(L); /* NULL in a spare */
  if (t != NULL && t->ctx != NULL) {
    t->gc_mark = hakrt_task_allocated(t);
    if (!t->rt->cfg.generational) t->gc_base = t->ctx->acct.in_use; /* a whole cycle */
  }
  lua_pushcfunction(L, gc_clock_make);
  /* out of memory (its limit): no next tick, the trigger then counts
  ** from the collector's visits */
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
  return 0;
}

void hakrt_collector_start_clock(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, gc_clock_tick);
  lua_setfield(L, -2, "__gc");
  lua_setfield(L, LUA_REGISTRYINDEX, GC_CLOCK_KEY);
  gc_clock_make(L);
  lua_pop(L, 1);
}

/*
** The allocation since the state's last collection that makes a parked
** task due: three quarters of what makes Lua collect it on its own
** (generational: a minor collection once it allocated 20% of its heap,
** LUAI_GENMINORMUL; incremental: a cycle once the heap doubled since the
** last one, LUAI_GCPAUSE), so that the collector collects it about when
** Lua would, before the task's next run makes Lua do it on a worker.  A
** task with less garbage than that, but some (IDLE_MIN_BYTES and a
** sixteenth of its heap), is collected only once it has stayed parked
** IDLE_DELAY_MS: it may be idle for long, and its garbage would wait for
** its next run (the "idle states that never collect").
*/
static uint64_t idle_gc_due(const hakrt *rt, const hakrt_task *t) {
  uint64_t due = rt->cfg.generational ? (uint64_t)t->ctx->acct.in_use * 3 / 20 : (uint64_t)t->gc_base * 3 / 4;
  return due > IDLE_MIN_BYTES ? due : IDLE_MIN_BYTES;
}

/*
** After a slice, on the worker that ran it.  The soft limit: a full
** collection before allocations start to fail, at most once per eighth of
** the limit allocated (a heap whose live data sits above the mark would
** otherwise be collected at every yield).  It runs here unless the task is
** parking and the collector can take it.  Idle GC: a parking task that
** allocated enough since its GC last ran asks for the collector.
*/
void hakrt_collector_after_slice(hakrt_task *t, bool parking) {
  hakrt *rt = t->rt;
  const hakl_account *a = &t->ctx->acct;
  uint64_t alloc = hakrt_task_allocated(t);
  bool to_collector = parking && rt->cfg.collector;
  t->want_gc = t->gc_full = t->gc_due = t->soft_req = false;
  if (a->limit != 0 && rt->cfg.soft_limit > 0 &&
      (double)a->in_use >= rt->cfg.soft_limit * (double)a->limit &&
      alloc - t->gc_mark >= a->limit / 8) {
    if (to_collector) {
      t->want_gc = t->gc_full = t->gc_due = t->soft_req = true;
      return;
    }
    {
      uint64_t t0 = hakrt_now_ns();
      t->no_block = true; /* parking: its finalizers must not touch its wait */
      lua_gc(t->L, LUA_GCCOLLECT);
      t->no_block = false;
      t->o_gc.worker_gc_ns += hakrt_now_ns() - t0;
    }
    t->o_gc.soft_gcs++;
    t->gc_mark = hakrt_task_allocated(t);
    t->gc_base = a->in_use;
    return;
  }
  if (!to_collector || !rt->cfg.idle_gc) return;
  /* collectgarbage("stop") holds for the idle GC (the soft limit above
  ** overrides it, as Lua's own emergency collection does) */
  if (!lua_gc(t->L, LUA_GCISRUNNING)) return;
  if (alloc - t->gc_mark < IDLE_MIN_BYTES || alloc - t->gc_mark < a->in_use / 16) return;
  t->want_gc = true;
  t->gc_due = alloc - t->gc_mark >= idle_gc_due(rt, t);
  t->gc_full = a->in_use > 2 * t->gc_base + IDLE_MIN_BYTES; /* the heap doubled */
}

/* A worker between tasks (rt->lock not held). */
void hakrt_collector_worker_maintain(hakrt_worker *w, bool idle) {
  if (!AO_load(&w->maint_req)) return;
  AO_store(&w->maint_req, 0);
  hak_thread_counters_t c;
  hak_heap_figures_t h;
  uint64_t t0;
  if (w->rt->cfg.libc) return;
  t0 = hakrt_now_ns();
  hak_collect(idle); /* idle: purge now, nobody waits */
  t0 = hakrt_now_ns() - t0;
  hak_thread_counters(&c);
  hak_heap_figures(NULL, &h); /* its own heap, between tasks */
  pthread_mutex_lock(&w->rt->lock);
  w->maintenance++;
  w->maint_ns += t0;
  w->heap = h;
  w->remote = c;
  pthread_mutex_unlock(&w->rt->lock);
}

/* ------------------------------------------------------------------------
** Queues (rt->lock held).
** --------------------------------------------------------------------- */

void hakrt_collector_close_locked(hakrt_task *t) {
  hakrt_collector *c = &t->rt->col;
  hakrt_task_ref(t);
  t->cnext = NULL;
  if (c->closeq_tail != NULL) c->closeq_tail->cnext = t;
  else c->closeq = t;
  c->closeq_tail = t;
  c->pending++;
  AO_store(&c->queued, AO_load(&c->queued) + 1);
  pthread_cond_signal(&c->wake);
}

/* Takes t out of gcq_later (a walk: the list holds the parked tasks
** waiting for their idle delay); false if it is not there. */
static bool gcq_later_remove_locked(hakrt_collector *c, hakrt_task *t) {
  hakrt_task *prev = NULL, *q;
  for (q = c->gcq_later; q != NULL && q != t; q = q->gnext) prev = q;
  if (q == NULL) return false;
  if (prev != NULL) prev->gnext = t->gnext;
  else c->gcq_later = t->gnext;
  if (c->gcq_later_tail == t) c->gcq_later_tail = prev;
  t->gnext = NULL;
  return true;
}

static void gcq_later_push_locked(hakrt_collector *c, hakrt_task *t) {
  t->gc_due_ns = t->parked_ns + IDLE_DELAY_NS;
  t->gnext = NULL;
  if (c->gcq_later_tail != NULL) c->gcq_later_tail->gnext = t;
  else c->gcq_later = t;
  c->gcq_later_tail = t;
}

/*
** A parked task with GC debt.  A due one (idle_gc_due) with a heap of
** collector_close_min bytes or more goes to the collector at once; one
** that is not due yet, only once it has stayed parked IDLE_DELAY_MS.  So
** does a smaller one, due or not: its GC is cheap on its worker, where its
** objects are warm, and a task that wakes soon (a driver between
** arrivals, a sink between messages) would wait for the collector's step
** and find its heap cold after it (latency.lua at T = 1 and 4000
** requests/s, 10 runs: p99 1.82 ms with every parked task taken at once,
** 0.30 without idle GC; a 33 KB driver took 40 collections of up to
** 0.8 ms, its task handles' finalizers contending for rt->lock, and its
** wakes waited up to 0.8 ms).
*/
void hakrt_collector_offer_locked(hakrt_task *t) {
  hakrt *rt = t->rt;
  hakrt_collector *c = &rt->col;
  bool now;
  if (!t->want_gc || t->state != HAKRT_PARKED) return;
  now = t->gc_due && t->ctx->acct.in_use >= rt->cfg.collector_close_min;
  if (t->gc_queued) {
    /* queued at an earlier park to wait for its idle delay, and due now */
    if (!now || t->gc_due_ns == 0 || !gcq_later_remove_locked(c, t)) return;
  } else {
    t->gc_queued = true;
    hakrt_task_ref(t);
  }
  t->want_gc = false;
  if (!now) {
    gcq_later_push_locked(c, t); /* no signal: the collector wakes by its due time */
    return;
  }
  t->gc_due_ns = 0; /* in gcq */
  t->gnext = NULL;
  if (c->gcq_tail != NULL) c->gcq_tail->gnext = t;
  else c->gcq = t;
  c->gcq_tail = t;
  pthread_cond_signal(&c->wake);
}

static hakrt_task *closeq_pop_locked(hakrt_collector *c) {
  hakrt_task *t = c->closeq;
  if (t == NULL) return NULL;
  if ((c->closeq = t->cnext) == NULL) c->closeq_tail = NULL;
  t->cnext = NULL;
  AO_store(&c->queued, AO_load(&c->queued) - 1);
  return t;
}

static hakrt_task *gcq_pop_locked(hakrt_collector *c) {
  hakrt_task *t = c->gcq;
  if (t == NULL) return NULL;
  if ((c->gcq = t->gnext) == NULL) c->gcq_tail = NULL;
  t->gnext = NULL;
  t->gc_queued = false;
  return t;
}

/*
** The first task of gcq_later that is due and still parked since before
** its due time, else NULL.  One that ran and parked again since it was
** queued goes back to the end, due IDLE_DELAY_MS after its last park; one
** that is not parked leaves (its next park offers it again).
*/
static hakrt_task *gcq_later_pop_locked(hakrt_collector *c, uint64_t now) {
  hakrt_task *t;
  while ((t = c->gcq_later) != NULL && t->gc_due_ns <= now) {
    if ((c->gcq_later = t->gnext) == NULL) c->gcq_later_tail = NULL;
    t->gnext = NULL;
    if (t->state == HAKRT_PARKED && t->parked_ns + IDLE_DELAY_NS > now) {
      gcq_later_push_locked(c, t); /* parked again since: later */
      continue;
    }
    t->gc_queued = false;
    return t;
  }
  return NULL;
}

/* ------------------------------------------------------------------------
** The work, on the collector thread (rt->lock not held).
** --------------------------------------------------------------------- */

static void batch_begin(hakrt *rt) {
  if (!rt->cfg.libc && rt->cfg.batch_frees) hak_remote_batch_begin();
}

static void batch_end(hakrt *rt) {
  if (!rt->cfg.libc && rt->cfg.batch_frees) hak_remote_batch_end();
}

static void collector_close(hakrt *rt, hakrt_task *t) {
  uint64_t t0 = hakrt_now_ns(), cpu = hakrt_thread_cpu_ns();
  if (t->private_heap && t->L != NULL) hakl_claim(t->L);
  batch_begin(rt);
  hakrt_task_close_state(t);
  batch_end(rt);
  cpu = hakrt_thread_cpu_ns() - cpu;
  t0 = hakrt_now_ns() - t0;
  pthread_mutex_lock(&rt->lock);
  t->o_gc.close_ns += t0;
  t->closed_by_collector = true;
  hakrt_task_publish_locked(t);
  rt->done_gc.close_ns += t0; /* the rest went in at hakrt_sched_done */
  rt->col.closed++;
  rt->col.close_ns += t0;
  rt->col.close_cpu_ns += cpu;
  if (!rt->cfg.libc) hak_thread_counters(&rt->col.remote);
  rt->col.pending--;
  rt->col.activity++;
  hakrt_sched_changed_locked(rt);
  hakrt_task_unref(t);
  pthread_mutex_unlock(&rt->lock);
}

/* Lua's collector on a parked task; returns false when a wake cut it short. */
static bool collector_gc(hakrt *rt, hakrt_task *t) {
  lua_State *L = t->L;
  bool whole = true, done = true;
  if (t->private_heap) hakl_claim(L);
  batch_begin(rt);
  t->no_block = true; /* its finalizers run here; its wait is its code's */
  /* Incremental mode reaches a cycle's end by steps, so a wake waits for
  ** one step only; a generational full collection is atomic in Lua, and
  ** the soft limit wants everything collected now. */
  if (t->gc_full && (rt->cfg.generational || t->soft_req)) {
    lua_gc(L, LUA_GCCOLLECT);
  } else if (rt->cfg.generational) {
    lua_gc(L, LUA_GCSTEP, 0); /* a minor collection */
  } else {
    int i;
    done = false;
    for (i = 0; i < INC_MAX_STEPS && !done; i++) {
      done = lua_gc(L, LUA_GCSTEP, 0) != 0; /* the cycle ended */
      if (!done && AO_load(&t->collect_stop)) {
        whole = false;
        break;
      }
    }
  }
  t->no_block = false;
  batch_end(rt);
  if (t->private_heap) hakl_release(L);
  /* A cycle cut short stays due: its next park brings the task back to
  ** finish it here (rooms.lua, incremental: 38 of 48 visits cut short by
  ** the next message, whose worker then ran the rest of each cycle). */
  if (done) t->gc_mark = hakrt_task_allocated(t);
  if (t->gc_full) t->gc_base = t->ctx->acct.in_use;
  return whole;
}

static void collector_visit(hakrt *rt, hakrt_task *t) {
  uint64_t t0 = hakrt_now_ns(), cpu = hakrt_thread_cpu_ns();
  bool whole = collector_gc(rt, t);
  cpu = hakrt_thread_cpu_ns() - cpu;
  t0 = hakrt_now_ns() - t0;
  pthread_mutex_lock(&rt->lock);
  t->o_gc.collector_gc_ns += t0;
  if (t->soft_req) {
    t->o_gc.soft_gcs++;
    rt->col.soft_gcs++;
  } else {
    t->o_gc.idle_gcs++;
    rt->col.idle_gcs++;
  }
  if (!whole) rt->col.gc_interrupted++;
  rt->col.gc_ns += t0;
  rt->col.gc_cpu_ns += cpu;
  rt->col.activity++;
  t->gc_full = t->soft_req = false;
  hakrt_task_publish_locked(t);
  AO_store(&t->collect_stop, 0);
  if (t->woken) {
    t->woken = false;
    hakrt_sched_push_locked(t);
  } else {
    t->state = HAKRT_PARKED;
  }
  hakrt_sched_changed_locked(rt);
  hakrt_task_unref(t);
  pthread_mutex_unlock(&rt->lock);
}

/* A maintenance round: the workers return memory at their next chance;
** the idle ones are woken for it.  Then the collector's own heap. */
static void collector_round_locked(hakrt *rt) {
  hakrt_collector *c = &rt->col;
  int i;
  if (c->activity != 0) {
    c->activity = 0;
    c->quiet_rounds = 0;
  } else if (++c->quiet_rounds > QUIET_ROUNDS) {
    return;
  }
  for (i = 0; i < rt->nworkers; i++) {
    hakrt_worker *w = &rt->workers[i];
    if (w->resumes == w->maint_resumes) AO_store(&w->maint_req, 1);
    w->maint_resumes = w->resumes;
  }
  pthread_cond_broadcast(&rt->work);
  c->maintenance++;
  pthread_mutex_unlock(&rt->lock);
  if (!rt->cfg.libc) hak_collect(true);
  pthread_mutex_lock(&rt->lock);
  if (!rt->cfg.libc) hak_thread_counters(&c->remote);
}

static void wait_round_locked(hakrt *rt, uint64_t until) {
  struct timespec ts;
  ts.tv_sec = (time_t)(until / 1000000000u);
  ts.tv_nsec = (long)(until % 1000000000u);
  pthread_cond_timedwait(&rt->col.wake, &rt->lock, &ts);
}

static void *collector_main(void *arg) {
  hakrt *rt = (hakrt *)arg;
  hakrt_collector *c = &rt->col;
  uint64_t next_round = hakrt_now_ns() + ROUND_MS * 1000000u;
  hakrt_task *t;
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    if ((t = closeq_pop_locked(c)) != NULL) {
      pthread_mutex_unlock(&rt->lock);
      collector_close(rt, t);
      pthread_mutex_lock(&rt->lock);
      continue;
    }
    if (c->stop) break;
    if ((t = gcq_pop_locked(c)) != NULL || (t = gcq_later_pop_locked(c, hakrt_now_ns())) != NULL) {
      if (t->state != HAKRT_PARKED || t->L == NULL) { /* woken meanwhile */
        hakrt_task_unref(t);
        continue;
      }
      t->state = HAKRT_COLLECTING;
      pthread_mutex_unlock(&rt->lock);
      collector_visit(rt, t);
      pthread_mutex_lock(&rt->lock);
      continue;
    }
    if (hakrt_now_ns() >= next_round) {
      collector_round_locked(rt);
      next_round = hakrt_now_ns() + ROUND_MS * 1000000u;
      continue;
    }
    wait_round_locked(rt, c->gcq_later != NULL && c->gcq_later->gc_due_ns < next_round
                              ? c->gcq_later->gc_due_ns : next_round);
  }
  while ((t = gcq_pop_locked(c)) != NULL) hakrt_task_unref(t);
  while ((t = gcq_later_pop_locked(c, UINT64_MAX)) != NULL) hakrt_task_unref(t);
  pthread_mutex_unlock(&rt->lock);
  if (!rt->cfg.libc) hak_collect(true);
  return NULL;
}

int hakrt_collector_start(hakrt *rt) {
  pthread_condattr_t attr;
  int err;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->col.wake, &attr);
  pthread_condattr_destroy(&attr);
  if (!rt->cfg.collector) return 0;
  if ((err = pthread_create(&rt->col.thread, NULL, collector_main, rt)) != 0) return err;
  rt->col.started = true;
  return 0;
}

void hakrt_collector_stop(hakrt *rt) {
  if (rt->col.started) {
    pthread_mutex_lock(&rt->lock);
    rt->col.stop = true;
    pthread_cond_signal(&rt->col.wake);
    pthread_mutex_unlock(&rt->lock);
    pthread_join(rt->col.thread, NULL);
    rt->col.started = false;
  }
}
