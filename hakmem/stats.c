/*
** stats.c -- process-wide counters and their report.
**
** The counters change on slow paths only (a mapping, a page, a purge), so
** they can be exact atomics without costing the fast paths anything.  Bytes
** in live blocks are not counted as they change: hak_stats_get walks the
** pages instead (segment_stats_walk).
*/
#include "internal.h"

stats_global_t stats;

void stats_committed(intptr_t delta) {
  uintptr_t now = atomic_add(&stats.committed, delta) + (uintptr_t)delta;
  if (delta > 0) atomic_max(&stats.committed_peak, now);
}

void hak_stats_get(hak_stats_t *out) {
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
  segment_stats_walk(out);
}

static void stats_bytes(FILE *out, const char *name, size_t n) {
  const char *unit = "B";
  double v = (double)n;
  if (n >= (1u << 30)) v /= (double)(1u << 30), unit = "GiB";
  else if (n >= (1u << 20)) v /= (double)(1u << 20), unit = "MiB";
  else if (n >= (1u << 10)) v /= 1024.0, unit = "KiB";
  fprintf(out, "  %-16s %10.1f %-3s (%zu)\n", name, v, unit, n);
}

void hak_stats_print(FILE *out) {
  hak_stats_t s;
  hak_stats_get(&s);
  fprintf(out, "hakmem stats:\n");
  stats_bytes(out, "in use", s.in_use);
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
}
