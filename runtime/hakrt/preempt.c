/*
** preempt.c -- ending a task's slice, and coroutines that let the
** runtime's yields through.
**
** A count hook costs the VM about 65% more instructions (callgrind: a
** loop of arithmetic and small tables went from 6.95 G to 11.49 G with a
** hook every 100000 instructions: Lua calls into the debug layer on every
** instruction once any count hook is set).  So by default no hook is set
** while a task runs: a monitor thread looks at the workers every quarter
** slice and, when a task has overrun its slice while others wait, signals
** that worker (SIGURG, which nothing uses by default).  The handler, on
** the worker's own thread, arms a count hook of 1 on the coroutine
** running there, as lua.c does for ^C (lua_sethook is safe in a signal
** handler); the hook yields at the next instruction where the task can
** yield.  ThreadSanitizer cannot deliver a signal into uninstrumented code
** (Debian's liblua), so under TSan the default is an always-armed hook.
**
** Yields reach the worker through user coroutines: coroutine.resume and
** coroutine.wrap are replaced by versions that, when the coroutine they
** resume yields for the runtime (task->yield set), yield in turn, up to
** the task's main coroutine, and resume it again when they are resumed.
*/
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "internal.h"

#define PREEMPT_SIGNAL SIGURG
#define HOOK_COUNT 10000        /* instructions between clock reads (hook mode) */
#define RETRY_COUNT 1000        /* retry a yield refused inside a C call */

static bool someone_waits(hakrt *rt, uint64_t now) {
  uint64_t next = (uint64_t)AO_load(&rt->next_timer);
  return AO_load(&rt->qlen) != 0 || (next != 0 && next <= now);
}

static void preempt_hook(lua_State *L, lua_Debug *ar);

/* The running task's time since it last blocked or yielded. */
static uint64_t streak_now(const hakrt_task *t, uint64_t now) {
  return t->streak_ns + (now - t->resume_ns);
}

/*
** A stopped task.  Once the time limit has stopped a task (t->watch ==
** HAKRT_WATCH_STOP, which stays set until the task ends), every coroutine
** of it that runs meets "time limit exceeded" at its next instruction, so
** neither a pcall nor a coroutine.resume that catches the error can keep
** the task going: the coroutine where it fired is armed with a count hook
** of 1, and so is the task's main coroutine, where every resume chain
** ends; a resume returning into its resumer arms the resumer (co_step),
** a stopped task resumes no coroutine, and a slice of a stopped task
** begins armed (hakrt_preempt_begin).  Both preemption modes share this.
** t->watch is written by the signal handler on the task's own thread: the
** compiler barrier keeps it from reading t->watch before the store of
** cur_co that decides which coroutine the handler arms.
*/
static bool task_stopping(const hakrt_task *t) {
  AO_compiler_barrier();
  return t->watch == HAKRT_WATCH_STOP;
}

static void stop_arm(lua_State *L) {
  lua_sethook(L, preempt_hook, LUA_MASKCOUNT, 1);
}

static int stop_raise(lua_State *L, hakrt_task *t) {
  stop_arm(L);
  if (t->co != NULL && t->co != L) stop_arm(t->co);
  lua_pushliteral(L, "time limit exceeded");
  return lua_error(L);
}

/*
** The watchdog, in the hook on the task's own thread.  A report writes
** the task's traceback once per streak; a stop raises "time limit
** exceeded" and stays armed (above): the error unwinds the whole task.
*/
static void watch_fire(lua_State *L, hakrt_task *t) {
  hakrt *rt = t->rt;
  if (t->watch == HAKRT_WATCH_STOP) {
    if (!t->watch_reported) {
      t->watch_reported = true;
      pthread_mutex_lock(&rt->lock);
      rt->time_limit_stops++;
      pthread_mutex_unlock(&rt->lock);
    }
    stop_raise(L, t);
  }
  t->watch = HAKRT_WATCH_NONE;
  if (t->watch_reported) return;
  t->watch_reported = true;
  lua_pushfstring(L, "hakrt: watchdog: task %I has run %I ms without blocking or yielding",
                  (lua_Integer)t->id,
                  (lua_Integer)(streak_now(t, hakrt_now_ns()) / 1000000u));
  luaL_traceback(L, L, lua_tostring(L, -1), 0);
  hakrt_output_error(rt, lua_tostring(L, -1));
  lua_pop(L, 2);
  pthread_mutex_lock(&rt->lock);
  rt->watchdog_reports++;
  pthread_mutex_unlock(&rt->lock);
}

/* Hook mode: the watchdog's clock, read where the hook reads the slice's. */
static void watch_check(hakrt_task *t, uint64_t now) {
  hakrt *rt = t->rt;
  uint64_t streak = streak_now(t, now);
  if (rt->cfg.time_limit_ms != 0 && streak >= (uint64_t)rt->cfg.time_limit_ms * 1000000u)
    t->watch = HAKRT_WATCH_STOP;
  else if (rt->cfg.watchdog_ms != 0 && !t->watch_reported &&
           streak >= (uint64_t)rt->cfg.watchdog_ms * 1000000u)
    t->watch = HAKRT_WATCH_REPORT;
}

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  hakrt_task *t = *(hakrt_task **)lua_getextraspace(L);
  hakrt *rt;
  (void)ar;
  if (t == NULL) return;
  rt = t->rt;
  if (rt->preempt == HAKRT_PREEMPT_HOOK && t->worker != NULL) watch_check(t, hakrt_now_ns());
  if (t->watch != HAKRT_WATCH_NONE && t->worker != NULL) {
    watch_fire(L, t);
    if (rt->preempt != HAKRT_PREEMPT_HOOK && !t->preempt_req) {
      lua_sethook(L, NULL, 0, 0); /* armed for the report only */
      return;
    }
  }
  if (rt->preempt == HAKRT_PREEMPT_HOOK) {
    uint64_t now = hakrt_now_ns();
    if (now < t->slice_end) return;
    if (!someone_waits(rt, now)) {
      t->slice_end = now + (uint64_t)rt->cfg.slice_ms * 1000000u;
      return;
    }
  } else if (!t->preempt_req || t->worker == NULL) {
    lua_sethook(L, NULL, 0, 0); /* a stale arming */
    return;
  }
  if (!lua_isyieldable(L)) {
    if (rt->preempt == HAKRT_PREEMPT_SIGNAL) lua_sethook(L, preempt_hook, LUA_MASKCOUNT, RETRY_COUNT);
    return;
  }
  if (rt->preempt == HAKRT_PREEMPT_SIGNAL) lua_sethook(L, NULL, 0, 0);
  t->preempt_req = false;
  t->yield = HAKRT_Y_PREEMPT;
  lua_yield(L, 0);
}

/* On the worker's thread: the monitor says its task overran its slice
** (w->kick_preempt) or the watchdog's time (w->kick_watch). */
static void on_preempt_signal(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  hakrt_worker *w;
  hakrt_task *t;
  lua_State *co;
  (void)sig;
  (void)uc;
  if (si->si_code != SI_QUEUE || si->si_pid != getpid()) goto out;
  w = (hakrt_worker *)si->si_value.sival_ptr;
  co = (lua_State *)AO_load(&w->cur_co);
  t = w->task;
  if (co != NULL && t != NULL) {
    AO_t watch = AO_load(&w->kick_watch);
    /* a kick meant for an earlier slice (perhaps another task's, when the
    ** signal landed between slices): the monitor sends a stop again while
    ** the streak is over the limit */
    if (AO_load(&w->kick_slice) != AO_load(&w->slice_start)) watch = HAKRT_WATCH_NONE;
    if (AO_load(&w->kick_preempt)) t->preempt_req = true;
    if (watch != HAKRT_WATCH_NONE && t->watch != HAKRT_WATCH_STOP) t->watch = (int)watch;
    AO_store(&w->kick_preempt, 0);
    AO_store(&w->kick_watch, HAKRT_WATCH_NONE);
    lua_sethook(co, preempt_hook, LUA_MASKCOUNT, 1);
  }
out:
  errno = saved;
}

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int signal_err;

static void install_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_preempt_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(PREEMPT_SIGNAL, &sa, NULL) != 0) signal_err = errno;
}

bool hakrt_preempt_monitor_needed(const hakrt *rt) {
  if (rt->preempt == HAKRT_PREEMPT_SIGNAL) return true;
  return rt->preempt != HAKRT_PREEMPT_HOOK &&
         (rt->cfg.watchdog_ms != 0 || rt->cfg.time_limit_ms != 0);
}

int hakrt_preempt_init(hakrt *rt) {
  if (!hakrt_preempt_monitor_needed(rt)) return 0;
  pthread_once(&signal_once, install_handler);
  return signal_err;
}

void hakrt_preempt_begin(hakrt_task *t, hakrt_worker *w, lua_State *co) {
  hakrt *rt = t->rt;
  uint64_t now = hakrt_now_ns();
  t->preempt_req = false;
  t->resume_ns = now;
  t->slice_end = now + (uint64_t)rt->cfg.slice_ms * 1000000u;
  if (t->watch == HAKRT_WATCH_STOP) /* stopped, and resumed: fire at once */
    stop_arm(co);
  else if (rt->preempt == HAKRT_PREEMPT_HOOK && lua_gethook(co) != preempt_hook)
    lua_sethook(co, preempt_hook, LUA_MASKCOUNT, HOOK_COUNT);
  AO_store(&w->cur_co, (AO_t)co);
  AO_store(&w->streak_base, (AO_t)t->streak_ns);
  AO_store(&w->slice_start, (AO_t)now);
}

void hakrt_preempt_end(hakrt_task *t, hakrt_worker *w) {
  AO_store(&w->slice_start, 0);
  AO_store(&w->cur_co, 0);
  t->preempt_req = false;
}

/* What the monitor asks of worker w now: a preemption, a watchdog event. */
static bool monitor_check(hakrt *rt, hakrt_worker *w, uint64_t now, bool waits) {
  uint64_t slice = (uint64_t)rt->cfg.slice_ms * 1000000u;
  AO_t start = AO_load(&w->slice_start);
  bool kick = false;
  uint64_t origin, streak;
  if (start == 0) return false;
  if (rt->preempt == HAKRT_PREEMPT_SIGNAL && waits && now - (uint64_t)start >= slice &&
      AO_load(&w->kicked) != start) {
    AO_store(&w->kicked, start);
    AO_store(&w->kick_preempt, 1);
    kick = true;
  }
  /* A streak is named by when it began: one report each.  A stop is sent
  ** at every look while the streak lasts: the task ends it within an
  ** instruction of the first one (task_stopping), unless that signal
  ** landed between two of its slices, where it armed nothing. */
  streak = (uint64_t)AO_load(&w->streak_base) + (now - (uint64_t)start);
  origin = now - streak;
  if (rt->cfg.time_limit_ms != 0 && streak >= (uint64_t)rt->cfg.time_limit_ms * 1000000u) {
    AO_store(&w->kick_slice, start);
    AO_store(&w->kick_watch, HAKRT_WATCH_STOP);
    kick = true;
  } else if (rt->cfg.watchdog_ms != 0 && streak >= (uint64_t)rt->cfg.watchdog_ms * 1000000u &&
             AO_load(&w->watch_sent) != origin) {
    AO_store(&w->watch_sent, origin);
    AO_store(&w->kick_slice, start);
    AO_store(&w->kick_watch, HAKRT_WATCH_REPORT);
    kick = true;
  }
  return kick;
}

void *hakrt_preempt_monitor(void *arg) {
  hakrt *rt = (hakrt *)arg;
  uint64_t tick = (uint64_t)rt->cfg.slice_ms * 1000000u / 4;
  struct timespec ts;
  if (rt->preempt != HAKRT_PREEMPT_SIGNAL || tick == 0) tick = 50000000u;
  if (rt->cfg.watchdog_ms != 0 && (uint64_t)rt->cfg.watchdog_ms * 250000u < tick)
    tick = (uint64_t)rt->cfg.watchdog_ms * 250000u;
  if (rt->cfg.time_limit_ms != 0 && (uint64_t)rt->cfg.time_limit_ms * 250000u < tick)
    tick = (uint64_t)rt->cfg.time_limit_ms * 250000u;
  if (tick < 1000000u) tick = 1000000u;
  ts.tv_sec = (time_t)(tick / 1000000000u);
  ts.tv_nsec = (long)(tick % 1000000000u);
  while (!AO_load_acquire(&rt->monitor_stop)) {
    uint64_t now;
    bool waits;
    int i;
    nanosleep(&ts, NULL);
    now = hakrt_now_ns();
    waits = someone_waits(rt, now);
    for (i = 0; i < rt->nworkers; i++) {
      hakrt_worker *w = &rt->workers[i];
      if (monitor_check(rt, w, now, waits)) {
        union sigval v;
        v.sival_ptr = w;
        pthread_sigqueue(w->thread, PREEMPT_SIGNAL, v);
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------
** coroutine.resume and coroutine.wrap.
** --------------------------------------------------------------------- */

enum { CO_RESUME, CO_WRAP };

static int co_step(lua_State *L, int narg, int mode);

/* Resumed by the worker (or by the wrapper above): resume the coroutine
** below again; it retries the call that yielded. */
static int co_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_settop(L, 1);
  return co_step(L, 0, (int)ctx);
}

/* The results of a resume, as coroutine.wrap gives them. */
static int co_wrap_results(lua_State *L, lua_State *co, int ok, int nres) {
  if (ok) {
    if (!lua_checkstack(L, nres)) return luaL_error(L, "too many results to resume");
    lua_xmove(co, L, nres);
    return nres;
  }
  {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {
      stat = lua_resetthread(co); /* close its to-be-closed variables */
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
}

/* The coroutine at index 1, resumed with the narg values on top. */
static int co_step(lua_State *L, int narg, int mode) {
  lua_State *co = lua_tothread(L, 1);
  hakrt_task *t = *(hakrt_task **)lua_getextraspace(L);
  hakrt_worker *w = t->worker;
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return mode == CO_WRAP ? lua_error(L) : 2;
  }
  for (;;) {
    lua_xmove(L, co, narg);
    if (w != NULL) AO_store(&w->cur_co, (AO_t)co);
    if (task_stopping(t)) { /* a stopped task resumes nothing */
      if (w != NULL) AO_store(&w->cur_co, (AO_t)L);
      return stop_raise(L, t);
    }
    status = lua_resume(co, L, narg, &nres);
    if (w != NULL) AO_store(&w->cur_co, (AO_t)L);
    if (task_stopping(t)) stop_arm(L); /* the stop met in co reaches its resumer */
    if (status != LUA_YIELD || t->yield == HAKRT_Y_NONE) break;
    /* A yield for the runtime: pass it up, unless this level cannot. */
    lua_pop(co, nres);
    if (lua_isyieldable(L)) return lua_yieldk(L, 0, (lua_KContext)mode, co_continue);
    if (t->yield == HAKRT_Y_BLOCK) {
      t->yield = HAKRT_Y_NONE;
      hakrt_task_cancel_wait(t);
      return luaL_error(L, "cannot block inside a coroutine resumed from a C call "
                           "that cannot yield");
    }
    t->yield = HAKRT_Y_NONE; /* a preemption here waits for a better place */
    narg = 0;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (mode == CO_WRAP) return co_wrap_results(L, co, 1, nres);
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "too many results to resume");
      return 2;
    }
    lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + 1;
  }
  if (mode == CO_WRAP) return co_wrap_results(L, co, 0, 0);
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}

static int co_resume(lua_State *L) {
  luaL_argexpected(L, lua_tothread(L, 1) != NULL, 1, "coroutine");
  return co_step(L, lua_gettop(L) - 1, CO_RESUME);
}

static int co_wrap_call(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  return co_step(L, lua_gettop(L) - 1, CO_WRAP);
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrap_call, 1);
  return 1;
}

void hakrt_preempt_open_coroutines(lua_State *L) {
  lua_getglobal(L, "coroutine");
  lua_pushcfunction(L, co_resume);
  lua_setfield(L, -2, "resume");
  lua_pushcfunction(L, co_wrap);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}
