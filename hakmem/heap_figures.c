/*
** heap_figures.c -- what one heap holds, read by its owner thread.
**
** hak_stats_get walks every page of the process and is exact only while
** nobody allocates; a runtime wants per-thread figures while the other
** threads run.  A heap is touched by its owner only (types.h), so the
** owner can walk its own segments and queues at any time it is not
** allocating: the runtime's workers do it between tasks.
*/
#include <string.h>

#include "internal.h"

void hak_heap_figures(hak_heap_t *heap, hak_heap_figures_t *out) {
  memset(out, 0, sizeof *out);
  if (heap == NULL) heap = thread_heap;
  if (heap == NULL || heap == &heap_empty) {
    out->purge_delay = hak_option_get(HAK_OPT_PURGE_DELAY);
    return;
  }
  out->purge_delay = segment_heap_delay(heap);
  for (hak_segment_t *seg = heap->segments; seg != NULL; seg = seg->next) {
    out->segments++;
    /* slice 0 is the header: counted by its size, as segment.c does */
    out->committed += (size_t)__builtin_popcountll(seg->commit_mask & ~(uint64_t)1) *
                          HAK_SLICE_SIZE + segment_header_size();
  }
  for (unsigned q = 0; q <= HAK_QUEUES; q++) {
    const page_queue_t *pq = q < HAK_QUEUES ? &heap->queues[q] : &heap->full;
    for (const hak_page_t *p = pq->first; p != NULL; p = p->next) {
      out->pages++;
      /* used counts blocks already in thread_free: they are freed, but
      ** the owner has not taken them back yet */
      out->in_use += (size_t)p->used * p->block_size;
    }
  }
}
