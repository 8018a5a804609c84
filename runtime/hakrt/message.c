/*
** message.c -- Lua values copied between states: the payload of channel
** messages, spawn arguments and a task's results.
**
** A message is a byte string of tagged values plus a list of references
** (channels and buffers), built from one state's stack and decoded onto
** another's.  Tables are copied deeply; a table met twice (shared, or a
** cycle) is encoded once and referred to afterwards, so the copy has the
** same shape as the original.  Metatables do not travel.  Functions,
** threads and userdata other than channels, buffers and task handles are
** refused with an error that names their position.
**
** Encoding: one tag byte per value, then
**   'n' nil, 'f' false, 't' true, 'i' 8-byte integer, 'd' 8-byte float,
**   's' varint length + bytes, 'T' pairs (key, value)... 'e',
**   'r' varint: the k-th table of this message again,
**   'c' varint: a channel in refs, 'b' varint: a buffer in refs,
**   'h' varint: a task handle in refs (the message holds a reference of
**   the task until it is freed; each decoding makes a handle of its own:
**   a task's result is decoded by every task that joins it).
*/
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

#define MSG_MAX_DEPTH 100  /* tables nested deeper than this are refused */
#define MSG_BOX "hakrt.msgbox"

/* ------------------------------------------------------------------------
** The box: a userdata that frees an unfinished message on error.
** --------------------------------------------------------------------- */

static int box_gc(lua_State *L) {
  hakrt_msg **box = (hakrt_msg **)lua_touserdata(L, 1);
  if (*box != NULL) hakrt_msg_free(*box);
  *box = NULL;
  return 0;
}

static hakrt_msg **box_push(lua_State *L) {
  hakrt_msg **box = (hakrt_msg **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (luaL_newmetatable(L, MSG_BOX)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return box;
}

void hakrt_msg_unbox(lua_State *L, int idx) {
  hakrt_msg **box = (hakrt_msg **)luaL_checkudata(L, idx, MSG_BOX);
  *box = NULL;
}

/* ------------------------------------------------------------------------
** Building.
** --------------------------------------------------------------------- */

static hakrt_msg *msg_new(hakrt *rt) {
  hakrt_msg *m = (hakrt_msg *)hakrt_mem_alloc(rt, sizeof *m);
  if (m == NULL) return NULL;
  memset(m, 0, sizeof *m);
  m->rt = rt;
  return m;
}

void hakrt_msg_free(hakrt_msg *m) {
  unsigned i;
  if (m == NULL) return;
  for (i = 0; i < m->nrefs; i++) {
    hakrt_ref *r = &m->refs[i];
    void *p = (void *)AO_load(&r->ptr);
    if (r->kind == HAKRT_REF_CHAN) hakrt_chan_release((hakrt_chan *)p);
    else if (r->kind == HAKRT_REF_TASK) hakrt_task_unref((hakrt_task *)p);
    else if (r->owned && p != NULL) hakrt_mem_free(m->rt, p);
  }
  hakrt_mem_free(m->rt, m->refs);
  hakrt_mem_free(m->rt, m->data);
  hakrt_mem_free(m->rt, m);
}

/* Room for n more bytes; false when out of memory. */
static bool msg_reserve(hakrt_msg *m, size_t n) {
  size_t cap;
  unsigned char *d;
  if (m->cap - m->len >= n) return true;
  cap = m->cap ? m->cap : 64;
  while (cap - m->len < n) {
    if (cap > SIZE_MAX / 2) return false;
    cap *= 2;
  }
  d = (unsigned char *)hakrt_mem_realloc(m->rt, m->data, cap);
  if (d == NULL) return false;
  m->data = d;
  m->cap = cap;
  return true;
}

static bool msg_put(hakrt_msg *m, const void *p, size_t n) {
  if (!msg_reserve(m, n)) return false;
  memcpy(m->data + m->len, p, n);
  m->len += n;
  return true;
}

static bool msg_tag(hakrt_msg *m, char tag) {
  return msg_put(m, &tag, 1);
}

static bool msg_varint(hakrt_msg *m, uint64_t v) {
  unsigned char b[10];
  size_t n = 0;
  do {
    b[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v != 0) b[n] |= 0x80;
    n++;
  } while (v != 0);
  return msg_put(m, b, n);
}

/* Index of a new reference, or -1 when out of memory. */
static int msg_ref(hakrt_msg *m, int kind, void *p, size_t len) {
  hakrt_ref *r;
  if (m->nrefs == m->refcap) {
    /* one first: most messages that carry any carry one channel (a
    ** spawn's reply channel) or one buffer, and a queued task keeps its
    ** arguments' message until it starts */
    unsigned cap = m->refcap ? 2 * m->refcap : 1;
    hakrt_ref *refs = (hakrt_ref *)hakrt_mem_realloc(m->rt, m->refs, cap * sizeof *refs);
    if (refs == NULL) return -1;
    m->refs = refs;
    m->refcap = cap;
  }
  r = &m->refs[m->nrefs];
  memset(r, 0, sizeof *r);
  r->kind = kind;
  AO_store(&r->ptr, (AO_t)p);
  r->len = len;
  return (int)m->nrefs++;
}

hakrt_msg *hakrt_msg_strings(hakrt *rt, int n, const char *const *s, const size_t *len) {
  hakrt_msg *m = msg_new(rt);
  int i;
  if (m == NULL) return NULL;
  for (i = 0; i < n; i++) {
    size_t l = len != NULL ? len[i] : strlen(s[i]);
    if (!msg_tag(m, 's') || !msg_varint(m, l) || !msg_put(m, s[i], l)) {
      hakrt_msg_free(m);
      return NULL;
    }
  }
  m->nvalues = n;
  return m;
}

/* ------------------------------------------------------------------------
** Packing from a state.
** --------------------------------------------------------------------- */

/* One step of the path to the value being packed, for error messages. */
typedef struct path_step {
  int type;         /* LUA_TNUMBER, LUA_TSTRING, or another key type */
  bool is_float;    /* a number key that is a float: f, not i */
  lua_Integer i;
  lua_Number f;
  const char *s;    /* the key string (it is on the stack meanwhile) */
} path_step;

typedef struct packer {
  lua_State *L;
  hakrt_msg *m;
  int seen;              /* stack index: value -> table number or buffer ref */
  lua_Integer ntables;
  int depth;
  int arg;               /* which of the values (1-based) */
  const char *what;      /* "argument", "value", "result" */
  path_step path[MSG_MAX_DEPTH + 1];
} packer;

static void pack_oom(packer *P) {
  luaL_error(P->L, "not enough memory");
}

/* "argument 2" or "argument 2, at [\"a\"][3]". */
static int pack_fail(packer *P, const char *why) {
  luaL_Buffer b;
  int i;
  lua_State *L = P->L;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "%s (%s %d", why, P->what, P->arg);
  luaL_addvalue(&b);
  if (P->depth > 0) luaL_addstring(&b, ", at ");
  for (i = 0; i < P->depth; i++) {
    const path_step *s = &P->path[i];
    if (s->type == LUA_TNUMBER && s->is_float) lua_pushfstring(L, "[%f]", (LUAI_UACNUMBER)s->f);
    else if (s->type == LUA_TNUMBER) lua_pushfstring(L, "[%I]", (LUAI_UACINT)s->i);
    else if (s->type == LUA_TSTRING) lua_pushfstring(L, "[\"%s\"]", s->s);
    else lua_pushliteral(L, "[?]");
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return lua_error(L);
}

static void pack_value(packer *P, int idx);

/* The number seen[v] for the value at idx, 0 if none.  The table is made
** at the first table or buffer: scalars-only messages need none. */
static lua_Integer seen_get(packer *P, int idx) {
  lua_Integer n;
  if (P->seen == 0) {
    luaL_checkstack(P->L, 4, "too many values to send");
    lua_newtable(P->L);
    P->seen = lua_gettop(P->L);
    return 0;
  }
  lua_pushvalue(P->L, idx);
  lua_rawget(P->L, P->seen);
  n = lua_tointeger(P->L, -1);
  lua_pop(P->L, 1);
  return n;
}

static void seen_set(packer *P, int idx, lua_Integer n) {
  if (P->seen == 0) seen_get(P, idx);
  lua_pushvalue(P->L, idx);
  lua_pushinteger(P->L, n);
  lua_rawset(P->L, P->seen);
}

static void pack_table(packer *P, int idx) {
  lua_State *L = P->L;
  lua_Integer n = seen_get(P, idx);
  if (n > 0) {
    if (!msg_tag(P->m, 'r') || !msg_varint(P->m, (uint64_t)n)) pack_oom(P);
    return;
  }
  if (P->depth >= MSG_MAX_DEPTH) pack_fail(P, "tables nested too deeply to send");
  seen_set(P, idx, ++P->ntables);
  if (!msg_tag(P->m, 'T')) pack_oom(P);
  luaL_checkstack(L, 4, "tables nested too deeply to send");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    path_step *s = &P->path[P->depth++];
    s->type = lua_type(L, -2);
    if (s->type == LUA_TNUMBER) {
      s->is_float = !lua_isinteger(L, -2);
      if (s->is_float) s->f = lua_tonumber(L, -2);
      else s->i = lua_tointeger(L, -2);
    }
    else if (s->type == LUA_TSTRING) s->s = lua_tostring(L, -2);
    pack_value(P, lua_absindex(L, -2));
    pack_value(P, lua_absindex(L, -1));
    P->depth--;
    lua_pop(L, 1);
  }
  if (!msg_tag(P->m, 'e')) pack_oom(P);
}

static void pack_userdata(packer *P, int idx) {
  hakrt_chan *c;
  hakrt_buf *b;
  hakrt_task *t;
  int r;
  if ((c = hakrt_chan_test(P->L, idx)) != NULL) {
    if ((r = msg_ref(P->m, HAKRT_REF_CHAN, c, 0)) < 0) pack_oom(P);
    hakrt_chan_retain(c);
    if (!msg_tag(P->m, 'c') || !msg_varint(P->m, (uint64_t)r)) pack_oom(P);
    return;
  }
  if ((t = hakrt_handle_test(P->L, idx)) != NULL) {
    /* a finished task's result lives as long as the task: a handle in it
    ** could be the task's own, a cycle that no count would ever free */
    if (strcmp(P->what, "result") == 0) pack_fail(P, "cannot return a task handle (send it on a channel)");
    if ((r = msg_ref(P->m, HAKRT_REF_TASK, t, 0)) < 0) pack_oom(P);
    hakrt_task_ref(t);
    if (!msg_tag(P->m, 'h') || !msg_varint(P->m, (uint64_t)r)) pack_oom(P);
    return;
  }
  if ((b = hakrt_buf_test(P->L, idx)) != NULL) {
    lua_Integer n = seen_get(P, idx);
    if (n < 0) {
      r = (int)(-n - 1); /* the same buffer again */
    } else {
      if (b->block == NULL) pack_fail(P, "cannot send a buffer that was sent");
      if ((r = msg_ref(P->m, HAKRT_REF_BUF, b->block, b->len)) < 0) pack_oom(P);
      P->m->refs[r].sender_buf = b;
      seen_set(P, idx, -(lua_Integer)r - 1);
    }
    if (!msg_tag(P->m, 'b') || !msg_varint(P->m, (uint64_t)r)) pack_oom(P);
    return;
  }
  pack_fail(P, "cannot send a userdata");
}

static void pack_value(packer *P, int idx) {
  lua_State *L = P->L;
  hakrt_msg *m = P->m;
  bool ok = true;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      ok = msg_tag(m, 'n');
      break;
    case LUA_TBOOLEAN:
      ok = msg_tag(m, lua_toboolean(L, idx) ? 't' : 'f');
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        ok = msg_tag(m, 'i') && msg_put(m, &i, sizeof i);
      } else {
        lua_Number d = lua_tonumber(L, idx);
        ok = msg_tag(m, 'd') && msg_put(m, &d, sizeof d);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      ok = msg_tag(m, 's') && msg_varint(m, len) && msg_put(m, s, len);
      break;
    }
    case LUA_TTABLE:
      pack_table(P, idx);
      break;
    case LUA_TUSERDATA:
      pack_userdata(P, idx);
      break;
    default:
      lua_pushfstring(L, "cannot send a %s", luaL_typename(L, idx));
      pack_fail(P, lua_tostring(L, -1));
  }
  if (!ok) pack_oom(P);
}

hakrt_msg *hakrt_msg_pack(lua_State *L, int first, int n, const char *what) {
  hakrt_task *t = hakrt_task_of(L);
  packer P;  /* an error unwinds past it: it owns nothing */
  hakrt_msg **box;
  int i, top;
  first = lua_absindex(L, first);
  box = box_push(L);
  top = lua_gettop(L);
  if ((*box = msg_new(t->rt)) == NULL) luaL_error(L, "not enough memory");
  P.L = L;
  P.m = *box;
  P.seen = 0;
  P.ntables = 0;
  P.depth = 0;
  P.what = what;
  for (i = 0; i < n; i++) {
    P.arg = i + 1;
    pack_value(&P, first + i);
  }
  P.m->nvalues = n;
  lua_settop(L, top);    /* the seen table, if any; the box stays on top */
  return *box;
}

bool hakrt_msg_bufs_intact(const hakrt_msg *m) {
  unsigned i;
  for (i = 0; i < m->nrefs; i++) {
    const hakrt_ref *r = &m->refs[i];
    if (r->kind == HAKRT_REF_BUF && !r->owned &&
        ((hakrt_buf *)r->sender_buf)->block != (unsigned char *)AO_load(&r->ptr))
      return false;
  }
  return true;
}

void hakrt_msg_commit(hakrt_msg *m, lua_State *sender) {
  hakrt_task *t = hakrt_task_of(sender);
  unsigned i;
  for (i = 0; i < m->nrefs; i++) {
    hakrt_ref *r = &m->refs[i];
    if (r->kind != HAKRT_REF_BUF || r->owned) continue;
    {
      hakrt_buf *b = (hakrt_buf *)r->sender_buf;
      hakrt_task_uncharge(t, b->len);
      b->block = NULL;
      b->len = 0;
    }
    r->owned = true;
    r->sender_buf = NULL;
  }
}

/* ------------------------------------------------------------------------
** Unpacking into a state.
** --------------------------------------------------------------------- */

typedef struct unpacker {
  lua_State *L;
  const hakrt_msg *m;
  size_t pos;
  int memo;              /* stack index: [k] = k-th table, [-r-1] = buffer r */
  lua_Integer ntables;
} unpacker;

/* The message was made by hakrt_msg_pack: a short read is a bug. */
static void unpack_corrupt(unpacker *U) {
  luaL_error(U->L, "hakrt: corrupt message at byte %d", (int)U->pos);
}

static unsigned char unpack_byte(unpacker *U) {
  if (U->pos >= U->m->len) unpack_corrupt(U);
  return U->m->data[U->pos++];
}

static void unpack_bytes(unpacker *U, void *out, size_t n) {
  if (U->m->len - U->pos < n) unpack_corrupt(U);
  memcpy(out, U->m->data + U->pos, n);
  U->pos += n;
}

static uint64_t unpack_varint(unpacker *U) {
  uint64_t v = 0;
  int shift = 0;
  unsigned char b;
  do {
    b = unpack_byte(U);
    if (shift > 63) unpack_corrupt(U);
    v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  return v;
}

static void unpack_value(unpacker *U, unsigned char tag);

/* The memo table is only needed for tables and buffers: made on demand,
** in the slot reserved for it below the values. */
static int unpack_memo(unpacker *U) {
  if (lua_type(U->L, U->memo) != LUA_TTABLE) {
    lua_newtable(U->L);
    lua_replace(U->L, U->memo);
  }
  return U->memo;
}

static void unpack_table(unpacker *U) {
  lua_State *L = U->L;
  unsigned char tag;
  luaL_checkstack(L, 4, "message nested too deeply");
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawseti(L, unpack_memo(U), ++U->ntables);
  while ((tag = unpack_byte(U)) != 'e') {
    unpack_value(U, tag);
    unpack_value(U, unpack_byte(U));
    lua_rawset(L, -3);
  }
}

static void unpack_value(unpacker *U, unsigned char tag) {
  lua_State *L = U->L;
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'i': {
      lua_Integer i;
      unpack_bytes(U, &i, sizeof i);
      lua_pushinteger(L, i);
      break;
    }
    case 'd': {
      lua_Number d;
      unpack_bytes(U, &d, sizeof d);
      lua_pushnumber(L, d);
      break;
    }
    case 's': {
      uint64_t n = unpack_varint(U);
      if (U->m->len - U->pos < n) unpack_corrupt(U);
      lua_pushlstring(L, (const char *)U->m->data + U->pos, (size_t)n);
      U->pos += (size_t)n;
      break;
    }
    case 'T': unpack_table(U); break;
    case 'r': {
      uint64_t k = unpack_varint(U);
      if (k == 0 || k > (uint64_t)U->ntables) unpack_corrupt(U);
      lua_rawgeti(L, unpack_memo(U), (lua_Integer)k);
      break;
    }
    case 'c': {
      uint64_t r = unpack_varint(U);
      if (r >= U->m->nrefs || U->m->refs[r].kind != HAKRT_REF_CHAN) unpack_corrupt(U);
      hakrt_chan_push(L, (hakrt_chan *)AO_load(&U->m->refs[r].ptr));
      break;
    }
    case 'h': {
      uint64_t r = unpack_varint(U);
      if (r >= U->m->nrefs || U->m->refs[r].kind != HAKRT_REF_TASK) unpack_corrupt(U);
      hakrt_handle_push(L, (hakrt_task *)AO_load(&U->m->refs[r].ptr));
      break;
    }
    case 'b': {
      uint64_t r = unpack_varint(U);
      lua_Integer key = -(lua_Integer)r - 1;
      if (r >= U->m->nrefs || U->m->refs[r].kind != HAKRT_REF_BUF) unpack_corrupt(U);
      if (lua_rawgeti(L, unpack_memo(U), key) == LUA_TNIL) {
        /* Empty until the whole message is decoded: an error half-way
        ** must leave every block in the message. */
        lua_pop(L, 1);
        hakrt_buf_push(L, NULL, 0);
        lua_pushvalue(L, -1);
        lua_rawseti(L, U->memo, key);
      }
      break;
    }
    default:
      unpack_corrupt(U);
  }
}

/* Every buffer of the decoded message takes its block, if still there. */
static void unpack_take_buffers(unpacker *U) {
  lua_State *L = U->L;
  hakrt_task *t = hakrt_task_of(L);
  unsigned i;
  if (lua_type(L, U->memo) != LUA_TTABLE) return; /* no buffer in it */
  for (i = 0; i < U->m->nrefs; i++) {
    hakrt_ref *r = &U->m->refs[i];
    void *p;
    if (r->kind != HAKRT_REF_BUF) continue;
    if (lua_rawgeti(L, U->memo, -(lua_Integer)i - 1) == LUA_TUSERDATA &&
        (p = (void *)AO_load(&r->ptr)) != NULL && AO_compare_and_swap_full(&r->ptr, (AO_t)p, 0)) {
      hakrt_buf *b = hakrt_buf_test(L, -1);
      b->block = (unsigned char *)p;
      b->len = r->len;
      hakrt_task_charge(t, r->len, false);
    }
    lua_pop(L, 1);
  }
}

int hakrt_msg_unpack(lua_State *L, hakrt_msg *m) {
  unpacker U;
  int i, base;
  luaL_checkstack(L, m->nvalues + 8, "too many values in a message");
  lua_pushnil(L); /* the memo's slot */
  U.L = L;
  U.m = m;
  U.pos = 0;
  U.memo = lua_gettop(L);
  U.ntables = 0;
  base = U.memo;
  for (i = 0; i < m->nvalues; i++) unpack_value(&U, unpack_byte(&U));
  unpack_take_buffers(&U);
  lua_remove(L, base);
  return m->nvalues;
}
