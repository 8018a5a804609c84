/*
** stats.c -- process-wide counters and their report.
**
** The counters change on slow paths only (a mapping, a page, a purge), so
** they can be exact atomics without costing the fast paths anything.  Bytes
** in live blocks are not counted as they change: hak_stats_get walks the
** pages instead (segment_stats_walk).
*/
#include <string.h>

#include "internal.h"

stats_global_t stats;

void stats_committed(intptr_t delta) {
  uintptr_t now = atomic_add(&stats.committed, delta) + (uintptr_t)delta;
  if (delta > 0) atomic_max(&stats.committed_peak, now);
}

void hak_stats_counters(hak_stats_t *out) {
  memset(out, 0, sizeof *out);
  out->mapped = atomic_load_relaxed(&stats.mapped);
  out->committed = atomic_load_relaxed(&stats.committed);
  out->committed_peak = atomic_load_relaxed(&stats.committed_peak);
  out->segments = atomic_load_relaxed(&stats.segments);
  out->pages = atomic_load_relaxed(&stats.pages);
  out->huge_blocks = atomic_load_relaxed(&stats.huge_blocks);
  out->purged = atomic_load_relaxed(&stats.purged);
  out->mmap_calls = atomic_load_relaxed(&stats.mmap_calls);
  out->threads = atomic_load_relaxed(&stats.threads);
  out->abandoned = atomic_load_relaxed(&stats.abandoned);
}

void hak_stats_get(hak_stats_t *out) {
  hak_stats_counters(out);
  segment_stats_walk(out, NULL);
}

static void stats_bytes(FILE *out, const char *name, size_t n) {
  const char *unit = "B";
  double v = (double)n;
  if (n >= (1u << 30)) v /= (double)(1u << 30), unit = "GiB";
  else if (n >= (1u << 20)) v /= (double)(1u << 20), unit = "MiB";
  else if (n >= (1u << 10)) v /= 1024.0, unit = "KiB";
  fprintf(out, "  %-16s %10.1f %-3s (%zu)\n", name, v, unit, n);
}

/* Live pages by class: where the memory is, and how full its pages are. */
static void stats_print_classes(FILE *out, const stats_class_t *per_class) {
  fprintf(out, "  %-8s %8s %10s %12s %6s\n", "class", "pages", "blocks", "bytes", "full");
  for (unsigned c = 0; c < HAK_QUEUES; c++) {
    const stats_class_t *k = &per_class[c];
    if (k->pages == 0) continue;
    char name[16];
    if (c < HAK_CLASS_TWIN_FIRST) snprintf(name, sizeof name, "%u", (unsigned)class_size[c]);
    else if (c < HAK_CLASSES) snprintf(name, sizeof name, "%u al", (unsigned)class_size[c]);
    else snprintf(name, sizeof name, "large");
    fprintf(out, "  %-8s %8zu %10zu %12zu %5.0f%%\n", name, k->pages, k->blocks, k->bytes,
            k->capacity ? 100.0 * (double)k->bytes / (double)k->capacity : 0.0);
  }
}

void hak_stats_print(FILE *out) {
  hak_stats_t s;
  static stats_class_t per_class[HAK_QUEUES]; /* not on the stack: it may be small */
  memset(per_class, 0, sizeof per_class);
  hak_stats_counters(&s);
  segment_stats_walk(&s, per_class); /* in_use and the rest, with the classes: one walk */
  fprintf(out, "hakmem stats:\n");
  stats_bytes(out, "in use", s.in_use);
  stats_bytes(out, "remote pending", s.remote_pending);
  stats_bytes(out, "free in pages", s.free_in_pages);
  stats_bytes(out, "kept for reuse", s.kept_for_reuse);
  stats_bytes(out, "committed", s.committed);
  stats_bytes(out, "committed peak", s.committed_peak);
  stats_bytes(out, "mapped", s.mapped);
  stats_bytes(out, "purged (total)", s.purged);
  fprintf(out, "  %-16s %10zu\n", "segments", s.segments);
  fprintf(out, "  %-16s %10zu\n", "pages", s.pages);
  fprintf(out, "  %-16s %10zu\n", "huge blocks", s.huge_blocks);
  fprintf(out, "  %-16s %10zu\n", "mmap calls", s.mmap_calls);
  fprintf(out, "  %-16s %10zu\n", "threads", s.threads);
  fprintf(out, "  %-16s %10zu\n", "abandoned segs", s.abandoned);
  stats_print_classes(out, per_class);
}
