/*
** hklua_threads.c -- hklua --threads=T [--tasks=N] script args: the script
** runs as N independent tasks (one lua_State each) of a hakrt runtime with
** T worker threads; its tasks may spawn more (require "hakrt").
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hakmem.h"
#include "hakrt.h"
#include "hklua_threads.h"

int hklua_threads_main(const hklua_threads_opts *o, const char *progname, const char *script,
                       int argc, const char *const *argv) {
  hakrt_config cfg;
  hakrt *rt;
  int i, r, status = 0;
  hakrt_config_init(&cfg);
  cfg.workers = o->threads;
  cfg.task_mem_limit = o->task_mem_limit;
  cfg.libc = o->libc;
  cfg.private_heaps = o->private_heaps;
  cfg.generational = o->generational;
  if (o->slice_ms >= 0) cfg.slice_ms = (unsigned)o->slice_ms;
  if ((rt = hakrt_new(&cfg)) == NULL) {
    fprintf(stderr, "%s: cannot start the runtime: %s\n", progname, strerror(errno));
    return 1;
  }
  for (i = 0; i < o->tasks; i++) {
    if (hakrt_spawn_file(rt, script, argc, argv, NULL) == 0) {
      fprintf(stderr, "%s: cannot spawn task %d: %s\n", progname, i + 1, strerror(errno));
      status = 1;
      break;
    }
  }
  r = hakrt_wait(rt);
  if (r == HAKRT_DEADLOCK || r > 0) status = 1;
  if (o->stats != 0) hakrt_write_stats_json(rt, stderr);
  hakrt_free(rt);
  if (o->stats != 0 && !o->libc) {
    hak_stats_t h;
    hak_stats_get(&h);
    fprintf(stderr, "{\"after_close\":{\"hakmem_in_use\":%zu,\"committed\":%zu}}\n", h.in_use,
            h.committed);
  }
  fflush(stdout);
  return status;
}
