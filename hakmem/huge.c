/*
** huge.c -- huge blocks (> HAK_LARGE_MAX): a segment of their own, sized to
** the block, so that freeing one returns all of it to the OS at once and
** realloc can grow it with mremap instead of copying.
**
** Any thread frees a huge block directly (munmap), so huge segments are not
** in any heap's lists: they sit on one process-wide list under a mutex,
** each naming its heap (for hak_heap_destroy).  Huge allocations cost a
** system call anyway; the lock is not what anyone waits for.
*/
#include <string.h>
#include <sys/sysinfo.h>

#include "internal.h"

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_segment_t *huge_list;

static void huge_link(hak_segment_t *seg) {
  seg->prev = NULL;
  seg->next = huge_list;
  if (huge_list) huge_list->prev = seg;
  huge_list = seg;
}

static void huge_unlink(hak_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else huge_list = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
}

/* The one page descriptor of a huge segment, and every slice leading to it. */
static void huge_set_page(hak_segment_t *seg) {
  hak_page_t *page = &seg->pages[0];
  page->flags = PAGE_HUGE;
  page->class_idx = HAK_CLASS_LARGE;
  page->slice_count = 1;
  page->block_size = seg->size - seg->huge_offset - SECURE_GUARD;
  page->used = page->capacity = page->reserved = 1;
  page->start = (uint8_t *)seg + seg->huge_offset;
  for (unsigned i = 1; i < HAK_SLICES; i++) slice_set_back(&seg->pages[i], i);
}

/*
** What a huge segment may make resident: everything but the gap between
** the header and an aligned block, which nothing ever touches.
*/
static size_t huge_committed(const hak_segment_t *seg) {
  return seg->size - SECURE_GUARD - (seg->huge_offset - segment_header_size());
}

/* Secure builds: the mapping's last OS page is a guard after the block. */
static void huge_guard(hak_segment_t *seg, bool guard) {
  if (SECURE_GUARD) os_guard((uint8_t *)seg + seg->size - SECURE_GUARD, SECURE_GUARD, guard);
}

/*
** The block starts at the header size rounded up to `align` (a power of
** two), so that it is aligned in a segment aligned to 4 MiB.  Above 2 MiB
** that offset would be `align` itself, a segment or more into the mapping:
** the block starts one segment in instead (it is then a segment boundary,
** see segment_of_block) and the mapping is placed so that the block falls
** on a multiple of `align`.
*/
/*
** The most memory the machine could ever give one block: its RAM and swap.
** hakmem maps with MAP_NORESERVE, so the kernel would reserve 64 TiB of
** address space without a word and the program would die on touching it;
** glibc's malloc gets ENOMEM from the kernel's overcommit check instead.
** The total is read once and again only for a request above it (swap
** added since): sysinfo costs 39 us in a VM here, and mstress (T=2, 20
** rounds) made 37 huge blocks in a 45 ms run.  A swap taken away since
** the last read is not seen.
*/
static hak_atomic_t huge_backable_max; /* bytes of RAM and swap at the last read */

static bool huge_backable(size_t size) {
  if (size <= atomic_load_relaxed(&huge_backable_max)) return true;
  struct sysinfo si;
  if (sysinfo(&si) != 0) return true; /* unknown: let mmap decide */
  unsigned __int128 total = ((unsigned __int128)si.totalram + si.totalswap) * si.mem_unit;
  atomic_store_relaxed(&huge_backable_max, total > UINTPTR_MAX ? UINTPTR_MAX : (uintptr_t)total);
  return size <= total;
}

void *huge_alloc(hak_heap_t *heap, size_t size, size_t align) {
  if (!huge_backable(size)) return NULL;
  size_t header = segment_header_size();
  size_t offset = (header + align - 1) & ~(align - 1);
  size_t map_align = HAK_SEGMENT_SIZE, map_offset = 0;
  if (align > HAK_SEGMENT_SIZE / 2) {
    offset = HAK_SEGMENT_SIZE;
    if (align > HAK_SEGMENT_SIZE) map_align = align, map_offset = offset;
  }
  if (size > SIZE_MAX - offset - map_align) return NULL;
  /* at least one byte: a block of 0 at the very end of its mapping would
     be the address where the next mapping may start */
  size_t total = os_round_page(offset + (size ? size : 1)) + SECURE_GUARD;
  hak_segment_t *seg = os_map_aligned_at(total, map_align, map_offset);
  if (!seg) {
    /* out of address space (RLIMIT_AS): the cache of empty segments may
       hold up to 64 MiB of it; give that back and try once more */
    segment_purge_idle(true);
    seg = os_map_aligned_at(total, map_align, map_offset);
    if (!seg) return NULL;
  }
  seg->kind = SEGMENT_HUGE;
  seg->size = total;
  seg->huge_offset = offset;
  huge_guard(seg, true);
  huge_set_page(seg);
  segment_set_owner(seg, heap);
  segment_register(seg);
  stats_committed((intptr_t)huge_committed(seg));
  atomic_add(&stats.huge_blocks, 1);
  pthread_mutex_lock(&huge_lock);
  huge_link(seg);
  pthread_mutex_unlock(&huge_lock);
  return seg->pages[0].start;
}

static void huge_release(hak_segment_t *seg) {
  segment_unregister(seg);
  stats_committed(-(intptr_t)huge_committed(seg));
  atomic_add(&stats.huge_blocks, -1);
  os_unmap(seg, seg->size);
}

void huge_free(hak_segment_t *seg) {
  pthread_mutex_lock(&huge_lock);
  huge_unlink(seg);
  pthread_mutex_unlock(&huge_lock);
  huge_release(seg);
}

/*
** Grows or shrinks in place when the kernel can, else moves the pages to a
** new aligned range; either way no byte is copied.  The segment leaves the
** map and the lists while it moves.
*/
void *huge_realloc(hak_segment_t *seg, size_t size) {
  if (!huge_backable(size)) return NULL;
  if (size > SIZE_MAX - seg->huge_offset - HAK_SEGMENT_SIZE) return NULL;
  size_t total = os_round_page(seg->huge_offset + size) + SECURE_GUARD;
  if (total == seg->size) return seg->pages[0].start;
  size_t old = seg->size;
  pthread_mutex_lock(&huge_lock);
  huge_unlink(seg);
  segment_unregister(seg);
  huge_guard(seg, false); /* mremap takes one mapping of one protection */
  hak_segment_t *moved = os_remap_aligned(seg, old, total, HAK_SEGMENT_SIZE);
  if (moved) {
    seg = moved;
    seg->size = total;
    huge_set_page(seg);
    stats_committed((intptr_t)total - (intptr_t)old);
  }
  huge_guard(seg, true);
  segment_register(seg);
  huge_link(seg);
  pthread_mutex_unlock(&huge_lock);
  return moved ? seg->pages[0].start : NULL;
}

void huge_move_all(hak_heap_t *to, hak_heap_t *from) {
  pthread_mutex_lock(&huge_lock);
  for (hak_segment_t *seg = huge_list; seg; seg = seg->next)
    if (seg->heap == from) segment_set_owner(seg, to);
  pthread_mutex_unlock(&huge_lock);
}

void huge_destroy_all(hak_heap_t *heap) {
  pthread_mutex_lock(&huge_lock);
  hak_segment_t *seg = huge_list, *next;
  for (; seg; seg = next) {
    next = seg->next;
    if (seg->heap != heap) continue;
    huge_unlink(seg);
    huge_release(seg);
  }
  pthread_mutex_unlock(&huge_lock);
}

void huge_set_owner_all(hak_heap_t *heap) { huge_move_all(heap, heap); }

void huge_each(hak_heap_t *heap, void (*fn)(hak_segment_t *seg, void *arg), void *arg) {
  pthread_mutex_lock(&huge_lock);
  for (hak_segment_t *seg = huge_list; seg; seg = seg->next)
    if (seg->heap == heap) fn(seg, arg);
  pthread_mutex_unlock(&huge_lock);
}

void huge_fork_lock(bool lock) {
  if (lock) pthread_mutex_lock(&huge_lock);
  else pthread_mutex_unlock(&huge_lock);
}
