/*
** buffer.c -- byte buffers that travel without a copy.
**
** A buffer's bytes are one block of the runtime's allocator (hakmem, or
** libc), charged to the account of the state that holds the handle.  When
** it is sent, the block moves into the message and the sender's handle is
** emptied; the receiver's handle frees it when it is collected, on
** whichever worker runs the receiver: a remote free by construction.
*/
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

#define BUF_MT "hakrt.buffer"

hakrt_buf *hakrt_buf_test(lua_State *L, int idx) {
  return (hakrt_buf *)luaL_testudata(L, idx, BUF_MT);
}

hakrt_buf *hakrt_buf_push(lua_State *L, unsigned char *block, size_t len) {
  hakrt_buf *b = (hakrt_buf *)lua_newuserdatauv(L, sizeof *b, 0);
  b->block = block;
  b->len = len;
  luaL_setmetatable(L, BUF_MT);
  return b;
}

/* The handle at idx, with its bytes (a sent one raises an error). */
static hakrt_buf *buf_check(lua_State *L, int idx) {
  hakrt_buf *b = (hakrt_buf *)luaL_checkudata(L, idx, BUF_MT);
  if (b->block == NULL)
    luaL_error(L, "buffer was sent: its bytes belong to the receiver");
  return b;
}

/* rt.buffer(n) (n zero bytes) or rt.buffer(s) (a copy of s). */
int hakrt_buf_new(lua_State *L) {
  hakrt_task *t = hakrt_task_of(L);
  size_t len;
  const char *s = NULL;
  unsigned char *block;
  if (lua_type(L, 1) == LUA_TSTRING) {
    s = lua_tolstring(L, 1, &len);
  } else {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && (lua_Unsigned)n < ((size_t)1 << 40), 1, "size out of range");
    len = (size_t)n;
  }
  luaL_argcheck(L, len > 0, 1, "a buffer holds at least one byte");
  hakrt_lib_check_running(L, "buffer");
  if (!hakrt_task_charge(t, len, true)) return luaL_error(L, "not enough memory");
  block = (unsigned char *)hakrt_mem_alloc(t->rt, len);
  if (block == NULL) {
    hakrt_task_uncharge(t, len);
    return luaL_error(L, "not enough memory");
  }
  if (s != NULL) memcpy(block, s, len);
  else memset(block, 0, len);
  hakrt_buf_push(L, block, len);
  return 1;
}

static int buf_gc(lua_State *L) {
  hakrt_buf *b = (hakrt_buf *)luaL_checkudata(L, 1, BUF_MT);
  if (b->block != NULL) {
    hakrt_task *t = hakrt_task_of(L);
    hakrt_mem_free(t->rt, b->block);
    hakrt_task_uncharge(t, b->len);
  }
  b->block = NULL;
  b->len = 0;
  return 0;
}

static int buf_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)buf_check(L, 1)->len);
  return 1;
}

/* string.sub's rules (lstrlib.c posrelatI and getendpos): a start
** position of 0 or below -len is 1; an end position above len is len,
** below -len is 0 (an empty result).  len < 2^40, so -len and len + pos + 1
** cannot overflow whatever pos is (math.mininteger included). */
static size_t buf_start(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0 || pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static size_t buf_end(lua_Integer pos, size_t len) {
  if (pos > (lua_Integer)len) return len;
  if (pos >= 0) return (size_t)pos;
  if (pos < -(lua_Integer)len) return 0;
  return len + (size_t)pos + 1;
}

/* b:sub([i [, j]]): like string.sub on the buffer's bytes. */
static int buf_sub(lua_State *L) {
  hakrt_buf *b = buf_check(L, 1);
  size_t i = buf_start(luaL_optinteger(L, 2, 1), b->len);
  size_t j = buf_end(luaL_optinteger(L, 3, -1), b->len);
  if (i > j) lua_pushliteral(L, "");
  else lua_pushlstring(L, (const char *)b->block + i - 1, j - i + 1);
  return 1;
}

/* b:set(i, s): the bytes of s at position i (1-based); they must fit. */
static int buf_set(lua_State *L) {
  hakrt_buf *b = buf_check(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  size_t n;
  const char *s = luaL_checklstring(L, 3, &n);
  luaL_argcheck(L, i >= 1 && (lua_Unsigned)i <= b->len, 2, "position out of range");
  luaL_argcheck(L, n <= b->len - (size_t)(i - 1), 3, "does not fit in the buffer");
  memcpy(b->block + i - 1, s, n);
  lua_settop(L, 1);
  return 1;
}

static int buf_tostring(lua_State *L) {
  hakrt_buf *b = buf_check(L, 1);
  lua_pushlstring(L, (const char *)b->block, b->len);
  return 1;
}

/* b:sent(): true once the bytes went to another task. */
static int buf_sent(lua_State *L) {
  hakrt_buf *b = (hakrt_buf *)luaL_checkudata(L, 1, BUF_MT);
  lua_pushboolean(L, b->block == NULL);
  return 1;
}

void hakrt_buf_open_lib(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"sub", buf_sub}, {"set", buf_set}, {"sent", buf_sent}, {NULL, NULL}};
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, buf_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, buf_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
