/*
** core.c -- a host that defines names.h's names and links libhakmem.a.
** It builds only if none of libhakmem.a's symbols clashes with its own;
** it passes if hakmem works in it and the host's names keep their values.
*/
#include <stdio.h>
#include <string.h>

#include "hakmem.h"
#include "names.h"

int main(void) {
  int bad = embed_names_check();
  /* a small, a medium, a large and a huge block: every path of the core */
  static const size_t sizes[] = {40, 3000, 100000, 5u << 20};
  void *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = hak_malloc(sizes[i]);
    if (!p[i] || !hak_owns(p[i])) {
      fprintf(stderr, "not ok: hak_malloc(%zu) = %p\n", sizes[i], p[i]);
      return 1;
    }
    memset(p[i], i + 1, sizes[i]);
  }
  hak_stats_t s;
  hak_stats_get(&s);
  if (s.in_use < 5u << 20) {
    fprintf(stderr, "not ok: in_use %zu with 5 MiB live\n", s.in_use);
    bad = 1;
  }
  for (int i = 0; i < 4; i++) hak_free(p[i]);
  hak_collect(true);
  hak_stats_get(&s);
  if (s.in_use != 0) {
    fprintf(stderr, "not ok: in_use %zu after freeing everything\n", s.in_use);
    bad = 1;
  }
  bad |= embed_names_check();
  printf("%s: libhakmem.a in a host defining %d names of its own (stats, page_init, ...)\n", bad ? "not ok" : "ok",
         embed_names_count());
  return bad;
}
