/*
** atomic.h -- the only door to atomic instructions in hakmem.
**
** Everything goes through libatomic_ops (AO_t is a pointer-sized word).  On
** GCC it compiles to __atomic builtins, so ThreadSanitizer understands it.
** Debian's libatomic_ops 7.6 has no exchange: "take the whole list" is a
** compare-and-swap loop (see page_collect_thread_free in page.c).
*/
#ifndef HAKMEM_ATOMIC_H
#define HAKMEM_ATOMIC_H

#include <atomic_ops.h>
#include <stdbool.h>
#include <stdint.h>

typedef AO_t hak_atomic_t;

static inline uintptr_t atomic_load_relaxed(const hak_atomic_t *a) { return AO_load(a); }
static inline uintptr_t atomic_load_acquire(const hak_atomic_t *a) { return AO_load_acquire(a); }
static inline void atomic_store_relaxed(hak_atomic_t *a, uintptr_t v) { AO_store(a, v); }
static inline void atomic_store_release(hak_atomic_t *a, uintptr_t v) { AO_store_release(a, v); }

/* Publishing to or taking from other threads: acquire and release. */
static inline bool atomic_cas_full(hak_atomic_t *a, uintptr_t expect, uintptr_t desired) {
  return AO_compare_and_swap_full(a, expect, desired);
}
static inline uintptr_t atomic_add(hak_atomic_t *a, intptr_t delta) {
  return AO_fetch_and_add_full(a, (AO_t)delta);
}
/* Raises *a to v if it is lower (peaks). */
static inline void atomic_max(hak_atomic_t *a, uintptr_t v) {
  uintptr_t cur = AO_load(a);
  while (cur < v && !AO_compare_and_swap_full(a, cur, v)) cur = AO_load(a);
}

#endif
