/*
** os.c -- the OS layer: the only file that calls mmap, munmap, madvise,
** mremap and mprotect.  Preconditions, stated once: sizes and addresses are multiples of
** the OS page; alignments are powers of two no smaller than the OS page.
*/
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

size_t os_round_page(size_t size) {
  return (size + HAK_OS_PAGE - 1) & ~(size_t)(HAK_OS_PAGE - 1);
}

/* Counts a mapping made or released. */
static void os_account(intptr_t delta) {
  atomic_add(&stats.mapped, delta);
  if (delta > 0) atomic_add(&stats.mmap_calls, 1);
}

#define OS_PROT (PROT_READ | PROT_WRITE)
#define OS_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

/*
** Where the next aligned mapping is tried first: right below the last one,
** where the kernel's top-down placement would put it anyway, rounded down
** to the alignment.  A hint only (no MAP_FIXED): the kernel places the
** mapping elsewhere when the range is taken.  It makes a new segment one
** mmap instead of the three to five calls of an over-map.
*/
static hak_atomic_t os_hint;

static void *os_map_hinted(size_t size, size_t align, size_t offset) {
  uintptr_t hint = atomic_load_relaxed(&os_hint);
  if (hint < size + offset + align) return NULL;
  uintptr_t at = ((hint - size + offset) & ~(uintptr_t)(align - 1)) - offset;
  void *p = mmap((void *)at, size, OS_PROT, OS_FLAGS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if ((uintptr_t)p == at) return p;
  munmap(p, size);
  return NULL;
}

/*
** An aligned mapping: at the hint; else a plain try (the kernel returns
** addresses next to the previous mapping, so it is often aligned already);
** else over-map by `align`, then unmap the misaligned head and the tail.
** `offset` shifts what is aligned: a huge block aligned to more than a
** segment starts one segment into its mapping (huge.c), and it is the
** block that must fall on the multiple of `align`.
*/
void *os_map_aligned_at(size_t size, size_t align, size_t offset) {
  void *p = os_map_hinted(size, align, offset);
  if (p) goto done;
  p = mmap(NULL, size, OS_PROT, OS_FLAGS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if ((((uintptr_t)p + offset) & (align - 1)) == 0) goto done;
  munmap(p, size);
  if (size + align < size) return NULL;
  uint8_t *raw = mmap(NULL, size + align, OS_PROT, OS_FLAGS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  /* the first address from raw on that is aligned once offset is added */
  uint8_t *aligned = (uint8_t *)((((uintptr_t)raw + offset + align - 1) & ~(uintptr_t)(align - 1)) - offset);
  size_t head = (size_t)(aligned - raw);
  size_t tail = align - head;
  if (head) munmap(raw, head);
  if (tail) munmap(aligned + size, tail);
  p = aligned;
done:
  atomic_store_relaxed(&os_hint, (uintptr_t)p);
  os_account((intptr_t)size);
  return p;
}

void *os_map_aligned(size_t size, size_t align) { return os_map_aligned_at(size, align, 0); }

void os_unmap(void *p, size_t size) {
  if (munmap(p, size) != 0) hak_warn("munmap(%p, %zu) failed: errno %d", p, size, errno);
  os_account(-(intptr_t)size);
}

/*
** MADV_DONTNEED rather than MADV_FREE: the resident set falls at once, which
** is what the users of a VM allocator measure; the next touch faults in a
** zero page.
*/
void os_purge(void *p, size_t size) {
  if (madvise(p, size, MADV_DONTNEED) != 0) hak_warn("madvise(%p, %zu) failed: errno %d", p, size, errno);
  atomic_add(&stats.purged, (intptr_t)size);
}

/*
** Growing a huge block: first in place; else reserve an aligned range and
** let mremap move the pages there (no copying, the page tables move).
** NULL when it cannot: the caller then copies.
*/
void *os_remap_aligned(void *p, size_t old, size_t size, size_t align) {
  void *q = mremap(p, old, size, 0);
  if (q != MAP_FAILED) {
    os_account((intptr_t)size - (intptr_t)old);
    return q;
  }
  if (size < old) return NULL;
  uint8_t *raw = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
  q = mremap(p, old, size, MREMAP_MAYMOVE | MREMAP_FIXED, aligned);
  if (q == MAP_FAILED) {
    munmap(raw, size + align);
    return NULL;
  }
  /* mremap replaced [aligned, aligned+size); drop the rest of the reservation. */
  if (aligned > raw) munmap(raw, (size_t)(aligned - raw));
  size_t tail = (size_t)(raw + size + align - (aligned + size));
  if (tail) munmap(aligned + size, tail);
  os_account((intptr_t)size - (intptr_t)old);
  return q;
}

/*
** Secure builds' guard pages.  A failure is fatal: a guard that silently
** is not there would be worse than none, and one that stays after its
** block is freed would fault a correct program.
*/
void os_guard(void *p, size_t size, bool guard) {
  if (mprotect(p, size, guard ? PROT_NONE : OS_PROT) != 0)
    hak_fatal("mprotect(%p, %zu) failed: errno %d (vm.max_map_count?)", p, size, errno);
}

uint64_t os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
