/*
** runtime.c -- the C API of hakrt.h: making and freeing a runtime,
** spawning and posting from the host, the figures as JSON.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define MAX_WORKERS 1024

/* ------------------------------------------------------------------------
** The runtime's own blocks: messages, channels, tasks.  With hakmem they
** come from the calling worker's heap, and the thread that frees them
** (the receiver's worker) frees remotely.
** --------------------------------------------------------------------- */

void *hakrt_mem_alloc(hakrt *rt, size_t n) {
  return rt->cfg.libc ? malloc(n) : hak_malloc(n);
}

void *hakrt_mem_realloc(hakrt *rt, void *p, size_t n) {
  return rt->cfg.libc ? realloc(p, n) : hak_realloc(p, n);
}

void hakrt_mem_free(hakrt *rt, void *p) {
  if (rt->cfg.libc) free(p);
  else hak_free(p);
}

/* ------------------------------------------------------------------------
** Making and freeing.
** --------------------------------------------------------------------- */

/* The default of collector_close_min: a core's L2 cache.  A state that
** fits there is likely still warm in its worker's cache, so its worker
** closes it for less than the cold reads and remote frees of a close on
** the collector cost it later (latency.lua, T = 1: the worker's time per
** request rose by 10% with states of 0.1 and 0.7 MiB closed on the
** collector, and fell by 4% with states of 6.6 MiB; docs/runtime.md). */
static size_t runtime_close_min_default(void) {
  long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
  l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  if (l2 < (256L << 10) || l2 > (64L << 20)) l2 = 1L << 20; /* unknown or implausible */
  return (size_t)l2;
}

void hakrt_config_init(hakrt_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->slice_ms = 10;
  cfg->generational = true;
  cfg->collector = true;
  cfg->idle_gc = true;
  cfg->batch_frees = true;
  cfg->spare_states = true;
  cfg->collector_close_min = runtime_close_min_default();
  cfg->soft_limit = 0.9;
}

static hakrt_preempt resolve_preempt(const hakrt_config *cfg) {
  if (cfg->slice_ms == 0 || cfg->preempt == HAKRT_PREEMPT_OFF) return HAKRT_PREEMPT_OFF;
  if (cfg->preempt != HAKRT_PREEMPT_AUTO) return cfg->preempt;
#if defined(__SANITIZE_THREAD__)
  return HAKRT_PREEMPT_HOOK;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return HAKRT_PREEMPT_HOOK;
#else
  return HAKRT_PREEMPT_SIGNAL;
#endif
#else
  return HAKRT_PREEMPT_SIGNAL;
#endif
}

hakrt *hakrt_new(const hakrt_config *cfg) {
  hakrt_config c;
  hakrt *rt;
  pthread_condattr_t attr;
  int err;
  if (cfg == NULL) hakrt_config_init(&c);
  else c = *cfg;
  if (c.workers < 0 || c.workers > MAX_WORKERS ||
      (c.queues != HAKRT_QUEUES_SHARED && c.queues != HAKRT_QUEUES_PER_WORKER) ||
      !(c.soft_limit >= 0 && c.soft_limit < 1)) {
    errno = EINVAL;
    return NULL;
  }
  if (c.workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c.workers = (n > 0 && n <= MAX_WORKERS) ? (int)n : 1;
  }
  if (c.out == NULL) c.out = stdout;
  if (c.err == NULL) c.err = stderr;
  if ((rt = (hakrt *)calloc(1, sizeof *rt)) == NULL) return NULL;
  rt->cfg = c;
  rt->preempt = resolve_preempt(&c);
  rt->nworkers = c.workers;
  rt->started_ns = hakrt_now_ns();
  rt->workers = (hakrt_worker *)calloc((size_t)c.workers, sizeof *rt->workers);
  if (rt->workers == NULL) {
    free(rt);
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_init(&rt->lock, NULL);
  pthread_mutex_init(&rt->out_lock, NULL);
  pthread_mutex_init(&rt->chans_lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* timers are monotonic */
  pthread_cond_init(&rt->work, &attr);
  pthread_condattr_destroy(&attr);
  pthread_cond_init(&rt->changed, NULL);
  if ((err = hakrt_preempt_init(rt)) != 0 || (err = hakrt_sched_start(rt)) != 0) {
    hakrt_free(rt);
    errno = err;
    return NULL;
  }
  return rt;
}

void hakrt_free(hakrt *rt) {
  hakrt_task *t, *next;
  size_t i;
  if (rt == NULL) return;
  hakrt_sched_stop(rt);
  /*
  ** The workers are gone: this thread alone closes what is left.  States
  ** first (their finalizers run, their handles of other tasks and channels
  ** are released), then the runtime's references.
  */
  for (t = rt->live; t != NULL; t = t->lnext) hakrt_task_discard(t);
  for (t = rt->live; t != NULL; t = next) {
    next = t->lnext;
    t->state = HAKRT_DONE;
    t->joiners = NULL;
    hakrt_task_unref(t);
  }
  rt->live = NULL;
  for (i = 0; i < rt->ntimers; i++) hakrt_task_unref(rt->timers[i].task);
  free(rt->timers);
  hakrt_chan_free_cycles(rt);
  pthread_cond_destroy(&rt->work);
  pthread_cond_destroy(&rt->changed);
  pthread_mutex_destroy(&rt->lock);
  pthread_mutex_destroy(&rt->out_lock);
  pthread_mutex_destroy(&rt->chans_lock);
  free(rt->workers);
  free(rt);
}

/* ------------------------------------------------------------------------
** The host's tasks and posts.
** --------------------------------------------------------------------- */

static uint64_t spawn_msg(hakrt *rt, int kind, const char *name, hakrt_msg *m,
                          const hakrt_spawn_opts *opts) {
  hakrt_task *t;
  uint64_t id;
  if (m == NULL) {
    errno = ENOMEM;
    return 0;
  }
  if ((t = hakrt_task_new(rt, kind, name, m, opts)) == NULL) {
    hakrt_msg_free(m);
    errno = ENOMEM;
    return 0;
  }
  hakrt_task_ref(t); /* ours, until the id is read */
  if (!hakrt_sched_spawn(rt, t)) {
    hakrt_task_unref(t);
    hakrt_task_unref(t);
    errno = ECANCELED;
    return 0;
  }
  id = t->id;
  hakrt_task_unref(t);
  return id;
}

uint64_t hakrt_spawn_file(hakrt *rt, const char *path, int argc, const char *const *argv,
                          const hakrt_spawn_opts *opts) {
  return spawn_msg(rt, HAKRT_START_FILE, path, hakrt_msg_strings(rt, argc, argv, NULL), opts);
}

uint64_t hakrt_spawn_source(hakrt *rt, const char *source, const char *name, int argc,
                            const char *const *argv, const hakrt_spawn_opts *opts) {
  const char **v = (const char **)malloc(((size_t)argc + 1) * sizeof *v);
  hakrt_msg *m;
  if (v == NULL) {
    errno = ENOMEM;
    return 0;
  }
  v[0] = source;
  if (argc > 0) memcpy(v + 1, argv, (size_t)argc * sizeof *v);
  m = hakrt_msg_strings(rt, argc + 1, v, NULL);
  free(v);
  return spawn_msg(rt, HAKRT_START_SOURCE, name, m, opts);
}

int hakrt_post(hakrt *rt, uint64_t id, const void *data, size_t len) {
  hakrt_task *t;
  hakrt_chan *inbox = NULL;
  hakrt_msg *m;
  const char *s = (const char *)data;
  int err;
  pthread_mutex_lock(&rt->lock);
  for (t = rt->live; t != NULL; t = t->lnext)
    if (t->id == id) {
      hakrt_task_ref(t); /* kept while its inbox is found or made */
      break;
    }
  pthread_mutex_unlock(&rt->lock);
  if (t == NULL) {
    errno = ESRCH;
    return -1;
  }
  if ((err = hakrt_task_inbox(t, &inbox)) == 0) hakrt_chan_retain(inbox);
  hakrt_task_unref(t);
  if (err != 0) {
    errno = err;
    return -1;
  }
  if ((m = hakrt_msg_strings(rt, 1, &s, &len)) == NULL) err = ENOMEM;
  else if ((err = hakrt_chan_offer(inbox, m)) != 0) hakrt_msg_free(m);
  hakrt_chan_release(inbox);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}
