/*
** segment_map.c -- the segment map: "is this a hakmem segment?" for any
** address, without touching the address.
**
** One bit per 4 MiB unit of the 48-bit address space (8 MiB of
** zero-filled .bss, of which only the touched pages become resident), and
** as much again for the huge blocks aligned to 4 MiB or more, whose header
** is one unit below them.
**
** This file comes last in the core's link order (configure.py), so the
** 16 MiB of maps lie after every other variable of the core in .bss: a
** process touches one page for all of those, not three pages between and
** after the maps (hklua on a small script: 12 KiB less resident).
*/
#include "internal.h"

#define MAP_UNITS SEGMENT_MAP_UNITS

/* Units where a segment (its header) starts (read inline by
** segment_has_header). */
hak_atomic_t segment_map[MAP_UNITS / 64];
/* Units where a segment-aligned huge block starts, one unit past its header:
** the one kind of hakmem pointer outside its segment's first unit. */
static hak_atomic_t segment_aligned_map[MAP_UNITS / 64];

static bool segment_map_test(hak_atomic_t *map, const void *p) {
  uint64_t unit = (uint64_t)(uintptr_t)p >> HAK_SEGMENT_SHIFT;
  if (unit >= MAP_UNITS) return false;
  return (atomic_load_acquire(&map[unit / 64]) >> (unit % 64)) & 1;
}

bool segment_is_mapped(const void *p) {
  return segment_map_test(segment_map, p) || segment_map_test(segment_aligned_map, p);
}

bool segment_is_aligned_huge(const void *p) {
  return segment_is_boundary(p) && segment_map_test(segment_aligned_map, p);
}

static void segment_map_set_unit(hak_atomic_t *map, const void *at, bool on) {
  uint64_t unit = (uint64_t)(uintptr_t)at >> HAK_SEGMENT_SHIFT;
  if (unit >= MAP_UNITS) hak_fatal("segment %p is outside the 48-bit address space", at);
  hak_atomic_t *word = &map[unit / 64];
  uintptr_t bit = (uintptr_t)1 << (unit % 64);
  for (;;) {
    uintptr_t old = atomic_load_relaxed(word);
    uintptr_t val = on ? (old | bit) : (old & ~bit);
    if (atomic_cas_full(word, old, val)) return;
  }
}

/*
** The segment's first unit, where its header is; and for a segment-aligned
** huge block, the block's own unit, in a map of its own: the override
** tells hakmem's pointers from foreign ones by their unit alone, and a
** pointer at a unit start is a block only if that second map says so (a
** unit start in the first map is a header, never a block).
*/
void segment_map_set(hak_segment_t *seg, bool on) {
  segment_map_set_unit(segment_map, seg, on);
  if (seg->kind == SEGMENT_HUGE && seg->huge_offset == HAK_SEGMENT_SIZE)
    segment_map_set_unit(segment_aligned_map, (uint8_t *)seg + HAK_SEGMENT_SIZE, on);
}
