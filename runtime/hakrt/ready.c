/*
** ready.c -- states opened ahead by the collector thread.
**
** Opening a state (lua_newstate, the standard libraries, the GC's mode)
** costs a request-like task about as much as its own code does, and a
** worker that pays it serves the next request later.  So the collector,
** between closes, keeps a few bare states of the runtime's shape ready:
** a new task takes one in task_open and binds it (the task pointer, the
** runtime's module), and opens its own only when none is ready or its
** shape differs (a private heap asked per spawn, a limit below what the
** libraries hold).
**
** It fills only where the collector does not take a CPU the workers
** need: with more CPUs than workers, or while a worker is idle.  With
** every CPU serving tasks, a state the collector opens is one the workers
** open more cheaply (warm, on their own core) with the CPU it used
** (latency.lua in a closed loop at T = 2 on 2 CPUs: 0.76x the requests
** per second of the collector off with the pool always filled).
**
** The pool fills only while tasks are spawned: it starts empty, a take
** or a miss asks for it, and after a second without either (counted in
** the collector's maintenance rounds) its states are closed, so that a
** runtime that spawns nothing holds none of them.
*/
#include <lauxlib.h>

#include "internal.h"

/* The shape of a ready state: what a task gets unless it asks otherwise. */
static bool ready_private_heap(const hakrt *rt) {
  return rt->cfg.private_heaps && !rt->cfg.libc;
}

/* How many states the pool holds when full: enough for a burst of spawns
** on every worker between two of the collector's visits. */
static size_t ready_target(const hakrt *rt) {
  size_t n = 2 * (size_t)rt->nworkers;
  return n < HAKRT_READY_MAX ? n : HAKRT_READY_MAX;
}

lua_State *hakrt_ready_take(hakrt_task *t) {
  hakrt *rt = t->rt;
  hakrt_ready *r = &rt->col.ready;
  lua_State *L = NULL;
  if (!rt->cfg.collector) return NULL;
  pthread_mutex_lock(&rt->lock);
  r->wanted = r->asked = true;
  rt->col.activity++;
  if (r->n > 0 && t->private_heap == ready_private_heap(rt)) {
    lua_State *top = r->states[r->n - 1];
    hakl_ctx *ctx = hakl_getctx(top);
    if (t->limit == 0 || ctx->acct.in_use <= t->limit) {
      L = top;
      r->n--;
      r->taken++;
    }
  }
  if (L == NULL) r->missed++;
  /* The collector refills between closes; with small states closed on
  ** their workers (collector_close_min) it may have none to do, so an
  ** empty pool wakes it. */
  if (r->n == 0) pthread_cond_signal(&rt->col.wake);
  pthread_mutex_unlock(&rt->lock);
  if (L == NULL) return NULL;
  if (t->private_heap) hakl_claim(L);
  if (t->limit != 0) hakl_setlimit(hakl_getctx(L), t->limit);
  return L;
}

/* On the collector, rt->lock held: opens one more state if the pool wants
** it; false when it does not (or memory ran out). */
bool hakrt_ready_fill_locked(hakrt *rt) {
  hakrt_ready *r = &rt->col.ready;
  bool private_heap = ready_private_heap(rt);
  lua_State *L;
  if (!r->wanted || r->n >= ready_target(rt)) return false;
  if (!rt->spare_cpu && rt->nidle == 0) return false;
  pthread_mutex_unlock(&rt->lock);
  L = hakrt_task_state_new(rt, 0, private_heap);
  if (L != NULL && private_heap) hakl_release(L);
  pthread_mutex_lock(&rt->lock);
  if (L == NULL) {
    r->wanted = false; /* out of memory: try again at the next take */
    return false;
  }
  r->states[r->n++] = L;
  r->opened++;
  return true;
}

/* On the collector, at each maintenance round: after `quiet` rounds
** without a take or a miss, the pool is given back. */
void hakrt_ready_round_locked(hakrt *rt, unsigned quiet) {
  hakrt_ready *r = &rt->col.ready;
  if (r->asked) {
    r->asked = false;
    r->quiet_rounds = 0;
  } else if (++r->quiet_rounds == quiet) {
    hakrt_ready_drain_locked(rt);
  }
}

/* On the collector, rt->lock held: closes every ready state (a quiet
** second, or the end). */
void hakrt_ready_drain_locked(hakrt *rt) {
  hakrt_ready *r = &rt->col.ready;
  bool private_heap = ready_private_heap(rt);
  r->wanted = false;
  while (r->n > 0) {
    lua_State *L = r->states[--r->n];
    pthread_mutex_unlock(&rt->lock);
    if (private_heap) hakl_claim(L);
    hakl_close(L, NULL);
    pthread_mutex_lock(&rt->lock);
  }
}
