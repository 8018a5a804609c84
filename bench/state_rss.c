/*
** state_rss.c -- what one small Lua state costs in resident memory.
**
**   state_rss libc|shared|private [states]     (default 1000 states)
**
** Creates `states` states, each with the standard libraries and 50 small
** tables (about 32 KiB of Lua data), keeps them all alive, and prints the
** growth of the process's resident set divided by the number of states:
**   libc      luaL_newstate: Lua's l_alloc, so glibc malloc, or a peer
**             loaded with LD_PRELOAD
**   shared    hakl_newstate on the thread's heap: the states share pages
**   private   hakl_newstate with a private heap each: every size class a
**             state uses costs it at least one OS page
** A server that runs thousands of small states reads it as the price of
** each; one process per mode, so the modes do not reuse each other's
** memory.  Links with the glue, the core and liblua5.4.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "hakl.h"

static const char *script =
  "local t = {}\n"
  "for i = 1, 50 do t[i] = {x = i, s = 'k' .. i} end\n"
  "keep = t\n";

/* VmRSS of this process in KiB, or -1. */
static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  fclose(f);
  return kib;
}

static void usage(const char *why) {
  fprintf(stderr, "state_rss: %s\nusage: state_rss libc|shared|private [states >= 1]\n", why);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 2) usage("no mode");
  const char *mode = argv[1];
  bool libc = strcmp(mode, "libc") == 0, priv = strcmp(mode, "private") == 0;
  if (!libc && !priv && strcmp(mode, "shared") != 0) usage("unknown mode");
  long n = argc > 2 ? atol(argv[2]) : 1000;
  if (n < 1) usage("states must be at least 1");
  lua_State **states = calloc((size_t)n, sizeof *states);
  if (states == NULL) usage("out of memory");
  long before = rss_kib();
  for (long i = 0; i < n; i++) {
    hakl_config cfg = {.limit = 0, .private_heap = priv};
    lua_State *L = libc ? luaL_newstate() : hakl_newstate(&cfg);
    if (L == NULL) usage("cannot create a state");
    luaL_openlibs(L);
    if (luaL_dostring(L, script) != LUA_OK) {
      fprintf(stderr, "state_rss: %s\n", lua_tostring(L, -1));
      return 1;
    }
    states[i] = L;
  }
  long after = rss_kib();
  int lua_kib = lua_gc(states[0], LUA_GCCOUNT);
  printf("{\"bench\":\"state_rss\",\"mode\":\"%s\",\"states\":%ld,\"rss_kib_per_state\":%.1f,"
         "\"lua_kib_per_state\":%d}\n",
         mode, n, (double)(after - before) / (double)n, lua_kib);
  for (long i = 0; i < n; i++) {
    if (libc) lua_close(states[i]);
    else hakl_close(states[i], NULL);
  }
  free(states);
  return 0;
}
