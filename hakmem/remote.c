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

/* The slots, the indices of those in use (so that the end flushes what it
** holds, not all 128), and the slot of the last block added (NULL after
** its flush).  A close frees its blocks sorted by address (hakl_core.c):
** most frees are on the page of the one before, and take that slot with
** one compare instead of a hash and a probe. */
typedef struct batch_table_s {
  batch_slot_t slot[BATCH_SLOTS];
  uint8_t used[BATCH_SLOTS];
  unsigned nused;
  batch_slot_t *last;
} batch_table_t;

/*
** The table is a block of the thread's own heap, freed by the outermost
** end: static TLS stays a few words (a module loaded with dlopen gets
** little of it).  It is made only once a batch has freed BATCH_DIRECT
** blocks remotely, each pushed at once until then.  A close of a small
** state frees some 30 blocks remotely, each on a page of its own (the
** region's chunks, a few larger blocks), so holding them saves no CAS:
** with the table made at begin, its batch ran 39.7 K instructions for 8
** closes against 14.1 K for plain pushes (callgrind, close.lua 8 20000).
*/
#define BATCH_DIRECT 64
__thread unsigned remote_batch_depth tls_initial_exec;
static __thread batch_table_t *batch tls_initial_exec;
static __thread unsigned batch_direct tls_initial_exec; /* frees pushed at once so far */
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

/* The batch's table, made after BATCH_DIRECT frees; NULL before, or when
** its allocation failed (then every block is pushed at once: slower,
** never lost). */
static batch_table_t *batch_table(void) {
  if (batch == NULL && ++batch_direct == BATCH_DIRECT) {
    batch = (batch_table_t *)hak_malloc(sizeof *batch);
    if (batch != NULL) memset(batch, 0, sizeof *batch);
  }
  return batch;
}

/* page_push_remote while a batch is open. */
void remote_batch_add(hak_page_t *page, hak_block_t *block) {
  batch_table_t *t = batch_table();
  batch_slot_t *s, *empty = NULL;
  unsigned h;
  if (t == NULL) {
    page_push_remote_list(page, block, block, 1);
    return;
  }
  s = t->last;
  if (s != NULL && s->page == page) {
    block_set_next(page, block, s->first);
    s->first = block;
    s->n++;
    return;
  }
  /* 4-way: a close interleaves a dozen classes, so two busy pages that
  ** hash alike must not evict each other at every free. */
  h = batch_slot_of(page);
  for (unsigned k = 0; k < BATCH_WAYS; k++) {
    s = &t->slot[(h + k) & (BATCH_SLOTS - 1)];
    if (s->page == page) { /* prepend: the chain's last block stays last */
      block_set_next(page, block, s->first);
      s->first = block;
      s->n++;
      t->last = s;
      return;
    }
    if (s->page == NULL && empty == NULL) empty = s;
  }
  if (empty == NULL) {
    empty = &t->slot[h];
    batch_flush_slot(empty); /* stays in `used` */
  } else {
    t->used[t->nused++] = (uint8_t)(empty - t->slot);
  }
  block_set_next(page, block, NULL);
  empty->page = page;
  empty->first = empty->last = block;
  empty->n = 1;
  t->last = empty;
}

void hak_remote_batch_begin(void) {
  remote_batch_depth++;
}

void hak_remote_batch_end(void) {
  batch_table_t *t = batch;
  if (remote_batch_depth == 0 || --remote_batch_depth > 0) return;
  batch_direct = 0;
  if (t == NULL) return;
  for (unsigned i = 0; i < t->nused; i++) batch_flush_slot(&t->slot[t->used[i]]);
  batch = NULL;
  hak_free(t); /* the thread's own block: a local free, never held */
}

void hak_thread_counters(hak_thread_counters_t *out) {
  memset(out, 0, sizeof *out);
  out->remote_frees = remote_frees;
  out->remote_pushes = remote_pushes;
}
