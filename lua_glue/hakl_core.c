/*
** hakl_core.c -- the set of a state's blocks above its region
** (hakl_core.h).
*/
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

void hakl_core_free_all(hakl_ctx *c) {
  if (c->core != NULL)
    for (size_t i = 0; i <= c->core_mask; i++)
      if (c->core[i] != 0) hak_free((void *)c->core[i]);
  hakl_core_stop(c);
}

void hakl_core_stop(hakl_ctx *c) {
  if (c->core != NULL) hak_free(c->core);
  c->core_on = false;
  c->core = NULL;
  c->core_mask = 0;
  c->core_count = 0;
}
