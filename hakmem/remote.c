/*
** remote.c -- batched remote frees.
**
** A thread that frees many blocks of other threads' pages at once (the
** runtime's collector closing a Lua state that ran on the workers) would
** pay one CAS on a contended line per block.  Between
** hak_remote_batch_begin and hak_remote_batch_end, page_push_remote hands
** such blocks here instead: they are chained per page in a small
** table (4 ways from its hash), and each chain goes onto its page's thread_free
** with one CAS (page_push_remote_list) when its slot is needed by another
** page or the batch ends.  A close frees in the order Lua's lists hold the
** objects, roughly their allocation order, so neighbours share pages and
** the chains are long.
**
** A held block is still counted in its page's `used`, so the page (and
** its segment) cannot go away before the block is pushed.
*/
#include <string.h>

#include "internal.h"

#define BATCH_SLOTS 128 /* a power of two */
#define BATCH_WAYS 4    /* slots a page may take, from its hash on */

/* One page's held blocks: first..last chained through next. */
typedef struct batch_slot_s {
  hak_page_t *page;  /* NULL: the slot is empty */
  hak_block_t *first, *last;
  uint32_t n; /* blocks in the chain */
} batch_slot_t;

/* The table is a block of the thread's own heap, made by the outermost
** begin and freed by its end: static TLS stays a few words (a module
** loaded with dlopen gets little of it). */
__thread unsigned remote_batch_depth tls_initial_exec;
static __thread batch_slot_t *batch tls_initial_exec;
__thread uint64_t remote_frees tls_initial_exec, remote_pushes tls_initial_exec;

static unsigned batch_slot_of(const hak_page_t *page) {
  /* descriptors are 128 bytes apart; Fibonacci hashing spreads neighbours */
  uint64_t h = ((uint64_t)(uintptr_t)page >> 7) * UINT64_C(0x9E3779B97F4A7C15);
  return (unsigned)(h >> 57) & (BATCH_SLOTS - 1);
}

static void batch_flush_slot(batch_slot_t *s) {
  if (s->page == NULL) return;
  page_push_remote_list(s->page, s->first, s->last, s->n);
  s->page = NULL;
}

/* page_push_remote while a batch is open.  Without a table (its
** allocation failed) the block is pushed at once: slower, never lost. */
void remote_batch_add(hak_page_t *page, hak_block_t *block) {
  batch_slot_t *s, *empty = NULL;
  unsigned h;
  if (batch == NULL) {
    page_push_remote_list(page, block, block, 1);
    return;
  }
  /* 4-way: a close interleaves a dozen classes, so two busy pages that
  ** hash alike must not evict each other at every free. */
  h = batch_slot_of(page);
  for (unsigned k = 0; k < BATCH_WAYS; k++) {
    s = &batch[(h + k) & (BATCH_SLOTS - 1)];
    if (s->page == page) { /* prepend: the chain's last block stays last */
      block_set_next(page, block, s->first);
      s->first = block;
      s->n++;
      return;
    }
    if (s->page == NULL && empty == NULL) empty = s;
  }
  if (empty == NULL) {
    empty = &batch[h];
    batch_flush_slot(empty);
  }
  block_set_next(page, block, NULL);
  empty->page = page;
  empty->first = empty->last = block;
  empty->n = 1;
}

void hak_remote_batch_begin(void) {
  if (remote_batch_depth > 0) {
    remote_batch_depth++;
    return;
  }
  /* A failure leaves batch NULL: every block is then pushed at once. */
  batch = (batch_slot_t *)hak_malloc(BATCH_SLOTS * sizeof *batch);
  if (batch != NULL) memset(batch, 0, BATCH_SLOTS * sizeof *batch);
  remote_batch_depth = 1;
}

void hak_remote_batch_end(void) {
  batch_slot_t *t = batch;
  if (remote_batch_depth == 0 || --remote_batch_depth > 0) return;
  if (t == NULL) return;
  for (unsigned i = 0; i < BATCH_SLOTS; i++) batch_flush_slot(&t[i]);
  batch = NULL;
  hak_free(t); /* the thread's own block: a local free, never held */
}

void hak_thread_counters(hak_thread_counters_t *out) {
  memset(out, 0, sizeof *out);
  out->remote_frees = remote_frees;
  out->remote_pushes = remote_pushes;
}
