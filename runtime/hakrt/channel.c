/*
** channel.c -- bounded channels between tasks: ch:send(...) blocks while
** the channel is full, ch:recv([timeout_ms]) while it is empty.
**
** A blocked task parks (sched.c) and retries from the top when it is
** woken, so a wake is only a hint: the waker needs no hand-off protocol,
** and a spurious wake costs one retry.  Wakes are sent with the channel
** lock held, which keeps the woken task from finishing (and being freed)
** before the wake is done: its retry needs that lock first.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

#define CHAN_MT "hakrt.channel"

/* ------------------------------------------------------------------------
** Wait queues (channel lock held).
** --------------------------------------------------------------------- */

static void waitq_push(hakrt_chan *c, hakrt_waitq *q, hakrt_task *t) {
  AO_store(&t->wq_chan, (AO_t)c);
  t->wnext = NULL;
  t->wprev = q->tail;
  if (q->tail != NULL) q->tail->wnext = t;
  else q->head = t;
  q->tail = t;
}

static void waitq_remove(hakrt_waitq *q, hakrt_task *t) {
  if (t->wprev != NULL) t->wprev->wnext = t->wnext;
  else q->head = t->wnext;
  if (t->wnext != NULL) t->wnext->wprev = t->wprev;
  else q->tail = t->wprev;
  t->wprev = t->wnext = NULL;
  AO_store(&t->wq_chan, 0);
}

/* Takes t out of c's queues if it is in one. */
static void chan_unwait_locked(hakrt_chan *c, hakrt_task *t) {
  hakrt_task *x;
  if ((hakrt_chan *)AO_load(&t->wq_chan) != c) return;
  for (x = c->recvq.head; x != NULL; x = x->wnext)
    if (x == t) {
      waitq_remove(&c->recvq, t);
      return;
    }
  waitq_remove(&c->sendq, t);
}

/* Wakes the first task of q. */
static void waitq_wake_one(hakrt_waitq *q) {
  hakrt_task *t = q->head;
  if (t == NULL) return;
  waitq_remove(q, t);
  hakrt_sched_wake(t);
}

static void waitq_wake_all(hakrt_waitq *q) {
  while (q->head != NULL) waitq_wake_one(q);
}

/* Only the thread running t calls this, so a channel read here is one t waited
** on (its handle keeps it alive); a waker may take t out meanwhile, which
** the test under the lock sees. */
void hakrt_chan_unwait(hakrt_task *t) {
  hakrt_chan *c = (hakrt_chan *)AO_load(&t->wq_chan);
  if (c == NULL) return;
  pthread_mutex_lock(&c->lock);
  chan_unwait_locked(c, t);
  pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------------------
** The channel object.
** --------------------------------------------------------------------- */

hakrt_chan *hakrt_chan_new(hakrt *rt, size_t cap) {
  hakrt_chan *c = (hakrt_chan *)hakrt_mem_alloc(rt, sizeof *c);
  if (c == NULL) return NULL;
  memset(c, 0, sizeof *c);
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    hakrt_mem_free(rt, c);
    return NULL;
  }
  AO_store(&c->refs, 1);
  c->cap = cap;
  c->rt = rt;
  pthread_mutex_lock(&rt->lock);
  c->id = ++rt->next_chan_id;
  pthread_mutex_unlock(&rt->lock);
  pthread_mutex_lock(&rt->chans_lock);
  c->all_next = rt->chans;
  if (rt->chans != NULL) rt->chans->all_prev = c;
  rt->chans = c;
  pthread_mutex_unlock(&rt->chans_lock);
  return c;
}

void hakrt_chan_retain(hakrt_chan *c) {
  AO_fetch_and_add1_full(&c->refs);
}

/*
** The messages left in an inbox that only its finished task holds: nobody
** can receive them, and a task handle among them (say, the task's own)
** would keep its task, and so the inbox, alive for good.
*/
static void chan_drop_unread(hakrt_chan *c) {
  hakrt_msg *m, *next;
  pthread_mutex_lock(&c->lock);
  m = c->head;
  c->head = c->tail = NULL;
  c->count = 0;
  pthread_mutex_unlock(&c->lock);
  for (; m != NULL; m = next) {
    next = m->next;
    hakrt_msg_free(m);
  }
}

/*
** The owner's marks and the reference count are read against each other
** across threads (a mark, then a count read, by one; a count change, then
** a mark read, by another): each pair needs a full barrier between its
** two accesses.  Both are read-modify-writes, which are full barriers and
** which ThreadSanitizer models; libatomic_ops' AO_store_full and
** AO_load_full are a fence and a plain access, and it models no fence.
*/
static void chan_mark(volatile AO_t *flag) { AO_compare_and_swap_full(flag, 0, 1); }
static AO_t chan_read(volatile AO_t *word) { return AO_fetch_and_add_full(word, 0); }

void hakrt_chan_owner_gone(hakrt_chan *c) {
  chan_mark(&c->owner_gone);
  if (chan_read(&c->refs) == 1) chan_drop_unread(c);
}

/* Marked before the reference goes: a release that then counts 2
** references cannot take the owner's for one of them (below). */
void hakrt_chan_owner_release(hakrt_chan *c) {
  chan_mark(&c->owner_released);
  hakrt_chan_release(c);
}

/* The last reference frees the channel and what it still holds.  Nobody
** can wait on it then: a waiting task holds a handle. */
void hakrt_chan_release(hakrt_chan *c) {
  hakrt_msg *m, *next;
  /* Before our reference goes, while it keeps c: if the other one is the
  ** finished owner's, nobody can receive what is queued.  The count is
  ** read first: the owner marks its release before it counts it, so a 2
  ** read before the mark is the owner's reference and ours. */
  if (chan_read(&c->owner_gone) && chan_read(&c->refs) == 2 && !chan_read(&c->owner_released))
    chan_drop_unread(c);
  if (AO_fetch_and_sub1_full(&c->refs) != 1) return;
  pthread_mutex_lock(&c->rt->chans_lock);
  if (c->all_prev != NULL) c->all_prev->all_next = c->all_next;
  else c->rt->chans = c->all_next;
  if (c->all_next != NULL) c->all_next->all_prev = c->all_prev;
  pthread_mutex_unlock(&c->rt->chans_lock);
  for (m = c->head; m != NULL; m = next) {
    next = m->next;
    hakrt_msg_free(m);
  }
  pthread_mutex_destroy(&c->lock);
  hakrt_mem_free(c->rt, c);
}

/*
** Every channel gets one more reference first, so that none is freed
** while the list is walked; then each drops what it holds (the messages
** release the references they held, to channels among others); then the
** extra references go, and with them every channel that only messages
** held.  A channel emptied first frees nothing else when it goes.
*/
void hakrt_chan_free_cycles(hakrt *rt) {
  hakrt_chan *c, *next;
  for (c = rt->chans; c != NULL; c = c->all_next) hakrt_chan_retain(c);
  for (c = rt->chans; c != NULL; c = c->all_next) chan_drop_unread(c);
  for (c = rt->chans; c != NULL; c = next) {
    next = c->all_next;
    hakrt_chan_release(c);
  }
}

static void chan_enqueue_locked(hakrt_chan *c, hakrt_msg *m) {
  m->next = NULL;
  if (c->tail != NULL) c->tail->next = m;
  else c->head = m;
  c->tail = m;
  c->count++;
  waitq_wake_one(&c->recvq);
}

static hakrt_msg *chan_dequeue_locked(hakrt_chan *c) {
  hakrt_msg *m = c->head;
  if (m == NULL) return NULL;
  c->head = m->next;
  if (c->head == NULL) c->tail = NULL;
  c->count--;
  m->next = NULL;
  waitq_wake_one(&c->sendq);
  return m;
}

/* A receive that ran out of memory decoding m puts it back first, and
** wakes a receiver that found the channel empty meanwhile.  A sender the
** dequeue woke may have taken m's slot: the count can pass the capacity
** by this one message until it is received (the price of decoding outside
** the lock without a second lock on every receive). */
static void chan_putback(hakrt_chan *c, hakrt_msg *m) {
  pthread_mutex_lock(&c->lock);
  m->next = c->head;
  c->head = m;
  if (c->tail == NULL) c->tail = m;
  c->count++;
  waitq_wake_one(&c->recvq);
  pthread_mutex_unlock(&c->lock);
}

void hakrt_chan_close(hakrt_chan *c) {
  pthread_mutex_lock(&c->lock);
  c->closed = true;
  waitq_wake_all(&c->recvq);
  waitq_wake_all(&c->sendq);
  pthread_mutex_unlock(&c->lock);
}

int hakrt_chan_offer(hakrt_chan *c, hakrt_msg *m) {
  int err = 0;
  pthread_mutex_lock(&c->lock);
  if (c->closed) err = EPIPE;
  else if (c->count >= c->cap) err = EAGAIN;
  else chan_enqueue_locked(c, m);
  pthread_mutex_unlock(&c->lock);
  return err;
}

/* ------------------------------------------------------------------------
** Handles in Lua.
** --------------------------------------------------------------------- */

hakrt_chan *hakrt_chan_test(lua_State *L, int idx) {
  hakrt_chan **h = (hakrt_chan **)luaL_testudata(L, idx, CHAN_MT);
  return h != NULL ? *h : NULL;
}

static hakrt_chan *chan_check(lua_State *L, int idx) {
  hakrt_chan **h = (hakrt_chan **)luaL_checkudata(L, idx, CHAN_MT);
  return *h;
}

void hakrt_chan_push(lua_State *L, hakrt_chan *c) {
  hakrt_chan **h = (hakrt_chan **)lua_newuserdatauv(L, sizeof *h, 0);
  *h = NULL;
  luaL_setmetatable(L, CHAN_MT);
  hakrt_chan_retain(c);
  *h = c;
}

static int chan_gc(lua_State *L) {
  hakrt_chan **h = (hakrt_chan **)luaL_checkudata(L, 1, CHAN_MT);
  if (*h != NULL) hakrt_chan_release(*h);
  *h = NULL;
  return 0;
}

/* Two handles of one channel (received twice, say) are equal. */
static int chan_eq(lua_State *L) {
  lua_pushboolean(L, hakrt_chan_test(L, 1) == hakrt_chan_test(L, 2));
  return 1;
}

static int chan_tostring(lua_State *L) {
  lua_pushfstring(L, "channel %I", (LUAI_UACINT)chan_check(L, 1)->id);
  return 1;
}

static int chan_len(lua_State *L) {
  hakrt_chan *c = chan_check(L, 1);
  size_t n;
  pthread_mutex_lock(&c->lock);
  n = c->count;
  pthread_mutex_unlock(&c->lock);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int chan_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)chan_check(L, 1)->id);
  return 1;
}

static int chan_close_lua(lua_State *L) {
  hakrt_chan_close(chan_check(L, 1));
  return 0;
}

/* Channel lock held: waits in q (where it cannot yield, raises an error
** instead, before it is queued), releases the lock, yields to the worker. */
static int chan_block(lua_State *L, hakrt_chan *c, hakrt_waitq *q, int wait, uint64_t deadline,
                      lua_KContext ctx, lua_KFunction k) {
  hakrt_task *t = hakrt_task_of(L);
  if (!lua_isyieldable(L) || t->no_block) {
    pthread_mutex_unlock(&c->lock);
    hakrt_task_check_yieldable(L);
  }
  waitq_push(c, q, t);
  t->wait = wait;
  t->wait_id = c->id;
  t->deadline = deadline;
  pthread_mutex_unlock(&c->lock);
  return hakrt_task_yield(L, HAKRT_Y_BLOCK, ctx, k);
}

/* Stack: the channel, the values, the message's box on top. */
static int send_try(lua_State *L, int status, lua_KContext ctx) {
  hakrt_chan *c = chan_check(L, 1);
  hakrt_task *t = hakrt_task_of(L);
  hakrt_msg *m = *(hakrt_msg **)lua_touserdata(L, -1);
  (void)status;
  /* A send that blocked may resume after its coroutine sent one of the
  ** message's buffers elsewhere (a coroutine left suspended by a call
  ** that could not yield): the block has a new owner. */
  if (!hakrt_msg_bufs_intact(m)) return luaL_error(L, "cannot send a buffer that was sent");
  pthread_mutex_lock(&c->lock);
  if (!t->no_block) chan_unwait_locked(c, t); /* else the wait is its parked code's */
  if (c->closed) {
    pthread_mutex_unlock(&c->lock);
    return luaL_error(L, "send on a closed channel");
  }
  if (c->count < c->cap) {
    hakrt_msg_commit(m, L);
    hakrt_msg_unbox(L, -1);
    chan_enqueue_locked(c, m);
    pthread_mutex_unlock(&c->lock);
    t->o_sent++;
    return 0;
  }
  return chan_block(L, c, &c->sendq, HAKRT_W_SEND, 0, ctx, send_try);
}

static int chan_send(lua_State *L) {
  int n = lua_gettop(L) - 1;
  chan_check(L, 1);
  hakrt_msg_pack(L, 2, n, "value");
  return send_try(L, LUA_OK, 0);
}

static int unpack_protected(lua_State *L) {
  hakrt_msg *m = (hakrt_msg *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  return hakrt_msg_unpack(L, m);
}

/* ctx: the deadline in ns, or 0 for none. */
static int recv_try(lua_State *L, int status, lua_KContext ctx) {
  hakrt_chan *c = chan_check(L, 1);
  hakrt_task *t = hakrt_task_of(L);
  uint64_t deadline = (uint64_t)ctx;
  hakrt_msg *m;
  (void)status;
  pthread_mutex_lock(&c->lock);
  if (!t->no_block) chan_unwait_locked(c, t); /* else the wait is its parked code's */
  /* A channel, buffer or task handle made by a finalizer that lua_close
  ** runs would never be finalized (lib.c, hakrt_lib_check_running): such
  ** a message is refused while it is still in the channel, for the next
  ** receiver (taken out and put back, it made receivers block and senders
  ** overfill the channel meanwhile). */
  if (c->head != NULL && c->head->nrefs > 0 && hakrt_task_has_ended(t)) {
    pthread_mutex_unlock(&c->lock);
    return luaL_error(L, "the task has ended: cannot receive a handle now");
  }
  if ((m = chan_dequeue_locked(c)) != NULL) {
    int top = lua_gettop(L), err;
    pthread_mutex_unlock(&c->lock);
    lua_pushcfunction(L, unpack_protected);
    lua_pushlightuserdata(L, m);
    if ((err = lua_pcall(L, 1, LUA_MULTRET, 0)) != LUA_OK) {
      chan_putback(c, m);
      return lua_error(L);
    }
    hakrt_msg_free(m);
    t->o_received++;
    return lua_gettop(L) - top;
  }
  if (c->closed || (deadline != 0 && hakrt_now_ns() >= deadline)) {
    pthread_mutex_unlock(&c->lock);
    lua_pushnil(L);
    lua_pushstring(L, c->closed ? "closed" : "timeout");
    return 2;
  }
  return chan_block(L, c, &c->recvq, HAKRT_W_RECV, deadline, ctx, recv_try);
}

static int chan_recv(lua_State *L) {
  uint64_t deadline = 0;
  chan_check(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Number ms = luaL_checknumber(L, 2);
    luaL_argcheck(L, ms >= 0, 2, "timeout must be >= 0");
    if (ms > 1e12) ms = 1e12;
    deadline = hakrt_now_ns() + (uint64_t)(ms * 1e6);
    if (deadline == 0) deadline = 1;
  }
  lua_settop(L, 1);
  return recv_try(L, LUA_OK, (lua_KContext)deadline);
}

void hakrt_chan_open_lib(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"send", chan_send}, {"recv", chan_recv}, {"close", chan_close_lua},
    {"id", chan_id}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", chan_gc}, {"__eq", chan_eq}, {"__tostring", chan_tostring},
    {"__len", chan_len}, {NULL, NULL}};
  if (luaL_newmetatable(L, CHAN_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
