/*
** close_bench.c -- how long closing a Lua state with a large heap takes.
**
**   close_bench [objects] [rounds]      (defaults: 1000000 objects, 5 rounds)
**
** A state is filled with `objects` collectable objects (half tables, half
** strings, each table holding one string; plus the tables' array parts),
** then closed, and only the close is timed:
**   libc          luaL_newstate + lua_close: Lua's l_alloc (realloc/free),
**                 so glibc malloc, or a peer loaded with LD_PRELOAD
**   hakmem        hakl_newstate on the thread's heap + hakl_close: the
**                 finalizers run, the sweep is skipped, the region's chunks
**                 and the set of the larger blocks are freed
**   hakmem-fast   hakl_newstate with a private heap + hakl_close: the
**                 finalizers run, the sweep frees nothing, the heap goes
**                 at once
** The modes are interleaved round by round; the median and the range of
** each are printed.  Links with the glue, the core and liblua5.4.
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hakl.h"

enum { MODE_LIBC, MODE_HAKMEM, MODE_FAST, NMODES };
static const char *const mode_names[NMODES] = {"libc", "hakmem", "hakmem-fast"};

#define MAX_ROUNDS 101

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *fill =
  "local n = ...\n"
  "keep = {}\n"
  "for i = 1, n // 2 do keep[i] = {'s' .. i} end\n"
  "local live = 0\n"
  "for _, t in ipairs(keep) do live = live + #t[1] end\n"
  "return live\n";

static lua_State *make_state(int mode) {
  hakl_config cfg = {.limit = 0, .private_heap = mode == MODE_FAST};
  lua_State *L = (mode == MODE_LIBC) ? luaL_newstate() : hakl_newstate(&cfg);
  if (L == NULL) {
    fprintf(stderr, "close_bench: cannot create a state\n");
    exit(1);
  }
  luaL_openlibs(L);
  return L;
}

/* Builds the heap, returns the milliseconds the close took. */
static double one_round(int mode, long objects) {
  lua_State *L = make_state(mode);
  double t0;
  if (luaL_loadstring(L, fill) != LUA_OK) {
    fprintf(stderr, "close_bench: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_pushinteger(L, objects);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "close_bench: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_pop(L, 1);
  t0 = now_ms();
  if (mode == MODE_LIBC) lua_close(L);
  else hakl_close(L, NULL);
  return now_ms() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  long objects = argc > 1 ? atol(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  static double ms[NMODES][MAX_ROUNDS];
  int r, m;
  if (objects < 2 || rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "usage: close_bench [objects >= 2] [rounds 1..%d]\n", MAX_ROUNDS);
    return 1;
  }
  one_round(MODE_LIBC, objects / 10); /* warm up both allocators */
  one_round(MODE_FAST, objects / 10);
  for (r = 0; r < rounds; r++)
    for (m = 0; m < NMODES; m++) ms[m][r] = one_round(m, objects);
  printf("closing a state with %ld objects, %d rounds (median [min, max] ms):\n", objects,
         rounds);
  for (m = 0; m < NMODES; m++) {
    qsort(ms[m], (size_t)rounds, sizeof ms[m][0], cmp_double);
    printf("  %-12s %9.2f  [%.2f, %.2f]\n", mode_names[m], ms[m][rounds / 2], ms[m][0],
           ms[m][rounds - 1]);
  }
  printf("  libc / hakmem-fast: %.1fx;  hakmem / hakmem-fast: %.1fx\n",
         ms[MODE_LIBC][rounds / 2] / ms[MODE_FAST][rounds / 2],
         ms[MODE_HAKMEM][rounds / 2] / ms[MODE_FAST][rounds / 2]);
  return 0;
}
