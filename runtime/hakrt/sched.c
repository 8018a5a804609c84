/*
** sched.c -- the scheduler: the run queues (one shared, or one per worker
** with stealing), timers, parking and waking, the worker loop, and
** deadlock detection.
**
** By default one FIFO queue under one lock.  Every scheduling event (a task blocks,
** wakes, yields, finishes) takes the lock once; none happens on Lua's
** allocation paths, so at these core counts the lock is not the limit
** (docs/runtime.md has the measurement).  A FIFO spreads the tasks over
** the workers: a task resumes on whichever worker is free, which is the
** point of the exercise for the remote-free path.
**
** Every task state change happens under rt->lock, so "no task is running,
** none is queued, no timer is pending" is one consistent reading: the
** deadlock test.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/prctl.h>

#include "internal.h"

uint64_t hakrt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hakrt_thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------
** The run queue (lock held).
** --------------------------------------------------------------------- */

/*
** Two designs, chosen by cfg.queues.  SHARED: one FIFO (rt->q); a task
** resumes on whichever worker is free.  PER_WORKER: a FIFO per worker; a
** runnable task goes to the worker that ran it last (its heap holds the
** task's newest blocks), and a worker whose queue is empty steals the head
** of the next non-empty one.  Both are guarded by rt->lock, so the choice
** is about placement, not contention.
*/
static void fifo_push(hakrt_fifo *q, hakrt_task *t) {
  t->qnext = NULL;
  if (q->tail != NULL) q->tail->qnext = t;
  else q->head = t;
  q->tail = t;
}

static hakrt_task *fifo_pop(hakrt_fifo *q) {
  hakrt_task *t = q->head;
  if (t == NULL) return NULL;
  q->head = t->qnext;
  if (q->head == NULL) q->tail = NULL;
  t->qnext = NULL;
  return t;
}

static void queue_push_locked(hakrt *rt, hakrt_task *t) {
  if (rt->cfg.queues == HAKRT_QUEUES_PER_WORKER) {
    int w = t->last_worker >= 0 ? t->last_worker : (int)(rt->next_rr++ % (unsigned)rt->nworkers);
    fifo_push(&rt->workers[w].q, t);
  } else {
    fifo_push(&rt->q, t);
  }
  AO_store(&rt->qlen, AO_load(&rt->qlen) + 1);
  if (rt->nidle > 0) pthread_cond_signal(&rt->work);
}

void hakrt_sched_push_locked(hakrt_task *t) {
  t->state = HAKRT_RUNNABLE;
  queue_push_locked(t->rt, t);
}

static hakrt_task *queue_pop_locked(hakrt *rt, hakrt_worker *w) {
  hakrt_task *t = NULL;
  int i;
  if (AO_load(&rt->qlen) == 0) return NULL;
  if (rt->cfg.queues != HAKRT_QUEUES_PER_WORKER) {
    t = fifo_pop(&rt->q);
  } else if ((t = fifo_pop(&w->q)) == NULL) {
    for (i = 1; i < rt->nworkers && t == NULL; i++)
      t = fifo_pop(&rt->workers[(w->index + i) % rt->nworkers].q);
    if (t != NULL) w->steals++;
  }
  if (t != NULL) AO_store(&rt->qlen, AO_load(&rt->qlen) - 1);
  return t;
}

/* ------------------------------------------------------------------------
** Timers: a binary min-heap on `when` (lock held).  Every entry is a live
** deadline: a task's entry leaves the heap the moment its wait ends, by a
** wake (hakrt_sched_wake_locked) or by its own expiry, so the heap never
** holds more than the tasks parked with a deadline, and "no timer is
** pending" (the deadlock test, an idle worker's wait) reads it directly.
** Each task knows its entry's index (task->timer_slot), which every move
** in the heap keeps up to date: a removal is O(log n) like a push.
** --------------------------------------------------------------------- */

/* Puts e at index i of the heap, telling its task where it is. */
static void timer_place(hakrt *rt, size_t i, hakrt_timer e) {
  rt->timers[i] = e;
  e.task->timer_slot = i + 1;
}

static void timer_sift_up(hakrt *rt, size_t i, hakrt_timer e) {
  while (i > 0 && rt->timers[(i - 1) / 2].when > e.when) {
    timer_place(rt, i, rt->timers[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  timer_place(rt, i, e);
}

static void timer_sift_down(hakrt *rt, size_t i, hakrt_timer e) {
  hakrt_timer *h = rt->timers;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = l;
    if (l >= rt->ntimers) break;
    if (r < rt->ntimers && h[r].when < h[l].when) m = r;
    if (h[m].when >= e.when) break;
    timer_place(rt, i, h[m]);
    i = m;
  }
  timer_place(rt, i, e);
}

static void timer_publish(hakrt *rt) {
  AO_store(&rt->next_timer, rt->ntimers ? (AO_t)rt->timers[0].when : 0);
}

/* false when out of memory: the task then is woken at once instead. */
static bool timer_push_locked(hakrt *rt, hakrt_task *t) {
  hakrt_timer e;
  if (rt->ntimers == rt->timercap) {
    size_t cap = rt->timercap ? 2 * rt->timercap : 64;
    hakrt_timer *h = (hakrt_timer *)realloc(rt->timers, cap * sizeof *h);
    if (h == NULL) return false;
    rt->timers = h;
    rt->timercap = cap;
  }
  e.when = t->deadline;
  e.task = t;
  hakrt_task_ref(t);
  timer_sift_up(rt, rt->ntimers++, e);
  timer_publish(rt);
  return true;
}

/* Takes out the entry at index i: the last entry fills its place and
** moves up or down from there.  Returns its task, whose reference the
** caller now holds. */
static hakrt_task *timer_remove_locked(hakrt *rt, size_t i) {
  hakrt_task *t = rt->timers[i].task;
  hakrt_timer last = rt->timers[--rt->ntimers];
  t->timer_slot = 0;
  if (i < rt->ntimers) {
    if (i > 0 && rt->timers[(i - 1) / 2].when > last.when) timer_sift_up(rt, i, last);
    else timer_sift_down(rt, i, last);
  }
  timer_publish(rt);
  return t;
}

/* t's wait ended before its deadline: its entry goes now, with the
** reference it held (not the last: t is not DONE, the runtime holds one). */
static void timer_cancel_locked(hakrt_task *t) {
  if (t->timer_slot != 0) hakrt_task_unref(timer_remove_locked(t->rt, t->timer_slot - 1));
}

/* Wakes the tasks whose time has come. */
static void timers_fire_locked(hakrt *rt) {
  uint64_t now;
  if (rt->ntimers == 0) return;
  now = hakrt_now_ns();
  while (rt->ntimers > 0 && rt->timers[0].when <= now) {
    hakrt_task *t = timer_remove_locked(rt, 0);
    hakrt_sched_wake_locked(t);
    hakrt_task_unref(t);
  }
  if (rt->ntimers == 0) hakrt_sched_changed_locked(rt);
}

/* ------------------------------------------------------------------------
** Task state changes.
** --------------------------------------------------------------------- */

/*
** After a change that may end a wait: hakrt_wait returns when every task
** finished and was closed, or reports a deadlock, and neither can be true
** while a task runs, is queued or has a timer.  So the waiter is woken
** only when none does: waking it at every finish and park cost a futex
** wake and a context switch per task on the workers' path.
*/
void hakrt_sched_changed_locked(hakrt *rt) {
  if ((rt->nlive == 0 && rt->col.pending == 0) ||
      (rt->nrunning == 0 && AO_load(&rt->qlen) == 0 && rt->ntimers == 0))
    pthread_cond_broadcast(&rt->changed);
}

bool hakrt_sched_spawn(hakrt *rt, hakrt_task *t) {
  pthread_mutex_lock(&rt->lock);
  if (rt->stop) {
    pthread_mutex_unlock(&rt->lock);
    return false;
  }
  t->id = ++rt->next_id;
  t->state = HAKRT_NEW;
  t->lprev = NULL;
  t->lnext = rt->live;
  if (rt->live != NULL) rt->live->lprev = t;
  rt->live = t;
  rt->nlive++;
  rt->spawned++;
  queue_push_locked(rt, t);
  pthread_mutex_unlock(&rt->lock);
  return true;
}

void hakrt_sched_wake_locked(hakrt_task *t) {
  if (t->state == HAKRT_PARKED) {
    t->state = HAKRT_RUNNABLE;
    timer_cancel_locked(t); /* its wait is over: no deadline left */
    queue_push_locked(t->rt, t);
  } else if (t->state == HAKRT_RUNNING) {
    t->woken = true;
  } else if (t->state == HAKRT_COLLECTING) {
    t->woken = true; /* the collector requeues it after its current step */
    timer_cancel_locked(t);
    AO_store(&t->collect_stop, 1);
  }
}

void hakrt_sched_wake(hakrt_task *t) {
  hakrt *rt = t->rt;
  pthread_mutex_lock(&rt->lock);
  hakrt_sched_wake_locked(t);
  pthread_mutex_unlock(&rt->lock);
}

void hakrt_sched_park(hakrt_task *t) {
  hakrt *rt = t->rt;
  pthread_mutex_lock(&rt->lock);
  hakrt_task_publish_locked(t);
  rt->nrunning--;
  if (t->woken) {
    t->woken = false;
    t->state = HAKRT_RUNNABLE;
    queue_push_locked(rt, t);
  } else {
    t->state = HAKRT_PARKED;
    t->parked_ns = hakrt_now_ns();
    if (t->deadline != 0 && !timer_push_locked(rt, t)) {
      t->state = HAKRT_RUNNABLE; /* no room for a timer: retry at once */
      queue_push_locked(rt, t);
    } else {
      hakrt_collector_offer_locked(t);
    }
  }
  hakrt_sched_changed_locked(rt);
  pthread_mutex_unlock(&rt->lock);
}

void hakrt_sched_requeue(hakrt_task *t) {
  hakrt *rt = t->rt;
  pthread_mutex_lock(&rt->lock);
  hakrt_task_publish_locked(t);
  rt->nrunning--;
  t->woken = false;
  t->state = HAKRT_RUNNABLE;
  queue_push_locked(rt, t);
  pthread_mutex_unlock(&rt->lock);
}

void hakrt_sched_done(hakrt_task *t, bool to_collector) {
  hakrt *rt = t->rt;
  hakrt_task *j, *next;
  pthread_mutex_lock(&rt->lock);
  hakrt_task_publish_locked(t);
  if (t->state == HAKRT_RUNNING) rt->nrunning--;
  t->state = HAKRT_DONE;
  if (t->lprev != NULL) t->lprev->lnext = t->lnext;
  else rt->live = t->lnext;
  if (t->lnext != NULL) t->lnext->lprev = t->lprev;
  t->lprev = t->lnext = NULL;
  rt->nlive--;
  /* Its figures move to the finished tasks' in the same step: rt.stats()
  ** sums both, and never sees them twice or not at all.  A close on the
  ** collector adds its time there when it is done. */
  hakrt_gc_figures_add(&rt->done_gc, &t->gc);
  rt->finished++;
  if (t->failed) rt->failed++;
  if (t->last_worker >= 0) rt->workers[t->last_worker].finished++;
  for (j = t->joiners; j != NULL; j = next) {
    next = j->jnext;
    j->jnext = NULL;
    hakrt_sched_wake_locked(j);
  }
  t->joiners = NULL;
  if (to_collector) hakrt_collector_close_locked(t);
  hakrt_sched_changed_locked(rt);
  hakrt_task_unref(t); /* the runtime's reference */
  pthread_mutex_unlock(&rt->lock);
}

/* ------------------------------------------------------------------------
** Workers.
** --------------------------------------------------------------------- */

static void wait_for_work_locked(hakrt *rt) {
  rt->nidle++;
  if (rt->ntimers > 0) {
    uint64_t when = rt->timers[0].when;
    struct timespec ts;
    ts.tv_sec = (time_t)(when / 1000000000u);
    ts.tv_nsec = (long)(when % 1000000000u);
    pthread_cond_timedwait(&rt->work, &rt->lock, &ts);
  } else {
    pthread_cond_wait(&rt->work, &rt->lock);
  }
  rt->nidle--;
}

static void *worker_main(void *arg) {
  hakrt_worker *w = (hakrt_worker *)arg;
  hakrt *rt = w->rt;
  /* A worker's timed wait is a task's rt.sleep deadline: Linux lets a
  ** timed wait run up to the thread's timer slack late, 50 us by default,
  ** which was most of an empty request's latency (latency.lua 4000 800 0,
  ** T = 2: p50 0.12 ms, 0.07 with 1 us). */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    hakrt_task *t;
    timers_fire_locked(rt);
    if (rt->stop) break;
    if (AO_load(&w->maint_req)) { /* between tasks: a safe point */
      bool idle = AO_load(&rt->qlen) == 0;
      pthread_mutex_unlock(&rt->lock);
      hakrt_collector_worker_maintain(w, idle);
      pthread_mutex_lock(&rt->lock);
      continue;
    }
    if ((t = queue_pop_locked(rt, w)) == NULL) {
      if (rt->cfg.spare_states && w->spare == NULL && !w->spare_tried) { /* nothing to run: get ready */
        pthread_mutex_unlock(&rt->lock);
        hakrt_task_make_spare(w);
        pthread_mutex_lock(&rt->lock);
        continue;
      }
      wait_for_work_locked(rt);
      continue;
    }
    t->state = HAKRT_RUNNING;
    t->woken = false;
    rt->nrunning++;
    if (t->last_worker >= 0 && t->last_worker != w->index) w->migrations++;
    t->last_worker = w->index;
    w->resumes++;
    pthread_mutex_unlock(&rt->lock);
    {
      uint64_t t0 = hakrt_now_ns();
      hakrt_task_run(t, w);
      t0 = hakrt_now_ns() - t0;
      pthread_mutex_lock(&rt->lock);
      w->busy_ns += t0;
    }
  }
  pthread_mutex_unlock(&rt->lock);
  hakrt_task_drop_spare(w);
  return NULL;
}

int hakrt_sched_start(hakrt *rt) {
  int i, err;
  for (i = 0; i < rt->nworkers; i++) {
    hakrt_worker *w = &rt->workers[i];
    w->rt = rt;
    w->index = i;
    if ((err = pthread_create(&w->thread, NULL, worker_main, w)) != 0) return err;
    w->started = true;
  }
  if ((err = hakrt_collector_start(rt)) != 0) return err;
  if (hakrt_preempt_monitor_needed(rt)) {
    if ((err = pthread_create(&rt->monitor, NULL, hakrt_preempt_monitor, rt)) != 0) return err;
    rt->monitor_started = true;
  }
  return 0;
}

void hakrt_sched_stop(hakrt *rt) {
  int i;
  pthread_mutex_lock(&rt->lock);
  rt->stop = true;
  pthread_cond_broadcast(&rt->work);
  pthread_mutex_unlock(&rt->lock);
  for (i = 0; i < rt->nworkers; i++)
    if (rt->workers[i].started) pthread_join(rt->workers[i].thread, NULL);
  hakrt_collector_stop(rt); /* after the workers: it closes what they finished */
  if (rt->monitor_started) {
    AO_store_release(&rt->monitor_stop, 1);
    pthread_join(rt->monitor, NULL);
  }
}

/* ------------------------------------------------------------------------
** Waiting for the end, and deadlocks.
** --------------------------------------------------------------------- */

/* Could the host still wake t (a post to its inbox)? */
static bool host_may_wake(hakrt *rt, hakrt_task *t) {
  return rt->cfg.host_posts && t->wait == HAKRT_W_RECV && t->inbox != NULL &&
         t->wait_id == t->inbox->id;
}

static bool deadlocked_locked(hakrt *rt) {
  hakrt_task *t;
  if (rt->nlive == 0 || rt->nrunning != 0 || AO_load(&rt->qlen) != 0 || rt->ntimers != 0)
    return false;
  for (t = rt->live; t != NULL; t = t->lnext)
    if (t->state != HAKRT_PARKED || host_may_wake(rt, t)) return false;
  return true;
}

void hakrt_sched_report_locked(hakrt *rt, FILE *f) {
  hakrt_task *t;
  fprintf(f, "hakrt: deadlock: all %zu live tasks are blocked and nothing can wake them:\n",
          rt->nlive);
  for (t = rt->live; t != NULL; t = t->lnext) {
    unsigned long long id = (unsigned long long)t->id, on = (unsigned long long)t->wait_id;
    bool inbox = t->inbox != NULL && t->wait_id == t->inbox->id;
    switch (t->wait) {
      case HAKRT_W_RECV:
        if (inbox) fprintf(f, "  task %llu waits to receive from its inbox (channel %llu)\n", id, on);
        else fprintf(f, "  task %llu waits to receive from channel %llu\n", id, on);
        break;
      case HAKRT_W_SEND:
        fprintf(f, "  task %llu waits to send to channel %llu (full)\n", id, on);
        break;
      case HAKRT_W_JOIN:
        fprintf(f, "  task %llu waits to join task %llu\n", id, on);
        break;
      default:
        fprintf(f, "  task %llu is blocked\n", id);
    }
  }
  fflush(f);
}

int hakrt_wait(hakrt *rt) {
  int r;
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    if (rt->nlive == 0 && rt->col.pending == 0) { /* finished, and closed */
      r = (int)(rt->failed - rt->failures_seen);
      break;
    }
    if (deadlocked_locked(rt)) {
      pthread_mutex_lock(&rt->out_lock);
      hakrt_sched_report_locked(rt, rt->cfg.err);
      pthread_mutex_unlock(&rt->out_lock);
      r = HAKRT_DEADLOCK;
      break;
    }
    pthread_cond_wait(&rt->changed, &rt->lock);
  }
  pthread_mutex_unlock(&rt->lock);
  return r;
}
