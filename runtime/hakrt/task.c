/*
** task.c -- a task's life: its state and coroutine, one slice of running
** on a worker, its end (results, error and traceback, close).
**
** A task's state is opened by the first worker that runs it (warm on that
** worker's core: states the collector opened ahead came cold from its
** core and cost the worker more than they saved, docs/runtime.md).  The task runs in a
** coroutine of that state (task->co); the runtime's blocking calls yield
** it back to the worker with task->yield saying why, and retry from a
** continuation when it is resumed, on whichever worker that is.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "internal.h"

#define TASK_KEY "hakrt.self" /* registry: the task of this state */

/* ------------------------------------------------------------------------
** Finding the task of a state.  The pointer is in the main thread's extra
** space, which Lua copies into every coroutine made from it; the registry
** entry tells a task's state from any other.
** --------------------------------------------------------------------- */

hakrt_task *hakrt_task_test(lua_State *L) {
  hakrt_task *t;
  void *mark;
  if (lua_getfield(L, LUA_REGISTRYINDEX, TASK_KEY) != LUA_TLIGHTUSERDATA) {
    lua_pop(L, 1);
    return NULL;
  }
  mark = lua_touserdata(L, -1);
  lua_pop(L, 1);
  t = *(hakrt_task **)lua_getextraspace(L);
  return t == mark ? t : NULL;
}

hakrt_task *hakrt_task_of(lua_State *L) {
  /* The runtime's functions exist only in task states: the extra space is
  ** enough on this path. */
  hakrt_task *t = *(hakrt_task **)lua_getextraspace(L);
  if (hakrt_unlikely(t == NULL)) luaL_error(L, "hakrt: not inside a task");
  return t;
}

bool hakrt_task_charge(hakrt_task *t, size_t n, bool enforce_limit) {
  return hakl_charge(t->ctx, n, enforce_limit);
}

void hakrt_task_uncharge(hakrt_task *t, size_t n) {
  hakl_uncharge(t->ctx, n);
}

/* ------------------------------------------------------------------------
** Creation.
** --------------------------------------------------------------------- */

#define INBOX_CAP 64 /* messages an inbox holds before senders wait */

static char *dup_string(hakrt *rt, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = (char *)hakrt_mem_alloc(rt, n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

/* The heap a task of the runtime's defaults gets: its own, or its worker's. */
static bool task_default_private_heap(const hakrt *rt) {
  return rt->cfg.private_heaps && !rt->cfg.libc;
}

hakrt_task *hakrt_task_new(hakrt *rt, int kind, const char *name, hakrt_msg *start,
                           const hakrt_spawn_opts *opts) {
  hakrt_task *t = (hakrt_task *)hakrt_mem_alloc(rt, sizeof *t);
  if (t == NULL) return NULL;
  memset(t, 0, sizeof *t);
  t->rt = rt;
  AO_store(&t->refs, 1);
  t->last_worker = -1;
  t->kind = kind;
  t->start = start;
  t->limit = rt->cfg.task_mem_limit;
  t->private_heap = task_default_private_heap(rt);
  if (opts != NULL) {
    if (opts->mem_limit != 0) t->limit = opts->mem_limit;
    if (opts->private_heap && !rt->cfg.libc) t->private_heap = true;
  }
  /* a function's name is the same for all: no copy per spawn */
  t->name = kind == HAKRT_START_FUNCTION ? (char *)HAKRT_FUNCTION_NAME : dup_string(rt, name);
  if (t->name == NULL) {
    hakrt_mem_free(rt, t);
    return NULL;
  }
  return t;
}

int hakrt_task_inbox(hakrt_task *t, hakrt_chan **out) {
  hakrt *rt = t->rt;
  hakrt_chan *c, *fresh;
  bool done;
  pthread_mutex_lock(&rt->lock);
  c = t->inbox;
  done = t->inbox_done;
  pthread_mutex_unlock(&rt->lock);
  if (c == NULL && done) return EPIPE;
  if (c == NULL) {
    /* made unlocked (hakrt_chan_new takes the sched lock); the first to
    ** store one wins, a loser's goes */
    if ((fresh = hakrt_chan_new(rt, INBOX_CAP)) == NULL) return ENOMEM;
    pthread_mutex_lock(&rt->lock);
    if (t->inbox == NULL && !t->inbox_done) {
      t->inbox = fresh;
      fresh = NULL;
    }
    c = t->inbox;
    pthread_mutex_unlock(&rt->lock);
    if (fresh != NULL) hakrt_chan_release(fresh);
    if (c == NULL) return EPIPE;
  }
  *out = c;
  return 0;
}

static void task_free(hakrt_task *t) {
  hakrt *rt = t->rt;
  hakrt_msg_free(t->start);
  hakrt_code_release(t->code);
  hakrt_msg_free(t->result);
  hakrt_mem_free(rt, t->error);
  if (t->kind != HAKRT_START_FUNCTION) hakrt_mem_free(rt, t->name);
  hakrt_mem_free(rt, t->obuf);
  if (t->inbox != NULL) hakrt_chan_owner_release(t->inbox);
  hakrt_mem_free(rt, t);
}

void hakrt_task_ref(hakrt_task *t) {
  AO_fetch_and_add1(&t->refs);
}

/* The full barrier orders every use of the task before the free. */
void hakrt_task_unref(hakrt_task *t) {
  if (AO_fetch_and_sub1_full(&t->refs) == 1) task_free(t);
}

uint64_t hakrt_task_allocated(const hakrt_task *t) {
  const hakl_account *a = &t->ctx->acct;
  uint64_t n = a->grow_bytes;
  int i;
  for (i = 0; i < HAKL_NTYPES; i++) n += a->type_bytes[i];
  return n;
}

static void acct_fig(hakrt_acct_fig *f, const hakl_account *a) {
  f->in_use = a->in_use;
  f->peak = a->peak;
  f->limit = a->limit;
  f->nfail = a->nfail;
}

void hakrt_task_publish_locked(hakrt_task *t) {
  if (t->ctx != NULL) acct_fig(&t->snap, &t->ctx->acct);
  else if (t->closed) t->snap = t->o_final;
  t->gc = t->o_gc;
  t->run_ns = t->o_run_ns;
  t->cpu_ns = t->o_cpu_ns;
  t->sent = t->o_sent;
  t->received = t->o_received;
  t->resumes = t->o_resumes;
}

/* What every task's state has, whoever its task is (protected). */
static int state_setup(lua_State *L) {
  hakrt *rt = (hakrt *)lua_touserdata(L, 1);
  luaL_openlibs(L);
  hakrt_output_open(L);
  hakrt_preempt_open_coroutines(L);
  hakrt_collector_start_clock(L);
  lua_gc(L, LUA_GCRESTART);
  if (rt->cfg.generational) lua_gc(L, LUA_GCGEN, 0, 0);
  else lua_gc(L, LUA_GCINC, 0, 0, 0);
  return 0;
}

/* A bare state of the runtime's shape, the standard libraries loaded and
** the GC in the runtime's mode; NULL when out of memory. */
static lua_State *task_state_new(hakrt *rt, size_t limit, bool private_heap) {
  hakl_config cfg;
  lua_State *L;
  memset(&cfg, 0, sizeof cfg);
  cfg.limit = limit;
  cfg.private_heap = private_heap;
  cfg.libc = rt->cfg.libc;
  if ((L = hakl_newstate(&cfg)) == NULL) return NULL;
  /* no task yet (Lua leaves the main thread's extra space as the
  ** allocator gave it): the GC clock's ticks look for one there */
  *(hakrt_task **)lua_getextraspace(L) = NULL;
  lua_gc(L, LUA_GCSTOP); /* none while the libraries load, as lua.c */
  lua_pushcfunction(L, state_setup);
  lua_pushlightuserdata(L, rt);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    hakl_close(L, NULL);
    return NULL;
  }
  return L;
}

/* What only this task's state has: the task, the runtime's module, and
** the coroutine that runs it, returned (protected: each of these may
** raise "not enough memory" under a small limit, and lua_newthread
** raises rather than return NULL). */
static int task_setup(lua_State *L) {
  lua_pushvalue(L, 1); /* the task, a light userdata */
  lua_setfield(L, LUA_REGISTRYINDEX, TASK_KEY);
  hakrt_lib_preload(L);
  lua_newthread(L);
  return 1;
}

/*
** Spare states.  Making a state (hakl_newstate and luaL_openlibs: some
** 190,000 instructions, callgrind) is the fixed part of every task's
** start: spares took the p50 latency of empty requests from 0.148 to
** 0.125 ms (bench/runtime/latency.lua 4000 800 0, T = 2).  A worker with nothing
** to run makes one ahead, in its own heap (or in a private heap it owns),
** and its next task of the runtime's memory limit and heap kind starts on
** it: the state is the same as the task would have made.  One per worker,
** made again only after a task took it, so an idle worker makes one state
** and then sleeps.
*/
void hakrt_task_make_spare(hakrt_worker *w) {
  hakrt *rt = w->rt;
  w->spare_tried = true;
  /* one at a time: a task of another limit or heap leaves it waiting */
  if (w->spare == NULL) w->spare = task_state_new(rt, rt->cfg.task_mem_limit, task_default_private_heap(rt));
}

void hakrt_task_drop_spare(hakrt_worker *w) {
  if (w->spare != NULL) hakl_close(w->spare, NULL);
  w->spare = NULL;
}

/* The state and the coroutine; false when memory ran out. */
static bool task_open(hakrt_task *t, hakrt_worker *w) {
  hakrt *rt = t->rt;
  lua_State *L = NULL;
  if (w->spare != NULL && t->limit == rt->cfg.task_mem_limit &&
      t->private_heap == task_default_private_heap(rt)) {
    L = w->spare;
    w->spare = NULL;
    AO_store(&w->spares, AO_load(&w->spares) + 1);
  }
  w->spare_tried = false;
  if (L == NULL && (L = task_state_new(rt, t->limit, t->private_heap)) == NULL) return false;
  *(hakrt_task **)lua_getextraspace(L) = t; /* before the coroutine: it copies it */
  t->L = L; /* from here on, the task's end closes the state, whatever fails */
  t->ctx = hakl_getctx(L);
  lua_pushcfunction(L, task_setup);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return false;
  /* The coroutine stays on the main thread's stack (index 1), which
  ** nothing else uses: task_failed finds it there. */
  t->co = lua_tothread(L, 1);
  return true;
}

/* ------------------------------------------------------------------------
** The task's main function, inside its coroutine.
** --------------------------------------------------------------------- */

static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

/* arg as lua5.4 makes it: arg[0] the script, arg[1..n] its arguments. */
static void task_arg_table(lua_State *L, const char *path, int nargs) {
  int i, base = lua_gettop(L) - nargs;
  lua_createtable(L, nargs, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (i = 1; i <= nargs; i++) {
    lua_pushvalue(L, base + i);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
}

static int task_main(lua_State *L) {
  hakrt_task *t = hakrt_task_of(L);
  int n, status;
  lua_settop(L, 0);
  n = hakrt_msg_unpack(L, t->start);
  hakrt_msg_free(t->start);
  t->start = NULL;
  if (t->kind == HAKRT_START_FILE) {
    task_arg_table(L, t->name, n);
    status = luaL_loadfile(L, t->name);
    if (status != LUA_OK) return lua_error(L);
    lua_insert(L, 1);
  } else if (t->kind == HAKRT_START_FUNCTION) {
    hakrt_code *c = t->code;
    status = luaL_loadbufferx(L, c->data, c->len, t->name, "b");
    t->code = NULL; /* loaded (or failed): the state needs it no more */
    hakrt_code_release(c);
    if (status != LUA_OK) return lua_error(L);
    lua_insert(L, 1);
  } else {
    size_t len;
    const char *code = lua_tolstring(L, 1, &len);
    status = luaL_loadbufferx(L, code, len, t->name, "t");
    if (status != LUA_OK) return lua_error(L);
    lua_replace(L, 1);
    n--;
  }
  lua_callk(L, n, LUA_MULTRET, 0, task_main_k);
  return task_main_k(L, LUA_OK, 0);
}

/* ------------------------------------------------------------------------
** Yielding to the worker.
** --------------------------------------------------------------------- */

void hakrt_task_check_yieldable(lua_State *L) {
  if (hakrt_task_of(L)->no_block)
    luaL_error(L, "cannot block here: in a finalizer that runs while the task's code does not "
                  "(a collection by the runtime, or the close)");
  if (!lua_isyieldable(L))
    luaL_error(L, "cannot block here: inside a C call that cannot yield "
                  "(a metamethod, a sort comparison, a gsub function)");
}

int hakrt_task_yield(lua_State *L, int y, lua_KContext ctx, lua_KFunction k) {
  hakrt_task *t = hakrt_task_of(L);
  t->yield = y;
  return lua_yieldk(L, 0, ctx, k);
}

void hakrt_task_cancel_wait(hakrt_task *t) {
  hakrt *rt = t->rt;
  hakrt_task *x, **pp;
  hakrt_chan_unwait(t);
  if (t->wait != HAKRT_W_JOIN) return;
  pthread_mutex_lock(&rt->lock);
  for (x = rt->live; x != NULL; x = x->lnext)
    for (pp = &x->joiners; *pp != NULL; pp = &(*pp)->jnext)
      if (*pp == t) {
        *pp = t->jnext;
        break;
      }
  pthread_mutex_unlock(&rt->lock);
}

/* ------------------------------------------------------------------------
** The end of a task.
** --------------------------------------------------------------------- */

/* Keeps `text` as the task's error: "task N: text". */
static void task_set_error(hakrt_task *t, const char *text) {
  char head[48];
  size_t hn, n = strlen(text);
  hn = (size_t)snprintf(head, sizeof head, "task %llu: ", (unsigned long long)t->id);
  hakrt_mem_free(t->rt, t->error);
  t->error = (char *)hakrt_mem_alloc(t->rt, hn + n + 1);
  if (t->error != NULL) {
    memcpy(t->error, head, hn);
    memcpy(t->error + hn, text, n + 1);
  }
  t->failed = true;
}

/* The text of an error object that is not a string or a number (at idx,
** on L): what its __tostring makes of it, or why that failed. */
static const char *describe_object(lua_State *L, int idx) {
  const char *type = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL)
    return lua_pushfstring(L, "(error object is a %s value)", type);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *why = lua_tostring(L, -1);
    return lua_pushfstring(L, "(error object is a %s value; its __tostring failed: %s)", type,
                           why != NULL ? why : luaL_typename(L, -1));
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    return lua_pushfstring(L, "(error object is a %s value; its __tostring returned a %s)", type,
                           luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

/* Protected: the error at the top of co (or, with a true second argument,
** "time limit exceeded", whatever the unwinding left there), as text with
** co's traceback.  The error object is moved to L first: __tostring runs
** on L, not on the dead coroutine. */
static int describe_error(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  const char *msg;
  if (lua_toboolean(L, 2)) {
    msg = "time limit exceeded";
  } else {
    lua_xmove(co, L, 1);
    if ((msg = lua_tostring(L, -1)) == NULL) msg = describe_object(L, lua_gettop(L));
  }
  luaL_traceback(L, co, msg, 0);
  return 1;
}

/* The coroutine failed (or, stopped by the time limit, returned anyway:
** `stopped`).  Describing an error may fail only for want of memory. */
static void task_failed(hakrt_task *t, bool stopped) {
  lua_State *L = t->L;
  hakl_setlimit(t->ctx, 0); /* describing an out-of-memory error needs memory */
  lua_pushcfunction(L, describe_error);
  lua_pushvalue(L, 1); /* the coroutine */
  lua_pushboolean(L, stopped);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) task_set_error(t, lua_tostring(L, -1));
  else task_set_error(t, "error (no memory left to describe it)");
  lua_pop(L, 1);
}

static int pack_results(lua_State *L) {
  hakrt_msg_pack(L, 1, lua_gettop(L), "result");
  return 1;
}

/* The coroutine returned: its results, packed for join. */
static void task_returned(hakrt_task *t, int nres) {
  lua_State *L = t->L;
  int base = lua_gettop(L);
  lua_pushcfunction(L, pack_results);
  if (!lua_checkstack(L, nres + 1)) {
    lua_pop(t->co, nres);
    nres = 0;
  }
  lua_xmove(t->co, L, nres);
  if (lua_pcall(L, nres, 1, 0) == LUA_OK) {
    hakrt_msg **box = (hakrt_msg **)lua_touserdata(L, -1);
    t->result = *box;
    hakrt_msg_commit(t->result, L);
    *box = NULL;
  } else {
    task_set_error(t, lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "bad results");
  }
  lua_settop(L, base);
}

/* What ends with the task's code, on the worker: its waits, its output,
** its inbox (senders learn at once that nobody will read). */
static void task_end(hakrt_task *t) {
  hakrt *rt = t->rt;
  hakrt_chan *inbox;
  hakrt_task_cancel_wait(t);
  hakrt_output_flush(t);
  pthread_mutex_lock(&rt->lock);
  t->inbox_done = true;
  inbox = t->inbox;
  pthread_mutex_unlock(&rt->lock);
  if (inbox != NULL) hakrt_chan_close(inbox); /* the channel lock comes first */
}

void hakrt_task_close_state(hakrt_task *t) {
  if (t->L != NULL) {
    hakl_account final;
    t->no_block = true; /* for the finalizers the close runs */
    hakl_close(t->L, &final);
    acct_fig(&t->o_final, &final);
    t->ctx = NULL;
    t->closed = true;
    t->L = t->co = NULL;
  }
  if (t->inbox != NULL) hakrt_chan_owner_gone(t->inbox);
  hakrt_output_flush(t); /* what its finalizers printed */
}

/*
** Where a finished state is closed.  The collector takes the close off
** the worker's path, but it reads every object of the state and dirties
** its blocks, so the worker later reuses memory that comes back cold from
** the collector's cache.  For a state still in the worker's cache that
** may cost the worker more than the close saved; collector_close_min
** keeps such states here (docs/runtime.md says what was measured).
** And the close queue is bounded: a state waiting there is memory held
** for nothing, so when the collector falls behind (a burst of large
** states finishing) the workers close their own until it catches up.
*/
#define CLOSE_QUEUE_MAX(rt) (2 * (size_t)(rt)->nworkers)
static bool close_on_collector(hakrt_task *t) {
  hakrt *rt = t->rt;
  return rt->cfg.collector && t->L != NULL &&
         t->ctx->acct.in_use >= rt->cfg.collector_close_min &&
         AO_load(&rt->col.queued) < (AO_t)CLOSE_QUEUE_MAX(rt);
}

/* On the collector (close_on_collector), else here, timed. */
static void task_finish(hakrt_task *t) {
  hakrt *rt = t->rt;
  if (t->failed && t->error != NULL) hakrt_output_error(rt, t->error);
  else if (t->failed) hakrt_output_error(rt, "task: failed (no memory left to say why)");
  task_end(t);
  if (close_on_collector(t)) {
    if (t->private_heap) hakl_release(t->L);
    hakrt_sched_done(t, true);
    return;
  }
  {
    uint64_t t0 = hakrt_now_ns(), cpu = hakrt_thread_cpu_ns();
    hakrt_worker *w = t->last_worker >= 0 ? &rt->workers[t->last_worker] : NULL;
    hakrt_task_close_state(t);
    cpu = hakrt_thread_cpu_ns() - cpu;
    t0 = hakrt_now_ns() - t0;
    t->o_gc.close_ns += t0;
    pthread_mutex_lock(&rt->lock);
    if (w != NULL) {
      w->closed++;
      w->close_ns += t0;
      w->close_cpu_ns += cpu;
    }
    hakrt_task_publish_locked(t);
    pthread_mutex_unlock(&rt->lock);
  }
  hakrt_sched_done(t, false);
}

void hakrt_task_discard(hakrt_task *t) {
  if (t->L != NULL && t->private_heap) hakl_claim(t->L);
  task_end(t);
  hakrt_task_close_state(t);
}

/* ------------------------------------------------------------------------
** One slice.
** --------------------------------------------------------------------- */

void hakrt_task_run(hakrt_task *t, hakrt_worker *w) {
  uint64_t (*gc_clock)(void) = t->rt->cfg.gc_clock;
  int status, nres = 0;
  uint64_t t0, gc0, cpu0;
  if (t->L == NULL) {
    if (!task_open(t, w)) {
      task_set_error(t, "cannot create the task's state: not enough memory");
      task_finish(t);
      return;
    }
    lua_pushcfunction(t->co, task_main);
  } else if (t->private_heap) {
    hakl_claim(t->L);
  }
  t->worker = w;
  w->task = t;
  gc0 = gc_clock != NULL ? gc_clock() : 0;
  cpu0 = hakrt_thread_cpu_ns();
  t0 = hakrt_now_ns();
  hakrt_preempt_begin(t, w, t->co);
  status = lua_resume(t->co, t->L, 0, &nres);
  hakrt_preempt_end(t, w);
  t0 = hakrt_now_ns() - t0;
  t->o_cpu_ns += hakrt_thread_cpu_ns() - cpu0;
  t->o_run_ns += t0;
  t->streak_ns += t0;
  if (gc_clock != NULL) t->o_gc.worker_gc_ns += gc_clock() - gc0;
  t->o_resumes++;
  w->task = NULL;
  t->worker = NULL;
  if (status == LUA_YIELD) {
    int y = t->yield;
    t->yield = HAKRT_Y_NONE;
    lua_pop(t->co, nres);
    /* it gave the worker up: a new streak (a stopped task stays stopped
    ** until it has unwound, and its stop is counted once) */
    if (y != HAKRT_Y_PREEMPT && t->watch != HAKRT_WATCH_STOP) {
      t->streak_ns = 0;
      t->watch_reported = false;
    }
    hakrt_collector_after_slice(t, y == HAKRT_Y_BLOCK);
    if (t->private_heap) hakl_release(t->L);
    if (y == HAKRT_Y_BLOCK) hakrt_sched_park(t);
    else hakrt_sched_requeue(t);
    return;
  }
  /* A task stopped by its time limit fails, even where its last pcall
  ** caught the error and it returned with no instruction left to raise it
  ** again (`return pcall(f)`). */
  if (status == LUA_OK && t->watch != HAKRT_WATCH_STOP) task_returned(t, nres);
  else task_failed(t, t->watch == HAKRT_WATCH_STOP);
  task_finish(t);
}
