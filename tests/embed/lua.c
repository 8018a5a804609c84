/*
** lua.c -- a host that defines names.h's names and links libhakmem_lua.a,
** libhakmem.a and Lua: it builds only if no symbol clashes, and passes if
** a state on hakmem runs a script and the host's names keep their values.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

#include "hakl.h"
#include "names.h"

static const char script[] =
    "local t = {} for i = 1, 10000 do t[i] = tostring(i) .. 'x' end\n"
    "assert(#t == 10000 and t[5000] == '5000x')\n"
    "local h = require 'hakmem'\n"
    "assert(type(h) == 'table')\n";

int main(void) {
  int bad = embed_names_check();
  hakl_config cfg = {.limit = 64 << 20, .private_heap = true};
  lua_State *L = hakl_newstate(&cfg);
  if (!L) {
    fprintf(stderr, "not ok: hakl_newstate failed\n");
    return 1;
  }
  luaL_openlibs(L);
  luaL_requiref(L, "hakmem", luaopen_hakmem, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, script) != LUA_OK) {
    fprintf(stderr, "not ok: %s\n", lua_tostring(L, -1));
    bad = 1;
  }
  hakl_close(L, NULL);
  bad |= embed_names_check();
  printf("%s: libhakmem_lua.a in a host defining %d names of its own (stats, page_init, ...)\n", bad ? "not ok" : "ok",
         embed_names_count());
  return bad;
}
