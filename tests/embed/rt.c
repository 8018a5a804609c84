/*
** rt.c -- a host that defines names.h's names and links libhakrt.a, the
** glue, the core and Lua: it builds only if no symbol clashes, and passes
** if the runtime runs two tasks and the host's names keep their values.
*/
#include <stdio.h>

#include "hakrt.h"
#include "names.h"

static const char task[] =
    "local s = 0 for i = 1, 1000 do s = s + #tostring(i) end\n"
    "assert(s == 2893)\n";

int main(void) {
  int bad = embed_names_check();
  hakrt_config cfg;
  hakrt_config_init(&cfg);
  cfg.workers = 2;
  hakrt *rt = hakrt_new(&cfg);
  if (!rt) {
    fprintf(stderr, "not ok: hakrt_new failed\n");
    return 1;
  }
  for (int i = 0; i < 2; i++)
    if (hakrt_spawn_source(rt, task, "=task", 0, NULL, NULL) == 0) {
      fprintf(stderr, "not ok: hakrt_spawn_source failed\n");
      bad = 1;
    }
  int failed = hakrt_wait(rt);
  if (failed != 0) {
    fprintf(stderr, "not ok: hakrt_wait = %d\n", failed);
    bad = 1;
  }
  hakrt_free(rt);
  bad |= embed_names_check();
  printf("%s: libhakrt.a in a host defining %d names of its own (stats, page_init, ...)\n", bad ? "not ok" : "ok",
         embed_names_count());
  return bad;
}
