/*
** hakl_core.h -- the blocks a state on a shared heap has from the core.
**
** hakl_close skips Lua's final sweep (a walk of every object) when it can
** free what the sweep would have freed without it: the region's chunks,
** which it knows, and the blocks above the region, which Lua alone knows.
** A state with a private heap drops them with its heap; a state on the
** threads' shared heaps keeps their addresses here, in a hash set (open
** addressing, linear probing), so that its close is as fast.
**
** Invariants (a tracking context, hakl_ctx.core_on):
** - core holds exactly the state's live blocks above region.top, each
**   once, in core_mask + 1 slots (a power of two), at most half of them
**   used; an empty slot is 0.  core is NULL until the first such block
**   (most small states have none).
** - core_lost: a block could not be added (no memory for the set): the
**   set no longer covers every block, and hakl_close sweeps.
** Touched only by the state's own allocation calls, like the region.
*/
#ifndef HAKL_CORE_H
#define HAKL_CORE_H

#include "hakl.h"

/* Starts tracking (hakl_newstate, a state on the shared heaps). */
void hakl_core_start(hakl_ctx *c);
/* A new block of the core; a moved one (realloc) is a remove and an add. */
void hakl_core_add(hakl_ctx *c, void *p);
void hakl_core_remove(hakl_ctx *c, void *p);
/* Whether every block above the region is in the set. */
static inline bool hakl_core_complete(const hakl_ctx *c) {
  return c->core_on && !c->core_lost;
}
/* Frees every block in the set (hak_free), then the set itself. */
void hakl_core_free_all(hakl_ctx *c);
/* Frees the set only (its blocks went back one by one). */
void hakl_core_stop(hakl_ctx *c);

#endif /* HAKL_CORE_H */
