/*
** lib.c -- the `hakrt` Lua module, preloaded in every task:
**   rt.spawn(f_or_path, ...)              -> handle (h:join(), h:id()),
**                                            which messages carry
**   rt.spawn_with(opts, f_or_path, ...)   opts: limit (bytes), private_heap
**   rt.self()  rt.sleep(ms)  rt.yield()  rt.workers()
**   rt.channel([capacity])  rt.buffer(n_or_string)  rt.inbox()  rt.stats()
**   rt.now()  (monotonic seconds)
*/
#include <errno.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

#define HANDLE_MT "hakrt.task"
#define CHANNEL_DEFAULT_CAP 16

/* ------------------------------------------------------------------------
** Task handles.
** --------------------------------------------------------------------- */

static hakrt_task *handle_check(lua_State *L, int idx) {
  return *(hakrt_task **)luaL_checkudata(L, idx, HANDLE_MT);
}

static int handle_gc(lua_State *L) {
  hakrt_task **h = (hakrt_task **)luaL_checkudata(L, 1, HANDLE_MT);
  if (*h != NULL) hakrt_task_unref(*h);
  *h = NULL;
  return 0;
}

static int handle_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)handle_check(L, 1)->id);
  return 1;
}

static int handle_tostring(lua_State *L) {
  lua_pushfstring(L, "task %I", (LUAI_UACINT)handle_check(L, 1)->id);
  return 1;
}

/* true, results...  or  false, message (with the traceback). */
static int join_try(lua_State *L, int status, lua_KContext ctx) {
  hakrt_task *self = hakrt_task_of(L), *t = handle_check(L, 1), *x;
  hakrt *rt = self->rt;
  (void)status;
  pthread_mutex_lock(&rt->lock);
  if (t->state == HAKRT_DONE) {
    if (t->failed && !t->failure_seen) {
      t->failure_seen = true;
      rt->failures_seen++;
    }
    pthread_mutex_unlock(&rt->lock);
    lua_settop(L, 1);
    if (t->failed) {
      lua_pushboolean(L, 0);
      lua_pushstring(L, t->error != NULL ? t->error : "failed");
      return 2;
    }
    lua_pushboolean(L, 1);
    return 1 + (t->result != NULL ? hakrt_msg_unpack(L, t->result) : 0);
  }
  for (x = t->joiners; x != NULL && x != self; x = x->jnext) {
  }
  if (x == NULL) {
    self->jnext = t->joiners;
    t->joiners = self;
  }
  self->wait = HAKRT_W_JOIN;
  self->wait_id = t->id;
  self->deadline = 0;
  pthread_mutex_unlock(&rt->lock);
  return hakrt_task_yield(L, HAKRT_Y_BLOCK, ctx, join_try);
}

static int handle_join(lua_State *L) {
  hakrt_task *t = handle_check(L, 1);
  if (t == hakrt_task_of(L)) return luaL_error(L, "a task cannot join itself");
  hakrt_task_check_yieldable(L);
  lua_settop(L, 1);
  return join_try(L, LUA_OK, 0);
}

static void handle_push(lua_State *L, hakrt_task *t) {
  hakrt_task **h = (hakrt_task **)lua_newuserdatauv(L, sizeof *h, 0);
  *h = t; /* the caller took the reference */
  luaL_setmetatable(L, HANDLE_MT);
}

hakrt_task *hakrt_handle_test(lua_State *L, int idx) {
  hakrt_task **h = (hakrt_task **)luaL_testudata(L, idx, HANDLE_MT);
  return h != NULL ? *h : NULL;
}

void hakrt_handle_push(lua_State *L, hakrt_task *t) {
  hakrt_task_ref(t);
  handle_push(L, t);
}

/* ------------------------------------------------------------------------
** Spawning.
** --------------------------------------------------------------------- */

#define CODE_MT "hakrt.code"
#define CODE_FN_KEY "hakrt.spawn.fn"    /* registry: the function spawned last */
#define CODE_BOX_KEY "hakrt.spawn.code" /* registry: a CODE_MT box of its chunk */

void hakrt_code_retain(hakrt_code *c) {
  AO_fetch_and_add1(&c->refs);
}

void hakrt_code_release(hakrt_code *c) {
  if (c != NULL && AO_fetch_and_sub1_full(&c->refs) == 1) hakrt_mem_free(c->rt, c);
}

static int code_gc(lua_State *L) {
  hakrt_code **box = (hakrt_code **)luaL_checkudata(L, 1, CODE_MT);
  hakrt_code_release(*box);
  *box = NULL;
  return 0;
}

/* lua_dump's writer: a hakrt_code in the making, its header first. */
typedef struct dump_buf {
  hakrt *rt;
  char *p;
  size_t n, cap;
  bool oom;
} dump_buf;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  dump_buf *d = (dump_buf *)ud;
  (void)L;
  if (d->cap < d->n + n) { /* n starts at the header's size, cap at 0 */
    size_t cap = d->cap ? d->cap : 1024;
    char *q;
    while (cap < d->n + n) cap *= 2;
    if ((q = (char *)hakrt_mem_realloc(d->rt, d->p, cap)) == NULL) {
      d->oom = true;
      return 1;
    }
    d->p = q;
    d->cap = cap;
  }
  memcpy(d->p + d->n, p, n);
  d->n += n;
  return 0;
}

/* The function at idx dumped into a new chunk with one reference;
** raises when it cannot be spawned or memory runs out (nothing held). */
static hakrt_code *code_dump(lua_State *L, int idx, hakrt *rt) {
  dump_buf d;
  hakrt_code *c;
  char *fit;
  int i;
  const char *up;
  if (lua_iscfunction(L, idx)) luaL_error(L, "cannot spawn a C function");
  for (i = 1; (up = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(up, "_ENV") != 0)
      luaL_error(L, "cannot spawn a function with upvalues (it uses '%s'): "
                    "pass what it needs as arguments", up[0] ? up : "?");
  }
  memset(&d, 0, sizeof d);
  d.rt = rt;
  d.n = sizeof(hakrt_code);
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, &d, 0);
  lua_pop(L, 1);
  if (d.oom) {
    hakrt_mem_free(rt, d.p);
    luaL_error(L, "not enough memory");
  }
  /* it lives as long as tasks wait to start: no doubling's slack */
  if ((fit = (char *)hakrt_mem_realloc(rt, d.p, d.n)) != NULL) d.p = fit;
  c = (hakrt_code *)(void *)d.p;
  AO_store(&c->refs, 1);
  c->rt = rt;
  c->len = d.n - sizeof(hakrt_code);
  return c;
}

/*
** The chunk of the function at idx, with a reference for the caller (the
** last thing done: an error leaves nothing held).  The state keeps the
** chunk of the function it spawned last, with the function itself (so
** that no other function can take its address meanwhile): spawning it
** again costs no dump, and its tasks share one copy.
*/
static hakrt_code *spawn_code(lua_State *L, int idx, hakrt *rt) {
  hakrt_code **box, *c;
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, CODE_FN_KEY);
  if (lua_rawequal(L, -1, idx)) {
    lua_getfield(L, LUA_REGISTRYINDEX, CODE_BOX_KEY);
    c = *(hakrt_code **)lua_touserdata(L, -1);
    lua_pop(L, 2);
    hakrt_code_retain(c);
    return c;
  }
  lua_pop(L, 1);
  box = (hakrt_code **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, CODE_MT);
  c = *box = code_dump(L, idx, rt); /* the box frees it if what follows raises */
  /* the function last: until both are set, no stale pair can match */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, CODE_FN_KEY);
  lua_setfield(L, LUA_REGISTRYINDEX, CODE_BOX_KEY);
  lua_pushvalue(L, idx);
  lua_setfield(L, LUA_REGISTRYINDEX, CODE_FN_KEY);
  hakrt_code_retain(c);
  return c;
}

/* The code at `first`, its arguments after it. */
static int spawn_from(lua_State *L, int first, const hakrt_spawn_opts *opts) {
  hakrt_task *self = hakrt_task_of(L), *t;
  int top = lua_gettop(L), nargs = top - first, kind;
  const char *name;
  hakrt_code *code = NULL;
  hakrt_msg *m;
  if (lua_type(L, first) == LUA_TSTRING) {
    kind = HAKRT_START_FILE;
    name = lua_tostring(L, first);
  } else {
    luaL_argexpected(L, lua_type(L, first) == LUA_TFUNCTION, first, "function or script path");
    kind = HAKRT_START_FUNCTION;
    name = HAKRT_FUNCTION_NAME;
  }
  hakrt_lib_check_running(L, "task");
  m = hakrt_msg_pack(L, first + 1, nargs, "argument");
  if (kind == HAKRT_START_FUNCTION) code = spawn_code(L, first, self->rt); /* raises before it holds */
  hakrt_msg_commit(m, L);
  if ((t = hakrt_task_new(self->rt, kind, name, m, opts)) == NULL) {
    hakrt_code_release(code);
    return luaL_error(L, "not enough memory");
  }
  t->code = code;
  hakrt_msg_unbox(L, top + 1);
  hakrt_task_ref(t); /* the handle's */
  if (!hakrt_sched_spawn(self->rt, t)) {
    hakrt_task_unref(t);
    hakrt_task_unref(t);
    return luaL_error(L, "the runtime is shutting down");
  }
  handle_push(L, t);
  return 1;
}

static int rt_spawn(lua_State *L) {
  luaL_checkany(L, 1);
  return spawn_from(L, 1, NULL);
}

/* An option's error names the field: bad argument #1 (field 'limit': ...). */
static int opt_error(lua_State *L, const char *field, const char *msg) {
  return luaL_argerror(L, 1, lua_pushfstring(L, "field '%s': %s", field, msg));
}

static int opt_type_error(lua_State *L, const char *field, const char *expected) {
  return opt_error(L, field, lua_pushfstring(L, "%s expected, got %s", expected,
                                             luaL_typename(L, -1)));
}

static int rt_spawn_with(lua_State *L) {
  hakrt_spawn_opts o;
  memset(&o, 0, sizeof o);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  if (lua_getfield(L, 1, "limit") != LUA_TNIL) {
    int isint;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (!isint) {
      if (lua_isnumber(L, -1)) opt_error(L, "limit", "number has no integer representation");
      opt_type_error(L, "limit", "number");
    }
    if (n < 0) opt_error(L, "limit", "must be >= 0");
    o.mem_limit = (size_t)n;
  }
  lua_pop(L, 1);
  switch (lua_getfield(L, 1, "private_heap")) {
    case LUA_TNIL: break;
    case LUA_TBOOLEAN: o.private_heap = lua_toboolean(L, -1); break;
    default: opt_type_error(L, "private_heap", "boolean");
  }
  lua_pop(L, 1);
  return spawn_from(L, 2, &o);
}

/* ------------------------------------------------------------------------
** The rest.
** --------------------------------------------------------------------- */

static int rt_self(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)hakrt_task_of(L)->id);
  return 1;
}

static int rt_workers(lua_State *L) {
  lua_pushinteger(L, hakrt_task_of(L)->rt->nworkers);
  return 1;
}

static int rt_yield(lua_State *L) {
  hakrt_task_check_yieldable(L);
  return hakrt_task_yield(L, HAKRT_Y_YIELD, 0, NULL);
}

/* ctx: the deadline. */
static int sleep_try(lua_State *L, int status, lua_KContext ctx) {
  hakrt_task *t = hakrt_task_of(L);
  (void)status;
  if (hakrt_now_ns() >= (uint64_t)ctx) return 0;
  t->wait = HAKRT_W_SLEEP;
  t->wait_id = 0;
  t->deadline = (uint64_t)ctx;
  return hakrt_task_yield(L, HAKRT_Y_BLOCK, ctx, sleep_try);
}

static int rt_sleep(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_argcheck(L, ms >= 0, 1, "must be >= 0");
  hakrt_task_check_yieldable(L);
  if (ms > 1e12) ms = 1e12;
  if (ms == 0) return hakrt_task_yield(L, HAKRT_Y_YIELD, 0, NULL);
  return sleep_try(L, LUA_OK, (lua_KContext)(hakrt_now_ns() + (uint64_t)(ms * 1e6)));
}

static int rt_channel(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, CHANNEL_DEFAULT_CAP);
  hakrt_chan *c;
  luaL_argcheck(L, cap >= 1 && cap <= (1 << 30), 1, "capacity must be 1 .. 2^30");
  hakrt_lib_check_running(L, "channel");
  if ((c = hakrt_chan_new(hakrt_task_of(L)->rt, (size_t)cap)) == NULL)
    return luaL_error(L, "not enough memory");
  hakrt_chan_push(L, c);
  hakrt_chan_release(c);
  return 1;
}

/*
** Once the task's code has ended (task_end) its inbox is closed, and only
** the finalizers that lua_close runs still call in: a userdata made then is
** never finalized (Lua marks none while the state closes), so a handle made
** then would hold its reference for good (a channel's 144 bytes, a buffer's
** block, a spawned task's record).  Those calls get the reason instead.
*/
bool hakrt_task_has_ended(hakrt_task *t) {
  bool ended;
  pthread_mutex_lock(&t->rt->lock);
  ended = t->inbox_done;
  pthread_mutex_unlock(&t->rt->lock);
  return ended;
}

void hakrt_lib_check_running(lua_State *L, const char *what) {
  if (hakrt_task_has_ended(hakrt_task_of(L))) luaL_error(L, "the task has ended: cannot make a %s now", what);
}

static int rt_inbox(lua_State *L) {
  hakrt_task *t = hakrt_task_of(L);
  hakrt_chan *c;
  int err = hakrt_task_has_ended(t) ? EPIPE : hakrt_task_inbox(t, &c);
  if (err == EPIPE) return luaL_error(L, "the task has ended: its inbox is closed");
  if (err != 0) return luaL_error(L, "not enough memory");
  hakrt_chan_push(L, c);
  return 1;
}

/* rt.now(): seconds on the monotonic clock (for latencies across tasks). */
static int rt_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)hakrt_now_ns() / 1e9);
  return 1;
}

/* rt.stats(): figures.c; its own account first, before this call
** allocates anything. */
static int rt_stats(lua_State *L) {
  hakrt_task *self = hakrt_task_of(L);
  hakrt *rt = self->rt;
  pthread_mutex_lock(&rt->lock);
  hakrt_task_publish_locked(self);
  pthread_mutex_unlock(&rt->lock);
  return hakrt_figures_push(L, rt);
}

static int rt_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"spawn", rt_spawn}, {"spawn_with", rt_spawn_with}, {"self", rt_self},
    {"sleep", rt_sleep}, {"yield", rt_yield}, {"workers", rt_workers},
    {"channel", rt_channel}, {"buffer", hakrt_buf_new}, {"inbox", rt_inbox},
    {"stats", rt_stats}, {"now", rt_now}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"join", handle_join}, {"id", handle_id}, {NULL, NULL}};
  if (luaL_newmetatable(L, HANDLE_MT)) {
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, CODE_MT)) {
    lua_pushcfunction(L, code_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  hakrt_chan_open_lib(L);
  hakrt_buf_open_lib(L);
  luaL_newlib(L, funcs);
  return 1;
}

int luaopen_hakrt(lua_State *L) {
  if (hakrt_task_test(L) == NULL) return luaL_error(L, "hakrt: the module works only inside a task");
  return rt_open(L);
}

void hakrt_lib_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_hakrt);
  lua_setfield(L, -2, "hakrt");
  lua_pop(L, 1);
  /* The metatables exist before any message arrives. */
  luaL_requiref(L, "hakrt", luaopen_hakrt, 0);
  lua_pop(L, 1);
}
