/*
** hakl_core.c -- the set of a state's blocks above its region
** (hakl_core.h).
*/
#include <stdint.h>
#include <string.h>

#include "hakl_core.h"

#define CORE_FIRST 8 /* slots of a new set: 64 bytes, for a small state's few */

/* Fibonacci hashing of the address, blocks being at least 16-aligned. */
static size_t core_slot(const hakl_ctx *c, uintptr_t p) {
  return (size_t)(((p >> 4) * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & c->core_mask;
}

static void core_put(hakl_ctx *c, uintptr_t p) {
  size_t i = core_slot(c, p);
  while (c->core[i] != 0) i = (i + 1) & c->core_mask;
  c->core[i] = p;
  c->core_count++;
}

/* Twice the slots (CORE_FIRST for the first block), every address put
** again; false without memory. */
static bool core_grow(hakl_ctx *c) {
  size_t old = c->core != NULL ? c->core_mask + 1 : 0, slots = old ? old * 2 : CORE_FIRST;
  uintptr_t *was = c->core;
  uintptr_t *now = (uintptr_t *)hak_calloc(slots, sizeof *now);
  if (now == NULL) return false;
  c->core = now;
  c->core_mask = slots - 1;
  c->core_count = 0;
  for (size_t i = 0; i < old; i++)
    if (was[i] != 0) core_put(c, was[i]);
  if (was != NULL) hak_free(was);
  return true;
}

/* The table comes with the first block: most small states have none. */
void hakl_core_start(hakl_ctx *c) {
  c->core_on = true;
  c->core = NULL;
  c->core_mask = 0;
  c->core_count = 0;
  c->core_lost = false;
}

void hakl_core_add(hakl_ctx *c, void *p) {
  if (!c->core_on || c->core_lost) return;
  if ((c->core == NULL || (c->core_count + 1) * 2 > c->core_mask + 1) && !core_grow(c)) {
    c->core_lost = true;
    return;
  }
  core_put(c, (uintptr_t)p);
}

/* Removes p, then moves back the entries after it that its slot let past
** their own (deletion without tombstones). */
void hakl_core_remove(hakl_ctx *c, void *p) {
  if (c->core == NULL) return;
  size_t i = core_slot(c, (uintptr_t)p);
  while (c->core[i] != (uintptr_t)p) {
    if (c->core[i] == 0) return; /* not there: it was lost (core_lost) */
    i = (i + 1) & c->core_mask;
  }
  c->core[i] = 0;
  c->core_count--;
  for (size_t j = (i + 1) & c->core_mask; c->core[j] != 0; j = (j + 1) & c->core_mask) {
    size_t home = core_slot(c, c->core[j]);
    /* j's entry may move to the hole i unless its home lies in (i, j] */
    if (((j - home) & c->core_mask) >= ((j - i) & c->core_mask)) {
      c->core[i] = c->core[j];
      c->core[j] = 0;
      i = j;
    }
  }
}

/*
** a[0 .. n-1] ordered by their 64 KiB slice (bits 16 up, above the
** lowest): a radix sort, SORT_BITS of the slice number per pass, between a
** and tmp; returns whichever holds the result.  Why: the set's order is
** its hash's, so consecutive frees land on random pages; a remote batch
** (the collector's close) chains the frees of each page for one CAS, and
** its table holds 128 pages at a time.  In slice order the frees of a page
** come together (bench/runtime close.lua with 2 KB strings, T = 2: 35 CAS
** per 1000 frees, against 961 in hash order).  11 bits: a state within
** 128 MiB of address space sorts in one pass (8-bit digits took two for
** close.lua's 40 MB, and a copy back after each: 46% of its close's
** instructions, callgrind).
*/
#define SORT_BITS 11

static uintptr_t *core_sort_by_slice(uintptr_t *a, uintptr_t *tmp, size_t n) {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (size_t i = 0; i < n; i++) {
    if (a[i] < lo) lo = a[i];
    if (a[i] > hi) hi = a[i];
  }
  uintptr_t range = (hi - lo) >> 16;
  for (unsigned shift = 0; (range >> shift) != 0; shift += SORT_BITS) {
    uint32_t count[(1u << SORT_BITS) + 1] = {0};
    const uintptr_t digit = ((uintptr_t)1 << SORT_BITS) - 1;
    for (size_t i = 0; i < n; i++) count[(((a[i] - lo) >> 16 >> shift) & digit) + 1]++;
    for (size_t d = 1; d <= digit + 1; d++) count[d] += count[d - 1];
    for (size_t i = 0; i < n; i++) tmp[count[((a[i] - lo) >> 16 >> shift) & digit]++] = a[i];
    uintptr_t *t = a;
    a = tmp;
    tmp = t;
  }
  return a;
}

/* How many frees ahead a block's first line is fetched: a free writes its
** link there, and these blocks were last written long ago, often by
** another core.  bench/runtime close.lua 16 20000 2000 (T = 2, closed on
** the collector), CPU ms per state, medians of 7: batched 0.638 -> 0.548,
** unbatched 0.614 -> 0.561 (distance 8: 0.552 and 0.538). */
#define CORE_PREFETCH 16

void hakl_core_free_all(hakl_ctx *c) {
  size_t n = 0;
  if (c->core == NULL) {
    hakl_core_stop(c);
    return;
  }
  for (size_t i = 0; i <= c->core_mask; i++) /* the addresses to the front */
    if (c->core[i] != 0) c->core[n++] = c->core[i];
  uintptr_t *order = c->core, *tmp = NULL;
  if (n > 1) {
    tmp = (uintptr_t *)hak_malloc(n * sizeof *tmp);
    if (tmp != NULL) order = core_sort_by_slice(c->core, tmp, n); /* without memory: the set's order */
  }
  for (size_t i = 0; i < n; i++) {
    if (i + CORE_PREFETCH < n) __builtin_prefetch((void *)order[i + CORE_PREFETCH], 1);
    hak_free((void *)order[i]);
  }
  hak_free(tmp);
  hakl_core_stop(c);
}

void hakl_core_stop(hakl_ctx *c) {
  if (c->core != NULL) hak_free(c->core);
  c->core_on = false;
  c->core = NULL;
  c->core_mask = 0;
  c->core_count = 0;
}
