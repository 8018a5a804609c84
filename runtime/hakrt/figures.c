/*
** figures.c -- the runtime's figures, one list for rt.stats() and for
** hakrt_write_stats_json.
**
** The figures are copied under rt->lock into a snapshot (C memory only:
** building Lua tables under the lock could run a finalizer that takes it
** again), then written through a sink: Lua tables, or one line of JSON.
** Which figures exist, and their names, is written once, in emit().
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

typedef struct task_fig {
  uint64_t id;
  size_t in_use, peak, limit;
  uint64_t nfail, run_ns, cpu_ns, sent, received, resumes;
  int last_worker;
  hakrt_gc_figures gc;
} task_fig;

typedef struct worker_fig {
  uint64_t resumes, migrations, steals, finished, busy_ns, closed, close_ns, close_cpu_ns;
  uint64_t maintenance, maint_ns, spares;
  hak_thread_counters_t remote;
  hak_heap_figures_t heap;
} worker_fig;

typedef struct snapshot {
  bool libc, collector, per_worker;
  int nworkers;
  size_t ntasks; /* live tasks copied (fewer when malloc failed) */
  size_t spawned, finished, failed, live;
  size_t timers;         /* deadlines pending: tasks parked with a timeout */
  uint64_t watchdog_reports, time_limit_stops;
  hakrt_collector col;   /* the figures only */
  hakrt_gc_figures gc;   /* every task's, finished and live */
  worker_fig *workers;
  task_fig *tasks;
  hak_stats_t heap;
} snapshot;

/* Live tasks now (to size the arrays before taking the snapshot). */
static size_t live_now(hakrt *rt) {
  size_t n;
  pthread_mutex_lock(&rt->lock);
  n = rt->nlive;
  pthread_mutex_unlock(&rt->lock);
  return n;
}

/* Copies the figures into s, whose arrays the caller gave: workers (for
** every worker) and tasks (for up to `cap` live tasks; NULL if none). */
static void snapshot_take(hakrt *rt, snapshot *s, worker_fig *workers, task_fig *tasks,
                          size_t cap) {
  hakrt_task *t;
  size_t n;
  int i;
  memset(s, 0, sizeof *s);
  s->libc = rt->cfg.libc;
  s->collector = rt->cfg.collector;
  s->per_worker = rt->cfg.queues == HAKRT_QUEUES_PER_WORKER;
  s->nworkers = rt->nworkers;
  s->workers = workers;
  s->tasks = tasks;
  pthread_mutex_lock(&rt->lock);
  s->spawned = rt->spawned;
  s->finished = rt->finished;
  s->failed = rt->failed;
  s->live = rt->nlive;
  s->timers = rt->ntimers;
  s->watchdog_reports = rt->watchdog_reports;
  s->time_limit_stops = rt->time_limit_stops;
  s->col = rt->col;
  s->gc = rt->done_gc;
  for (i = 0; workers != NULL && i < rt->nworkers; i++) {
    const hakrt_worker *w = &rt->workers[i];
    worker_fig *f = &s->workers[i];
    f->resumes = w->resumes;
    f->migrations = w->migrations;
    f->steals = w->steals;
    f->finished = w->finished;
    f->busy_ns = w->busy_ns;
    f->closed = w->closed;
    f->close_ns = w->close_ns;
    f->close_cpu_ns = w->close_cpu_ns;
    f->maintenance = w->maintenance;
    f->maint_ns = w->maint_ns;
    f->spares = AO_load(&w->spares);
    f->remote = w->remote;
    f->heap = w->heap;
  }
  for (n = 0, t = rt->live; t != NULL; t = t->lnext) {
    hakrt_gc_figures_add(&s->gc, &t->gc);
    if (n == cap) continue; /* spawned since the arrays were sized */
    task_fig *f = &s->tasks[n++];
    f->id = t->id;
    f->in_use = t->snap.in_use;
    f->peak = t->snap.peak;
    f->limit = t->snap.limit;
    f->nfail = t->snap.nfail;
    f->run_ns = t->run_ns;
    f->cpu_ns = t->cpu_ns;
    f->sent = t->sent;
    f->received = t->received;
    f->resumes = t->resumes;
    f->last_worker = t->last_worker;
    f->gc = t->gc;
  }
  s->ntasks = n;
  pthread_mutex_unlock(&rt->lock);
  if (!s->libc) hak_stats_counters(&s->heap);
}

/* ------------------------------------------------------------------------
** Sinks: nested objects and arrays of numbers and strings.
** --------------------------------------------------------------------- */

#define SINK_DEPTH 8

typedef struct sink sink;

/* What a sink does with each figure: Lua tables or JSON. */
typedef struct sink_ops {
  void (*open)(sink *k, const char *key, bool array); /* key NULL in an array */
  void (*close)(sink *k);
  void (*num)(sink *k, const char *key, double v, bool integer);
  void (*str)(sink *k, const char *key, const char *v);
} sink_ops;

struct sink {
  const sink_ops *ops;
  /* Lua */
  lua_State *L;
  const char *keys[SINK_DEPTH];
  int index[SINK_DEPTH]; /* next array index of each level */
  /* JSON */
  FILE *f;
  bool first[SINK_DEPTH], array[SINK_DEPTH];
  int depth;
};

static void emit_int(sink *k, const char *key, uint64_t v) {
  k->ops->num(k, key, (double)v, true);
}

static void emit_ms(sink *k, const char *key, uint64_t ns) {
  k->ops->num(k, key, (double)ns / 1e6, false);
}

static void emit_gc(sink *k, const char *key, const hakrt_gc_figures *g) {
  k->ops->open(k, key, false);
  emit_ms(k, "worker_ms", g->worker_gc_ns);
  emit_ms(k, "collector_ms", g->collector_gc_ns);
  emit_int(k, "idle_gcs", g->idle_gcs);
  emit_int(k, "soft_gcs", g->soft_gcs);
  emit_ms(k, "close_ms", g->close_ns);
  k->ops->close(k);
}

static void emit(const snapshot *s, sink *k, bool gc_timed) {
  size_t i;
  int w;
  uint64_t frees = s->col.remote.remote_frees, pushes = s->col.remote.remote_pushes;
  k->ops->open(k, NULL, false);
  emit_int(k, "workers", (uint64_t)s->nworkers);
  k->ops->str(k, "alloc", s->libc ? "libc" : "hakmem");
  k->ops->str(k, "queues", s->per_worker ? "per-worker" : "shared");
  emit_int(k, "spawned", s->spawned);
  emit_int(k, "finished", s->finished);
  emit_int(k, "failed", s->failed);
  emit_int(k, "live", s->live);
  emit_int(k, "timers", s->timers);
  emit_int(k, "watchdog_reports", s->watchdog_reports);
  emit_int(k, "time_limit_stops", s->time_limit_stops);
  k->ops->str(k, "worker_gc_time", gc_timed ? "measured" : "not measured (no gc_clock)");
  emit_gc(k, "gc", &s->gc);
  k->ops->open(k, "per_worker", true);
  for (w = 0; s->workers != NULL && w < s->nworkers; w++) {
    const worker_fig *f = &s->workers[w];
    k->ops->open(k, NULL, false);
    emit_int(k, "resumes", f->resumes);
    emit_int(k, "migrations", f->migrations);
    emit_int(k, "steals", f->steals);
    emit_int(k, "finished", f->finished);
    emit_int(k, "spare_states", f->spares);
    emit_ms(k, "busy_ms", f->busy_ns);
    emit_int(k, "closed", f->closed);
    emit_ms(k, "close_ms", f->close_ns);
    emit_ms(k, "close_cpu_ms", f->close_cpu_ns);
    emit_int(k, "maintenance", f->maintenance);
    emit_ms(k, "maintenance_ms", f->maint_ns);
    emit_int(k, "remote_frees", f->remote.remote_frees);
    emit_int(k, "remote_pushes", f->remote.remote_pushes);
    if (!s->libc) {
      k->ops->open(k, "heap", false); /* its hakmem heap, as of its last maintenance */
      emit_int(k, "segments", f->heap.segments);
      emit_int(k, "committed", f->heap.committed);
      emit_int(k, "pages", f->heap.pages);
      emit_int(k, "in_use", f->heap.in_use);
      k->ops->close(k);
    }
    k->ops->close(k);
    frees += f->remote.remote_frees;
    pushes += f->remote.remote_pushes;
  }
  k->ops->close(k);
  k->ops->open(k, "collector", false);
  k->ops->str(k, "state", s->collector ? "on" : "off");
  emit_int(k, "closed", s->col.closed);
  emit_ms(k, "close_ms", s->col.close_ns);
  emit_ms(k, "close_cpu_ms", s->col.close_cpu_ns);
  emit_int(k, "pending", s->col.pending);
  emit_int(k, "idle_gcs", s->col.idle_gcs);
  emit_int(k, "soft_gcs", s->col.soft_gcs);
  emit_int(k, "interrupted", s->col.gc_interrupted);
  emit_ms(k, "gc_ms", s->col.gc_ns);
  emit_ms(k, "gc_cpu_ms", s->col.gc_cpu_ns);
  emit_int(k, "maintenance", s->col.maintenance);
  emit_int(k, "remote_frees", s->col.remote.remote_frees);
  emit_int(k, "remote_pushes", s->col.remote.remote_pushes);
  k->ops->close(k);
  emit_int(k, "remote_frees", frees);
  emit_int(k, "remote_pushes", pushes);
  k->ops->open(k, "tasks", true);
  for (i = 0; i < s->ntasks; i++) {
    const task_fig *t = &s->tasks[i];
    k->ops->open(k, NULL, false);
    emit_int(k, "id", t->id);
    emit_int(k, "in_use", t->in_use);
    emit_int(k, "peak", t->peak);
    emit_int(k, "limit", t->limit);
    emit_int(k, "failed_allocs", t->nfail);
    emit_ms(k, "run_ms", t->run_ns);   /* wall time on workers */
    emit_ms(k, "cpu_ms", t->cpu_ns);   /* the workers' thread CPU time for it */
    emit_int(k, "sent", t->sent);
    emit_int(k, "received", t->received);
    emit_int(k, "resumes", t->resumes);
    emit_int(k, "worker", (uint64_t)(t->last_worker + 1));
    emit_gc(k, "gc", &t->gc);
    k->ops->close(k);
  }
  k->ops->close(k);
  if (!s->libc) {
    k->ops->open(k, "hakmem", false);
    emit_int(k, "committed", s->heap.committed);
    emit_int(k, "committed_peak", s->heap.committed_peak);
    emit_int(k, "mapped", s->heap.mapped);
    emit_int(k, "purged", s->heap.purged);
    emit_int(k, "threads", s->heap.threads);
    k->ops->close(k);
  }
  k->ops->close(k);
}

/* ---- Lua tables ---------------------------------------------------------- */

static void tbl_set(sink *k, const char *key) {
  lua_State *L = k->L;
  if (k->depth == 0) return; /* the top table stays on the stack */
  if (key != NULL) lua_setfield(L, -2, key);
  else lua_rawseti(L, -2, k->index[k->depth - 1]++);
}

static void tbl_open(sink *k, const char *key, bool array) {
  lua_createtable(k->L, 0, 0);
  (void)array;
  k->keys[k->depth] = key;
  k->index[k->depth] = 1;
  k->depth++;
}

static void tbl_close(sink *k) {
  k->depth--;
  tbl_set(k, k->keys[k->depth]);
}

static void tbl_num(sink *k, const char *key, double v, bool integer) {
  if (integer) lua_pushinteger(k->L, (lua_Integer)v);
  else lua_pushnumber(k->L, v);
  tbl_set(k, key);
}

static void tbl_str(sink *k, const char *key, const char *v) {
  lua_pushstring(k->L, v);
  tbl_set(k, key);
}

static const sink_ops tbl_ops = {tbl_open, tbl_close, tbl_num, tbl_str};

/* The arrays are full userdata on L's stack: an error while the tables
** are built (out of memory) leaves nothing to free by hand. */
int hakrt_figures_push(lua_State *L, hakrt *rt) {
  snapshot s;
  sink k;
  size_t cap = live_now(rt) + 16;
  worker_fig *w;
  task_fig *t;
  luaL_checkstack(L, SINK_DEPTH + 4, "stats");
  w = (worker_fig *)lua_newuserdatauv(L, (size_t)rt->nworkers * sizeof *w, 0);
  t = (task_fig *)lua_newuserdatauv(L, cap * sizeof *t, 0);
  snapshot_take(rt, &s, w, t, cap);
  memset(&k, 0, sizeof k);
  k.ops = &tbl_ops;
  k.L = L;
  emit(&s, &k, rt->cfg.gc_clock != NULL);
  return 1;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_key(sink *k, const char *key) {
  if (k->depth > 0) {
    if (!k->first[k->depth - 1]) fputc(',', k->f);
    k->first[k->depth - 1] = false;
  }
  if (key != NULL) fprintf(k->f, "\"%s\":", key);
}

static void json_open(sink *k, const char *key, bool array) {
  json_key(k, key);
  fputc(array ? '[' : '{', k->f);
  k->array[k->depth] = array;
  k->first[k->depth] = true;
  k->depth++;
}

static void json_close(sink *k) {
  k->depth--;
  fputc(k->array[k->depth] ? ']' : '}', k->f);
}

static void json_num(sink *k, const char *key, double v, bool integer) {
  json_key(k, key);
  if (integer) fprintf(k->f, "%llu", (unsigned long long)v);
  else fprintf(k->f, "%.3f", v);
}

static void json_str(sink *k, const char *key, const char *v) {
  json_key(k, key);
  fprintf(k->f, "\"%s\"", v); /* our own fixed strings: nothing to escape */
}

static const sink_ops json_ops = {json_open, json_close, json_num, json_str};

void hakrt_write_stats_json(hakrt *rt, FILE *f) {
  snapshot s;
  sink k;
  size_t cap = live_now(rt) + 16;
  worker_fig *w = (worker_fig *)calloc((size_t)rt->nworkers, sizeof *w);
  task_fig *t = (task_fig *)calloc(cap, sizeof *t);
  if (w == NULL || t == NULL) { /* the totals still */
    free(w);
    free(t);
    w = NULL;
    t = NULL;
    cap = 0;
  }
  snapshot_take(rt, &s, w, t, cap);
  memset(&k, 0, sizeof k);
  k.ops = &json_ops;
  k.f = f;
  emit(&s, &k, rt->cfg.gc_clock != NULL);
  fputc('\n', f);
  free(w);
  free(t);
}
