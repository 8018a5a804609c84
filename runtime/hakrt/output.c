/*
** output.c -- print and io.write in tasks: whole lines, never interleaved.
**
** Each task collects its output until a newline and writes every complete
** line at once under the runtime's output lock; what is left (a partial
** line) goes out when the task ends, or when it grows past OUT_FLUSH.
** io.write keeps its own behaviour when io.output() is not stdout.
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

#define OUT_FLUSH 65536

static void out_write(hakrt *rt, FILE *f, const char *s, size_t n) {
  pthread_mutex_lock(&rt->out_lock);
  fwrite(s, 1, n, f);
  fflush(f);
  pthread_mutex_unlock(&rt->out_lock);
}

void hakrt_output_error(hakrt *rt, const char *text) {
  pthread_mutex_lock(&rt->out_lock);
  fputs(text, rt->cfg.err);
  fputc('\n', rt->cfg.err);
  fflush(rt->cfg.err);
  pthread_mutex_unlock(&rt->out_lock);
}

/* Writes the complete lines of t's buffer (all of it when `all`). */
static void out_lines(hakrt_task *t, bool all) {
  size_t n = t->olen;
  if (!all && n < OUT_FLUSH) {
    while (n > 0 && t->obuf[n - 1] != '\n') n--;
  }
  if (n == 0) return;
  out_write(t->rt, t->rt->cfg.out, t->obuf, n);
  memmove(t->obuf, t->obuf + n, t->olen - n);
  t->olen -= n;
}

static void out_add(hakrt_task *t, const char *s, size_t n) {
  if (t->ocap - t->olen < n) {
    size_t cap = t->ocap ? t->ocap : 256;
    char *b;
    while (cap - t->olen < n) cap *= 2;
    b = (char *)hakrt_mem_realloc(t->rt, t->obuf, cap);
    if (b == NULL) { /* no room: write what there is, then this, as they are */
      out_lines(t, true);
      out_write(t->rt, t->rt->cfg.out, s, n);
      return;
    }
    t->obuf = b;
    t->ocap = cap;
  }
  memcpy(t->obuf + t->olen, s, n);
  t->olen += n;
}

void hakrt_output_flush(hakrt_task *t) {
  if (t->olen > 0) out_lines(t, true);
}

/* print(...), as the base library's. */
static int out_print(lua_State *L) {
  hakrt_task *t = hakrt_task_of(L);
  int i, n = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    if (i > 1) out_add(t, "\t", 1);
    out_add(t, s, len);
    lua_pop(L, 1);
  }
  out_add(t, "\n", 1);
  out_lines(t, false);
  return 0;
}

/* io.write(...); upvalues: the library's io.write, io.output, io.stdout. */
static int out_iowrite(lua_State *L) {
  hakrt_task *t = hakrt_task_of(L);
  int i, n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 0, 1);
  if (!lua_rawequal(L, -1, lua_upvalueindex(3))) {
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
  }
  lua_pop(L, 1);
  for (i = 1; i <= n; i++) {
    char num[64];
    size_t len;
    const char *s;
    if (lua_type(L, i) == LUA_TNUMBER) {
      /* liolib's formats, not tostring's: 1.0 is written "1" */
      len = (size_t)(lua_isinteger(L, i)
                         ? snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, i))
                         : snprintf(num, sizeof num, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, i)));
      s = num;
    } else {
      s = luaL_checklstring(L, i, &len);
    }
    out_add(t, s, len);
  }
  out_lines(t, false);
  lua_pushvalue(L, lua_upvalueindex(3));
  return 1;
}

void hakrt_output_open(lua_State *L) {
  lua_pushcfunction(L, out_print);
  lua_setglobal(L, "print");
  lua_getglobal(L, "io");
  lua_getfield(L, -1, "write");
  lua_getfield(L, -2, "output");
  lua_getfield(L, -3, "stdout");
  lua_pushcclosure(L, out_iowrite, 3);
  lua_setfield(L, -2, "write");
  lua_pop(L, 1);
}
